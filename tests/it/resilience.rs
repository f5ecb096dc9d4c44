//! What goes wrong in real life: a process killed mid-apply, two applies at once, the wrong
//! account, and an API that throttles, fails and drops connections.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Buckets and roles that carry this platform's ownership tag, read straight from moto.
fn owned(reader: &Reader) -> (Vec<String>, Vec<String>) {
    let buckets = reader
        .bucket_names()
        .into_iter()
        .filter(|name| {
            reader
                .block_on(reader.s3.get_bucket_tagging().bucket(name).send())
                .is_ok_and(|t| {
                    t.tag_set()
                        .iter()
                        .any(|tag| tag.key() == "comfyplat:platform")
                })
        })
        .collect();
    let roles = reader
        .block_on(reader.iam.list_roles().send())
        .expect("roles");
    let roles = roles
        .roles()
        .iter()
        .map(|r| r.role_name().to_string())
        .filter(|name| name.starts_with("comfyplat-"))
        .collect();
    (buckets, roles)
}

fn applied_count(workspace: &Workspace) -> usize {
    std::fs::read_to_string(workspace.state_file())
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|state| {
            state["resources"].as_object().map(|resources| {
                resources
                    .values()
                    .filter(|r| r["status"] == "applied")
                    .count()
            })
        })
        .unwrap_or(0)
}

#[test]
fn an_apply_killed_mid_way_is_finished_by_the_next_without_duplicates() {
    let emulator = Emulator::start();
    let slow = Proxy::slow(&emulator.endpoint, 150);
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);

    // Kill it (SIGKILL: no chance to clean up) after 1, then after 3 completed resources.
    for threshold in [1, 3] {
        let mut child = workspace.spawn(&slow.endpoint, &["apply", "--yes", "--parallelism", "2"]);
        let deadline = Instant::now() + Duration::from_secs(120);
        while applied_count(&workspace) < threshold {
            assert!(
                child.try_wait().expect("poll").is_none(),
                "apply finished before it could be killed"
            );
            assert!(Instant::now() < deadline, "apply made no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().expect("kill apply");
        child.wait().expect("reap apply");
        assert!(
            applied_count(&workspace) < 11,
            "killed too late to prove anything"
        );
    }

    let run = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(run.stderr.contains("Complete:"), "{}", run.stderr);
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    let (buckets, roles) = owned(&reader);
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    assert_eq!(roles, vec![CSI_ROLE.to_string()]);
    assert_eq!(applied_count(&workspace), 11);
}

#[test]
fn a_second_apply_stops_at_once_naming_the_holder_of_the_lock() {
    let emulator = Emulator::start();
    let slow = Proxy::slow(&emulator.endpoint, 100);
    let workspace = Workspace::sandbox();
    let mut first = workspace.spawn(&slow.endpoint, &["apply", "--yes"]);
    let lock = workspace.dir.path().join("state/sandbox.lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&lock)
        .map(|t| t.is_empty())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the first apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let started = Instant::now();
    let second = workspace.run(&slow.endpoint, &["apply", "--yes"]).expect(1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the second apply waited instead of stopping"
    );
    let holder = format!(
        "the state is locked by `comfyplat apply` (pid {}",
        first.id()
    );
    assert!(second.stderr.contains(&holder), "{}", second.stderr);
    assert!(second.stderr.contains("hint:"), "{}", second.stderr);

    assert!(
        first.wait().expect("wait").success(),
        "the first apply must finish undisturbed"
    );
    let state = workspace.state();
    assert_eq!(state["resources"].as_object().map(|r| r.len()), Some(11));
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn a_platform_for_another_account_is_refused_before_any_write() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::new(
        &sandbox_yaml().replace("account: \"123456789012\"", "account: \"999999999999\""),
    );
    for args in [
        vec!["apply", "--yes"],
        vec!["plan"],
        vec!["destroy", "--yes"],
    ] {
        let run = workspace.run(&proxy.endpoint, &args).expect(1);
        assert!(
            run.stderr.contains(
                "names account 999999999999, but the credentials belong to account 123456789012"
            ),
            "{}",
            run.stderr
        );
    }
    // The first round of reads (identity, cluster, add-ons) goes out together, so the
    // cluster may have been read; nothing may have been written, and nothing read after
    // the identity came back.
    let requests = proxy.requests();
    let calls: Vec<String> = requests
        .iter()
        .map(|r| format!("{}:{}", r.service, r.action))
        .collect();
    assert!(
        calls.contains(&"sts:GetCallerIdentity".to_string()),
        "{calls:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.action == "GetCallerIdentity" || (r.service == "eks" && r.method == "GET")),
        "only the first round of reads (identity, cluster, add-ons) may run: {calls:?}"
    );
    assert!(proxy.writes().is_empty());
    assert!(!workspace.state_file().exists());
}

#[test]
fn apply_and_destroy_converge_through_throttling_errors_and_dropped_connections() {
    let emulator = Emulator::start();
    let flaky = Proxy::start(
        &emulator.endpoint,
        ProxyOptions {
            fault_rate: 0.2,
            fault_seed: 7,
            fault_modes: Some("before,after,reset".to_string()),
            ..ProxyOptions::default()
        },
    );
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);

    workspace
        .run(&flaky.endpoint, &["apply", "--yes"])
        .expect(0);
    let faults = flaky
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    let total = flaky.requests().len();
    assert!(
        faults * 10 >= total,
        "expected about 20% faults, got {faults} of {total}"
    );
    for mode in ["before", "after", "reset"] {
        assert!(
            flaky
                .requests()
                .iter()
                .any(|r| r.fault.as_deref() == Some(mode)),
            "no `{mode}` fault was injected"
        );
    }
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    let (buckets, roles) = owned(&reader);
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    assert_eq!(roles, vec![CSI_ROLE.to_string()]);

    // Changes and destroy converge too.
    workspace.write(&sandbox_yaml().replace("expire_after_days: 30", "expire_after_days: 3"));
    workspace
        .run(&flaky.endpoint, &["apply", "--yes"])
        .expect(0);
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    workspace
        .run(&flaky.endpoint, &["destroy", "--yes"])
        .expect(0);
    let (buckets, roles) = owned(&reader);
    assert!(
        buckets.is_empty() && roles.is_empty(),
        "{buckets:?} {roles:?}"
    );
    assert_eq!(
        reader.role_policy_names(NODE_ROLE),
        vec![UNOWNED_NODE_POLICY.to_string()]
    );
}

#[test]
fn a_failing_resource_skips_its_dependents_while_independent_branches_complete() {
    let emulator = Emulator::start();
    let denying = Proxy::start(
        &emulator.endpoint,
        ProxyOptions {
            deny: Some("PutBucketLifecycleConfiguration".to_string()),
            ..ProxyOptions::default()
        },
    );
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);

    // Only the outputs bucket has a lifecycle rule, so only it fails; the CSI driver's
    // policy waits for it.
    let run = workspace
        .run(&denying.endpoint, &["apply", "--yes"])
        .expect(1);
    assert!(
        run.stderr
            .contains("failed: s3.bucket.outputs: failed to set the lifecycle rules of S3 bucket"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("AccessDenied"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("skipped: iam.role_policy.s3_csi_driver: waits for s3.bucket.outputs"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Incomplete: 8 done, 1 failed, 2 skipped."),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: 1 change(s) failed"),
        "{}",
        run.stderr
    );
    assert!(reader.role_policy_names(NODE_ROLE) == vec![UNOWNED_NODE_POLICY.to_string()]);

    // State records what completed, and the half-made bucket as being created.
    let listed = workspace
        .run(&emulator.endpoint, &["state", "list"])
        .expect(0)
        .stdout;
    assert_eq!(listed.lines().count(), 9, "{listed}");
    assert!(listed.contains("s3.bucket.outputs\tS3 bucket\tcomfyui-outputs-123456789012-us-west-2 (us-west-2)\tcreating"), "{listed}");
    assert!(
        !listed.contains("iam.role_policy.s3_csi_driver"),
        "{listed}"
    );
    let shown: serde_json::Value = serde_json::from_str(
        &workspace
            .run(&emulator.endpoint, &["state", "show", "s3.bucket.models"])
            .expect(0)
            .stdout,
    )
    .expect("state show prints JSON");
    assert_eq!(shown["status"], "applied");
    assert_eq!(shown["fields"]["versioning"], "Enabled");
    let missing = workspace
        .run(&emulator.endpoint, &["state", "show", "s3.bucket.model"])
        .expect(1);
    assert!(
        missing.stderr.contains("did you mean `s3.bucket.models`?"),
        "{}",
        missing.stderr
    );

    // Once the cause is gone, the next apply finishes the job.
    let run = workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(
        run.stdout
            .contains("Plan: 2 to add, 1 to change, 0 to destroy."),
        "{}",
        run.stdout
    );
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    assert_eq!(owned(&reader).0.len(), 3);
}

#[test]
fn missing_credentials_and_an_unreachable_endpoint_are_explained() {
    let workspace = Workspace::sandbox();
    let mut command = workspace.command("http://127.0.0.1:9", &["plan"]);
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let run = Run::from(command.output().expect("run comfyplat")).expect(1);
    assert!(
        run.stderr
            .contains("no providers in chain provided credentials"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: configure AWS credentials"),
        "{}",
        run.stderr
    );

    let mut command = workspace.command("http://127.0.0.1:9", &["plan"]);
    command.env("AWS_MAX_ATTEMPTS", "1");
    let run = Run::from(command.output().expect("run comfyplat")).expect(1);
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hint: the endpoint could not be reached or did not answer in time: check the network, and AWS_ENDPOINT_URL"),
        "{}",
        run.stderr
    );
}

#[test]
fn apply_converges_through_kubernetes_api_throttling_errors_conflicts_and_resets() {
    let emulator = Emulator::start();
    let flaky = Proxy::kubernetes(
        &emulator,
        ProxyOptions {
            fault_rate: 0.2,
            fault_seed: 11,
            fault_modes: Some("429,429-status,500,409,503,reset,500-after,reset-after".to_string()),
            ..ProxyOptions::default()
        },
    );
    let workspace = Workspace::new(&flaky.in_front_of_kubernetes(&full_sandbox_yaml()));
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let faults: Vec<String> = flaky
        .requests()
        .into_iter()
        .filter_map(|r| r.fault)
        .collect();
    assert!(
        faults.len() >= 5,
        "too few faults to mean anything: {faults:?}"
    );
    let quiet = workspace.run(&emulator.endpoint, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);
    workspace
        .run(&emulator.endpoint, &["destroy", "--yes"])
        .expect(0);
    let left = emulator.kubectl_ok(&[
        "get",
        "namespaces,nodepools.karpenter.sh,persistentvolumes",
        "-l",
        "comfyplat.io/platform=sandbox",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "{left}");
}

#[test]
fn an_apply_killed_during_the_kubernetes_part_is_finished_by_the_next() {
    let emulator = Emulator::start();
    let call = "PATCH /apis/apps/v1/namespaces/comfyui/deployments/comfyui";
    let hanging = Proxy::kubernetes(
        &emulator,
        ProxyOptions {
            hang_after: Some(call.to_string()),
            ..ProxyOptions::default()
        },
    );
    let workspace = Workspace::new(&hanging.in_front_of_kubernetes(&full_sandbox_yaml()));
    let mut child = workspace.spawn(&emulator.endpoint, &["apply", "--yes"]);
    hanging.kill_once_hung(&mut child, call);
    // The Deployment's create reached the server; state knows it was being created.
    let state = workspace.state();
    assert_eq!(
        state["resources"]["k8s.apps/v1.Deployment.comfyui/comfyui"]["status"],
        "creating"
    );

    let direct = Proxy::kubernetes(&emulator, ProxyOptions::default());
    workspace.write(&direct.in_front_of_kubernetes(&full_sandbox_yaml()));
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let quiet = workspace.run(&emulator.endpoint, &["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);
    let deployments = emulator.kubectl_json(&["get", "deployments", "-A"]);
    let ours: Vec<&Value> = deployments["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["metadata"]["namespace"] == "comfyui")
        .collect();
    assert_eq!(ours.len(), 1);
}
