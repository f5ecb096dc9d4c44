//! How plan and apply scale with the number of resources, and how many sequential round
//! trips a no-op plan makes, against the local emulators.
//!
//! For the whole sandbox platform (AWS side, Kubernetes workload, CloudFront) plus N extra
//! buckets (N = 0, 10, 50) it prints: apply time from empty; no-op plan wall time (the fastest
//! of 5); the AWS calls and Kubernetes requests one no-op plan makes; its time with 50 ms added
//! to every call on both sides; and its sequential rounds of calls on each side. Real AWS is
//! 50-150 ms away from a laptop, so rounds, not calls, are what a plan costs there (a serial
//! plan would need as many rounds as calls).
//!
//! Rounds are counted from the proxies' logs of one no-op plan with 250 ms added to every
//! call: the longest chain of calls of which each started after the one before had been
//! answered. Calls of one round start within a few milliseconds of each other and each takes
//! at least 250 ms, so they overlap and do not chain; only calls that waited for an answer do.
//! A delay that large also keeps the emulators' own slowness (hundreds of calls of one round
//! queue in Python on 2 cores) from counting as rounds.
//!
//! Run: `cargo bench --bench plan_scaling` (set `COMFYPLAT_BENCH_SIZES=0,10` for other sizes).

#[path = "../tests/it/support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

/// The latency a plan is timed with, in milliseconds (real AWS from a laptop: 50-150 ms).
const DELAY_MS: u64 = 50;
/// The latency rounds are counted with: larger than anything the emulators add.
const ROUND_DELAY_MS: u64 = 250;
/// Runs per measurement; the fastest counts (noise only ever adds time).
const SAMPLES: usize = 5;

fn platform_with_extra_buckets(extra: usize) -> String {
    let mut buckets = String::from("  inputs: {}\n");
    if extra > 0 {
        buckets.push_str("  extra:\n");
        for index in 0..extra {
            buckets.push_str(&format!("    bench{index}: {{}}\n"));
        }
    }
    full_sandbox_yaml().replace("  inputs: {}\n", &buckets)
}

fn timed(workspace: &Workspace, endpoint: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    workspace.run(endpoint, args).expect(0);
    started.elapsed()
}

/// The fastest of [`SAMPLES`] no-op plans through these proxies.
fn plan_through(yaml: &str, workspace: &Workspace, aws: &Proxy, kube: &Proxy) -> Duration {
    workspace.write(&kube.in_front_of_kubernetes(yaml));
    (0..SAMPLES)
        .map(|_| timed(workspace, &aws.endpoint, &["plan", "--detailed-exitcode"]))
        .min()
        .unwrap_or_default()
}

fn delayed(emulator: &Emulator, delay_ms: u64) -> (Proxy, Proxy) {
    let aws = Proxy::slow(&emulator.endpoint, delay_ms);
    let kube = Proxy::kubernetes(
        emulator,
        ProxyOptions {
            delay_ms,
            ..ProxyOptions::default()
        },
    );
    (aws, kube)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("COMFYPLAT_BENCH_SIZES")
        .unwrap_or_else(|_| "0,10,50".to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!(
        "comfyplat plan/apply scaling against the local emulators (moto, Kubernetes API test server)"
    );
    println!(
        "{:>7} {:>9} {:>8} {:>11} {:>7} {:>9} {:>11} {:>7} {:>7}",
        "extra", "resources", "apply", "no-op plan", "AWS", "K8s", "no-op plan", "AWS", "K8s"
    );
    println!(
        "{:>7} {:>9} {:>8} {:>11} {:>7} {:>9} {:>11} {:>7} {:>7}",
        "buckets", "", "", "", "calls", "requests", "@50 ms", "rounds", "rounds"
    );
    for extra in sizes {
        let emulator = Emulator::start();
        let (aws, kube) = delayed(&emulator, 0);
        let (aws_50, kube_50) = delayed(&emulator, DELAY_MS);
        let (aws_250, kube_250) = delayed(&emulator, ROUND_DELAY_MS);
        let yaml = platform_with_extra_buckets(extra);
        let workspace = Workspace::new(&kube.in_front_of_kubernetes(&yaml));
        let apply = timed(
            &workspace,
            &emulator.endpoint,
            &["apply", "--yes", "--quiet"],
        );
        let resources = workspace.state()["resources"]
            .as_object()
            .map(|r| r.len())
            .unwrap_or_default();

        aws.clear();
        kube.clear();
        let fast = plan_through(&yaml, &workspace, &aws, &kube);
        let calls = aws.requests().len() / SAMPLES;
        let requests = kube.requests().len() / SAMPLES;
        let both_50 = plan_through(&yaml, &workspace, &aws_50, &kube_50);
        workspace.write(&kube_250.in_front_of_kubernetes(&yaml));
        timed(
            &workspace,
            &aws_250.endpoint,
            &["plan", "--detailed-exitcode"],
        );
        let aws_rounds = aws_250.rounds();
        let kube_rounds = kube_250.rounds();
        println!(
            "{:>7} {:>9} {:>7.2}s {:>10.2}s {:>7} {:>9} {:>10.2}s {:>7} {:>7}",
            extra,
            resources,
            apply.as_secs_f64(),
            fast.as_secs_f64(),
            calls,
            requests,
            both_50.as_secs_f64(),
            aws_rounds,
            kube_rounds
        );
    }
    println!(
        "rounds: the longest chain of calls in one no-op plan with {ROUND_DELAY_MS} ms added to every call, \
         each started after the one before had been answered"
    );
}
