//! `vchiq bench bulk`: `fun2` bulk round trips against `memcpy` of the same bytes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vchiq::{Handler, Instance, ServiceParams};
use vchiq_abi::enums::BulkMode;
use vchiq_abi::fourcc::FourCc;
use vchiq_abi::wire::MAX_BULK;

use super::{Private, figure, median};

/// The sizes asked for; one above [`MAX_BULK`] is replaced by it.
const SIZES: [usize; 3] = [64 * 1024, 1 << 20, 16 << 20];

/// The sizes measured: [`SIZES`], each capped at the protocol's [`MAX_BULK`] (saying so).
pub(super) fn sizes() -> Vec<usize> {
    let max = MAX_BULK as usize;
    let mut out = Vec::new();
    for size in SIZES {
        if size > max {
            println!(
                "bulk: {} exceeds the protocol's MAX_BULK ({} per request, vchiq_abi::wire::MAX_BULK): \
                 measuring {}, the largest allowed, instead",
                human(size),
                human(max),
                human(max)
            );
            if !out.contains(&max) {
                out.push(max);
            }
        } else {
            out.push(size);
        }
    }
    out
}

pub(super) fn run(iters: u32) -> Result<()> {
    let iters = iters.max(1);
    let d = Private::start()?;
    let inst = Instance::connect_to(&d.socket)?;
    let svc = inst.open_service(
        ServiceParams {
            fourcc: FourCc::FUN2,
            version: 3,
            version_min: 3,
        },
        Handler::Queue,
    )?;
    for size in sizes() {
        let mut data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut times = Vec::new();
        // Round trip 0 is a warm-up.
        for k in 0..=iters {
            // A different first word each time: an echo of stale data would not pass.
            data[..4].copy_from_slice(&k.to_le_bytes());
            let t = Instant::now();
            let req: Vec<u8> = [size as u32, 0, 0, k]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            svc.queue_message(&req)?;
            svc.bulk_transmit(&data, BulkMode::Blocking, 1)?;
            let back = svc
                .bulk_receive(size, BulkMode::Blocking, 2)?
                .context("bulk: fun2 sent no data back")?;
            let e = t.elapsed();
            if back.len() < size || back[..size] != data[..] {
                bail!(
                    "bulk: fun2 returned different data for {} (round trip {k})",
                    human(size)
                );
            }
            if k > 0 {
                times.push(e);
            }
        }
        let ours = median(times);
        // Baseline: the same bytes moved twice by memcpy (there and back).
        let mut dst = vec![0u8; size];
        let mut btimes = Vec::new();
        for _ in 0..iters.max(20) {
            let t = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&data));
            let mut back = vec![0u8; size];
            back.copy_from_slice(std::hint::black_box(&dst));
            std::hint::black_box(&back);
            btimes.push(t.elapsed());
        }
        let base = median(btimes);
        let mbps = |d: Duration| (2 * size) as f64 / d.as_secs_f64() / 1e6;
        figure(
            &format!("bulk {} round trip", human(size)),
            mbps(ours),
            mbps(base),
            "MB/s",
        );
    }
    let _ = svc.remove();
    Ok(())
}

pub(super) fn human(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{}MiB", size >> 20)
    } else {
        format!("{}KiB", size >> 10)
    }
}
