//! Services, ports and quotas: the service table, port allocation, the per-port quotas, the
//! peer's OPEN and CLOSE, closing (spec §2.9), claimed DATA messages and their release, and the
//! service operations of the public API.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{debug, warn};
use zerocopy::IntoBytes;

use super::bulk::{BulkQueue, RX, TX};
use super::{Core, Role, State};
use crate::abi::defs::{MAX_SERVICES, MSGID_CLAIMED};
use crate::abi::enums::ServiceOption;
use crate::abi::fourcc::FourCc;
use crate::abi::msg::{MsgType, SrvState};
use crate::doorbell::Doorbell;
use crate::layout::OpenPayload;
use crate::pos::PortId;
use crate::service::{
    ReleaseClaim, ServiceEvent, ServiceHandle, ServiceHandler, ServiceInfo, ServiceParams,
};
use crate::shm::SlotMem;
use crate::{Error, Result};

/// Per-port quota bookkeeping (spec §2.11); survives service reuse.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Quota {
    pub(super) slot_quota: u32,
    pub(super) message_quota: u32,
    pub(super) slot_use_count: u32,
    pub(super) message_use_count: u32,
    pub(super) previous_tx_index: u32,
}

/// A claimed DATA message.
#[derive(Clone, Copy, Debug)]
pub(super) struct Claim {
    pub(super) slot: u32,
    pub(super) header_off: usize,
    pub(super) port: u32,
}

pub(super) struct Service {
    pub(super) handle: ServiceHandle,
    pub(super) fourcc: FourCc,
    /// Servers: the fourcc the peer can open; cleared by `remove_service`.
    pub(super) public: bool,
    pub(super) is_server: bool,
    pub(super) state: SrvState,
    pub(super) remoteport: u32,
    pub(super) client_id: u32,
    pub(super) version: u16,
    pub(super) version_min: u16,
    pub(super) peer_version: u16,
    pub(super) auto_close: bool,
    pub(super) trace: bool,
    /// A pool server: every OPEN it accepts first creates its successor listener, and it
    /// is freed when its connection closes (see [`Link::add_service_pool`]).
    pub(super) replicate: bool,
    pub(super) handler: Arc<dyn ServiceHandler>,
    pub(super) bulk: [BulkQueue; 2],
}

impl<M: SlotMem, D: Doorbell> Core<M, D> {
    // ------------------------------------------------------------------ helpers

    pub(super) fn lookup(st: &mut State, h: ServiceHandle) -> Result<&mut Service> {
        match st.services.get_mut(&h.port()) {
            Some(s) if s.handle == h => Ok(s),
            _ => Err(Error::BadHandle(h)),
        }
    }

    /// [`Core::lookup`], failing with [`Error::NotOpen`] unless the service is open.
    pub(super) fn lookup_open(st: &mut State, h: ServiceHandle) -> Result<&mut Service> {
        let s = Self::lookup(st, h)?;
        if s.state != SrvState::Open {
            return Err(Error::NotOpen {
                handle: h,
                state: s.state,
            });
        }
        Ok(s)
    }

    // ------------------------------------------------------------------ opening

    pub(super) fn handle_open(
        &self,
        st: &mut State,
        src: u32,
        dst: u32,
        p: Option<OpenPayload>,
    ) -> Result<()> {
        if dst != 0 {
            debug!(dst, "OPEN addressed to a non-zero port");
        }
        let target = p.and_then(|p| {
            st.services
                .iter()
                .find(|(_, s)| {
                    s.public && s.fourcc.as_u32() == p.fourcc && s.state == SrvState::Listening
                })
                .map(|(port, s)| {
                    (
                        *port,
                        s.version >= p.version_min && p.version >= s.version_min,
                    )
                })
        });
        let (p, port) = match (p, target) {
            (Some(p), Some((port, true))) => (p, port),
            (p, t) => {
                debug!(fourcc = ?p.map(|p| FourCc(p.fourcc)), found = t.is_some(), "OPEN rejected");
                return self.queue_control(st, MsgType::Close, 0, src, &[]);
            }
        };
        if st.services[&port].replicate {
            // Keep one listener free for the next client before this one is taken, so
            // that concurrent OPENs of a pool service never find it busy.
            let (params, handler) = {
                let s = &st.services[&port];
                (
                    ServiceParams {
                        fourcc: s.fourcc,
                        version: s.version,
                        version_min: s.version_min,
                    },
                    s.handler.clone(),
                )
            };
            match Self::alloc_port(st, &params, handler, true) {
                Ok(next) => {
                    if let Some(n) = st.services.get_mut(&next) {
                        n.replicate = true;
                    }
                }
                Err(e) => warn!("no successor listener for {}: {e}", params.fourcc),
            }
        }
        let s = st.services.get_mut(&port).expect("found above");
        s.peer_version = p.version;
        s.remoteport = src;
        s.client_id = p.client_id;
        s.state = SrvState::Open;
        let version = s.version;
        Self::reset_quota_index(st, port);
        self.queue_control(st, MsgType::OpenAck, port, src, &version.to_le_bytes())?;
        Self::push_event(
            st,
            port,
            ServiceEvent::Opened {
                client_id: p.client_id,
                peer_version: p.version,
            },
        );
        Ok(())
    }

    pub(super) fn handle_close(&self, st: &mut State, src: u32, dst: u32) -> Result<()> {
        let matches = |s: &Service| s.state == SrvState::Opening || s.remoteport == src;
        let mut port = st.services.get(&dst).filter(|s| matches(s)).map(|_| dst);
        if port.is_none() && dst == 0 {
            // An OPEN and a CLOSE crossed: find the open service connected to that remote port.
            port = st
                .services
                .iter()
                .find(|(_, s)| s.state == SrvState::Open && s.remoteport == src)
                .map(|(p, _)| *p);
        }
        let Some(port) = port else {
            Self::protocol_warning(st, &format!("stray CLOSE {src} -> {dst}"));
            return Ok(());
        };
        let state = st.services[&port].state;
        match state {
            SrvState::Opening => {
                // Our OPEN was rejected (or the peer closed before acknowledging it).
                if let Some(s) = st.services.get_mut(&port) {
                    s.state = SrvState::CloseWait;
                }
                self.cond.notify_all();
            }
            SrvState::Open => self.close_internal(st, port, true)?,
            SrvState::CloseSent => {
                if self.role == Role::Slave {
                    self.abort_bulks(st, port)?;
                }
                self.close_complete(st, port);
            }
            other => Self::protocol_warning(st, &format!("CLOSE {src} -> {dst} in state {other}")),
        }
        Ok(())
    }

    // ------------------------------------------------------------------ closing

    /// Close an OPEN service (spec §2.9); `from_peer` when answering the peer's CLOSE.
    fn close_internal(&self, st: &mut State, port: u32, from_peer: bool) -> Result<()> {
        if self.role == Role::Master {
            // DONE(-1) for every outstanding slave bulk, before our CLOSE.
            self.abort_bulks(st, port)?;
        }
        self.release_port_claims(st, port)?;
        let remote = st.services[&port].remoteport;
        self.queue_control(st, MsgType::Close, port, remote, &[])?;
        if from_peer {
            if let Some(s) = st.services.get_mut(&port) {
                s.state = SrvState::CloseRecvd;
            }
            if self.role == Role::Slave {
                self.abort_bulks(st, port)?;
            }
            self.close_complete(st, port);
        } else if let Some(s) = st.services.get_mut(&port) {
            s.state = SrvState::CloseSent;
        }
        self.cond.notify_all();
        Ok(())
    }

    fn close_complete(&self, st: &mut State, port: u32) {
        let Some(s) = st.services.get_mut(&port) else {
            return;
        };
        if s.is_server && s.public && s.replicate {
            // A pool connection ends: its successor is already listening.
            s.state = SrvState::Closed;
            s.remoteport = PortId::FREE.0;
        } else if s.is_server && s.public {
            if s.auto_close {
                s.state = SrvState::Listening;
                s.client_id = 0;
                s.remoteport = PortId::FREE.0;
            } else {
                s.state = SrvState::CloseWait;
            }
        } else {
            s.state = SrvState::Closed;
            s.remoteport = PortId::FREE.0;
        }
        let closed = s.state == SrvState::Closed;
        Self::push_event(st, port, ServiceEvent::Closed);
        if closed {
            st.services.remove(&port);
        }
        self.cond.notify_all();
    }

    fn release_port_claims(&self, st: &mut State, port: u32) -> Result<()> {
        let ids: Vec<u64> = st
            .claims
            .iter()
            .filter(|(_, c)| c.port == port)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(c) = st.claims.remove(&id) {
                self.release_rx_slot(st, c.slot)?;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ ports and quotas

    fn alloc_port(
        st: &mut State,
        params: &ServiceParams,
        handler: Arc<dyn ServiceHandler>,
        server: bool,
    ) -> Result<u32> {
        let mut port = 0u32;
        for &p in st.services.keys() {
            if p != port {
                break;
            }
            port += 1;
        }
        if port as usize >= MAX_SERVICES {
            return Err(Error::NoFreePort);
        }
        let handle = ServiceHandle(st.handle_seq | port);
        st.handle_seq = st.handle_seq.wrapping_add(4096);
        if st.handle_seq == 0 {
            st.handle_seq = 4096;
        }
        st.services.insert(
            port,
            Service {
                handle,
                fourcc: params.fourcc,
                public: server,
                is_server: server,
                state: if server {
                    SrvState::Listening
                } else {
                    SrvState::Opening
                },
                remoteport: PortId::FREE.0,
                client_id: 0,
                version: params.version,
                version_min: params.version_min,
                peer_version: 0,
                auto_close: true,
                trace: false,
                replicate: false,
                handler,
                bulk: [BulkQueue::default(), BulkQueue::default()],
            },
        );
        Self::reset_quota_index(st, port);
        Ok(port)
    }

    fn reset_quota_index(st: &mut State, port: u32) {
        let idx = st.tx_pos.queue_index().wrapping_sub(1);
        let (ds, dm) = (st.default_slot_quota, st.default_message_quota);
        let q = &mut st.quotas[port as usize];
        q.slot_quota = ds;
        q.message_quota = dm;
        if q.slot_use_count == 0 {
            q.previous_tx_index = idx;
        }
    }

    // ------------------------------------------------------------------ public operations

    pub(crate) fn add_service(
        &self,
        params: ServiceParams,
        handler: Arc<dyn ServiceHandler>,
        replicate: bool,
    ) -> Result<ServiceHandle> {
        let mut st = self.lock();
        Self::check_link(&st)?;
        let port = Self::alloc_port(&mut st, &params, handler, true)?;
        if let Some(s) = st.services.get_mut(&port) {
            s.replicate = replicate;
        }
        Ok(st.services[&port].handle)
    }

    pub(crate) fn open_service(
        &self,
        params: ServiceParams,
        client_id: u32,
        handler: Arc<dyn ServiceHandler>,
    ) -> Result<ServiceHandle> {
        let mut st = self.lock();
        Self::check_link(&st)?;
        if !(st.connect_sent && st.peer_connected) {
            return Err(Error::NotConnected);
        }
        let port = Self::alloc_port(&mut st, &params, handler, false)?;
        let handle = st.services[&port].handle;
        if let Some(s) = st.services.get_mut(&port) {
            s.client_id = client_id;
        }
        let open = OpenPayload {
            fourcc: params.fourcc.as_u32(),
            client_id,
            version: params.version,
            version_min: params.version_min,
        };
        if let Err(e) = self.queue_control(&mut st, MsgType::Open, port, 0, open.as_bytes()) {
            st.services.remove(&port);
            return Err(e);
        }
        loop {
            if let Err(e) = Self::check_link(&st) {
                st.services.remove(&port);
                return Err(e);
            }
            match st.services.get(&port).map(|s| s.state) {
                Some(SrvState::Open) => return Ok(handle),
                Some(SrvState::Opening) => st = self.wait(st),
                _ => {
                    st.services.remove(&port);
                    return Err(Error::OpenRejected {
                        fourcc: params.fourcc,
                    });
                }
            }
        }
    }

    pub(crate) fn close_service(&self, h: ServiceHandle) -> Result<()> {
        let mut st = self.lock();
        Self::check_link(&st)?;
        let s = Self::lookup(&mut st, h)?;
        match s.state {
            SrvState::Open => self.close_internal(&mut st, h.port(), false)?,
            SrvState::CloseWait => {
                s.state = SrvState::Listening;
                s.client_id = 0;
                s.remoteport = PortId::FREE.0;
            }
            SrvState::CloseSent | SrvState::CloseRecvd => {}
            state => {
                return Err(Error::InvalidState {
                    handle: h,
                    state,
                    op: "close",
                });
            }
        }
        let has_events = !st.events.is_empty();
        drop(st);
        if has_events {
            self.poke();
        }
        Ok(())
    }

    pub(crate) fn remove_service(&self, h: ServiceHandle) -> Result<()> {
        let mut st = self.lock();
        let s = Self::lookup(&mut st, h)?;
        s.public = false;
        let state = s.state;
        if Self::check_link(&st).is_err() {
            st.services.remove(&h.port());
            return Ok(());
        }
        match state {
            SrvState::Open => self.close_internal(&mut st, h.port(), false)?,
            SrvState::CloseSent | SrvState::CloseRecvd => {}
            _ => {
                st.services.remove(&h.port());
            }
        }
        let has_events = !st.events.is_empty();
        drop(st);
        if has_events {
            self.poke();
        }
        Ok(())
    }

    pub(crate) fn set_service_option(
        &self,
        h: ServiceHandle,
        option: ServiceOption,
        value: i32,
    ) -> Result<()> {
        let mut st = self.lock();
        let port = h.port() as usize;
        let (ds, dm) = (st.default_slot_quota, st.default_message_quota);
        let s = Self::lookup(&mut st, h)?;
        match option {
            ServiceOption::AutoClose => s.auto_close = value != 0,
            ServiceOption::Trace => s.trace = value != 0,
            ServiceOption::Synchronous => {
                return Err(Error::Unsupported("synchronous services (spec §2.13)"));
            }
            ServiceOption::SlotQuota | ServiceOption::MessageQuota => {
                let q = &mut st.quotas[port];
                let is_slot = option == ServiceOption::SlotQuota;
                let (default, used) = if is_slot {
                    (ds, q.slot_use_count)
                } else {
                    (dm, q.message_use_count)
                };
                let v = if value == 0 {
                    default
                } else {
                    u32::try_from(value).unwrap_or(u32::MAX)
                };
                if value < 0 || v < used || v >= 65535 {
                    return Err(Error::InvalidOption {
                        option,
                        value,
                        reason: "must be 0 (default), >= the current use count and < 65535",
                    });
                }
                if is_slot {
                    q.slot_quota = v;
                } else {
                    q.message_quota = v;
                }
                self.cond.notify_all();
            }
        }
        Ok(())
    }

    fn info(st: &State, s: &Service, port: u32) -> ServiceInfo {
        let q = &st.quotas[port as usize];
        ServiceInfo {
            handle: s.handle,
            fourcc: s.fourcc,
            is_server: s.is_server && s.public,
            state: s.state,
            localport: port,
            remoteport: PortId::new(s.remoteport).map(|p| p.0),
            client_id: s.client_id,
            version: s.version,
            version_min: s.version_min,
            peer_version: s.peer_version,
            auto_close: s.auto_close,
            slot_quota: q.slot_quota,
            slot_use_count: q.slot_use_count,
            message_quota: q.message_quota,
            message_use_count: q.message_use_count,
            bulk_tx_pending: s.bulk[TX].local.len(),
            bulk_rx_pending: s.bulk[RX].local.len(),
        }
    }

    pub(crate) fn service_info(&self, h: ServiceHandle) -> Option<ServiceInfo> {
        let st = self.lock();
        st.services
            .get(&h.port())
            .filter(|s| s.handle == h)
            .map(|s| Self::info(&st, s, h.port()))
    }

    pub(crate) fn services(&self) -> Vec<ServiceInfo> {
        let st = self.lock();
        st.services
            .iter()
            .map(|(p, s)| Self::info(&st, s, *p))
            .collect()
    }
}

impl<M: SlotMem, D: Doorbell> ReleaseClaim for Core<M, D> {
    fn release_claim(&self, claim: u64) {
        let mut st = self.lock();
        if st.shutdown || st.broken.is_some() {
            return;
        }
        let Some(c) = st.claims.remove(&claim) else {
            return;
        };
        // Clear the informational CLAIMED bit if the header still holds our message.
        if let Ok(id) = self.mem.load_u32(c.header_off, Ordering::Relaxed) {
            if id & MSGID_CLAIMED != 0 {
                let _ = self
                    .mem
                    .store_u32(c.header_off, id & !MSGID_CLAIMED, Ordering::Relaxed);
            }
        }
        if let Err(e) = self.release_rx_slot(&mut st, c.slot) {
            self.break_link(&mut st, &e);
        }
    }
}
