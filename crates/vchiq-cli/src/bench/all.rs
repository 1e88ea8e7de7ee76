//! `vchiq bench all`: every benchmark with its defaults, then a markdown table of the
//! figures against the goals of the performance issue.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use super::{Figures, Record, defaults, fmt_in, fmt_ratio, ratio};

type Step = (&'static str, String, Box<dyn Fn() -> Result<()>>);

pub(super) fn run() -> Result<ExitCode> {
    let steps: Vec<Step> = vec![
        (
            "ping",
            format!(
                "round trips of 64/1024/4088 bytes, unpinned and pinned to 1 CPU, {} each",
                defaults::PING_ITERS
            ),
            Box::new(|| super::ping::run(defaults::PING_ITERS)),
        ),
        (
            "pipeline",
            format!(
                "{} async / oneway messages + 1 sync, {} iterations",
                defaults::PIPELINE_COUNT,
                defaults::PIPELINE_ITERS
            ),
            Box::new(|| super::pipeline::run(defaults::PIPELINE_COUNT, defaults::PIPELINE_ITERS)),
        ),
        (
            "bulk",
            format!("fun2 round trips, {} per size", defaults::BULK_ITERS),
            Box::new(|| super::bulk::run(defaults::BULK_ITERS)),
        ),
        (
            "clients",
            format!("{} idle clients", defaults::CLIENTS),
            Box::new(|| super::clients::run(defaults::CLIENTS)),
        ),
        (
            "concurrent",
            format!(
                "{} clients x {} messages, window {}",
                defaults::CONCURRENT_CLIENTS,
                defaults::CONCURRENT_MESSAGES,
                defaults::WINDOW
            ),
            Box::new(|| {
                super::concurrent::run(
                    defaults::CONCURRENT_CLIENTS,
                    defaults::CONCURRENT_MESSAGES,
                    defaults::WINDOW,
                )
            }),
        ),
        (
            "render",
            format!("hello_triangle, {} frames", defaults::RENDER_FRAMES),
            Box::new(render),
        ),
    ];
    let mut figures = Figures::default();
    let mut failures: Vec<(&str, String)> = Vec::new();
    let total = Instant::now();
    let n = steps.len();
    for (i, (name, what, step)) in steps.iter().enumerate() {
        eprintln!("bench all [{}/{n}] {name}: {what} ...", i + 1);
        let t = Instant::now();
        let r = step();
        figures.take();
        match r {
            Ok(()) => eprintln!(
                "bench all [{}/{n}] {name}: done in {:.1} s",
                i + 1,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("bench all [{}/{n}] {name}: FAILED: {e:#}", i + 1);
                failures.push((name, format!("{e:#}")));
            }
        }
    }
    eprintln!(
        "bench all: {n} steps in {:.1} s",
        total.elapsed().as_secs_f64()
    );
    println!();
    print_table(&figures.records, &failures);
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "vchiq: bench all: {} step(s) failed: {}",
            failures.len(),
            failures
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `render` where Mesa llvmpipe can be used, else a line saying why not.
fn render() -> Result<()> {
    match mesa_missing() {
        Some(reason) => {
            println!("render: skipped ({reason})");
            super::check("render", format!("skipped: {reason}"), "-", true);
            Ok(())
        }
        None => crate::hello::bench_render(defaults::RENDER_FRAMES),
    }
}

/// Why the render baseline (EGL surfaceless + GLES 1.1 on Mesa llvmpipe, built with the
/// system C compiler) cannot run here, judged from the files it needs.
fn mesa_missing() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if std::process::Command::new(&cc)
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return Some(format!("no C compiler ({cc})"));
    }
    for h in ["/usr/include/EGL/egl.h", "/usr/include/GLES/gl.h"] {
        if !Path::new(h).exists() {
            return Some(format!("{h} missing (libegl-dev, libgles-dev)"));
        }
    }
    let mut dirs: Vec<std::path::PathBuf> = ["/usr/lib", "/usr/lib64", "/usr/local/lib"]
        .iter()
        .map(Into::into)
        .collect();
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        dirs.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("-linux-")),
        );
    }
    let has = |name: &str| dirs.iter().any(|d| d.join(name).exists());
    for (lib, pkg) in [
        ("libEGL.so", "libegl-dev"),
        ("libGLESv1_CM.so", "libgles-dev"),
        ("libEGL_mesa.so.0", "libegl-mesa0"),
    ] {
        if !has(lib) {
            return Some(format!("{lib} not found ({pkg})"));
        }
    }
    let llvmpipe = has("dri/swrast_dri.so")
        || has("dri/kms_swrast_dri.so")
        || dirs.iter().any(|d| {
            std::fs::read_dir(d).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libgallium"))
            })
        });
    if !llvmpipe {
        return Some("Mesa's llvmpipe driver (swrast_dri.so / libgallium) not found".into());
    }
    None
}

/// A goal of the performance issue for a figure: its text and whether it is met.
fn goal(name: &str, value: f64, baseline: f64) -> Option<(String, bool)> {
    let r = ratio(value, baseline);
    if name.starts_with("ping 64B round trip") {
        return Some(("<= 1.5x baseline".into(), r <= 1.5));
    }
    if name.starts_with("pipeline ") {
        return Some(("<= 2 us/msg".into(), value <= 2.0));
    }
    if name.starts_with("bulk ") && !name.starts_with("bulk 64KiB") {
        let text = if name.starts_with("bulk 1MiB") || name.starts_with("bulk 16MiB") {
            ">= 0.5x memcpy".to_string()
        } else {
            // The largest size, standing in for 16 MiB (above MAX_BULK).
            ">= 0.5x memcpy (the 16 MiB goal, at MAX_BULK)".to_string()
        };
        return Some((text, r >= 0.5));
    }
    if name.starts_with("clients memory per idle client") {
        return Some(("<= 16 KiB".into(), value <= 16.0));
    }
    None
}

fn cell(s: &str) -> String {
    s.replace('|', "/").replace('\n', " ")
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

fn print_table(records: &[Record], failures: &[(&str, String)]) {
    println!("| figure | value | baseline | ratio | goal |");
    println!("|---|---|---|---|---|");
    for r in records {
        match r {
            Record::Figure {
                name,
                value,
                baseline,
                unit,
            } => {
                let g = match goal(name, *value, *baseline) {
                    Some((text, ok)) => format!("{text}: {}", mark(ok)),
                    None => "-".into(),
                };
                println!(
                    "| {} | {} {unit} | {} {unit} | {} | {g} |",
                    cell(name),
                    fmt_in(*value, unit),
                    fmt_in(*baseline, unit),
                    fmt_ratio(*value, *baseline)
                );
            }
            Record::Check {
                name,
                text,
                goal,
                ok,
            } => {
                let g = if goal == "-" {
                    "-".to_string()
                } else {
                    format!("{goal}: {}", mark(*ok))
                };
                println!("| {} | {} | - | - | {g} |", cell(name), cell(text));
            }
        }
    }
    for (name, why) in failures {
        println!("| {name} | FAILED: {} | - | - | not met |", cell(why));
    }
}
