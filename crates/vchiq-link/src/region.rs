//! Bulk regions: memory outside the link's shared memory that a bulk moves through
//! directly, the analogue of the Linux driver's pagelists.
//!
//! On a Pi the ARM side describes a bulk buffer to the VideoCore as a list of the user
//! pages (a PAGELIST) and the VideoCore's DMA reads or writes those pages: the data is not
//! copied into shared memory first. Here the driver maps the client's sealed memfd and
//! registers the mapping in a [`BulkRegions`] table that both sides of an *in-process*
//! link share (the embedded VideoCore); the BULK_TX/BULK_RX message then carries
//! [`REGION_FLAG`] | id instead of an arena offset, and the master moves the data straight
//! between its own buffer and the client's pages. A VideoCore in another process shares
//! no table, and bulks go through the arena as before.
//!
//! The region is still memory another process (the client) can write at any time, so it
//! is only reached through [`SlotMem`]'s checked volatile accessors; a client that
//! scribbles over its own buffer during a transfer gets its own garbage, nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::shm::SlotMem;

/// Bit 31 of a bulk message's `data`: the rest is a region id, not an arena offset (the
/// arena lies far below 2 GiB).
pub const REGION_FLAG: u32 = 1 << 31;

/// A region's memory: anything with the checked accessors of shared memory.
pub type Region = Arc<dyn SlotMem + Send + Sync>;

/// The regions of in-flight bulks, shared by the two sides of an in-process link.
#[derive(Default)]
pub struct BulkRegions {
    map: Mutex<HashMap<u32, Region>>,
    next: AtomicU32,
}

impl std::fmt::Debug for BulkRegions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkRegions")
            .field("in_flight", &self.lock().len())
            .finish()
    }
}

impl BulkRegions {
    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Region>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `region`; returns the id to put in the bulk message.
    pub(crate) fn insert(&self, region: Region) -> u32 {
        let mut map = self.lock();
        loop {
            let id = self.next.fetch_add(1, Ordering::Relaxed) & !REGION_FLAG;
            if let std::collections::hash_map::Entry::Vacant(e) = map.entry(id) {
                e.insert(region);
                return id;
            }
        }
    }

    /// The region with this id, if it is still registered.
    pub(crate) fn get(&self, id: u32) -> Option<Region> {
        self.lock().get(&id).cloned()
    }

    /// Ends a region (its bulk is done or aborted).
    pub(crate) fn remove(&self, id: u32) {
        self.lock().remove(&id);
    }

    /// Regions registered now (tests, status).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A region that is the driver's own memory, not shared with any other process: bulk
/// data the driver already holds (read from a caller's pages, a small transmit) moves
/// between it and the VideoCore's buffer directly, without a copy through the arena.
#[derive(Debug)]
pub struct OwnedRegion(Mutex<Vec<u8>>);

impl OwnedRegion {
    /// A region holding `data` (a transmit).
    pub fn new(data: Vec<u8>) -> Self {
        OwnedRegion(Mutex::new(data))
    }

    /// A zero-filled region of `len` bytes (a receive).
    pub fn zeroed(len: usize) -> Self {
        OwnedRegion(Mutex::new(vec![0; len]))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes, taken out (the bulk is done).
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }
}

fn out_of_bounds(offset: usize, len: usize, size: usize) -> crate::Error {
    crate::Error::MemoryOutOfBounds { offset, len, size }
}

impl SlotMem for OwnedRegion {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn load_u32(&self, off: usize, _order: Ordering) -> crate::Result<u32> {
        let v = self.lock();
        let b = v
            .get(off..off.saturating_add(4))
            .ok_or_else(|| out_of_bounds(off, 4, v.len()))?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn store_u32(&self, off: usize, value: u32, _order: Ordering) -> crate::Result<()> {
        self.write(off, &value.to_ne_bytes())
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> crate::Result<()> {
        let v = self.lock();
        let src = v
            .get(off..off.saturating_add(buf.len()))
            .ok_or_else(|| out_of_bounds(off, buf.len(), v.len()))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&self, off: usize, data: &[u8]) -> crate::Result<()> {
        let mut v = self.lock();
        let size = v.len();
        let dst = v
            .get_mut(off..off.saturating_add(data.len()))
            .ok_or_else(|| out_of_bounds(off, data.len(), size))?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn read_vec(&self, off: usize, len: usize) -> crate::Result<Vec<u8>> {
        let v = self.lock();
        v.get(off..off.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| out_of_bounds(off, len, v.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_region_is_checked_like_shared_memory() {
        let r = OwnedRegion::zeroed(16);
        r.write(4, b"abcd").unwrap();
        assert_eq!(r.read_vec(4, 4).unwrap(), b"abcd");
        assert_eq!(
            r.load_u32(4, Ordering::Acquire).unwrap(),
            u32::from_ne_bytes(*b"abcd")
        );
        assert!(matches!(
            r.write(14, b"xyz"),
            Err(crate::Error::MemoryOutOfBounds { .. })
        ));
        assert!(matches!(
            r.read_vec(usize::MAX, 2),
            Err(crate::Error::MemoryOutOfBounds { .. })
        ));
        let mut b = [0u8; 2];
        assert!(r.read(15, &mut b).is_err());
        assert_eq!(r.take().len(), 16);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn region_ids_never_carry_the_flag_and_are_forgotten() {
        let t = BulkRegions::default();
        let a = t.insert(Arc::new(OwnedRegion::zeroed(1)));
        let b = t.insert(Arc::new(OwnedRegion::zeroed(1)));
        assert_ne!(a, b);
        assert_eq!(a & REGION_FLAG, 0);
        assert!(t.get(a).is_some());
        t.remove(a);
        assert!(t.get(a).is_none());
        assert_eq!(t.len(), 1);
    }
}
