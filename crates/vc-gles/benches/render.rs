//! The hello_triangle cube at 1920×1080, single-threaded and parallel.
//! Criterion's throughput line ("elem/s") is frames per second.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vc_gles::Surface;

fn cube_1080p(c: &mut Criterion) {
    let mut group = c.benchmark_group("cube_1920x1080");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for (name, parallel) in [("single_thread", false), ("parallel", true)] {
        let mut cube = common::Cube::new(1920, 1080);
        cube.ctx.set_parallel(parallel);
        let mut target = Surface::new(1920, 1080, false);
        let mut frame = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                frame = frame % 720 + 1;
                cube.render(frame, &mut target);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cube_1080p);
criterion_main!(benches);
