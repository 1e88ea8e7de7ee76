//! Bulk transfers (spec §2.12): the per-service bulk queues, the master's pairing of local and
//! remote bulks, the slave's completions, aborting on close, and `queue_bulk`.

use std::collections::VecDeque;

use tracing::debug;
use zerocopy::IntoBytes;

use super::{Core, Role, State};
use crate::abi::defs::{BULK_ACTUAL_ABORTED, NUM_SERVICE_BULKS};
use crate::abi::msg::{MsgType, SrvState};
use crate::doorbell::Doorbell;
use crate::layout::BulkPayload;
use crate::parse::ProtocolError;
use crate::region::{REGION_FLAG, Region};
use crate::service::{ServiceEvent, ServiceHandle};
use crate::shm::SlotMem;
use crate::{Error, Result};

/// Bulk queue directions.
pub(super) const TX: usize = 0;
pub(super) const RX: usize = 1;

/// A bulk queued on this side.
#[derive(Debug)]
pub(super) struct LocalBulk {
    userdata: u64,
    size: u32,
    /// Master transmit: the data to send.
    data: Option<Vec<u8>>,
    /// Slave: the arena range holding or receiving the data.
    arena: Option<usize>,
    /// Slave: the region (client memory) holding or receiving the data instead.
    region: Option<u32>,
}

/// A bulk announced by the slave (master side only).
#[derive(Clone, Copy, Debug)]
pub(super) struct RemoteBulk {
    offset: u32,
    size: u32,
}

#[derive(Debug, Default)]
pub(super) struct BulkQueue {
    pub(super) local: VecDeque<LocalBulk>,
    pub(super) remote: VecDeque<RemoteBulk>,
}

impl<M: SlotMem, D: Doorbell> Core<M, D> {
    // ------------------------------------------------------------------ bulk

    pub(super) fn handle_bulk_request(
        &self,
        st: &mut State,
        src: u32,
        dst: u32,
        dir: usize,
        b: BulkPayload,
    ) -> Result<()> {
        if self.role != Role::Master {
            Self::protocol_warning(
                st,
                &format!("bulk request {src} -> {dst} sent to the slave"),
            );
            return Ok(());
        }
        let ok = matches!(st.services.get(&dst), Some(s) if s.state == SrvState::Open && s.remoteport == src);
        if !ok {
            debug!(
                src,
                dst, "bulk request for a service that is not open; dropped"
            );
            return Ok(());
        }
        let s = st.services.get_mut(&dst).expect("checked above");
        if s.bulk[dir].remote.len() >= NUM_SERVICE_BULKS {
            return Err(ProtocolError::BulkQueueOverflow {
                port: dst,
                limit: NUM_SERVICE_BULKS,
            }
            .into());
        }
        s.bulk[dir].remote.push_back(RemoteBulk {
            offset: b.data,
            size: b.size,
        });
        self.process_bulks(st, dst, dir)
    }

    /// Master: pair local and remote bulks FIFO and move the data (spec §2.12).
    fn process_bulks(&self, st: &mut State, port: u32, dir: usize) -> Result<()> {
        loop {
            let Some(s) = st.services.get_mut(&port) else {
                return Ok(());
            };
            let q = &mut s.bulk[dir];
            if q.local.is_empty() || q.remote.is_empty() {
                break;
            }
            let (Some(l), Some(r)) = (q.local.pop_front(), q.remote.pop_front()) else {
                break;
            };
            let remoteport = s.remoteport;
            let mut actual = BULK_ACTUAL_ABORTED;
            let mut received = None;
            let region = (r.offset & REGION_FLAG != 0)
                .then(|| self.regions.get()?.get(r.offset & !REGION_FLAG));
            if l.size == r.size && region.is_some() {
                // The slave's buffer is a region: move the data straight to or from it.
                match region.flatten() {
                    Some(mem) if (r.size as usize) <= mem.len() => {
                        let moved = if dir == TX {
                            mem.write(0, l.data.as_deref().unwrap_or(&[]))
                        } else {
                            mem.read_vec(0, r.size as usize).map(|v| received = Some(v))
                        };
                        if moved.is_ok() {
                            actual = r.size as i32;
                        }
                    }
                    _ => Self::protocol_warning(
                        st,
                        &format!(
                            "bulk names region {:#x}, which is not registered or too small",
                            r.offset
                        ),
                    ),
                }
            } else if l.size == r.size {
                let (a0, asz) = (self.geo.arena_off, self.geo.arena_size);
                let start = r.offset as usize;
                if start >= a0 && start.saturating_add(r.size as usize) <= a0 + asz {
                    if dir == TX {
                        self.mem.write(start, l.data.as_deref().unwrap_or(&[]))?;
                    } else {
                        received = Some(self.mem.read_vec(start, r.size as usize)?);
                    }
                    actual = r.size as i32;
                } else {
                    let e = ProtocolError::BulkOutsideArena {
                        offset: r.offset,
                        size: r.size,
                        arena_offset: a0,
                        arena_size: asz,
                    };
                    Self::protocol_warning(st, &e.to_string());
                }
            } else {
                debug!(
                    port,
                    local = l.size,
                    remote = r.size,
                    "bulk size mismatch; both aborted"
                );
            }
            let ty = if dir == TX {
                MsgType::BulkRxDone
            } else {
                MsgType::BulkTxDone
            };
            self.queue_control(st, ty, port, remoteport, &actual.to_le_bytes())?;
            let ev = match (dir, actual >= 0, received) {
                (TX, true, _) => ServiceEvent::BulkTransmitDone {
                    userdata: l.userdata,
                },
                (TX, false, _) => ServiceEvent::BulkTransmitAborted {
                    userdata: l.userdata,
                },
                (_, true, Some(data)) => ServiceEvent::BulkReceiveDone {
                    userdata: l.userdata,
                    data,
                },
                _ => ServiceEvent::BulkReceiveAborted {
                    userdata: l.userdata,
                },
            };
            if actual >= 0 {
                st.stats.bulks_done += 1;
            } else {
                st.stats.bulks_aborted += 1;
            }
            Self::push_event(st, port, ev);
        }
        self.cond.notify_all();
        Ok(())
    }

    /// Slave: the master finished the head of one of our queues.
    pub(super) fn handle_bulk_done(
        &self,
        st: &mut State,
        src: u32,
        dst: u32,
        dir: usize,
        actual: i32,
    ) {
        let ty = if dir == RX {
            "BULK_RX_DONE"
        } else {
            "BULK_TX_DONE"
        };
        if self.role != Role::Slave {
            Self::protocol_warning(st, &format!("{ty} {src} -> {dst} sent to the master"));
            return;
        }
        let Some(l) = st
            .services
            .get_mut(&dst)
            .and_then(|s| s.bulk[dir].local.pop_front())
        else {
            let e = ProtocolError::BulkDoneUnexpected { ty, port: dst };
            Self::protocol_warning(st, &e.to_string());
            return;
        };
        let off = l.arena.unwrap_or(self.geo.arena_off);
        let ok = actual >= 0 && actual as u32 == l.size;
        if !ok && actual != BULK_ACTUAL_ABORTED {
            Self::protocol_warning(
                st,
                &format!(
                    "{ty} actual {actual} for a {}-byte bulk; treated as aborted",
                    l.size
                ),
            );
        }
        // A region's data is in the caller's memory already; an arena's is copied out.
        let received = |l: &LocalBulk| match l.region {
            Some(_) => Ok(Vec::new()),
            None => self.mem.read_vec(off, l.size as usize),
        };
        let ev = match (dir, ok) {
            (TX, true) => ServiceEvent::BulkTransmitDone {
                userdata: l.userdata,
            },
            (TX, false) => ServiceEvent::BulkTransmitAborted {
                userdata: l.userdata,
            },
            (_, true) => match received(&l) {
                Ok(data) => ServiceEvent::BulkReceiveDone {
                    userdata: l.userdata,
                    data,
                },
                Err(_) => ServiceEvent::BulkReceiveAborted {
                    userdata: l.userdata,
                },
            },
            (_, false) => ServiceEvent::BulkReceiveAborted {
                userdata: l.userdata,
            },
        };
        match (l.region, self.regions.get()) {
            (Some(id), Some(regions)) => regions.remove(id),
            (Some(_), None) => {}
            (None, _) => st.arena.free(off, l.size as usize),
        }
        if ok {
            st.stats.bulks_done += 1;
        } else {
            st.stats.bulks_aborted += 1;
        }
        Self::push_event(st, dst, ev);
        self.cond.notify_all();
    }

    /// Abort every outstanding bulk of a service (spec §2.12 "abort on close").
    pub(super) fn abort_bulks(&self, st: &mut State, port: u32) -> Result<()> {
        for dir in [TX, RX] {
            let Some(s) = st.services.get_mut(&port) else {
                return Ok(());
            };
            let remote: Vec<RemoteBulk> = s.bulk[dir].remote.drain(..).collect();
            let local: Vec<LocalBulk> = s.bulk[dir].local.drain(..).collect();
            let remoteport = s.remoteport;
            for _ in remote {
                // Our transmit queue holds the slave's BULK_RX requests, answered by BULK_RX_DONE.
                let ty = if dir == TX {
                    MsgType::BulkRxDone
                } else {
                    MsgType::BulkTxDone
                };
                self.queue_control(st, ty, port, remoteport, &BULK_ACTUAL_ABORTED.to_le_bytes())?;
            }
            for l in local {
                if let Some(off) = l.arena {
                    st.arena.free(off, l.size as usize);
                }
                if let (Some(id), Some(regions)) = (l.region, self.regions.get()) {
                    regions.remove(id);
                }
                st.stats.bulks_aborted += 1;
                let ev = if dir == TX {
                    ServiceEvent::BulkTransmitAborted {
                        userdata: l.userdata,
                    }
                } else {
                    ServiceEvent::BulkReceiveAborted {
                        userdata: l.userdata,
                    }
                };
                Self::push_event(st, port, ev);
            }
        }
        self.cond.notify_all();
        Ok(())
    }

    // ------------------------------------------------------------------ public operations

    /// Queues a bulk; `data` is taken once it is queued. With `wait` false a bulk that
    /// finds 4 outstanding or the arena full returns [`Error::WouldBlock`], `data` untouched.
    pub(crate) fn queue_bulk(
        &self,
        h: ServiceHandle,
        dir: usize,
        data: &mut Option<Vec<u8>>,
        size: u32,
        userdata: u64,
        wait: bool,
    ) -> Result<()> {
        let mut st = self.lock();
        if self.role == Role::Slave && !st.arena.could_fit(size as usize) {
            return Err(Error::BulkTooLarge {
                size: size as usize,
                arena: self.geo.arena_size,
            });
        }
        loop {
            Self::check_link(&st)?;
            let s = Self::lookup(&mut st, h)?;
            if s.state != SrvState::Open {
                return Err(Error::NotOpen {
                    handle: h,
                    state: s.state,
                });
            }
            let remote = s.remoteport;
            if s.bulk[dir].local.len() < NUM_SERVICE_BULKS {
                let port = h.port();
                match self.role {
                    Role::Master => {
                        let l = LocalBulk {
                            userdata,
                            size,
                            data: data.take(),
                            arena: None,
                            region: None,
                        };
                        st.services.get_mut(&port).expect("looked up").bulk[dir]
                            .local
                            .push_back(l);
                        self.process_bulks(&mut st, port, dir)?;
                        break;
                    }
                    Role::Slave => {
                        if let Some(off) = st.arena.alloc(size as usize) {
                            if let Some(d) = data.take() {
                                self.mem.write(off, &d)?;
                            }
                            let l = LocalBulk {
                                userdata,
                                size,
                                data: None,
                                arena: Some(off),
                                region: None,
                            };
                            st.services.get_mut(&port).expect("looked up").bulk[dir]
                                .local
                                .push_back(l);
                            let ty = if dir == TX {
                                MsgType::BulkTx
                            } else {
                                MsgType::BulkRx
                            };
                            let p = BulkPayload {
                                data: off as u32,
                                size,
                            };
                            self.queue_control(&mut st, ty, port, remote, p.as_bytes())?;
                            break;
                        }
                    }
                }
            }
            if !wait {
                return Err(Error::WouldBlock);
            }
            st = self.wait(st);
        }
        let has_events = !st.events.is_empty();
        drop(st);
        if has_events {
            self.poke();
        }
        Ok(())
    }

    /// Slave: queues a bulk through `region` (see [`crate::Link::try_queue_bulk_region`]).
    /// `Ok(false)`: 4 are outstanding in that direction; nothing was queued.
    pub(crate) fn queue_bulk_region(
        &self,
        h: ServiceHandle,
        dir: usize,
        region: Region,
        size: u32,
        userdata: u64,
    ) -> Result<bool> {
        let Some(regions) = self.regions.get() else {
            return Err(Error::InvalidConfig {
                what: "bulk regions (no in-process peer shares a table)",
                value: 0,
            });
        };
        if self.role != Role::Slave {
            return Err(Error::InvalidConfig {
                what: "bulk regions on the master side",
                value: 0,
            });
        }
        if size as usize > region.len() {
            return Err(Error::BulkTooLarge {
                size: size as usize,
                arena: region.len(),
            });
        }
        let mut st = self.lock();
        Self::check_link(&st)?;
        let s = Self::lookup_open(&mut st, h)?;
        if s.bulk[dir].local.len() >= NUM_SERVICE_BULKS {
            return Ok(false);
        }
        let remote = s.remoteport;
        let port = h.port();
        let id = regions.insert(region);
        st.services.get_mut(&port).expect("looked up").bulk[dir]
            .local
            .push_back(LocalBulk {
                userdata,
                size,
                data: None,
                arena: None,
                region: Some(id),
            });
        let ty = if dir == TX {
            MsgType::BulkTx
        } else {
            MsgType::BulkRx
        };
        let p = BulkPayload {
            data: REGION_FLAG | id,
            size,
        };
        self.queue_control(&mut st, ty, port, remote, p.as_bytes())?;
        Ok(true)
    }
}
