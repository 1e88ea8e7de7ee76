//! The ioctl argument decoders (what the file node and the shim read from a caller's
//! memory), in both layouts: every struct decodes from hostile bytes or says why not, and
//! what decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vchiq_abi::Layout;
use vchiq_abi::args::{
    AbiArgs, AwaitCompletionArgs, CompletionDataArgs, CreateServiceArgs, DequeueMessageArgs,
    ElementArgs, GetConfigArgs, QueueBulkTransferArgs, QueueMessageArgs, SetServiceOptionArgs,
};

fn check<A: AbiArgs>(layout: Layout, data: &[u8]) {
    if let Ok(a) = A::decode(layout, data) {
        let back = a.encode(layout);
        assert_eq!(back.len(), A::size(layout));
        assert!(A::decode(layout, &back).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let layout = if sel & 0x80 != 0 {
        Layout::Ilp32
    } else {
        Layout::Lp64
    };
    match sel % 10 {
        0 => check::<CreateServiceArgs>(layout, body),
        1 => check::<QueueMessageArgs>(layout, body),
        2 => check::<ElementArgs>(layout, body),
        3 => check::<QueueBulkTransferArgs>(layout, body),
        4 => check::<AwaitCompletionArgs>(layout, body),
        5 => check::<CompletionDataArgs>(layout, body),
        6 => check::<DequeueMessageArgs>(layout, body),
        7 => check::<GetConfigArgs>(layout, body),
        8 => check::<SetServiceOptionArgs>(layout, body),
        _ => {
            let cmd = u32::from_le_bytes(
                body.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or([0; 4]),
            );
            if let Some((io, l)) = vchiq_abi::Ioctl::decode(cmd) {
                assert_eq!(io.number(l), cmd);
            }
        }
    }
});
