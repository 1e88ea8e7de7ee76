//! The Khronos client's transport over the `vchiq` client library: the KHAN, KHRN and KHHN
//! services of one instance, as `vc_vchi_khronos_init` opens them.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use anyhow::{Context, Result};
use khronos::{Channel, Client, PidSource, RpcTransport, TransportError};
use vchiq::{Event, Handler, Instance, Service, ServiceParams};
use vchiq_abi::enums::BulkMode;
use vchiq_abi::fourcc::FourCc;

/// `VC_KHRN_VERSION`: the version and version_min of the three Khronos services.
const VC_KHRN_VERSION: i16 = 1;

struct Rpc {
    khrn: Service,
    khhn: Service,
    khan: Service,
    rx: [Mutex<Receiver<Vec<u8>>>; 2],
}

fn idx(c: Channel) -> usize {
    match c {
        Channel::Khrn => 0,
        Channel::Khhn => 1,
    }
}

fn io_err(e: vchiq::Error) -> TransportError {
    TransportError::Io(std::io::Error::other(e.to_string()))
}

impl Rpc {
    fn service(&self, c: Channel) -> &Service {
        match c {
            Channel::Khrn => &self.khrn,
            Channel::Khhn => &self.khhn,
        }
    }
}

impl RpcTransport for Rpc {
    fn send(&self, channel: Channel, data: &[u8]) -> Result<(), TransportError> {
        self.service(channel).queue_message(data).map_err(io_err)
    }

    fn recv(&self, channel: Channel) -> Result<Vec<u8>, TransportError> {
        let rx = self.rx[idx(channel)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        rx.recv().map_err(|_| TransportError::Closed(channel))
    }

    fn bulk_send(&self, channel: Channel, data: &[u8]) -> Result<(), TransportError> {
        self.service(channel)
            .bulk_transmit(data, BulkMode::Blocking, 0)
            .map_err(io_err)
    }

    fn bulk_recv(&self, channel: Channel, len: usize) -> Result<Vec<u8>, TransportError> {
        match self
            .service(channel)
            .bulk_receive(len, BulkMode::Blocking, 0)
            .map_err(io_err)?
        {
            Some(d) => Ok(d),
            None => Err(TransportError::Closed(channel)),
        }
    }

    fn client_id(&self, channel: Channel) -> Result<u32, TransportError> {
        self.service(channel).client_id().map_err(io_err)
    }

    fn khan_client_id(&self) -> Result<u32, TransportError> {
        self.khan.client_id().map_err(io_err)
    }
}

fn reply_handler() -> (Handler, Receiver<Vec<u8>>) {
    let (tx, rx) = channel::<Vec<u8>>();
    let tx: Mutex<Option<Sender<Vec<u8>>>> = Mutex::new(Some(tx));
    let handler = Handler::Callback(Box::new(move |_svc: &Service, ev: Event| {
        let mut tx = tx.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            Event::Message(d) => {
                if let Some(t) = tx.as_ref() {
                    let _ = t.send(d);
                }
            }
            // A closed service ends every pending and later recv.
            Event::Closed => *tx = None,
            _ => {}
        }
    }));
    (handler, rx)
}

/// Opens KHAN, KHRN and KHHN on `inst` and returns a Khronos client over them.
pub fn attach(inst: &Instance, pid_source: PidSource) -> Result<Arc<Client>> {
    let client_slot: Arc<OnceLock<Weak<Client>>> = Arc::new(OnceLock::new());
    let slot = client_slot.clone();
    let khan_handler = Handler::Callback(Box::new(move |_svc: &Service, ev: Event| {
        if let Event::Message(d) = ev {
            if let Some(c) = slot.get().and_then(Weak::upgrade) {
                c.khan_message(&d);
            }
        }
    }));
    let params = |fourcc| ServiceParams {
        fourcc,
        version: VC_KHRN_VERSION,
        version_min: VC_KHRN_VERSION,
    };
    let khan = inst
        .open_service(params(FourCc::KHAN), khan_handler)
        .context("opening KHAN")?;
    let (h1, rx1) = reply_handler();
    let khrn = inst
        .open_service(params(FourCc::KHRN), h1)
        .context("opening KHRN")?;
    let (h2, rx2) = reply_handler();
    let khhn = inst
        .open_service(params(FourCc::KHHN), h2)
        .context("opening KHHN")?;
    let rpc = Arc::new(Rpc {
        khrn,
        khhn,
        khan,
        rx: [Mutex::new(rx1), Mutex::new(rx2)],
    });
    let client = Client::new(rpc, pid_source);
    let _ = client_slot.set(Arc::downgrade(&client));
    Ok(client)
}
