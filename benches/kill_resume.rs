//! Random kills: how an apply or a destroy killed (SIGKILL) at a random moment is finished
//! by the next run, against the local emulators.
//!
//! 20 times: an apply of the whole sandbox platform killed after a random delay, then an
//! apply that must finish it; counted are duplicates (more than one distribution, or more
//! buckets than the platform has) and whether the next plan is empty. Then 10 times: a
//! destroy killed after a random delay, then a destroy that must finish it; counted are
//! orphans (anything still carrying the platform's tag or label, read with the aws CLI and
//! kubectl) and whether `plan --destroy` is then empty. Goal: 0 duplicates, 0 orphans,
//! 20/20 and 10/10.
//!
//! Run: `cargo bench --bench kill_resume` (`COMFYPLAT_KILL_SEED=N` repeats a sequence,
//! `COMFYPLAT_KILLS=apply,destroy` sets the counts, e.g. `5,3`).

#[path = "../tests/it/support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

/// A small deterministic generator (xorshift), so a seed repeats a run.
struct Random(u64);

impl Random {
    fn below(&mut self, limit: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % limit.max(1)
    }
}

/// Starts `args`, kills it after `delay` (if it is still running); whether it was killed.
fn kill_after(workspace: &Workspace, endpoint: &str, args: &[&str], delay: Duration) -> bool {
    let mut child = workspace.spawn(endpoint, args);
    let started = Instant::now();
    while started.elapsed() < delay {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

/// What carries the platform's tag or label: ARNs from the Tagging API, distributions, and
/// labelled Kubernetes objects.
fn tagged(emulator: &Emulator) -> Vec<String> {
    let mut found: Vec<String> = aws_cli(
        &emulator.endpoint,
        &[
            "resourcegroupstaggingapi",
            "get-resources",
            "--tag-filters",
            "Key=comfyplat:platform,Values=sandbox",
        ],
    )["ResourceTagMappingList"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| r["ResourceARN"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    found.extend(
        distributions(&emulator.endpoint)
            .iter()
            .filter_map(|d| d["Id"].as_str().map(|id| format!("distribution {id}"))),
    );
    found.extend(emulator.labelled_objects());
    found
}

fn main() {
    let seed = std::env::var("COMFYPLAT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202u64);
    let counts: Vec<usize> = std::env::var("COMFYPLAT_KILLS")
        .unwrap_or_else(|_| "20,10".to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let (applies, destroys) = (
        counts.first().copied().unwrap_or(20),
        counts.get(1).copied().unwrap_or(10),
    );
    let mut random = Random(seed.max(1));
    let emulator = Emulator::start();
    let workspace = Workspace::new(&full_sandbox_yaml());
    let endpoint = emulator.endpoint.clone();
    // How long a whole apply takes here bounds the kill delays.
    let started = Instant::now();
    workspace
        .run(&endpoint, &["apply", "--yes", "--quiet"])
        .expect(0);
    let apply_ms = started.elapsed().as_millis() as u64;
    let started = Instant::now();
    workspace.run(&endpoint, &["destroy", "--yes"]).expect(0);
    let destroy_ms = started.elapsed().as_millis() as u64;
    println!(
        "random kills against the local emulators (seed {seed}; a whole apply takes {:.1} s, a destroy {:.1} s)",
        apply_ms as f64 / 1000.0,
        destroy_ms as f64 / 1000.0
    );

    let (mut duplicates, mut converged, mut killed) = (0, 0, 0);
    for round in 1..=applies {
        let delay = Duration::from_millis(random.below(apply_ms));
        killed += usize::from(kill_after(
            &workspace,
            &endpoint,
            &["apply", "--yes", "--quiet"],
            delay,
        ));
        let finished = workspace.run(&endpoint, &["apply", "--yes", "--quiet"]);
        let distributions = distributions(&endpoint).len();
        let buckets = Reader::new(&endpoint)
            .bucket_names()
            .iter()
            .filter(|b| b.starts_with("comfyui-"))
            .count();
        let twins = distributions.saturating_sub(1) + buckets.saturating_sub(3);
        duplicates += twins;
        let quiet = workspace
            .run(&endpoint, &["plan", "--detailed-exitcode"])
            .code
            == 0;
        converged += usize::from(finished.code == 0 && quiet);
        println!(
            "apply   {round:>2}: killed after {:>5} ms; next apply exit {}, distributions {distributions}, buckets {buckets}, next plan {}",
            delay.as_millis(),
            finished.code,
            if quiet { "empty" } else { "NOT EMPTY" }
        );
        workspace.run(&endpoint, &["destroy", "--yes"]).expect(0);
    }

    let (mut orphans, mut cleaned) = (0, 0);
    for round in 1..=destroys {
        workspace
            .run(&endpoint, &["apply", "--yes", "--quiet"])
            .expect(0);
        let delay = Duration::from_millis(random.below(destroy_ms));
        killed += usize::from(kill_after(
            &workspace,
            &endpoint,
            &["destroy", "--yes"],
            delay,
        ));
        let finished = workspace.run(&endpoint, &["destroy", "--yes"]);
        let left = tagged(&emulator);
        orphans += left.len();
        let quiet = workspace
            .run(&endpoint, &["plan", "--destroy", "--detailed-exitcode"])
            .code
            == 0;
        cleaned += usize::from(finished.code == 0 && quiet && left.is_empty());
        println!(
            "destroy {round:>2}: killed after {:>5} ms; next destroy exit {}, left {:?}, next plan --destroy {}",
            delay.as_millis(),
            finished.code,
            left,
            if quiet { "empty" } else { "NOT EMPTY" }
        );
    }
    println!(
        "duplicates {duplicates}, orphans {orphans}, applies finished {converged}/{applies}, destroys finished {cleaned}/{destroys} ({killed} runs killed before they ended)"
    );
}
