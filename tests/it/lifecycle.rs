//! The core lifecycle against the AWS emulator, through the recording proxy: apply on a
//! fresh sandbox, the empty re-plan and the write-free re-apply, a precise update, drift
//! repair, removal of a bucket that holds data, saved and stale plans, and destroy.

use crate::support::*;
use serde_json::{Value, json};

fn apply(workspace: &Workspace, endpoint: &str) -> Run {
    workspace.run(endpoint, &["apply", "--yes"]).expect(0)
}

fn plan_json(workspace: &Workspace, endpoint: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let run = workspace.run(endpoint, &args);
    let value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("plan --json is JSON ({e}):\n{}\n{}", run.stdout, run.stderr));
    (run.code, value)
}

fn statements(document: &Value) -> Vec<Value> {
    match &document["Statement"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[test]
fn fresh_apply_creates_everything_then_plan_is_empty_and_reapply_writes_nothing() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);

    let run = apply(&workspace, &proxy.endpoint);
    assert!(
        run.stdout
            .contains("Plan: 10 to add, 1 to change, 0 to destroy."),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("Complete: 11 done."), "{}", run.stderr);

    // Every setting, read back through the S3 API.
    for purpose in ["models", "outputs", "inputs"] {
        let name = bucket(purpose);
        let location = reader
            .block_on(reader.s3.get_bucket_location().bucket(&name).send())
            .expect("location");
        assert_eq!(
            location.location_constraint().map(|l| l.as_str()),
            Some(REGION)
        );
        let block = reader
            .block_on(reader.s3.get_public_access_block().bucket(&name).send())
            .expect("public access block");
        let block = block
            .public_access_block_configuration()
            .expect("configuration");
        assert_eq!(
            (
                block.block_public_acls(),
                block.ignore_public_acls(),
                block.block_public_policy(),
                block.restrict_public_buckets()
            ),
            (Some(true), Some(true), Some(true), Some(true)),
            "{name}"
        );
        let encryption = reader
            .block_on(reader.s3.get_bucket_encryption().bucket(&name).send())
            .expect("encryption");
        let rule = &encryption
            .server_side_encryption_configuration()
            .expect("configuration")
            .rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .expect("default")
                .sse_algorithm()
                .as_str(),
            "AES256"
        );
        let policy = reader
            .block_on(reader.s3.get_bucket_policy().bucket(&name).send())
            .expect("policy");
        let policy: Value =
            serde_json::from_str(policy.policy().expect("policy text")).expect("policy JSON");
        let deny = &statements(&policy)[0];
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(
            as_list(&deny["Condition"]["Bool"]["aws:SecureTransport"]),
            vec!["false"]
        );
        assert_eq!(
            as_list(&deny["Resource"]),
            vec![
                format!("arn:aws:s3:::{name}"),
                format!("arn:aws:s3:::{name}/*")
            ]
        );
        let tags = reader
            .block_on(reader.s3.get_bucket_tagging().bucket(&name).send())
            .expect("tags");
        let tags: Vec<(String, String)> = tags
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        for expected in [
            ("comfyplat:platform", "sandbox"),
            ("team", "art"),
            ("cost-center", "sd-platform"),
        ] {
            assert!(
                tags.contains(&(expected.0.to_string(), expected.1.to_string())),
                "{name}: {tags:?}"
            );
        }
        let versioning = reader
            .block_on(reader.s3.get_bucket_versioning().bucket(&name).send())
            .expect("versioning");
        assert_eq!(
            versioning.status().map(|s| s.as_str()),
            (purpose == "models").then_some("Enabled"),
            "{name}"
        );
    }
    let lifecycle = reader
        .block_on(
            reader
                .s3
                .get_bucket_lifecycle_configuration()
                .bucket(bucket("outputs"))
                .send(),
        )
        .expect("lifecycle");
    assert_eq!(lifecycle.rules().len(), 1);
    assert_eq!(
        lifecycle.rules()[0].expiration().and_then(|e| e.days()),
        Some(30)
    );
    for purpose in ["models", "inputs"] {
        assert!(
            reader
                .block_on(
                    reader
                        .s3
                        .get_bucket_lifecycle_configuration()
                        .bucket(bucket(purpose))
                        .send()
                )
                .is_err()
        );
    }

    // IAM: the CSI driver role, its policy scoped to outputs + inputs, the node role's policy.
    let role = reader
        .block_on(reader.iam.get_role().role_name(CSI_ROLE).send())
        .expect("role");
    let trust = percent_encoding::percent_decode_str(
        role.role()
            .expect("role")
            .assume_role_policy_document()
            .unwrap_or_default(),
    )
    .decode_utf8()
    .expect("utf-8");
    let trust: Value = serde_json::from_str(&trust).expect("trust JSON");
    let trust = &statements(&trust)[0];
    assert_eq!(
        as_list(&trust["Principal"]["Service"]),
        vec!["pods.eks.amazonaws.com"]
    );
    let mut actions = as_list(&trust["Action"]);
    actions.sort();
    assert_eq!(actions, vec!["sts:AssumeRole", "sts:TagSession"]);
    let role_tags = reader
        .block_on(reader.iam.list_role_tags().role_name(CSI_ROLE).send())
        .expect("role tags");
    let role_tags: Vec<(&str, &str)> = role_tags
        .tags()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    for expected in [
        ("comfyplat:platform", "sandbox"),
        ("team", "art"),
        ("cost-center", "sd-platform"),
    ] {
        assert!(role_tags.contains(&expected), "{role_tags:?}");
    }
    let csi = reader.role_policy(CSI_ROLE, CSI_POLICY);
    for document in [&csi] {
        for statement in statements(document) {
            assert!(
                as_list(&statement["Action"])
                    .iter()
                    .all(|a| !a.contains('*')),
                "wildcard action in {document}"
            );
            assert!(
                as_list(&statement["Resource"]).iter().all(|r| r != "*"),
                "`*` resource in {document}"
            );
        }
    }
    let csi_resources: Vec<String> = statements(&csi)
        .iter()
        .flat_map(|s| as_list(&s["Resource"]))
        .collect();
    for purpose in ["outputs", "inputs"] {
        assert!(csi_resources.contains(&format!("arn:aws:s3:::{}", bucket(purpose))));
        assert!(csi_resources.contains(&format!("arn:aws:s3:::{}/*", bucket(purpose))));
    }
    assert!(
        csi_resources.iter().all(|r| !r.contains("models")),
        "the CSI driver must not reach the models bucket"
    );
    let csi_actions: Vec<String> = statements(&csi)
        .iter()
        .flat_map(|s| as_list(&s["Action"]))
        .collect();
    for action in [
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
    ] {
        assert!(
            csi_actions.contains(&action.to_string()),
            "{action} missing from {csi}"
        );
    }
    // The adopted node role gets no comfyplat policy: the model agent reads the models.
    assert_eq!(
        reader.role_policy_names(NODE_ROLE),
        vec![UNOWNED_NODE_POLICY.to_string()]
    );

    // The next plan is empty, and the next apply makes no write call.
    let serial = workspace.state()["serial"].clone();
    proxy.clear();
    let run = workspace
        .run(&proxy.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    assert!(
        !proxy.requests().is_empty(),
        "the plan went through the proxy"
    );
    assert_eq!(proxy.writes().len(), 0, "plan wrote: {:?}", proxy.writes());
    let run = apply(&workspace, &proxy.endpoint);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    assert_eq!(
        proxy.writes().len(),
        0,
        "a no-op apply wrote: {:?}",
        proxy.writes()
    );
    assert_eq!(
        workspace.state()["serial"],
        serial,
        "a no-op apply must not rewrite state"
    );
}

#[test]
fn changing_the_retention_gives_one_precise_update() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    apply(&workspace, &proxy.endpoint);

    workspace.write(&sandbox_yaml().replace("expire_after_days: 30", "expire_after_days: 7"));
    let (code, plan) = plan_json(&workspace, &proxy.endpoint, &["--detailed-exitcode"]);
    assert_eq!(code, 2);
    let changes = plan["resource_changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["address"], "s3.bucket.outputs");
    assert_eq!(changes[0]["actions"], json!(["update"]));
    assert_eq!(changes[0]["reasons"], json!([{"reason": "config_changed"}]));
    assert_eq!(
        changed_fields(&changes[0]),
        json!([{"path": "lifecycle.expiration_days", "before": 30, "after": 7}])
    );
    assert!(plan["resource_drift"].as_array().expect("drift").is_empty());

    let text = workspace.run(&proxy.endpoint, &["plan"]).expect(0).stdout;
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("  # ")).collect();
    assert_eq!(
        headers,
        vec!["  # s3.bucket.outputs will be updated in place (platform.yaml changed)"],
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("  ~ S3 bucket"))
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("~ lifecycle.expiration_days: 30 -> 7"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{text}"
    );

    proxy.clear();
    apply(&workspace, &proxy.endpoint);
    let writes: Vec<String> = proxy.writes().iter().map(|w| w.action.clone()).collect();
    assert_eq!(
        writes,
        vec!["PutBucketLifecycleConfiguration"],
        "exactly the one call the change needs"
    );
    let lifecycle = reader
        .block_on(
            reader
                .s3
                .get_bucket_lifecycle_configuration()
                .bucket(bucket("outputs"))
                .send(),
        )
        .expect("lifecycle");
    assert_eq!(
        lifecycle.rules()[0].expiration().and_then(|e| e.days()),
        Some(7)
    );
    workspace
        .run(&proxy.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn out_of_band_drift_is_shown_apart_and_repaired() {
    let emulator = Emulator::start();
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    apply(&workspace, &emulator.endpoint);

    // Someone deletes a bucket policy, relaxes a public access block, edits our inline policy.
    reader
        .block_on(
            reader
                .s3
                .delete_bucket_policy()
                .bucket(bucket("models"))
                .send(),
        )
        .expect("delete policy");
    reader
        .block_on(
            reader
                .s3
                .put_public_access_block()
                .bucket(bucket("outputs"))
                .public_access_block_configuration(
                    aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(false)
                        .restrict_public_buckets(false)
                        .build(),
                )
                .send(),
        )
        .expect("relax public access block");
    let widened = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]});
    reader
        .block_on(
            reader
                .iam
                .put_role_policy()
                .role_name(CSI_ROLE)
                .policy_name(CSI_POLICY)
                .policy_document(widened.to_string())
                .send(),
        )
        .expect("edit inline policy");

    let (code, plan) = plan_json(&workspace, &emulator.endpoint, &["--detailed-exitcode"]);
    assert_eq!(code, 2);
    let drifted: Vec<&str> = plan["resource_drift"]
        .as_array()
        .expect("drift")
        .iter()
        .map(|d| d["address"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        drifted,
        vec![
            "s3.bucket.models",
            "s3.bucket.outputs",
            "iam.role_policy.s3_csi_driver"
        ]
    );
    let changes = plan["resource_changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 3, "{plan:#}");
    for change in changes {
        assert_eq!(change["actions"], json!(["update"]));
        assert_eq!(change["reasons"], json!([{"reason": "drifted"}]));
    }
    let outputs = changes
        .iter()
        .find(|c| c["address"] == "s3.bucket.outputs")
        .expect("outputs change");
    assert_eq!(
        changed_fields(outputs),
        json!([
            {"path": "public_access_block.block_public_policy", "before": false, "after": true},
            {"path": "public_access_block.restrict_public_buckets", "before": false, "after": true}
        ])
    );
    let models = changes
        .iter()
        .find(|c| c["address"] == "s3.bucket.models")
        .expect("models change");
    let models = changed_fields(models);
    assert_eq!(models[0]["path"], "policy");
    assert!(models[0]["before"].is_null());

    let text = workspace
        .run(&emulator.endpoint, &["plan"])
        .expect(0)
        .stdout;
    assert!(
        text.contains("Objects changed outside comfyplat since the last apply"),
        "{text}"
    );
    assert!(
        text.contains("changed outside comfyplat; repairing"),
        "{text}"
    );

    apply(&workspace, &emulator.endpoint);
    assert!(
        reader
            .block_on(
                reader
                    .s3
                    .get_bucket_policy()
                    .bucket(bucket("models"))
                    .send()
            )
            .is_ok()
    );
    let block = reader
        .block_on(
            reader
                .s3
                .get_public_access_block()
                .bucket(bucket("outputs"))
                .send(),
        )
        .expect("block");
    assert_eq!(
        block
            .public_access_block_configuration()
            .and_then(|b| b.block_public_policy()),
        Some(true)
    );
    let csi = reader.role_policy(CSI_ROLE, CSI_POLICY);
    assert!(!csi.to_string().contains("s3:*"), "{csi}");
    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn removing_a_bucket_that_holds_objects_is_refused_until_it_is_empty_or_data_deletion_is_allowed() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    apply(&workspace, &proxy.endpoint);
    reader.put_object(&bucket("inputs"), "reference.png");

    workspace.write(&sandbox_yaml().replace("  inputs: {}\n", ""));
    let run = workspace.run(&proxy.endpoint, &["plan"]).expect(1);
    assert!(
        run.stdout.contains(
            "# s3.bucket.inputs will be destroyed (no longer in platform.yaml; it holds objects"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("s3.bucket.inputs") && run.stderr.contains("holds objects"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--delete-data"), "{}", run.stderr);

    proxy.clear();
    let run = workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(1);
    assert!(run.stderr.contains("refusing to apply"), "{}", run.stderr);
    assert_eq!(
        proxy.writes().len(),
        0,
        "a refused apply wrote: {:?}",
        proxy.writes()
    );
    assert!(reader.bucket_exists(&bucket("inputs")));

    // Emptied, it goes without --delete-data, and the CSI policy loses its statements on it.
    reader
        .block_on(
            reader
                .s3
                .delete_object()
                .bucket(bucket("inputs"))
                .key("reference.png")
                .send(),
        )
        .expect("delete object");
    let run = apply(&workspace, &proxy.endpoint);
    assert!(
        run.stdout
            .contains("Plan: 0 to add, 1 to change, 1 to destroy."),
        "{}",
        run.stdout
    );
    assert!(!reader.bucket_exists(&bucket("inputs")));
    let csi = reader.role_policy(CSI_ROLE, CSI_POLICY);
    assert!(!csi.to_string().contains(&bucket("inputs")), "{csi}");
    workspace
        .run(&proxy.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);

    // With --delete-data, a bucket that holds objects goes with them.
    workspace.write(&sandbox_yaml());
    apply(&workspace, &proxy.endpoint);
    reader.put_object(&bucket("inputs"), "a.png");
    reader.put_object(&bucket("inputs"), "b.png");
    workspace.write(&sandbox_yaml().replace("  inputs: {}\n", ""));
    workspace
        .run(&proxy.endpoint, &["apply", "--yes", "--delete-data"])
        .expect(0);
    assert!(!reader.bucket_exists(&bucket("inputs")));
}

#[test]
fn destroy_removes_everything_owned_and_touches_nothing_else() {
    let emulator = Emulator::start();
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    apply(&workspace, &emulator.endpoint);
    reader.put_object(&bucket("outputs"), "render-0001.png");
    reader.put_object(&bucket("models"), "checkpoints/sdxl.safetensors");

    // Without --delete-data, buckets holding objects are kept and said to be kept.
    let run = workspace
        .run(&emulator.endpoint, &["destroy", "--yes"])
        .expect(0);
    assert!(
        run.stdout.contains("s3.bucket.outputs will be kept"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("kept: s3.bucket.outputs"),
        "{}",
        run.stderr
    );
    assert!(reader.bucket_exists(&bucket("outputs")) && reader.bucket_exists(&bucket("models")));
    assert!(!reader.bucket_exists(&bucket("inputs")));
    assert!(!reader.role_exists(CSI_ROLE));
    assert_eq!(
        reader.role_policy_names(NODE_ROLE),
        vec![UNOWNED_NODE_POLICY.to_string()]
    );

    // With it, they go too, versions and all.
    let run = workspace
        .run(&emulator.endpoint, &["destroy", "--yes", "--delete-data"])
        .expect(0);
    assert!(
        run.stdout
            .contains("Plan: 0 to add, 0 to change, 2 to destroy."),
        "{}",
        run.stdout
    );

    // A scan of the account: nothing owned left; the adopted role and the unowned bucket intact.
    for name in reader.bucket_names() {
        let tags = reader.block_on(reader.s3.get_bucket_tagging().bucket(&name).send());
        let owned = tags.is_ok_and(|t| {
            t.tag_set()
                .iter()
                .any(|tag| tag.key() == "comfyplat:platform")
        });
        assert!(!owned, "bucket {name} is still owned by comfyplat");
    }
    assert_eq!(reader.bucket_names(), vec![UNOWNED_BUCKET.to_string()]);
    let objects = reader
        .block_on(reader.s3.list_objects_v2().bucket(UNOWNED_BUCKET).send())
        .expect("list");
    assert_eq!(objects.key_count(), Some(1));
    let roles = reader
        .block_on(reader.iam.list_roles().send())
        .expect("roles");
    assert!(
        roles
            .roles()
            .iter()
            .all(|r| !r.role_name().starts_with("comfyplat-"))
    );
    assert!(reader.role_exists(NODE_ROLE));
    assert_eq!(
        reader.role_policy_names(NODE_ROLE),
        vec![UNOWNED_NODE_POLICY.to_string()]
    );
    let attached = reader
        .block_on(
            reader
                .iam
                .list_attached_role_policies()
                .role_name(NODE_ROLE)
                .send(),
        )
        .expect("attached");
    assert_eq!(
        attached.attached_policies().len(),
        2,
        "the node role's managed policies are untouched"
    );
    assert_eq!(workspace.state()["resources"], json!({}));

    let run = workspace
        .run(&emulator.endpoint, &["destroy", "--yes"])
        .expect(0);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
}

#[test]
fn a_saved_plan_is_applied_exactly_and_refused_once_stale() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    let plan_file = workspace.dir.path().join("first.plan");
    let plan_path = plan_file.to_str().expect("path");

    workspace
        .run(&proxy.endpoint, &["plan", "--out", plan_path])
        .expect(0);
    assert_eq!(proxy.writes().len(), 0, "plan --out must not write to AWS");
    let run = workspace
        .run(&proxy.endpoint, &["apply", plan_path])
        .expect(0);
    assert!(run.stderr.contains("Complete: 11 done."), "{}", run.stderr);

    // A plan made, then the world moves: the plan is refused without a write.
    workspace.write(&sandbox_yaml().replace("expire_after_days: 30", "expire_after_days: 14"));
    let second = workspace.dir.path().join("second.plan");
    let second_path = second.to_str().expect("path");
    workspace
        .run(&proxy.endpoint, &["plan", "--out", second_path])
        .expect(0);
    reader
        .block_on(
            reader
                .s3
                .delete_bucket_policy()
                .bucket(bucket("outputs"))
                .send(),
        )
        .expect("out-of-band change");
    proxy.clear();
    let run = workspace
        .run(&proxy.endpoint, &["apply", second_path])
        .expect(1);
    assert!(
        run.stderr.contains("the saved plan is stale"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&bucket("outputs")), "{}", run.stderr);
    assert_eq!(proxy.writes().len(), 0);

    // A plan made before another apply is stale too (the state serial moved).
    workspace
        .run(&proxy.endpoint, &["plan", "--out", second_path])
        .expect(0);
    apply(&workspace, &proxy.endpoint);
    let run = workspace
        .run(&proxy.endpoint, &["apply", second_path])
        .expect(1);
    assert!(
        run.stderr
            .contains("the state changed since the plan was made"),
        "{}",
        run.stderr
    );
}

#[test]
fn apply_without_yes_and_without_a_terminal_refuses_before_any_write() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let run = workspace.run(&proxy.endpoint, &["apply"]).expect(1);
    assert!(run.stderr.contains("needs confirmation"), "{}", run.stderr);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_eq!(proxy.writes().len(), 0);
    assert!(!workspace.state_file().exists(), "no state may be written");
}
