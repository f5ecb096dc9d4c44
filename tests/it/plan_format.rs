//! The plan's public JSON format (validated against `schemas/plan.schema.json` with the
//! `jsonschema` package, a validator we did not write), the internal saved-plan format
//! refused by other versions, private state, lock and plan files, and waits bounded by
//! `--wait-timeout`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Validates `document` against the plan schema; returns the validator's complaints.
fn schema_errors(document: &Value) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_file(dir.path(), "plan.json", document.to_string().as_bytes());
    let output = std::process::Command::new(python())
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             validator = jsonschema.Draft202012Validator(schema)\n\
             for error in validator.iter_errors(json.load(open(sys.argv[2]))):\n\
             \x20   print(list(error.absolute_path), error.message)\n",
        ])
        .arg(repo_root().join("schemas/plan.schema.json"))
        .arg(&path)
        .output()
        .expect("run jsonschema");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn plan_json(workspace: &Workspace, endpoint: &str, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "--json"];
    args.extend(extra);
    let run = workspace.run(endpoint, &args);
    assert!(run.code == 0 || run.code == 2, "{}", run.stderr);
    serde_json::from_str(&run.stdout).expect("plan JSON")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn real_plans_follow_the_published_schema_and_saved_plans_stay_with_their_version() {
    let emulator = Emulator::start();
    let workspace = Workspace::new(&full_sandbox_yaml());
    let mut plans = Vec::new();

    // Creating everything: values known after apply and secrets are marked, never shown.
    let create = plan_json(&workspace, &emulator.endpoint, &[]);
    assert_eq!(create["format_version"], "1.0");
    let distribution = create["resource_changes"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["kind"] == "cloudfront_distribution")
                .cloned()
        })
        .expect("the distribution");
    assert_eq!(distribution["actions"], serde_json::json!(["create"]));
    assert_eq!(distribution["after_unknown"]["origin.domain_name"], true);
    assert_eq!(
        distribution["after_sensitive"]["origin.headers.X-Origin-Verify"],
        true
    );
    assert!(distribution["after"].get("origin.domain_name").is_none());
    assert!(!create.to_string().contains("((secret:"));
    plans.push(create);

    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let state_dir = workspace.dir.path().join("state");
    assert_eq!(mode(&workspace.state_file()), 0o600);
    assert_eq!(mode(&state_dir.join("sandbox.lock")), 0o600);
    assert_eq!(mode(&state_dir), 0o700);

    // An update, a replacement, drift, a destroy.
    workspace.write(&full_sandbox_yaml().replace("PriceClass_100", "PriceClass_200"));
    plans.push(plan_json(&workspace, &emulator.endpoint, &[]));
    workspace.write(&full_sandbox_yaml().replace(
        "  outputs:\n    expire_after_days: 30\n",
        "  outputs:\n    name: studio-outputs-{account}-{region}\n    expire_after_days: 30\n",
    ));
    let replace = plan_json(&workspace, &emulator.endpoint, &[]);
    assert!(
        replace["resource_changes"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["replace_paths"].as_array().is_some_and(|p| !p.is_empty()))),
        "{replace:#}"
    );
    plans.push(replace);
    workspace.write(&full_sandbox_yaml());
    emulator.kubectl_ok(&[
        "-n",
        "comfyui",
        "scale",
        "deployment",
        "comfyui",
        "--replicas=2",
    ]);
    let drift = plan_json(&workspace, &emulator.endpoint, &[]);
    assert_eq!(
        drift["resource_drift"][0]["address"],
        "k8s.apps/v1.Deployment.comfyui/comfyui"
    );
    plans.push(drift);
    plans.push(plan_json(&workspace, &emulator.endpoint, &["--destroy"]));
    for plan in &plans {
        let errors = schema_errors(plan);
        assert!(errors.is_empty(), "{errors:#?}\n{plan:#}");
    }
    // The check can fail: a plan with an unknown action does not validate.
    let mut broken = plans[1].clone();
    broken["resource_changes"][0]["actions"] = serde_json::json!(["explode"]);
    assert!(!schema_errors(&broken).is_empty());

    // A saved plan is private, and only the comfyplat that wrote it applies it.
    let saved = workspace.dir.path().join("saved.plan");
    workspace
        .run(
            &emulator.endpoint,
            &["plan", "--out", saved.to_str().expect("path")],
        )
        .expect(0);
    assert_eq!(mode(&saved), 0o600);
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).expect("read")).expect("JSON");
    file["comfyplat_version"] = Value::String("0.0.1".to_string());
    std::fs::write(&saved, file.to_string()).expect("write");
    let refused = workspace
        .run(
            &emulator.endpoint,
            &["apply", saved.to_str().expect("path")],
        )
        .expect(1);
    assert!(
        refused.stderr.contains(&format!(
            "was saved by comfyplat 0.0.1; this is comfyplat {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("plan again with this one"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_wait_that_runs_out_of_time_fails_once_and_the_next_run_waits_again() {
    // CloudFront never finishes deploying in this emulator.
    let emulator =
        Emulator::start_with(&[("COMFYPLAT_EMULATOR_CLOUDFRONT_DEPLOY_READS", "1000000")]);
    let workspace = Workspace::new(&full_sandbox_yaml());
    let started = Instant::now();
    let run = workspace.run(
        &emulator.endpoint,
        &["apply", "--yes", "--wait-timeout", "4s"],
    );
    let elapsed = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.stderr);
    let gave_up = run
        .stderr
        .matches("gave up waiting for CloudFront distribution")
        .count();
    // One failure line and its summary line; no retry of the wait.
    assert!(gave_up >= 1, "{}", run.stderr);
    assert!(!run.stderr.contains("retry"), "{}", run.stderr);
    assert!(
        elapsed < Duration::from_secs(120),
        "the wait is bounded: {elapsed:?}"
    );
    let state = workspace.state();
    let entry = &state["resources"]["cloudfront.distribution.comfyui"];
    assert_eq!(entry["pending"]["goal"], "ready", "{entry:#}");
    let plan = workspace.run(&emulator.endpoint, &["plan"]).expect(0);
    assert!(plan.stdout.contains("in progress"), "{}", plan.stdout);
}
