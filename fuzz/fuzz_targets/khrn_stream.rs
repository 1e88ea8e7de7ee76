//! The Khronos RPC server (KHRN/KHHN) fed a sequence of hostile messages and bulks from one
//! client: it must answer with errors, never panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocore::khrn::{Channel, KhrnHost, KhrnServer};

#[path = "split.rs"]
mod split;

/// A host that answers nothing and counts what the server sends.
#[derive(Default)]
struct Host {
    replies: usize,
    bulk_expected: Option<(Channel, u32)>,
}

impl KhrnHost for Host {
    fn reply(&mut self, _: Channel, data: &[u8]) {
        assert!(data.len() <= 4088 || data.is_empty() || data.len() <= 1 << 20);
        self.replies += 1;
    }
    fn bulk_to_client(&mut self, _: Channel, _: Vec<u8>) {}
    fn expect_bulk_from_client(&mut self, channel: Channel, len: u32) {
        self.bulk_expected = Some((channel, len));
    }
    fn post_khan(&mut self, _: u64, _: u32, _: u32) {}
    fn present(&mut self, _: u32, _: &vc_gles::Image) {}
    fn display_size(&self) -> (u32, u32) {
        (64, 64)
    }
    fn log(&mut self, _: &str) {}
}

fuzz_target!(|data: &[u8]| {
    let mut server = KhrnServer::new(1234);
    let mut host = Host::default();
    for m in split::messages(data) {
        let channel = if m.first().is_some_and(|b| b & 0x80 != 0) {
            Channel::Khhn
        } else {
            Channel::Khrn
        };
        // An announced bulk arrives when the next message says so (its first byte odd):
        // with the announced length, so that payload handlers run.
        if let Some((ch, len)) = host.bulk_expected.take() {
            if m.first().is_some_and(|b| b & 1 == 1) {
                let mut payload = m.to_vec();
                payload.resize((len as usize).min(1 << 20), 0);
                let _ = server.bulk_payload(ch, payload, &mut host);
                continue;
            }
        }
        let _ = server.handle_message(channel, m, &mut host);
    }
});
