//! Fills a slot image with fuzz bytes and runs the receiver's parser over it (STYLE §2.17).
//!
//! Input: two bytes choosing the published end offset (the peer's `tx_pos` within the slot),
//! then up to 4096 bytes of slot content. The parser must never panic, and everything it
//! returns must lie inside the slot and the published range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vchiq_link::parse::{Msg, SlotImage, parse_slot};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let end = (usize::from(u16::from_le_bytes([data[0], data[1]])) % 4097) & !7;
    let mut image: SlotImage = [0u8; 4096];
    let body = &data[2..];
    let n = body.len().min(4096);
    image[..n].copy_from_slice(&body[..n]);
    let mut last = 0;
    for m in parse_slot(&image, 0, end) {
        let Ok(m) = m else { break };
        assert!(m.offset >= last && m.offset % 8 == 0);
        assert!(m.stride >= 8 && m.stride % 8 == 0 && m.offset + m.stride <= end);
        if let Msg::Data(d) = m.msg {
            assert!(d.len() <= 4088 && d.len() + 8 <= m.stride);
        }
        last = m.offset + m.stride;
    }
});
