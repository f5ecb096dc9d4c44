//! How plan and apply scale with the number of resources, against the local AWS emulator.
//!
//! For the sandbox platform plus N extra buckets (N = 0, 10, 50) it prints: apply time from
//! empty, no-op plan wall time (median of 3), the API calls one no-op plan makes, and the
//! no-op plan time when every API call takes 50 ms (through the recording proxy), which is
//! closer to real AWS latency and shows whether observation is concurrent: serial
//! observation would grow linearly with the number of calls.
//!
//! Run: `cargo bench --bench plan_scaling` (set `COMFYPLAT_BENCH_SIZES=0,10` for other sizes).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

fn platform_with_extra_buckets(extra: usize) -> String {
    let mut buckets = String::from("  inputs: {}\n");
    if extra > 0 {
        buckets.push_str("  extra:\n");
        for index in 0..extra {
            buckets.push_str(&format!("    bench{index}: {{}}\n"));
        }
    }
    sandbox_yaml().replace("  inputs: {}\n", &buckets)
}

fn timed(workspace: &Workspace, endpoint: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    workspace.run(endpoint, args).expect(0);
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("COMFYPLAT_BENCH_SIZES")
        .unwrap_or_else(|_| "0,10,50".to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!("comfyplat plan/apply scaling against the local AWS emulator (moto)");
    println!(
        "{:>13} {:>10} {:>10} {:>15} {:>16} {:>26}",
        "extra buckets",
        "resources",
        "apply",
        "no-op plan",
        "API calls/plan",
        "no-op plan @50ms/call"
    );
    for extra in sizes {
        let emulator = Emulator::start();
        let counting = Proxy::start(&emulator.endpoint, ProxyOptions::default());
        let slow = Proxy::start(
            &emulator.endpoint,
            ProxyOptions {
                delay_ms: 50,
                ..ProxyOptions::default()
            },
        );
        let workspace = Workspace::new(&platform_with_extra_buckets(extra));
        let apply = timed(
            &workspace,
            &emulator.endpoint,
            &["apply", "--yes", "--quiet"],
        );
        let plans: Vec<Duration> = (0..3)
            .map(|_| {
                timed(
                    &workspace,
                    &emulator.endpoint,
                    &["plan", "--detailed-exitcode"],
                )
            })
            .collect();
        counting.clear();
        workspace
            .run(&counting.endpoint, &["plan", "--detailed-exitcode"])
            .expect(0);
        let calls = counting.requests().len();
        let slow_plan = timed(&workspace, &slow.endpoint, &["plan", "--detailed-exitcode"]);
        println!(
            "{:>13} {:>10} {:>9.2}s {:>14.2}s {:>16} {:>25.2}s",
            extra,
            12 + extra,
            apply.as_secs_f64(),
            median(plans).as_secs_f64(),
            calls,
            slow_plan.as_secs_f64()
        );
        println!(
            "{:>13} serial observation at 50 ms/call would take at least {:.1}s",
            "",
            calls as f64 * 0.05
        );
    }
}
