//! Raw access to the shared memory: the only module with `unsafe` (spec §2.2).
//!
//! The peer may write any byte of the shared memory at any time, so the rest of the crate never
//! holds a reference or slice into it: everything goes through [`SlotMem`], whose methods check
//! bounds and alignment and copy values in or out with atomic or volatile accesses (the rule of
//! rust-vmm's `volatile_memory`: "no references or slices to volatile memory").
//!
//! - [`SharedMemory`]: a memfd mapped `MAP_SHARED`, shareable with another process by its fd.
//! - [`HeapMemory`]: ordinary process memory made of atomics, for unit tests and in-process links.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Error, Result};

/// Checked, copy-only access to memory shared with an untrusted peer.
///
/// Offsets are byte offsets from the start of the region (slot zero). Every method fails with
/// [`Error::MemoryOutOfBounds`] if the range does not lie inside the region, and the word
/// accessors with [`Error::MemoryMisaligned`] unless `off` is a multiple of 4.
pub trait SlotMem: Send + Sync + 'static {
    /// Size of the region in bytes.
    fn len(&self) -> usize;

    /// True if the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Atomically loads the 32-bit word at `off` (a load ordering: `Relaxed`, `Acquire` or
    /// `SeqCst`; others fail with [`Error::InvalidOrdering`]).
    fn load_u32(&self, off: usize, order: Ordering) -> Result<u32>;

    /// Atomically stores `v` at `off` (a store ordering: `Relaxed`, `Release` or `SeqCst`).
    fn store_u32(&self, off: usize, v: u32, order: Ordering) -> Result<()>;

    /// Copies `buf.len()` bytes at `off` into `buf`.
    fn read(&self, off: usize, buf: &mut [u8]) -> Result<()>;

    /// The `len` bytes at `off`, as a new vector (bulk data). Implementations may skip
    /// zeroing the vector first.
    fn read_vec(&self, off: usize, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(off, &mut v)?;
        Ok(v)
    }

    /// Copies `data` to `off`.
    fn write(&self, off: usize, data: &[u8]) -> Result<()>;
}

impl<T: SlotMem> SlotMem for Arc<T> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn load_u32(&self, off: usize, order: Ordering) -> Result<u32> {
        (**self).load_u32(off, order)
    }
    fn store_u32(&self, off: usize, v: u32, order: Ordering) -> Result<()> {
        (**self).store_u32(off, v, order)
    }
    fn read(&self, off: usize, buf: &mut [u8]) -> Result<()> {
        (**self).read(off, buf)
    }
    fn write(&self, off: usize, data: &[u8]) -> Result<()> {
        (**self).write(off, data)
    }
    fn read_vec(&self, off: usize, len: usize) -> Result<Vec<u8>> {
        (**self).read_vec(off, len)
    }
}

/// Fails unless `off..off + len` lies inside `size` bytes.
fn check_range(off: usize, len: usize, size: usize) -> Result<()> {
    match off.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::MemoryOutOfBounds {
            offset: off,
            len,
            size,
        }),
    }
}

/// Fails unless `off` is 4-aligned and the word lies inside `size` bytes.
fn check_word(off: usize, size: usize) -> Result<()> {
    if off % 4 != 0 {
        return Err(Error::MemoryMisaligned { offset: off });
    }
    check_range(off, 4, size)
}

fn check_load(order: Ordering) -> Result<()> {
    match order {
        Ordering::Relaxed | Ordering::Acquire | Ordering::SeqCst => Ok(()),
        _ => Err(Error::InvalidOrdering {
            order,
            access: "load",
        }),
    }
}

fn check_store(order: Ordering) -> Result<()> {
    match order {
        Ordering::Relaxed | Ordering::Release | Ordering::SeqCst => Ok(()),
        _ => Err(Error::InvalidOrdering {
            order,
            access: "store",
        }),
    }
}

/// A memfd shared with the peer (`memfd_create` + `ftruncate` + `mmap(MAP_SHARED)`).
///
/// # Invariants
/// `ptr` is the start of a live `MAP_SHARED` read-write mapping of `len` bytes of `fd`, page
/// aligned, unmapped only by `Drop`.
pub struct SharedMemory {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all access goes through the checked atomic and
// volatile accessors below, which are sound to call from any thread concurrently.
unsafe impl Send for SharedMemory {}
// SAFETY: as for `Send`: no method hands out references into the mapping.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// Creates an anonymous memfd of `size` bytes (rounded up to the page size) and maps it.
    ///
    /// # Errors
    /// [`Error::Io`] if `memfd_create`, `ftruncate` or `mmap` fails; [`Error::InvalidConfig`]
    /// for a zero size or a name with a NUL byte.
    pub fn create(name: &str, size: usize) -> Result<Self> {
        if size == 0 {
            return Err(Error::InvalidConfig {
                what: "shared memory size",
                value: 0,
            });
        }
        let cname = CString::new(name).map_err(|_| Error::InvalidConfig {
            what: "memfd name (has a NUL byte)",
            value: 0,
        })?;
        // SAFETY: `cname` is a valid NUL-terminated string; the call has no other preconditions.
        let raw = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(Error::io("memfd_create"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = size.next_multiple_of(page_size());
        let len = libc::off_t::try_from(size).map_err(|_| Error::InvalidConfig {
            what: "shared memory size",
            value: size as u64,
        })?;
        // SAFETY: `fd` is a valid memfd owned by us.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
            return Err(Error::io("ftruncate"));
        }
        Self::map(fd, size)
    }

    /// Maps the whole of an existing memfd (or any shareable file), its size taken from `fstat`.
    ///
    /// # Errors
    /// [`Error::Io`] if `fstat` or `mmap` fails, [`Error::InvalidConfig`] for an empty file.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let size = Self::file_size(&fd)?;
        Self::map(fd, size)
    }

    fn file_size(fd: &OwnedFd) -> Result<usize> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `st` is a writable `stat` buffer and `fd` a valid descriptor.
        if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return Err(Error::io("fstat"));
        }
        // SAFETY: `fstat` succeeded, so it initialised `st`.
        let st = unsafe { st.assume_init() };
        let size = usize::try_from(st.st_size).unwrap_or(0);
        if size == 0 {
            return Err(Error::InvalidConfig {
                what: "shared memory file size",
                value: 0,
            });
        }
        Ok(size)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<Self> {
        // SAFETY: a fresh shared mapping of a descriptor we own; the kernel picks the address, so
        // no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::io("mmap"));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| Error::io("mmap"))?;
        Ok(Self { fd, ptr, len })
    }

    /// The memfd, to hand to the peer process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: callers checked that `off` is 4-aligned and `off + 4 <= len`, so the pointer is
        // in bounds and aligned (the mapping is page aligned); the memory lives as long as `self`
        // and is only ever accessed atomically at word granularity or by volatile copies.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe our own mapping, and nothing borrows it past `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("fd", &self.fd.as_raw_fd())
            .field("len", &self.len)
            .finish()
    }
}

fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).unwrap_or(4096).max(4096)
}

impl SlotMem for SharedMemory {
    fn len(&self) -> usize {
        self.len
    }

    fn load_u32(&self, off: usize, order: Ordering) -> Result<u32> {
        check_word(off, self.len)?;
        check_load(order)?;
        Ok(self.word(off).load(order))
    }

    fn store_u32(&self, off: usize, v: u32, order: Ordering) -> Result<()> {
        check_word(off, self.len)?;
        check_store(order)?;
        self.word(off).store(v, order);
        Ok(())
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> Result<()> {
        check_range(off, buf.len(), self.len)?;
        let base = self.ptr.as_ptr();
        let mut i = 0;
        // 32 bytes at a time while aligned, then 8, then bytewise: bulk data moves in wide
        // volatile loads, never through references into the mapping.
        while i < buf.len() {
            let src = off + i;
            if src % 8 == 0 && buf.len() - i >= 32 {
                // SAFETY: `src..src + 32` is inside the mapping (range checked above) and
                // 8-aligned, the alignment of `[u64; 4]`.
                let v = unsafe { std::ptr::read_volatile(base.add(src).cast::<[u64; 4]>()) };
                for (k, w) in v.iter().enumerate() {
                    buf[i + 8 * k..i + 8 * k + 8].copy_from_slice(&w.to_ne_bytes());
                }
                i += 32;
            } else if src % 8 == 0 && buf.len() - i >= 8 {
                // SAFETY: `src..src + 8` is inside the mapping (range checked above) and 8-aligned.
                let v = unsafe { std::ptr::read_volatile(base.add(src).cast::<u64>()) };
                buf[i..i + 8].copy_from_slice(&v.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: `src` is inside the mapping (range checked above).
                buf[i] = unsafe { std::ptr::read_volatile(base.add(src)) };
                i += 1;
            }
        }
        Ok(())
    }

    fn read_vec(&self, off: usize, len: usize) -> Result<Vec<u8>> {
        check_range(off, len, self.len)?;
        let mut v: Vec<u8> = Vec::with_capacity(len);
        let spare = &mut v.spare_capacity_mut()[..len];
        let base = self.ptr.as_ptr();
        for (i, slot) in spare.iter_mut().enumerate() {
            // Bytewise only at the unaligned head and tail; the body goes 32 bytes at a time
            // below.
            if (off + i) % 8 == 0 {
                break;
            }
            // SAFETY: `off + i` is inside the mapping (range checked above).
            slot.write(unsafe { std::ptr::read_volatile(base.add(off + i)) });
        }
        let head = (8 - off % 8) % 8;
        let head = head.min(len);
        let mut i = head;
        while len - i >= 32 {
            // SAFETY: `off + i .. off + i + 32` is inside the mapping (range checked above)
            // and 8-aligned (`off + head` is).
            let w = unsafe { std::ptr::read_volatile(base.add(off + i).cast::<[u64; 4]>()) };
            // SAFETY: `i + 32 <= len <= capacity`: the 32 bytes lie in the vector's spare
            // capacity, which nothing else references; unaligned writes need no alignment.
            unsafe {
                spare
                    .as_mut_ptr()
                    .add(i)
                    .cast::<[u64; 4]>()
                    .write_unaligned(w)
            };
            i += 32;
        }
        while i < len {
            // SAFETY: `off + i` is inside the mapping (range checked above).
            spare[i].write(unsafe { std::ptr::read_volatile(base.add(off + i)) });
            i += 1;
        }
        // SAFETY: every one of the first `len` bytes was written above (head, body, tail).
        unsafe { v.set_len(len) };
        Ok(v)
    }

    fn write(&self, off: usize, data: &[u8]) -> Result<()> {
        check_range(off, data.len(), self.len)?;
        let base = self.ptr.as_ptr();
        let mut i = 0;
        while i < data.len() {
            let dst = off + i;
            if dst % 8 == 0 && data.len() - i >= 32 {
                let mut v = [0u64; 4];
                for (k, w) in v.iter_mut().enumerate() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&data[i + 8 * k..i + 8 * k + 8]);
                    *w = u64::from_ne_bytes(b);
                }
                // SAFETY: `dst..dst + 32` is inside the mapping (range checked above) and
                // 8-aligned, the alignment of `[u64; 4]`.
                unsafe { std::ptr::write_volatile(base.add(dst).cast::<[u64; 4]>(), v) };
                i += 32;
            } else if dst % 8 == 0 && data.len() - i >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&data[i..i + 8]);
                // SAFETY: `dst..dst + 8` is inside the mapping (range checked above) and 8-aligned.
                unsafe {
                    std::ptr::write_volatile(base.add(dst).cast::<u64>(), u64::from_ne_bytes(w))
                };
                i += 8;
            } else {
                // SAFETY: `dst` is inside the mapping (range checked above).
                unsafe { std::ptr::write_volatile(base.add(dst), data[i]) };
                i += 1;
            }
        }
        Ok(())
    }
}

/// Process memory made of atomic words, with the same checked interface (tests, in-process links).
pub struct HeapMemory {
    words: Box<[AtomicU32]>,
}

impl HeapMemory {
    /// `size` zeroed bytes (rounded up to a multiple of 4).
    pub fn new(size: usize) -> Self {
        Self {
            words: (0..size.div_ceil(4)).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl std::fmt::Debug for HeapMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapMemory")
            .field("len", &self.len())
            .finish()
    }
}

impl SlotMem for HeapMemory {
    fn len(&self) -> usize {
        self.words.len() * 4
    }

    fn load_u32(&self, off: usize, order: Ordering) -> Result<u32> {
        check_word(off, self.len())?;
        check_load(order)?;
        Ok(self.words[off / 4].load(order))
    }

    fn store_u32(&self, off: usize, v: u32, order: Ordering) -> Result<()> {
        check_word(off, self.len())?;
        check_store(order)?;
        self.words[off / 4].store(v, order);
        Ok(())
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> Result<()> {
        check_range(off, buf.len(), self.len())?;
        let mut i = 0;
        while i < buf.len() {
            let a = off + i;
            let w = self.words[a / 4].load(Ordering::Relaxed).to_le_bytes();
            let skip = a % 4;
            let n = (4 - skip).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&w[skip..skip + n]);
            i += n;
        }
        Ok(())
    }

    fn write(&self, off: usize, data: &[u8]) -> Result<()> {
        check_range(off, data.len(), self.len())?;
        let mut i = 0;
        while i < data.len() {
            let a = off + i;
            let skip = a % 4;
            let n = (4 - skip).min(data.len() - i);
            let word = &self.words[a / 4];
            if n == 4 {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[i..i + 4]);
                word.store(u32::from_le_bytes(b), Ordering::Relaxed);
            } else {
                // A partial word: merge atomically so that bytes written concurrently by the
                // other side in the same word are not lost.
                let mut mask = [0u8; 4];
                let mut val = [0u8; 4];
                mask[skip..skip + n].fill(0xFF);
                val[skip..skip + n].copy_from_slice(&data[i..i + n]);
                let (mask, val) = (u32::from_le_bytes(mask), u32::from_le_bytes(val));
                let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                    Some((w & !mask) | val)
                });
            }
            i += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(m: &dyn SlotMem) {
        let n = m.len();
        assert!(n >= 8192);
        m.write(3, b"hello, slot").unwrap();
        let mut b = [0u8; 11];
        m.read(3, &mut b).unwrap();
        assert_eq!(&b, b"hello, slot");
        m.store_u32(16, 0xDEAD_BEEF, Ordering::Release).unwrap();
        assert_eq!(m.load_u32(16, Ordering::Acquire).unwrap(), 0xDEAD_BEEF);
        let mut w = [0u8; 4];
        m.read(16, &mut w).unwrap();
        assert_eq!(u32::from_le_bytes(w), 0xDEAD_BEEF);
        let big: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        m.write(1001, &big).unwrap();
        let mut back = vec![0u8; 5000];
        m.read(1001, &mut back).unwrap();
        assert_eq!(back, big);
        // Every alignment of start and length, through the wide and the narrow paths.
        for start in 1000..1017 {
            for len in [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100] {
                let want = &big[start - 1001 + 1..][..len];
                let mut narrow = vec![0u8; len];
                m.read(start + 1, &mut narrow).unwrap();
                assert_eq!(narrow, want, "read at {start}+1, {len} bytes");
                assert_eq!(m.read_vec(start + 1, len).unwrap(), want, "read_vec");
            }
        }
        assert!(matches!(
            m.read_vec(n - 4, 8),
            Err(Error::MemoryOutOfBounds { .. })
        ));
        assert!(matches!(
            m.load_u32(2, Ordering::Relaxed),
            Err(Error::MemoryMisaligned { offset: 2 })
        ));
        assert!(matches!(
            m.load_u32(n, Ordering::Relaxed),
            Err(Error::MemoryOutOfBounds { .. })
        ));
        assert!(matches!(
            m.load_u32(usize::MAX - 3, Ordering::Relaxed),
            Err(Error::MemoryOutOfBounds { .. })
        ));
        assert!(matches!(
            m.read(n - 1, &mut [0u8; 2]),
            Err(Error::MemoryOutOfBounds { .. })
        ));
        assert!(matches!(
            m.write(usize::MAX, &[1]),
            Err(Error::MemoryOutOfBounds { .. })
        ));
        assert!(matches!(
            m.load_u32(0, Ordering::Release),
            Err(Error::InvalidOrdering { .. })
        ));
        assert!(matches!(
            m.store_u32(0, 1, Ordering::Acquire),
            Err(Error::InvalidOrdering { .. })
        ));
        m.read(n, &mut []).unwrap();
    }

    #[test]
    fn heap_memory() {
        exercise(&HeapMemory::new(3 * 4096));
        exercise(&Arc::new(HeapMemory::new(3 * 4096)));
    }

    #[test]
    fn shared_memory_and_second_mapping() {
        let a = SharedMemory::create("vchiq-test", 3 * 4096).unwrap();
        exercise(&a);
        let b = SharedMemory::from_fd(a.fd().try_clone_to_owned().unwrap()).unwrap();
        assert_eq!(b.len(), a.len());
        a.store_u32(4096, 77, Ordering::Release).unwrap();
        assert_eq!(b.load_u32(4096, Ordering::Acquire).unwrap(), 77);
        b.write(5000, b"xyz").unwrap();
        let mut t = [0u8; 3];
        a.read(5000, &mut t).unwrap();
        assert_eq!(&t, b"xyz");
    }
}
