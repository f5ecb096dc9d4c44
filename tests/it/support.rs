//! Test harness: real emulators on 127.0.0.1, the real comfyplat binary, and the real AWS SDK
//! to read back what it did.
//!
//! - [`Emulator`]: moto in server mode (with the project's fidelity patches), seeded with the
//!   sandbox world (EKS cluster, Karpenter node role with an unowned inline policy, an unowned
//!   bucket). One per test, stopped on drop.
//! - [`Proxy`]: the recording / fault-injecting proxy between comfyplat and moto; its log tells
//!   how many API calls and how many writes comfyplat made.
//! - [`Workspace`]: a temporary directory with a platform file and its state.
//! - [`Reader`]: AWS SDK clients pointed straight at moto, for read-backs and out-of-band edits.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-west-2";
pub const NODE_ROLE: &str = "KarpenterNodeRole-comfyui-sandbox";
pub const UNOWNED_BUCKET: &str = "platform-team-datasets-123456789012";
pub const UNOWNED_NODE_POLICY: &str = "platform-team-existing";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the project's virtualenv (installed on first use).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let output = Command::new(repo_root().join("scripts/sandbox"))
                .arg("python")
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/sandbox python");
            assert!(output.status.success(), "scripts/sandbox python failed");
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

fn wait_for_ready(file: &Path, child: &mut Child, what: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
        {
            return value;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not become ready in 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(child: &mut Child) {
    // SIGTERM lets the Python servers shut down cleanly; then make sure.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub struct Emulator {
    child: Child,
    pub endpoint: String,
    /// The seeded cluster's Kubernetes API: endpoint, ca_file, kubeconfig.
    pub kube: serde_json::Value,
    _dir: tempfile::TempDir,
}

impl Emulator {
    pub fn start() -> Emulator {
        Emulator::start_with(&[])
    }

    /// An emulator with extra environment (e.g. `COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS`).
    pub fn start_with(env: &[(&str, &str)]) -> Emulator {
        Emulator::launch("sandbox", env)
    }

    /// An emulator without the sandbox world (no cluster, no Kubernetes API: `kube` is null),
    /// for tests that need S3 only; it starts in about a second instead of several.
    pub fn unseeded() -> Emulator {
        Emulator::launch("none", &[])
    }

    fn launch(seed: &str, env: &[(&str, &str)]) -> Emulator {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ready = dir.path().join("aws.json");
        let log = std::fs::File::create(dir.path().join("aws.log")).expect("log file");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/emulators/aws_emulator.py"))
            .args([
                "--port",
                "0",
                "--seed",
                seed,
                "--region",
                REGION,
                "--ready-file",
            ])
            .arg(&ready)
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start the AWS emulator");
        let info = wait_for_ready(&ready, &mut child, "the AWS emulator");
        let endpoint = info["endpoint"].as_str().expect("endpoint").to_string();
        Emulator {
            child,
            endpoint,
            kube: info["kube"].clone(),
            _dir: dir,
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    pub fault_rate: f64,
    pub fault_seed: u64,
    pub fault_modes: Option<String>,
    pub delay_ms: u64,
    /// Actions always answered with AccessDenied, e.g. `PutBucketPolicy`.
    pub deny: Option<String>,
    /// Actions forwarded and then never answered (the caller hangs), e.g.
    /// `POST /2020-05-31/distribution`.
    pub hang_after: Option<String>,
    /// Only requests to these services (signing names, comma-separated, e.g. `cloudfront`)
    /// can be faulted.
    pub fault_services: Option<String>,
    /// Only requests whose action matches one of these patterns can be faulted.
    pub fault_match: Option<String>,
    /// Only writes can be faulted.
    pub fault_writes: bool,
    /// At most this many faults in all.
    pub fault_limit: Option<u32>,
    /// Stand in front of this Kubernetes API (the emulator's `kube` info) instead of AWS:
    /// the proxy terminates TLS and writes a kubeconfig pointing at itself.
    pub kubernetes: Option<serde_json::Value>,
}

/// One logged request.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// AWS: the raw query string; Kubernetes: `{name: value}`.
    #[serde(default)]
    pub query: serde_json::Value,
    pub service: String,
    pub action: String,
    pub write: bool,
    pub status: u16,
    pub fault: Option<String>,
    /// What the emulator answered; `None` when the request was not forwarded.
    #[serde(default)]
    pub upstream_status: Option<u16>,
    /// When the proxy read the request and when it answered (seconds since the epoch).
    pub ts: f64,
    #[serde(default)]
    pub end: f64,
}

pub struct Proxy {
    child: Child,
    pub endpoint: String,
    pub log: PathBuf,
    /// In front of a Kubernetes API: a kubeconfig for it.
    pub kubeconfig: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy in front of the emulator's Kubernetes API.
    pub fn kubernetes(emulator: &Emulator, options: ProxyOptions) -> Proxy {
        let endpoint = emulator.kube["endpoint"]
            .as_str()
            .expect("kube endpoint")
            .to_string();
        Proxy::start(
            &endpoint,
            ProxyOptions {
                kubernetes: Some(emulator.kube.clone()),
                ..options
            },
        )
    }

    /// `platform_yaml` reaching the Kubernetes API through this proxy.
    pub fn in_front_of_kubernetes(&self, platform_yaml: &str) -> String {
        let kubeconfig = self.kubeconfig.as_ref().expect("a Kubernetes proxy");
        format!(
            "{platform_yaml}\nkubernetes:\n  kubeconfig: {}\n  allow_other_endpoint: true\n",
            kubeconfig.display()
        )
    }

    pub fn start(upstream: &str, options: ProxyOptions) -> Proxy {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ready = dir.path().join("proxy.json");
        let log = dir.path().join("requests.jsonl");
        let output = std::fs::File::create(dir.path().join("proxy.log")).expect("log file");
        let mut command = Command::new(python());
        command
            .arg(repo_root().join("tests/emulators/recording_proxy.py"))
            .args(["--upstream", upstream, "--port", "0", "--ready-file"])
            .arg(&ready)
            .arg("--log")
            .arg(&log)
            .args(["--fault-rate", &options.fault_rate.to_string()])
            .args(["--fault-seed", &options.fault_seed.to_string()])
            .args(["--delay-ms", &options.delay_ms.to_string()]);
        if let Some(modes) = &options.fault_modes {
            command.args(["--fault-modes", modes]);
        }
        if let Some(deny) = &options.deny {
            command.args(["--deny", deny]);
        }
        if let Some(hang) = &options.hang_after {
            command.args(["--hang-after", hang]);
        }
        if let Some(services) = &options.fault_services {
            command.args(["--fault-services", services]);
        }
        if let Some(patterns) = &options.fault_match {
            command.args(["--fault-match", patterns]);
        }
        if options.fault_writes {
            command.arg("--fault-writes");
        }
        if let Some(limit) = options.fault_limit {
            command.args(["--fault-limit", &limit.to_string()]);
        }
        if let Some(kube) = &options.kubernetes {
            let text = |key: &str| kube[key].as_str().expect("kube info").to_string();
            command
                .arg("--kubernetes")
                .args(["--upstream-ca", &text("ca_file")])
                .args(["--kubeconfig-from", &text("kubeconfig")]);
        }
        let mut child = command
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .spawn()
            .expect("start the proxy");
        let info = wait_for_ready(&ready, &mut child, "the recording proxy");
        let endpoint = info["endpoint"].as_str().expect("endpoint").to_string();
        let kubeconfig = options
            .kubernetes
            .as_ref()
            .map(|_| static_kubeconfig(dir.path(), &endpoint, &info));
        Proxy {
            child,
            endpoint,
            log,
            kubeconfig,
            _dir: dir,
        }
    }

    /// Waits until the proxy forwarded `call` and holds back its answer, then kills
    /// `child`: a process killed right after a call whose response it never saw.
    pub fn kill_once_hung(&self, child: &mut Child, call: &str) {
        self.kill_when_hung(child, call, 1);
    }

    /// [`Proxy::kill_once_hung`] once `count` calls `call` hang (counted over the log).
    pub fn kill_when_hung(&self, child: &mut Child, call: &str, count: usize) {
        let started = Instant::now();
        while self
            .requests()
            .iter()
            .filter(|r| r.action == call && r.fault.as_deref() == Some("hang"))
            .count()
            < count
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("comfyplat ended ({status}) before `{call}` number {count}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "`{call}` never came"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().expect("kill comfyplat");
        let _ = child.wait();
    }

    /// A proxy that delays every request by `delay_ms`, to make an apply slow enough to
    /// interrupt or to overlap with another.
    pub fn slow(upstream: &str, delay_ms: u64) -> Proxy {
        Proxy::start(
            upstream,
            ProxyOptions {
                delay_ms,
                ..ProxyOptions::default()
            },
        )
    }

    /// Every request logged so far.
    pub fn requests(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("log line"))
            .collect()
    }

    pub fn writes(&self) -> Vec<Logged> {
        self.requests().into_iter().filter(|r| r.write).collect()
    }

    /// How many rounds of requests ran one after another among those logged: the most
    /// requests of which each started after the one before had been answered (with a delay
    /// on every request, requests of one round overlap, and independent ones do not chain).
    pub fn rounds(&self) -> usize {
        self.round_chain().len()
    }

    /// The requests of [`Proxy::rounds`], one per round, in order.
    pub fn round_chain(&self) -> Vec<Logged> {
        let mut requests = self.requests();
        requests.sort_by(|a, b| a.end.total_cmp(&b.end));
        let mut chain: Vec<Logged> = Vec::new();
        for request in requests {
            if chain.last().is_none_or(|last| request.ts >= last.end) {
                chain.push(request);
            }
        }
        chain
    }

    /// Forgets the requests logged so far.
    pub fn clear(&self) {
        std::fs::write(&self.log, "").expect("clear the proxy log");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A directory with a platform file; state goes to `state/` inside it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
}

impl Workspace {
    pub fn new(platform_yaml: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("platform.yaml");
        std::fs::write(&file, platform_yaml).expect("write platform.yaml");
        Workspace { dir, file }
    }

    /// The sandbox example platform.
    pub fn sandbox() -> Workspace {
        Workspace::new(&sandbox_yaml())
    }

    pub fn write(&self, platform_yaml: &str) {
        std::fs::write(&self.file, platform_yaml).expect("write platform.yaml");
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/sandbox.json")
    }

    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_file()).expect("read state");
        serde_json::from_str(&text).expect("state is JSON")
    }

    /// A command for the comfyplat binary on this workspace, talking to `endpoint`.
    pub fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_comfyplat"));
        command
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    /// Starts comfyplat in the background, its output discarded (to kill or race it).
    pub fn spawn(&self, endpoint: &str, args: &[&str]) -> Child {
        self.command(endpoint, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start comfyplat")
    }

    /// Runs comfyplat to the end.
    pub fn run(&self, endpoint: &str, args: &[&str]) -> Run {
        let output = self
            .command(endpoint, args)
            .output()
            .expect("run comfyplat");
        Run::from(output)
    }
}

/// The sandbox example without its `comfyui:` section: the AWS side only.
pub fn sandbox_yaml() -> String {
    let full = full_sandbox_yaml();
    match full.find("\n# The ComfyUI workload") {
        Some(at) => full[..at + 1].to_string(),
        None => full,
    }
}

/// The whole sandbox example, Kubernetes workload included.
pub fn full_sandbox_yaml() -> String {
    std::fs::read_to_string(repo_root().join("examples/sandbox.yaml"))
        .expect("examples/sandbox.yaml")
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// AWS SDK clients pointed straight at the emulator (not through the proxy).
pub struct Reader {
    pub runtime: tokio::runtime::Runtime,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub eks: aws_sdk_eks::Client,
}

impl Reader {
    pub fn new(endpoint: &str) -> Reader {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(aws_config::Region::new(REGION))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "testing", "testing", None, None, "tests",
                ))
                .load(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        Reader {
            runtime,
            s3,
            iam: aws_sdk_iam::Client::new(&config),
            eks: aws_sdk_eks::Client::new(&config),
        }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn bucket_exists(&self, name: &str) -> bool {
        self.block_on(self.s3.head_bucket().bucket(name).send())
            .is_ok()
    }

    pub fn bucket_names(&self) -> Vec<String> {
        let output = self
            .block_on(self.s3.list_buckets().send())
            .expect("list buckets");
        output
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect()
    }

    pub fn put_object(&self, bucket: &str, key: &str) {
        self.block_on(
            self.s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"pixels"))
                .send(),
        )
        .expect("put object");
    }

    pub fn role_policy_names(&self, role: &str) -> Vec<String> {
        let output = self
            .block_on(self.iam.list_role_policies().role_name(role).send())
            .expect("list role policies");
        output.policy_names().to_vec()
    }

    pub fn role_exists(&self, role: &str) -> bool {
        self.block_on(self.iam.get_role().role_name(role).send())
            .is_ok()
    }

    /// A role's inline policy document, decoded.
    pub fn role_policy(&self, role: &str, policy: &str) -> serde_json::Value {
        let output = self
            .block_on(
                self.iam
                    .get_role_policy()
                    .role_name(role)
                    .policy_name(policy)
                    .send(),
            )
            .expect("get role policy");
        let decoded = percent_encoding::percent_decode_str(output.policy_document())
            .decode_utf8()
            .expect("utf-8")
            .into_owned();
        serde_json::from_str(&decoded).expect("policy JSON")
    }
}

/// Bucket names of the sandbox platform.
pub fn bucket(purpose: &str) -> String {
    format!("comfyui-{purpose}-{ACCOUNT}-{REGION}")
}

pub const CSI_ROLE: &str = "comfyplat-sandbox-s3-csi";
pub const CSI_POLICY: &str = "comfyplat-s3-access";

/// Writes `text` to a file and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("create file");
    file.write_all(text).expect("write file");
    path
}

pub const CLUSTER: &str = "comfyui-sandbox";

/// Runs the pinned `aws` CLI of the emulator's virtualenv (an independent client) against
/// `endpoint` and parses its JSON output.
pub fn aws_cli(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let aws = python().with_file_name("aws");
    let output = Command::new(&aws)
        .args(args)
        .args(["--output", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .output()
        .expect("run the aws CLI");
    assert!(
        output.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        // Nothing to show (e.g. an empty list the CLI leaves out).
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&output.stdout).expect("the aws CLI prints JSON")
}

/// Every distribution the emulator holds, as `list-distributions` summaries (aws CLI).
pub fn distributions(endpoint: &str) -> Vec<serde_json::Value> {
    let list = aws_cli(endpoint, &["cloudfront", "list-distributions"]);
    list["DistributionList"]["Items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// ARN of a role in the emulator's account.
pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

impl Emulator {
    /// Runs kubectl against the seeded cluster with the emulator's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let kubeconfig = self.kube["kubeconfig"].as_str().expect("kubeconfig");
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// kubectl that must succeed; its stdout parsed as JSON when `-o json` is asked.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn kubectl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all)).expect("kubectl JSON")
    }

    /// Every object of a kind comfyplat makes that carries the sandbox platform's label, as
    /// `kind/name` (kubectl).
    pub fn labelled_objects(&self) -> Vec<String> {
        self.kubectl_ok(&[
            "get",
            "namespaces,serviceaccounts,configmaps,daemonsets,deployments,services,ingresses,persistentvolumes,persistentvolumeclaims,nodepools,ec2nodeclasses",
            "-A",
            "-l",
            "comfyplat.io/platform=sandbox",
            "-o",
            "name",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// The Kubernetes API requests since the last reset, from the test server's log.
    pub fn kube_requests(&self) -> Vec<serde_json::Value> {
        let endpoint = self.kube["endpoint"].as_str().expect("kube endpoint");
        let ca = self.kube["ca_file"].as_str().expect("ca_file");
        let output = Command::new("curl")
            .args(["-sS", "--fail", "--cacert", ca])
            .arg(format!("{endpoint}/__control/requests"))
            .output()
            .expect("run curl");
        assert!(
            output.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("requests JSON")
    }

    /// A call to the Kubernetes test server's `/__control` API (nodes, pod logs and
    /// readiness: what a test plays of the cluster's nodes), its answer as JSON.
    pub fn kube_control(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let endpoint = self.kube["endpoint"].as_str().expect("kube endpoint");
        let ca = self.kube["ca_file"].as_str().expect("ca_file");
        let output = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert", ca, "-X", method])
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string())
            .arg(format!("{endpoint}/__control/{path}"))
            .output()
            .expect("run curl");
        assert!(
            output.status.success(),
            "{method} /__control/{path}: {} {}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        serde_json::from_slice(&output.stdout).expect("control answer JSON")
    }

    /// Kubernetes write requests (dry runs excluded) since the last reset.
    pub fn kube_writes(&self) -> Vec<String> {
        self.kube_requests()
            .into_iter()
            .filter(|r| r["write"] == true && r["dryRun"] != true)
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

/// A kubeconfig for the Kubernetes proxy at `endpoint` with a fixed bearer token of the EKS
/// form: the test server checks a token's form, not its signature, so no exec plugin has to
/// run (and cost a second) on every comfyplat run.
fn static_kubeconfig(dir: &Path, endpoint: &str, ready: &serde_json::Value) -> PathBuf {
    use base64::Engine;
    let url = format!(
        "https://sts.{REGION}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15\
         &X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261126%2F{REGION}%2Fsts%2Faws4_request\
         &X-Amz-Date=20261126T000000Z&X-Amz-Expires=60\
         &X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=00"
    );
    let token = format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    );
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": {
            "server": endpoint,
            "certificate-authority-data": ready["ca_data"],
        }}],
        "users": [{"name": "tester", "user": {"token": token}}],
        "contexts": [{"name": CLUSTER, "context": {"cluster": CLUSTER, "user": "tester"}}],
        "current-context": CLUSTER,
    });
    write_file(dir, "kubeconfig.json", config.to_string().as_bytes())
}

/// The fields a `plan --json` resource change changes, in path order: `[{"path", "before",
/// "after"}]` for every path whose value differs between its `before` and `after` maps
/// (`null` where a map has none).
pub fn changed_fields(change: &serde_json::Value) -> serde_json::Value {
    let empty = serde_json::Map::new();
    let before = change["before"].as_object().unwrap_or(&empty);
    let after = change["after"].as_object().unwrap_or(&empty);
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    serde_json::Value::Array(
        paths
            .into_iter()
            .filter(|path| before.get(*path) != after.get(*path))
            .map(|path| {
                serde_json::json!({
                    "path": path,
                    "before": before.get(path).cloned().unwrap_or(serde_json::Value::Null),
                    "after": after.get(path).cloned().unwrap_or(serde_json::Value::Null),
                })
            })
            .collect(),
    )
}
