//! The model cache agent (`templates/model-agent.sh.j2`): the exact script that goes into the
//! agent's ConfigMap (`render_partial`), run with `sh` against moto (unseeded: S3 only) with
//! the pinned aws CLI of the emulator's virtualenv, a temporary directory as the node's disk
//! and short periods (check 1 s, reconcile 3 s, backoff capped at 2 s). Every wait polls the
//! agent's status lines (its stdout, every line of which must be one) or the files, with a
//! deadline.
//!
//! - the script is POSIX sh (`sh -n`, `bash --posix -n`, shellcheck when installed);
//! - the first sync mirrors the bucket (a paged listing), the status line is exact and in
//!   status.json, the ready file appears; a push reaches the node at the next check; a
//!   same-size overwrite and a delete in one change (a reader of the file meanwhile never
//!   sees a missing, partial or mixed file, and no name appears but the keys' and hidden
//!   temporaries); an upload that does not bump the marker arrives by the reconcile; SIGTERM
//!   stops it at once;
//! - an unreachable bucket (a gate in front of moto that closes connections): error lines
//!   with the CLI's message, first_sync_done false and no ready file before any sync, the
//!   files kept after one, recovery; SIGTERM in the middle of a (throttled) download exits at
//!   once and leaves no temporary file and no partial model;
//! - a reserve that cannot be kept: `does_not_fit` with the numbers, nothing of the set
//!   downloaded, `first_sync_done` kept across restarts, a stale temporary removed at start,
//!   recovery as soon as the set shrinks;
//! - `COMFYPLAT_PREFIXES` limits the mirror; keys that would escape, hold a tab, collide with
//!   a temporary name or are also a folder are skipped and reported; strays on the node go.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BUCKET: &str = "comfyplat-agent-models-test";
const NODE: &str = "gpu-node-1";
const MIB: usize = 1024 * 1024;
const STATUS_KEYS: [&str; 11] = [
    "agent",
    "node",
    "time",
    "state",
    "generation",
    "first_sync_done",
    "files",
    "bytes",
    "free_bytes",
    "duration_ms",
    "errors",
];
const TEMP_SUFFIX: &str = ".comfyplat-partial";

/// The agent's script as the ConfigMap gets it.
fn script() -> String {
    comfyplat::templates::render_partial(
        "model-agent.sh.j2",
        &serde_json::json!({}),
        &comfyplat::templates::Sources::embedded(),
    )
    .expect("the model agent renders without a context")
}

// --- the bucket -----------------------------------------------------------------------

struct Bucket {
    reader: Reader,
    generations: AtomicU64,
}

impl Bucket {
    fn create(endpoint: &str) -> Bucket {
        let reader = Reader::new(endpoint);
        reader
            .block_on(
                reader
                    .s3
                    .create_bucket()
                    .bucket(BUCKET)
                    .create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(
                                aws_sdk_s3::types::BucketLocationConstraint::UsWest2,
                            )
                            .build(),
                    )
                    .send(),
            )
            .expect("create the models bucket");
        Bucket {
            reader,
            generations: AtomicU64::new(0),
        }
    }

    fn put(&self, key: &str, body: &[u8]) {
        self.reader
            .block_on(
                self.reader
                    .s3
                    .put_object()
                    .bucket(BUCKET)
                    .key(key)
                    .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
                    .send(),
            )
            .unwrap_or_else(|error| panic!("put {key}: {error:?}"));
    }

    fn delete(&self, key: &str) {
        self.reader
            .block_on(
                self.reader
                    .s3
                    .delete_object()
                    .bucket(BUCKET)
                    .key(key)
                    .send(),
            )
            .unwrap_or_else(|error| panic!("delete {key}: {error:?}"));
    }

    /// Writes a new generation marker, as `comfyplat models push/rm` does; returns it.
    fn bump(&self) -> String {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis();
        let count = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let generation = format!("{millis}-{:08x}", 0x9f2c_4a00 + count);
        self.put(
            ".comfyplat/generation",
            format!("{generation}\n").as_bytes(),
        );
        generation
    }
}

// --- the node and the agent -----------------------------------------------------------

/// The node's disk: the cache root, the ready file and the script.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("agent.sh"), script()).expect("write the script");
        Node { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn models(&self) -> PathBuf {
        self.root().join("models")
    }

    fn model(&self, key: &str) -> PathBuf {
        self.models().join(key)
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready")
    }

    fn status_file(&self) -> String {
        std::fs::read_to_string(self.root().join("status.json")).expect("read status.json")
    }

    /// Every path under models/, relative, directories with a trailing `/`.
    fn tree(&self) -> BTreeSet<String> {
        tree(&self.models())
    }

    /// The regular files under models/.
    fn files(&self) -> BTreeSet<String> {
        self.tree()
            .into_iter()
            .filter(|path| !path.ends_with('/'))
            .collect()
    }

    /// Starts the agent on this node against `endpoint`; `env` adds to or overrides the
    /// test defaults.
    fn start(&self, endpoint: &str, env: &[(&str, &str)]) -> Agent {
        let logs = tempfile::tempdir().expect("temporary directory");
        let out = logs.path().join("stdout");
        let err = logs.path().join("stderr");
        let venv_bin = python().parent().expect("venv bin").to_path_buf();
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("sh")
            .arg(self.dir.path().join("agent.sh"))
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "2")
            .env("COMFYPLAT_BUCKET", BUCKET)
            .env("COMFYPLAT_ROOT", self.root())
            .env("COMFYPLAT_RESERVE_BYTES", "0")
            .env("COMFYPLAT_CHECK_SECONDS", "1")
            .env("COMFYPLAT_RECONCILE_SECONDS", "3")
            .env("COMFYPLAT_MAX_BACKOFF_SECONDS", "2")
            .env("COMFYPLAT_READY_FILE", self.ready_file())
            .env("NODE_NAME", NODE)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("start the agent with sh");
        Agent {
            child,
            out,
            err,
            _logs: logs,
        }
    }
}

fn tree(dir: &Path) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    walk(dir, "", &mut paths);
    paths
}

fn walk(dir: &Path, prefix: &str, paths: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            paths.insert(format!("{prefix}{name}/"));
            walk(&entry.path(), &format!("{prefix}{name}/"), paths);
        } else {
            paths.insert(format!("{prefix}{name}"));
        }
    }
}

fn temporaries(paths: &BTreeSet<String>) -> Vec<&String> {
    paths
        .iter()
        .filter(|path| path.contains("comfyplat-partial"))
        .collect()
}

struct Agent {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _logs: tempfile::TempDir,
}

impl Agent {
    /// The status lines so far; every stdout line must be one.
    fn lines(&self) -> Vec<(String, Value)> {
        let text = std::fs::read_to_string(&self.out).expect("read the agent's stdout");
        text.lines()
            .map(|line| {
                let value = serde_json::from_str(line).unwrap_or_else(|error| {
                    panic!(
                        "a stdout line that is not JSON ({error}): {line:?}\n{}",
                        self.log()
                    )
                });
                (line.to_string(), value)
            })
            .collect()
    }

    fn log(&self) -> String {
        format!(
            "--- agent stdout\n{}\n--- agent stderr\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Waits for a status line after the first `after` ones that satisfies `accept`;
    /// returns its index and the line.
    fn wait_line(
        &mut self,
        after: usize,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> (usize, String, Value) {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if let Some((index, (raw, value))) = lines
                .into_iter()
                .enumerate()
                .skip(after)
                .find(|(_, (_, value))| accept(value))
            {
                return (index, raw, value);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the agent exited with {status} waiting for {what}\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no status line with {what} within {timeout:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_state(&mut self, after: usize, state: &str) -> (usize, String, Value) {
        self.wait_line(
            after,
            &format!("state {state}"),
            Duration::from_secs(30),
            |line| line["state"] == state,
        )
    }

    fn count(&self) -> usize {
        self.lines().len()
    }

    /// SIGTERM; returns the exit status and how long it took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = started + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the agent") {
                return (status, started.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit within 10 s of SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `done` holds (polling the files), or fails with `what`.
fn wait_until(agent: &Agent, what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks a status line's exact form: compact JSON, keys in order, the fixed fields.
fn assert_status_form(raw: &str, line: &Value) {
    let keys: Vec<&str> = line
        .as_object()
        .expect("a status line is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, STATUS_KEYS, "{raw}");
    // Compact: what serde_json writes for the same value (no spaces, same escapes).
    assert_eq!(
        serde_json::to_string(line).expect("serialize"),
        raw,
        "not compact"
    );
    assert_eq!(line["agent"], "comfyplat-model-agent");
    assert_eq!(line["node"], NODE);
    let time = line["time"].as_str().expect("time");
    assert!(
        time.len() == 20
            && time.ends_with('Z')
            && time.as_bytes()[10] == b'T'
            && time.starts_with("20"),
        "time {time}"
    );
    for number in ["files", "bytes", "free_bytes", "duration_ms"] {
        assert!(line[number].is_u64(), "{number} in {raw}");
    }
    assert!(line["first_sync_done"].is_boolean(), "{raw}");
    assert!(line["errors"].is_array(), "{raw}");
}

fn errors(line: &Value) -> Vec<String> {
    line["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| error.as_str().expect("an error is a string").to_string())
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

// --- a gate in front of moto: up, down (connections closed unanswered), or slow --------

const UP: u8 = 0;
const DOWN: u8 = 1;
const SLOW: u8 = 2;

struct Gate {
    endpoint: String,
    address: SocketAddr,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

impl Gate {
    fn start(upstream: &str, mode: u8) -> Gate {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("the emulator's endpoint is an address");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the gate");
        let address = listener.local_addr().expect("the gate's address");
        let mode = Arc::new(AtomicU8::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_mode, thread_stop) = (mode.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if thread_mode.load(Ordering::SeqCst) == DOWN {
                    // Closed without an answer: the bucket is unreachable.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let mode = thread_mode.clone();
                std::thread::spawn(move || relay(client, upstream, &mode));
            }
        });
        Gate {
            endpoint: format!("http://{address}"),
            address,
            mode,
            stop,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}

fn relay(client: TcpStream, upstream: SocketAddr, mode: &AtomicU8) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let slow = mode.load(Ordering::SeqCst) == SLOW;
        // Slow: 16 KiB every 25 ms, about 640 KiB/s.
        let limit = if slow { 16 * 1024 } else { buffer.len() };
        match from_server.read(&mut buffer[..limit]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to_client.write_all(&buffer[..n]).is_err() {
                    break;
                }
                if slow {
                    std::thread::sleep(Duration::from_millis(25));
                }
            }
        }
    }
    let _ = to_client.shutdown(Shutdown::Write);
}

// --- the tests ------------------------------------------------------------------------

#[test]
fn the_model_agent_script_is_posix_sh() {
    let text = script();
    assert!(text.starts_with("#!/bin/sh\n"), "{}", &text[..40]);
    assert!(text.is_ascii(), "the script is ASCII");
    assert!(
        !text.contains("{%") && !text.contains("{{"),
        "template syntax left"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_file(dir.path(), "agent.sh", text.as_bytes());
    let checks: [(&str, &[&str]); 2] = [("sh", &["-n"]), ("bash", &["--posix", "-n"])];
    for (shell, args) in checks {
        let output = Command::new(shell).args(args).arg(&path).output();
        match output {
            Ok(output) => assert!(
                output.status.success(),
                "{shell} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(_) if shell == "bash" => eprintln!("bash not installed: skipped"),
            Err(error) => panic!("run {shell}: {error}"),
        }
    }
    match Command::new("shellcheck")
        .args(["--shell=sh", "--severity=warning"])
        .arg(&path)
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&output.stdout)
        ),
        Err(_) => eprintln!("shellcheck not installed: that check skipped"),
    }
}

#[test]
fn the_model_agent_mirrors_the_bucket_and_replaces_files_atomically() {
    let emulator = Emulator::unseeded();
    let bucket = Bucket::create(&emulator.endpoint);
    let big_a = vec![b'A'; 8 * MIB];
    let big_b = vec![b'B'; 8 * MIB];
    bucket.put("checkpoints/base.safetensors", b"base model");
    bucket.put("checkpoints/big.safetensors", &big_a);
    bucket.put("vae/sub/deep.pt", b"deep");
    let first = bucket.bump();

    let node = Node::new();
    // Two keys a page: the CLI follows the pages.
    let mut agent = node.start(&emulator.endpoint, &[("COMFYPLAT_PAGE_SIZE", "2")]);
    let (index, raw, line) = agent.wait_state(0, "synced");
    assert_eq!(
        index,
        0,
        "the first line is the first sync\n{}",
        agent.log()
    );
    assert_status_form(&raw, &line);
    assert_eq!(line["generation"], first.as_str());
    assert_eq!(line["first_sync_done"], true);
    assert_eq!(line["files"], 3);
    assert_eq!(line["bytes"], (10 + 8 * MIB + 4) as u64);
    assert!(line["free_bytes"].as_u64().expect("free_bytes") > 0);
    assert_eq!(errors(&line), Vec::<String>::new());
    assert!(raw.contains("\"first_sync_done\":true"), "{raw}");
    assert_eq!(
        node.status_file(),
        format!("{raw}\n"),
        "status.json = the line"
    );
    assert!(
        node.ready_file().exists(),
        "the ready file after the first sync"
    );
    assert_eq!(
        node.tree(),
        [
            "checkpoints/",
            "checkpoints/base.safetensors",
            "checkpoints/big.safetensors",
            "vae/",
            "vae/sub/",
            "vae/sub/deep.pt",
        ]
        .map(String::from)
        .into(),
        "the mirror, nothing else (no .comfyplat/, no temporaries)"
    );
    assert_eq!(
        std::fs::read(node.model("checkpoints/base.safetensors")).expect("read"),
        b"base model"
    );
    assert!(std::fs::read(node.model("checkpoints/big.safetensors")).expect("read") == big_a);
    assert_eq!(
        std::fs::read(node.model("vae/sub/deep.pt")).expect("read"),
        b"deep"
    );
    assert_eq!(mode(&node.models()), 0o755);
    assert_eq!(mode(&node.model("vae/sub")), 0o755);
    assert_eq!(mode(&node.model("vae/sub/deep.pt")), 0o644);
    assert_eq!(mode(&node.model("checkpoints/big.safetensors")), 0o644);
    assert!(
        node.root().join(".agent/manifest").is_file(),
        "bookkeeping in .agent/"
    );

    // A reader of the big file (ComfyUI loading it) and of the names, all along.
    let keys = [
        "checkpoints/base.safetensors",
        "checkpoints/big.safetensors",
        "checkpoints/new.safetensors",
        "vae/sub/deep.pt",
        "loras/quiet.pt",
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let models = node.models();
        let mut allowed: BTreeSet<String> = BTreeSet::new();
        for key in keys {
            allowed.insert(key.to_string());
            let (dir, name) = key.rsplit_once('/').expect("a folder");
            allowed.insert(format!("{dir}/.{name}{TEMP_SUFFIX}"));
            let mut parent = String::new();
            for part in dir.split('/') {
                parent.push_str(part);
                parent.push('/');
                allowed.insert(parent.clone());
            }
        }
        let (big_a, big_b) = (big_a.clone(), big_b.clone());
        std::thread::spawn(move || {
            let (mut a_reads, mut b_reads) = (0u32, 0u32);
            let mut bad: Vec<String> = Vec::new();
            let mut strange: BTreeSet<String> = BTreeSet::new();
            let mut temporaries_seen = 0u32;
            while !stop.load(Ordering::SeqCst) {
                match std::fs::read(models.join("checkpoints/big.safetensors")) {
                    Ok(bytes) if bytes == big_a => a_reads += 1,
                    Ok(bytes) if bytes == big_b => b_reads += 1,
                    Ok(bytes) => bad.push(format!(
                        "{} bytes, {} A and {} B",
                        bytes.len(),
                        bytes.iter().filter(|b| **b == b'A').count(),
                        bytes.iter().filter(|b| **b == b'B').count()
                    )),
                    Err(error) => bad.push(format!("read failed: {error}")),
                }
                for path in tree(&models) {
                    if path.ends_with(TEMP_SUFFIX) {
                        temporaries_seen += 1;
                    }
                    if !allowed.contains(&path) {
                        strange.insert(path);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (a_reads, b_reads, bad, strange, temporaries_seen)
        })
    };

    // A push: the next check fetches it.
    let seen = agent.count();
    bucket.put("checkpoints/new.safetensors", b"new model");
    let second = bucket.bump();
    let pushed = Instant::now();
    let (_, raw, line) =
        agent.wait_line(seen, "the new generation", Duration::from_secs(15), |l| {
            l["state"] == "synced" && l["generation"] == second.as_str()
        });
    let took = pushed.elapsed();
    assert_status_form(&raw, &line);
    assert_eq!(
        std::fs::read(node.model("checkpoints/new.safetensors")).expect("the pushed file"),
        b"new model"
    );
    assert_eq!(line["files"], 4);
    assert!(
        took < Duration::from_secs(10),
        "a push took {took:?} to reach the node"
    );
    eprintln!("a push reached the node in {took:?}");

    // A same-size overwrite (the reader never sees anything but the old or the new file;
    // `aws s3 sync` would not even fetch it: same size, older local time) and a delete (the
    // file and its empty folders go) in one change.
    let seen = agent.count();
    bucket.put("checkpoints/big.safetensors", &big_b);
    bucket.delete("vae/sub/deep.pt");
    let third = bucket.bump();
    let (_, _, line) = agent.wait_line(seen, "the change", Duration::from_secs(20), |l| {
        l["state"] == "synced" && l["generation"] == third.as_str()
    });
    assert!(std::fs::read(node.model("checkpoints/big.safetensors")).expect("read") == big_b);
    assert!(!node.model("vae/sub/deep.pt").exists());
    assert!(!node.model("vae").exists(), "the empty folders are removed");
    assert_eq!(line["files"], 3);

    // An upload with another tool (no marker bump): the reconcile fetches it.
    let seen = agent.count();
    bucket.put("loras/quiet.pt", b"quiet");
    let (index, raw, line) = agent.wait_line(
        seen,
        "the reconcile of an unannounced upload",
        Duration::from_secs(15),
        |l| l["state"] == "synced" && l["files"] == 4,
    );
    assert_status_form(&raw, &line);
    assert_eq!(
        line["generation"],
        third.as_str(),
        "no marker bump: same generation"
    );
    assert_eq!(
        std::fs::read(node.model("loras/quiet.pt")).expect("read"),
        b"quiet"
    );

    stop.store(true, Ordering::SeqCst);
    let (a_reads, b_reads, bad, strange, temporaries_seen) =
        reader.join().expect("the reader thread");
    assert!(bad.is_empty(), "partial or mixed reads: {bad:?}");
    assert!(
        a_reads > 0 && b_reads > 0,
        "reads: {a_reads} A, {b_reads} B"
    );
    assert!(
        strange.is_empty(),
        "names under models/ that are neither keys nor hidden temporaries: {strange:?}"
    );
    eprintln!(
        "reader: {a_reads} whole A reads, {b_reads} whole B reads, a temporary seen {temporaries_seen} times"
    );
    assert!(
        agent.lines()[..=index]
            .iter()
            .all(|(_, l)| l["state"] == "synced"),
        "only synced lines\n{}",
        agent.log()
    );
    assert_eq!(
        node.files(),
        [
            "checkpoints/base.safetensors",
            "checkpoints/big.safetensors",
            "checkpoints/new.safetensors",
            "loras/quiet.pt",
        ]
        .map(String::from)
        .into()
    );
    assert!(temporaries(&node.tree()).is_empty());

    let (status, took) = agent.terminate();
    assert!(status.success(), "SIGTERM: exit 0, got {status}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    assert!(temporaries(&node.tree()).is_empty());
}

#[test]
fn the_model_agent_rides_out_an_unreachable_bucket_and_stops_cleanly() {
    let emulator = Emulator::unseeded();
    let bucket = Bucket::create(&emulator.endpoint);
    bucket.put("checkpoints/a.safetensors", b"model a");
    let first = bucket.bump();
    let gate = Gate::start(&emulator.endpoint, DOWN);
    let node = Node::new();

    // Unreachable from the start: error lines, nothing synced, not ready. (One attempt a
    // call: the errors come sooner.)
    let mut agent = node.start(&gate.endpoint, &[("AWS_MAX_ATTEMPTS", "1")]);
    let (_, raw, line) = agent.wait_state(0, "error");
    assert_status_form(&raw, &line);
    assert_eq!(line["first_sync_done"], false);
    assert_eq!(line["generation"], "");
    let message = errors(&line).join("\n");
    assert!(
        message.contains(&format!("s3://{BUCKET}/.comfyplat/generation"))
            && message.contains("endpoint URL"),
        "the CLI's message: {message}"
    );
    assert!(node.status_file().contains("\"first_sync_done\":false"));
    assert!(!node.ready_file().exists());
    assert!(node.files().is_empty());

    // Reachable: the first sync.
    gate.set(UP);
    let (_, _, line) = agent.wait_state(0, "synced");
    assert_eq!(line["generation"], first.as_str());
    assert!(node.ready_file().exists());
    assert_eq!(
        std::fs::read(node.model("checkpoints/a.safetensors")).expect("read"),
        b"model a"
    );

    // Unreachable again while a model is pushed: errors, the files stay.
    gate.set(DOWN);
    let seen = agent.count();
    bucket.put("checkpoints/b.safetensors", b"model b");
    let second = bucket.bump();
    let (_, raw, line) = agent.wait_state(seen, "error");
    assert_status_form(&raw, &line);
    assert_eq!(line["first_sync_done"], true);
    assert_eq!(
        line["generation"],
        first.as_str(),
        "the files are still at the first"
    );
    assert_eq!(line["files"], 1);
    assert!(errors(&line).join("\n").contains("endpoint URL"), "{raw}");
    assert!(node.model("checkpoints/a.safetensors").exists());
    assert!(!node.model("checkpoints/b.safetensors").exists());

    // Back: it recovers.
    let seen = agent.count();
    gate.set(UP);
    let (_, _, line) = agent.wait_state(seen, "synced");
    assert_eq!(line["generation"], second.as_str());
    assert_eq!(errors(&line), Vec::<String>::new());
    assert_eq!(
        std::fs::read(node.model("checkpoints/b.safetensors")).expect("read"),
        b"model b"
    );

    // SIGTERM in the middle of a download (4 MiB at about 640 KiB/s): exits at once, no
    // temporary file left, no partial model.
    gate.set(SLOW);
    bucket.put("checkpoints/huge.safetensors", &vec![b'H'; 4 * MIB]);
    bucket.bump();
    let partial = node.model("checkpoints/.huge.safetensors.comfyplat-partial");
    wait_until(
        &agent,
        "the download starts",
        Duration::from_secs(20),
        || partial.exists(),
    );
    let (status, took) = agent.terminate();
    assert!(status.success(), "SIGTERM: exit 0, got {status}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    assert!(!partial.exists(), "the temporary file is removed");
    assert!(temporaries(&node.tree()).is_empty());
    assert!(!node.model("checkpoints/huge.safetensors").exists());
    eprintln!("SIGTERM during a download: exited in {took:?}");
}

#[test]
fn the_model_agent_downloads_nothing_of_a_set_that_does_not_fit() {
    const HUGE: &str = "1000000000000000000";
    let emulator = Emulator::unseeded();
    let bucket = Bucket::create(&emulator.endpoint);
    bucket.put("checkpoints/a.safetensors", &vec![b'a'; MIB]);
    let first = bucket.bump();
    let node = Node::new();

    // A fresh node whose reserve cannot be kept: nothing, not ready.
    let mut agent = node.start(&emulator.endpoint, &[("COMFYPLAT_RESERVE_BYTES", HUGE)]);
    let (_, raw, line) = agent.wait_state(0, "does_not_fit");
    assert_status_form(&raw, &line);
    assert_eq!(line["first_sync_done"], false);
    assert_eq!(line["files"], 0);
    let message = errors(&line).join("\n");
    assert!(
        message.contains("does not fit")
            && message.contains(&format!("needs {MIB} bytes"))
            && message.contains(&format!("reserve of {HUGE} bytes")),
        "{message}"
    );
    assert!(node.files().is_empty(), "{:?}", node.tree());
    assert!(!node.ready_file().exists());
    agent.terminate();

    // A reserve that can be kept: synced; a stale temporary file (of an agent killed with
    // SIGKILL) is removed at start.
    let stale = node.model("checkpoints/.stale.safetensors.comfyplat-partial");
    std::fs::create_dir_all(node.model("checkpoints")).expect("mkdir");
    std::fs::write(&stale, b"left by a SIGKILL").expect("write a stale temporary");
    let mut agent = node.start(&emulator.endpoint, &[]);
    let (_, _, line) = agent.wait_state(0, "synced");
    assert_eq!(line["first_sync_done"], true);
    assert!(!stale.exists(), "the stale temporary is removed");
    assert_eq!(
        node.files(),
        ["checkpoints/a.safetensors".to_string()].into()
    );
    assert!(node.ready_file().exists());
    agent.terminate();

    // Two more models, and the reserve again: none of them, the first kept, and
    // first_sync_done survives the restart.
    bucket.put("checkpoints/b.safetensors", &vec![b'b'; 2 * MIB]);
    bucket.put("loras/c.safetensors", &vec![b'c'; MIB]);
    bucket.bump();
    let mut agent = node.start(&emulator.endpoint, &[("COMFYPLAT_RESERVE_BYTES", HUGE)]);
    let (index, raw, line) = agent.wait_state(0, "does_not_fit");
    assert_status_form(&raw, &line);
    assert_eq!(line["first_sync_done"], true);
    assert_eq!(line["generation"], first.as_str());
    assert_eq!(line["files"], 1);
    let message = errors(&line).join("\n");
    assert!(
        message.contains(&format!("needs {} bytes", 3 * MIB)) && message.contains("2 files"),
        "{message}"
    );
    assert_eq!(
        node.files(),
        ["checkpoints/a.safetensors".to_string()].into(),
        "none of the new set"
    );
    assert!(temporaries(&node.tree()).is_empty());

    // The set shrinks (models removed): the agent, still checking and retrying, syncs it.
    bucket.delete("checkpoints/b.safetensors");
    bucket.delete("loras/c.safetensors");
    let shrunk = bucket.bump();
    let (_, _, line) = agent.wait_line(index + 1, "the shrunk set", Duration::from_secs(15), |l| {
        l["state"] == "synced"
    });
    assert_eq!(line["generation"], shrunk.as_str());
    assert_eq!(
        node.files(),
        ["checkpoints/a.safetensors".to_string()].into()
    );
}

#[test]
fn the_model_agent_mirrors_only_its_prefixes_and_skips_keys_that_would_escape() {
    let emulator = Emulator::unseeded();
    let bucket = Bucket::create(&emulator.endpoint);
    bucket.put("checkpoints/a.safetensors", b"a");
    bucket.put("checkpoints/sub/b.bin", b"b");
    bucket.put("checkpoints/both/inner.bin", b"inner");
    bucket.put("loras/c.safetensors", b"c");
    bucket.put("vae/d.pt", b"d");
    bucket.put("top.txt", b"top");
    let bad = [
        "checkpoints/../../escape.bin",
        "checkpoints/./dot.bin",
        "loras//double.bin",
        "loras/tab\tname.safetensors",
        "checkpoints/.e.safetensors.comfyplat-partial",
        "checkpoints/both",
        "/abs.bin",
    ];
    for key in bad {
        bucket.put(key, b"bad");
    }
    bucket.bump();
    let node = Node::new();
    // Strays on the node: outside the prefixes, or no longer in the bucket.
    std::fs::create_dir_all(node.model("vae")).expect("mkdir");
    std::fs::create_dir_all(node.model("checkpoints")).expect("mkdir");
    std::fs::write(node.model("vae/old.pt"), b"old").expect("write a stray");
    std::fs::write(node.model("checkpoints/stray.bin"), b"stray").expect("write a stray");

    let mut agent = node.start(
        &emulator.endpoint,
        &[("COMFYPLAT_PREFIXES", "checkpoints/ loras/ /")],
    );
    let (_, raw, line) = agent.wait_state(0, "synced");
    assert_status_form(&raw, &line);
    assert_eq!(line["first_sync_done"], true);
    assert_eq!(
        node.tree(),
        [
            "checkpoints/",
            "checkpoints/a.safetensors",
            "checkpoints/both/",
            "checkpoints/both/inner.bin",
            "checkpoints/sub/",
            "checkpoints/sub/b.bin",
            "loras/",
            "loras/c.safetensors",
        ]
        .map(String::from)
        .into(),
        "only the prefixes, no strays, no bad keys\n{}",
        agent.log()
    );
    assert_eq!(line["files"], 4);
    let reported = errors(&line);
    let shown = |key: &str| key.replace('\t', "%09");
    for key in bad {
        assert!(
            reported
                .iter()
                .any(|error| error.starts_with(&format!("skipped key \"{}\"", shown(key)))),
            "{key:?} reported: {reported:#?}"
        );
    }
    assert_eq!(reported.len(), bad.len(), "{reported:#?}");
    assert!(!node.dir.path().join("escape.bin").exists());
    assert!(!node.root().join("escape.bin").exists());
    assert!(!node.dir.path().join("abs.bin").exists());
}
