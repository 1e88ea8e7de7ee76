//! The client-side mirror of a context's server vertex cache.
//!
//! The server holds a byte array that grows by doubling on each `GLINTCACHEGROW` (64 bytes
//! after the first, up to 16 grows = 2 MiB). The client decides where everything goes: it
//! keeps a buddy allocator over that array (blocks of 64 << k bytes, smallest fitting block,
//! lowest address first, buddies merged on free), writes a 40-byte entry header's worth of
//! space before each entry's data (the 32-bit client's layout, kept on every host so the wire
//! matches the armhf trace), and tells the server `CACHECREATE(offset)` and
//! `CACHEDATA(offset + 40, len)`. Entries are keyed by the client range they came from
//! (address, length) and remember their bytes, so an unchanged range is a hit and costs
//! nothing on the wire.

use std::collections::{BTreeSet, HashMap};

use crate::error::Result;
use crate::ids;
use crate::rpc::Rpc;

/// Bytes reserved in front of each entry's data (`sizeof` the 32-bit client's entry header).
pub(crate) const ENTRY_HEADER: u32 = 40;
/// Largest `GLINTCACHEDATA` chunk.
pub(crate) const DATA_CHUNK: usize = 4024;
const MIN_BLOCK: u32 = 64;
/// 16 grows: 64 B · 2^15 = 2 MiB.
const MAX_ORDER: u32 = 15;
const MAX_SIZE: u32 = MIN_BLOCK << MAX_ORDER;
/// The most data one entry can hold.
pub(crate) const MAX_ENTRY_DATA: u32 = MAX_SIZE - ENTRY_HEADER;

/// Where an entry's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) addr: usize,
    pub(crate) len: u32,
}

struct Entry {
    offset: u32,
    order: u32,
    data: Box<[u8]>,
    last_use: u64,
}

/// The mirror: the server cache's size, the free blocks and the live entries.
#[derive(Default)]
pub(crate) struct VertexCache {
    size: u32,
    /// Free block offsets per order (block size `64 << order`).
    free: Vec<BTreeSet<u32>>,
    entries: HashMap<CacheKey, Entry>,
    tick: u64,
}

fn order_for(bytes: u32) -> Option<u32> {
    let block = bytes.max(MIN_BLOCK).checked_next_power_of_two()?;
    let order = block.trailing_zeros() - MIN_BLOCK.trailing_zeros();
    (order <= MAX_ORDER).then_some(order)
}

impl VertexCache {
    fn free_list(&mut self, order: u32) -> &mut BTreeSet<u32> {
        let i = order as usize;
        if self.free.len() <= i {
            self.free.resize_with(i + 1, BTreeSet::new);
        }
        &mut self.free[i]
    }

    fn alloc(&mut self, order: u32) -> Option<u32> {
        let found = (order..=MAX_ORDER)
            .find_map(|o| self.free.get(o as usize)?.first().map(|&off| (o, off)))?;
        let (mut o, off) = found;
        self.free_list(o).remove(&off);
        while o > order {
            o -= 1;
            let buddy = off + (MIN_BLOCK << o);
            self.free_list(o).insert(buddy);
        }
        Some(off)
    }

    fn release(&mut self, mut off: u32, mut order: u32) {
        loop {
            let block = MIN_BLOCK << order;
            if block >= self.size {
                break;
            }
            let buddy = off ^ block;
            if !self.free_list(order).remove(&buddy) {
                break;
            }
            off = off.min(buddy);
            order += 1;
        }
        self.free_list(order).insert(off);
    }

    fn can_grow(&self) -> bool {
        self.size < MAX_SIZE
    }

    fn grow(&mut self) {
        if self.size == 0 {
            self.size = MIN_BLOCK;
            self.free_list(0).insert(0);
        } else {
            let old = self.size;
            self.size *= 2;
            let order = old.trailing_zeros() - MIN_BLOCK.trailing_zeros();
            self.release(old, order);
        }
    }

    /// The data offset of a live entry for `key` holding exactly `data`.
    fn lookup(&mut self, key: CacheKey, data: &[u8]) -> Option<u32> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(&key)?;
        if *e.data != *data {
            return None;
        }
        e.last_use = tick;
        Some(e.offset + ENTRY_HEADER)
    }

    /// Forget `key`'s entry, telling the server.
    fn delete(&mut self, rpc: &mut Rpc, key: CacheKey) -> Result<()> {
        if let Some(e) = self.entries.remove(&key) {
            rpc.call(ids::GLINTCACHEDELETE, &[e.offset])?;
            self.release(e.offset, e.order);
        }
        Ok(())
    }

    /// Make `data` (from client range `key`) available in the server cache and return its
    /// data offset; `None` if it cannot fit even after growing and evicting (the caller
    /// reports `GL_OUT_OF_MEMORY`). `pinned` lists entries the current draw already uses,
    /// which are never evicted.
    pub(crate) fn upload(
        &mut self,
        rpc: &mut Rpc,
        key: CacheKey,
        data: &[u8],
        pinned: &[CacheKey],
    ) -> Result<Option<u32>> {
        if let Some(off) = self.lookup(key, data) {
            return Ok(Some(off));
        }
        // Same range, new contents: the old entry is stale.
        self.delete(rpc, key)?;
        let Some(order) = u32::try_from(data.len())
            .ok()
            .and_then(|n| n.checked_add(ENTRY_HEADER))
            .and_then(order_for)
        else {
            return Ok(None);
        };
        let offset = loop {
            if let Some(off) = self.alloc(order) {
                break off;
            }
            if self.can_grow() && rpc.call_res(ids::GLINTCACHEGROW, &[])? != 0 {
                self.grow();
                continue;
            }
            let victim = self
                .entries
                .iter()
                .filter(|(k, _)| !pinned.contains(k))
                .min_by_key(|(_, e)| e.last_use)
                .map(|(k, _)| *k);
            match victim {
                Some(k) => self.delete(rpc, k)?,
                None => return Ok(None),
            }
        };
        rpc.call(ids::GLINTCACHECREATE, &[offset])?;
        let mut at = offset + ENTRY_HEADER;
        for chunk in data.chunks(DATA_CHUNK) {
            // chunk.len() ≤ DATA_CHUNK, so it fits a u32.
            let len = chunk.len() as u32;
            rpc.call_in_ctrl(ids::GLINTCACHEDATA, &[at, len], chunk)?;
            at += len;
        }
        self.entries.insert(
            key,
            Entry {
                offset,
                order,
                data: data.into(),
                last_use: self.tick,
            },
        );
        Ok(Some(offset + ENTRY_HEADER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buddy_layout_matches_the_real_client() {
        // Entry sizes (header + data) of hello_triangle frame 1 in draw order, and where the
        // real 32-bit client put them (the trace's CACHECREATE offsets).
        let mut c = VertexCache::default();
        let mut placed = Vec::new();
        let mut grows = 0;
        for bytes in [56u32, 72, 72, 104, 88, 136, 168, 104, 200, 120, 232] {
            let order = order_for(bytes).unwrap();
            let off = loop {
                if let Some(off) = c.alloc(order) {
                    break off;
                }
                c.grow();
                grows += 1;
            };
            placed.push(off);
        }
        assert_eq!(
            placed,
            [0, 128, 256, 384, 512, 768, 1024, 640, 1280, 1536, 1792]
        );
        assert_eq!(grows, 6);
        assert_eq!(c.size, 2048);
    }

    #[test]
    fn freeing_merges_buddies() {
        let mut c = VertexCache::default();
        for _ in 0..3 {
            c.grow();
        }
        let a = c.alloc(0).unwrap();
        let b = c.alloc(0).unwrap();
        let d = c.alloc(1).unwrap();
        c.release(a, 0);
        c.release(b, 0);
        c.release(d, 1);
        assert_eq!(c.alloc(2), Some(0));
    }
}
