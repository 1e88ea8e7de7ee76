//! The slave's bulk arena allocator: first fit over a free list (spec §2.12, arena variant).
//!
//! The arena is a byte range of the shared memory after the slots. Only the slave allocates from
//! it; the master only copies into or out of ranges the slave names in BULK_RX / BULK_TX.

/// Allocation granule: ranges start 64-byte aligned (a cache line).
const GRANULE: usize = 64;

/// A first-fit allocator over `[base, base + size)`.
#[derive(Debug)]
pub(crate) struct Arena {
    base: usize,
    size: usize,
    /// Free ranges `(start, len)`, sorted by start, never adjacent (merged on free).
    free: Vec<(usize, usize)>,
}

impl Arena {
    pub(crate) fn new(base: usize, size: usize) -> Self {
        let size = size - size % GRANULE;
        Self {
            base,
            size,
            free: if size > 0 {
                vec![(base, size)]
            } else {
                Vec::new()
            },
        }
    }

    /// True if `len` bytes could ever be allocated (when the arena is empty).
    pub(crate) fn could_fit(&self, len: usize) -> bool {
        len.checked_next_multiple_of(GRANULE)
            .is_some_and(|n| n <= self.size)
    }

    /// Bytes the arena manages.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.size
    }

    /// Reserves `len` bytes; `None` if no free range is large enough. Zero-length requests get
    /// the arena base and take no space.
    pub(crate) fn alloc(&mut self, len: usize) -> Option<usize> {
        if len == 0 {
            return Some(self.base);
        }
        let need = len.checked_next_multiple_of(GRANULE)?;
        let i = self.free.iter().position(|&(_, l)| l >= need)?;
        let (start, l) = self.free[i];
        if l == need {
            self.free.remove(i);
        } else {
            self.free[i] = (start + need, l - need);
        }
        Some(start)
    }

    /// Returns a range obtained from [`Arena::alloc`] with the same `len`.
    pub(crate) fn free(&mut self, start: usize, len: usize) {
        if len == 0 {
            return;
        }
        let len = len.next_multiple_of(GRANULE);
        let i = self.free.partition_point(|&(s, _)| s < start);
        self.free.insert(i, (start, len));
        // Merge with the next range, then with the previous one.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }

    /// Free bytes.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.free.iter().map(|r| r.1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_and_merge() {
        let mut a = Arena::new(4096, 1024);
        let x = a.alloc(100).unwrap();
        let y = a.alloc(64).unwrap();
        let z = a.alloc(1).unwrap();
        assert_eq!((x, y, z), (4096, 4096 + 128, 4096 + 192));
        assert_eq!(a.alloc(0), Some(4096));
        assert_eq!(a.alloc(2000), None);
        a.free(y, 64);
        assert_eq!(a.alloc(60), Some(y));
        a.free(x, 100);
        a.free(y, 60);
        a.free(z, 1);
        assert_eq!(a.available(), 1024);
        assert_eq!(a.free.len(), 1);
        assert_eq!(a.alloc(1024), Some(4096));
        assert_eq!(a.alloc(1), None);
        assert_eq!(a.capacity(), 1024);
        assert!(a.could_fit(1024) && !a.could_fit(1025));
        assert!(!Arena::new(0, 1000).could_fit(990));
    }
}
