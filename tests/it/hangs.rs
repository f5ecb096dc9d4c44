//! Nothing waits forever: endpoints that never answer, calls that hang after their change
//! was made, and an apply killed while EKS was still creating an add-on.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::*;

/// The documented bound of one AWS call (retries and backoff included), with room for the
/// process to start and report.
const CALL_BOUND: Duration = Duration::from_secs(50 + 15);

#[test]
fn plan_against_an_endpoint_that_never_answers_fails_within_a_minute_naming_the_call() {
    // Accepts every connection and never answers a byte.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let held = std::thread::spawn(move || {
        let mut connections = Vec::new();
        for stream in listener.incoming().take(64) {
            connections.push(stream);
        }
        connections.len()
    });
    let workspace = Workspace::sandbox();
    let started = Instant::now();
    let run = workspace.run(&endpoint, &["plan"]).expect(1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "plan took {took:?}");
    assert!(run.stderr.contains("timeout"), "{}", run.stderr);
    assert!(
        run.stderr.contains("(STS GetCallerIdentity)") || run.stderr.contains("EKS cluster"),
        "the error names the call: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("waiting: STS GetCallerIdentity: no good answer yet after"),
        "progress while it waits: {}",
        run.stderr
    );
    drop(held);
}

#[test]
fn a_hung_distribution_create_fails_within_the_bound_naming_the_call() {
    let emulator = Emulator::start();
    let call = "POST /2020-05-31/distribution";
    let hanging = Proxy::start(
        &emulator.endpoint,
        ProxyOptions {
            hang_after: Some(call.to_string()),
            ..ProxyOptions::default()
        },
    );
    let workspace = Workspace::new(&full_sandbox_yaml());
    let started = Instant::now();
    let run = workspace
        .run(&hanging.endpoint, &["apply", "--yes"])
        .expect(1);
    let took = started.elapsed();
    assert!(
        run.stderr.contains("CloudFront distribution"),
        "the error names the call: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("waiting: CloudFront CreateDistribution")
            && run.stderr.contains("attempt 2 of 8"),
        "progress says which call is waiting and for how long: {}",
        run.stderr
    );
    let hung = hanging
        .requests()
        .iter()
        .filter(|r| r.action == call)
        .count();
    assert!(
        (1..=8).contains(&hung),
        "a bounded number of attempts: {hung}"
    );
    // Everything before the distribution took a few seconds; the hung call at most its bound.
    assert!(
        took < CALL_BOUND + Duration::from_secs(60),
        "apply took {took:?}"
    );
    // The distribution was made upstream: the next apply finds it instead of a second one.
    workspace
        .run(&emulator.endpoint, &["apply", "--yes", "--quiet"])
        .expect(0);
    assert_eq!(distributions(&emulator.endpoint).len(), 1);
}

#[test]
fn an_apply_killed_while_the_csi_addon_is_creating_is_resumed() {
    let emulator = Emulator::start();
    let call = "POST /clusters/comfyui-sandbox/addons";
    let hanging = Proxy::start(
        &emulator.endpoint,
        ProxyOptions {
            hang_after: Some(call.to_string()),
            ..ProxyOptions::default()
        },
    );
    let workspace = Workspace::new(&full_sandbox_yaml());
    // The first add-on (the Pod Identity agent), then the CSI driver: each create reaches
    // EKS and the apply is killed before it sees the answer.
    for created in 1..=2 {
        let mut child = workspace.spawn(&hanging.endpoint, &["apply", "--yes"]);
        hanging.kill_when_hung(&mut child, call, created);
    }
    let addon = aws_cli(
        &emulator.endpoint,
        &[
            "eks",
            "describe-addon",
            "--cluster-name",
            CLUSTER,
            "--addon-name",
            "aws-mountpoint-s3-csi-driver",
        ],
    );
    assert_eq!(addon["addon"]["status"], "CREATING", "{addon}");
    // The next apply waits for it instead of failing on its missing CSIDriver.
    let run = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(!run.stderr.contains("not found although"), "{}", run.stderr);
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}
