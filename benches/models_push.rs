//! `comfyplat models push` against `aws s3 sync` (the venv's awscli v1, an independent
//! client with its own defaults: 10 requests at once, 8 MiB parts), both into fresh buckets
//! of the same local emulator, straight (no proxy):
//!
//! - throughput of a generated `models/` tree (two 256 MiB checkpoints, sixteen 16 MiB
//!   LoRAs, sixty-four 64 KiB embeddings: 772 MiB in 82 files), best of
//!   `COMFYPLAT_BENCH_ROUNDS` (default 3) alternating rounds, in MiB/s, and their ratio
//!   (goal ≥ 1.0);
//! - the peak resident memory (`wait4`'s `ru_maxrss`) of `comfyplat models push` of one
//!   2 GiB file (goal ≤ 100 MiB), with `aws s3 sync`'s for the same file beside it.
//!
//! Run: `cargo bench --bench models_push` (`COMFYPLAT_BENCH_BIG_MIB=N` sets the large file's
//! size, default 2048).

#[path = "../tests/it/support.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const MIB: u64 = 1024 * 1024;

/// Writes `size` bytes of cheap pseudo-random data (xorshift), so nothing compresses or
/// repeats between files.
fn generate(path: &Path, size: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    let mut file = std::io::BufWriter::with_capacity(
        4 * MIB as usize,
        std::fs::File::create(path).expect("create"),
    );
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(MIB) as usize;
        file.write_all(&block[..n]).expect("write");
        left -= n as u64;
    }
    file.flush().expect("flush");
}

/// The generated tree; its size in bytes.
fn tree(root: &Path) -> u64 {
    let mut total = 0;
    let mut seed = 1;
    let mut add = |relative: String, size: u64| {
        generate(&root.join(relative), size, seed);
        seed += 1;
        total += size;
    };
    for i in 0..2 {
        add(format!("checkpoints/model-{i}.safetensors"), 256 * MIB);
    }
    for i in 0..16 {
        add(format!("loras/lora-{i:02}.safetensors"), 16 * MIB);
    }
    for i in 0..64 {
        add(format!("embeddings/embedding-{i:02}.pt"), 64 * 1024);
    }
    total
}

fn create_bucket(reader: &Reader, name: &str) {
    reader
        .block_on(
            reader
                .s3
                .create_bucket()
                .bucket(name)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                        .build(),
                )
                .send(),
        )
        .expect("create bucket");
}

/// Deletes every object of `bucket` (between rounds, so each push starts from empty).
fn empty_bucket(reader: &Reader, bucket: &str) {
    loop {
        let listed = reader
            .block_on(reader.s3.list_objects_v2().bucket(bucket).send())
            .expect("list");
        let keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        if keys.is_empty() {
            return;
        }
        for key in keys {
            reader
                .block_on(reader.s3.delete_object().bucket(bucket).key(&key).send())
                .expect("delete");
        }
    }
}

/// Runs `command` to its end; its wall time and peak resident memory (bytes), from wait4
/// (which reaps the child: `Child::wait` would find nothing left to wait for).
#[allow(clippy::zombie_processes)]
fn measure(command: &mut Command) -> (Duration, u64) {
    let started = Instant::now();
    let child = command.spawn().expect("start");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value, which wait4 overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed with status {status}"
    );
    // Linux reports ru_maxrss in KiB.
    (elapsed, usage.ru_maxrss as u64 * 1024)
}

fn aws_sync(endpoint: &str, dir: &Path, bucket: &str) -> Command {
    let mut command = Command::new(python().with_file_name("aws"));
    command
        .args(["s3", "sync", "--only-show-errors", "--no-progress"])
        .arg(dir)
        .arg(format!("s3://{bucket}/"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "");
    command
}

fn push(workspace: &Workspace, endpoint: &str, dir: &Path) -> Command {
    let dir = dir.display().to_string();
    let mut command = workspace.command(endpoint, &["--quiet", "models", "push", &dir]);
    command.stdout(std::process::Stdio::null());
    command
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::var("COMFYPLAT_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let big_mib: u64 = std::env::var("COMFYPLAT_BENCH_BIG_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048);
    let emulator = Emulator::start();
    let endpoint = emulator.endpoint.clone();
    let reader = Reader::new(&endpoint);
    let workspace = Workspace::sandbox();
    let ours = bucket("models");
    let theirs = "aws-s3-sync-bench";
    create_bucket(&reader, &ours);
    create_bucket(&reader, theirs);

    let scratch = tempfile::tempdir().expect("temporary directory");
    let models = scratch.path().join("models");
    let total = tree(&models);
    println!(
        "models push vs aws s3 sync (awscli v1) into the local emulator: {} MiB in 82 files, best of {rounds}",
        total / MIB
    );
    let (mut best_ours, mut best_theirs) = (Duration::MAX, Duration::MAX);
    for round in 1..=rounds {
        empty_bucket(&reader, &ours);
        empty_bucket(&reader, theirs);
        let (push_time, _) = measure(&mut push(&workspace, &endpoint, &models));
        let (sync_time, _) = measure(&mut aws_sync(&endpoint, &models, theirs));
        println!(
            "round {round}: comfyplat {:.1} s ({:.1} MiB/s), aws s3 sync {:.1} s ({:.1} MiB/s)",
            push_time.as_secs_f64(),
            mib_per_s(total, push_time),
            sync_time.as_secs_f64(),
            mib_per_s(total, sync_time)
        );
        best_ours = best_ours.min(push_time);
        best_theirs = best_theirs.min(sync_time);
    }
    let (ours_rate, theirs_rate) = (mib_per_s(total, best_ours), mib_per_s(total, best_theirs));
    println!(
        "throughput: comfyplat models push {ours_rate:.1} MiB/s, aws s3 sync {theirs_rate:.1} MiB/s, ratio {:.2} (goal >= 1.0)",
        ours_rate / theirs_rate
    );

    // One large file: peak memory.
    empty_bucket(&reader, &ours);
    empty_bucket(&reader, theirs);
    drop(scratch);
    let scratch = tempfile::tempdir().expect("temporary directory");
    let big = scratch.path().join("models");
    generate(
        &big.join("checkpoints/big.safetensors"),
        big_mib * MIB,
        4242,
    );
    let (push_time, push_rss) = measure(&mut push(&workspace, &endpoint, &big));
    empty_bucket(&reader, &ours);
    let (sync_time, sync_rss) = measure(&mut aws_sync(&endpoint, &big, theirs));
    println!(
        "one {big_mib} MiB file: comfyplat models push peak RSS {:.1} MiB ({:.1} s, {:.1} MiB/s; goal <= 100 MiB), aws s3 sync {:.1} MiB ({:.1} s, {:.1} MiB/s)",
        push_rss as f64 / MIB as f64,
        push_time.as_secs_f64(),
        mib_per_s(big_mib * MIB, push_time),
        sync_rss as f64 / MIB as f64,
        sync_time.as_secs_f64(),
        mib_per_s(big_mib * MIB, sync_time)
    );
}
