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
