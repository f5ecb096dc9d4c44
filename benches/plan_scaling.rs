//! How plan and apply scale with the number of resources, and how many sequential round
//! trips a no-op plan makes, against the local emulators.
//!
//! For the whole sandbox platform (AWS side, Kubernetes workload, CloudFront) plus N extra
//! buckets (N = 0, 10, 50) it prints: apply time from empty; no-op plan wall time (median of
//! 3); the AWS calls and Kubernetes requests one no-op plan makes; and the plan's latency
//! sensitivity, i.e. its sequential rounds of calls: (plan time with 50 ms added to every
//! AWS call − plan time without) / 50 ms, and the same with 50 ms added to every
//! Kubernetes request. Real AWS is 50-150 ms away from a laptop, so rounds, not calls, are
//! what a plan costs there; a serial plan would take calls × 50 ms.
//!
//! Every run goes through the recording proxy (AWS) and its Kubernetes mode, with and
//! without the delay, so the proxies' own cost cancels out.
//!
//! Run: `cargo bench --bench plan_scaling` (set `COMFYPLAT_BENCH_SIZES=0,10` for other sizes).

#[path = "../tests/it/support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

const DELAY_MS: u64 = 50;
const SAMPLES: usize = 3;

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

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median no-op plan time through these proxies.
fn plan_through(yaml: &str, workspace: &Workspace, aws: &Proxy, kube: &Proxy) -> Duration {
    workspace.write(&kube.in_front_of_kubernetes(yaml));
    median(
        (0..SAMPLES)
            .map(|_| timed(workspace, &aws.endpoint, &["plan", "--detailed-exitcode"]))
            .collect(),
    )
}

fn rounds(slow: Duration, fast: Duration) -> f64 {
    (slow.as_secs_f64() - fast.as_secs_f64()) / (DELAY_MS as f64 / 1000.0)
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
        "{:>7} {:>9} {:>8} {:>11} {:>9} {:>9} {:>11} {:>11}",
        "extra", "resources", "apply", "no-op plan", "AWS", "K8s", "AWS rounds", "K8s rounds"
    );
    println!(
        "{:>7} {:>9} {:>8} {:>11} {:>9} {:>9} {:>11} {:>11}",
        "buckets", "", "", "", "calls", "requests", "@50 ms", "@50 ms"
    );
    for extra in sizes {
        let emulator = Emulator::start();
        let aws = Proxy::start(&emulator.endpoint, ProxyOptions::default());
        let slow_aws = Proxy::slow(&emulator.endpoint, DELAY_MS);
        let kube = Proxy::kubernetes(&emulator, ProxyOptions::default());
        let slow_kube = Proxy::kubernetes(
            &emulator,
            ProxyOptions {
                delay_ms: DELAY_MS,
                ..ProxyOptions::default()
            },
        );
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
        let aws_rounds = rounds(plan_through(&yaml, &workspace, &slow_aws, &kube), fast);
        let kube_rounds = rounds(plan_through(&yaml, &workspace, &aws, &slow_kube), fast);
        println!(
            "{:>7} {:>9} {:>7.2}s {:>10.2}s {:>9} {:>9} {:>11.1} {:>11.1}",
            extra,
            resources,
            apply.as_secs_f64(),
            fast.as_secs_f64(),
            calls,
            requests,
            aws_rounds,
            kube_rounds
        );
    }
    println!(
        "rounds = (plan time with {DELAY_MS} ms added to every call of that side - without) / {DELAY_MS} ms; a serial plan would need as many rounds as calls"
    );
}
