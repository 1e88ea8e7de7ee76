//! The VideoCore's VCHI services fed hostile request sequences: GCMD (vcgencmd), DISP
//! (dispmanx), TVSV (TV service) and CECS (CEC). The first byte of each message picks the
//! service. Every request must get its reply or an error reply, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocore::dispmanx::Dispmanx;
use videocore::gencmd::{BoardInfo, GenCmd};
use videocore::tvservice::{TvService, cec_handle};
use videocore::vclog::VcLog;

#[path = "split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let mut gencmd = GenCmd::new(BoardInfo::default(), VcLog::new());
    let mut disp = Dispmanx::new(64, 64);
    let mut tv = TvService::new(64, 64);
    for m in split::messages(data) {
        let Some((&which, body)) = m.split_first() else {
            continue;
        };
        match which % 4 {
            0 => {
                let reply = gencmd.handle(body);
                assert!(reply.len() >= 4, "GCMD replies carry a status");
            }
            1 => {
                let _ = disp.handle(body);
            }
            2 => {
                let _ = tv.handle(body);
            }
            _ => {
                let _ = cec_handle(body);
            }
        }
    }
});
