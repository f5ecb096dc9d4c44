//! EKS: cluster preflight, the one-way authentication mode, access entries, add-ons with
//! their Pod Identity association (or IRSA), against the emulator's EKS extension, read back
//! with the `aws` CLI as an independent client.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};

const DRIVER: &str = "aws-mountpoint-s3-csi-driver";
const AGENT: &str = "eks-pod-identity-agent";

fn policy(name: &str) -> String {
    format!("arn:aws:eks::aws:cluster-access-policy/{name}")
}

fn access_entries(endpoint: &str) -> Vec<String> {
    let listed = aws_cli(
        endpoint,
        &["eks", "list-access-entries", "--cluster-name", CLUSTER],
    );
    let mut entries: Vec<String> = listed["accessEntries"]
        .as_array()
        .expect("accessEntries")
        .iter()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    entries.sort();
    entries
}

fn associated(endpoint: &str, role: &str) -> Value {
    let listed = aws_cli(
        endpoint,
        &[
            "eks",
            "list-associated-access-policies",
            "--cluster-name",
            CLUSTER,
            "--principal-arn",
            &role_arn(role),
        ],
    );
    let policies: Vec<Value> = listed["associatedAccessPolicies"]
        .as_array()
        .expect("associatedAccessPolicies")
        .iter()
        .map(|p| json!({"policy": p["policyArn"], "scope": p["accessScope"]}))
        .collect();
    json!(policies)
}

fn addon(endpoint: &str, name: &str) -> Value {
    aws_cli(
        endpoint,
        &[
            "eks",
            "describe-addon",
            "--cluster-name",
            CLUSTER,
            "--addon-name",
            name,
        ],
    )["addon"]
        .clone()
}

fn authentication_mode(endpoint: &str) -> String {
    aws_cli(endpoint, &["eks", "describe-cluster", "--name", CLUSTER])["cluster"]["accessConfig"]["authenticationMode"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn apply_makes_the_cluster_exactly_as_declared_and_the_next_run_writes_nothing() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let endpoint = &emulator.endpoint;

    let plan = workspace.run(&proxy.endpoint, &["plan"]).expect(0).stdout;
    assert!(
        plan.contains(
            "~ authentication_mode: \"CONFIG_MAP\" -> \"API_AND_CONFIG_MAP\"  # irreversible"
        ),
        "{plan}"
    );
    for expected in [
        "# eks.access_entry.role/comfyui-admins will be created",
        "# eks.access_entry.role/comfyui-artists will be created",
        "# eks.access_entry.karpenter_node will be created",
        "# eks.addon.eks-pod-identity-agent will be created",
        "# eks.addon.aws-mountpoint-s3-csi-driver will be created",
        "+ pod_identity_associations.s3-csi-driver-sa = \"arn:aws:iam::123456789012:role/comfyplat-sandbox-s3-csi\"",
        "+ access_policies.arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy = {",
    ] {
        assert!(plan.contains(expected), "missing `{expected}` in\n{plan}");
    }
    assert_eq!(proxy.writes().len(), 0);

    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);

    assert_eq!(authentication_mode(endpoint), "API_AND_CONFIG_MAP");
    assert_eq!(
        access_entries(endpoint),
        vec![
            role_arn("KarpenterNodeRole-comfyui-sandbox"),
            role_arn("comfyui-admins"),
            role_arn("comfyui-artists")
        ]
    );
    assert_eq!(
        associated(endpoint, "comfyui-admins"),
        json!([{"policy": policy("AmazonEKSClusterAdminPolicy"), "scope": {"type": "cluster", "namespaces": []}}])
    );
    assert_eq!(
        associated(endpoint, "comfyui-artists"),
        json!([{"policy": policy("AmazonEKSViewPolicy"), "scope": {"type": "namespace", "namespaces": ["comfyui"]}}])
    );
    let artists = aws_cli(
        endpoint,
        &[
            "eks",
            "describe-access-entry",
            "--cluster-name",
            CLUSTER,
            "--principal-arn",
            &role_arn("comfyui-artists"),
        ],
    );
    assert_eq!(
        artists["accessEntry"]["kubernetesGroups"],
        json!(["artists"])
    );
    assert_eq!(
        artists["accessEntry"]["tags"]["comfyplat:platform"],
        "sandbox"
    );
    let node = aws_cli(
        endpoint,
        &[
            "eks",
            "describe-access-entry",
            "--cluster-name",
            CLUSTER,
            "--principal-arn",
            &role_arn(NODE_ROLE),
        ],
    );
    assert_eq!(node["accessEntry"]["type"], "EC2_LINUX");

    let agent = addon(endpoint, AGENT);
    assert_eq!(
        (agent["addonVersion"].as_str(), agent["status"].as_str()),
        (Some("v1.3.4-eksbuild.1"), Some("ACTIVE"))
    );
    let driver = addon(endpoint, DRIVER);
    assert_eq!(
        (driver["addonVersion"].as_str(), driver["status"].as_str()),
        (Some("v2.1.0-eksbuild.1"), Some("ACTIVE"))
    );
    let associations = aws_cli(
        endpoint,
        &[
            "eks",
            "list-pod-identity-associations",
            "--cluster-name",
            CLUSTER,
        ],
    );
    let associations = associations["associations"]
        .as_array()
        .expect("associations")
        .clone();
    assert_eq!(associations.len(), 1, "{associations:?}");
    assert_eq!(associations[0]["namespace"], "kube-system");
    assert_eq!(associations[0]["serviceAccount"], "s3-csi-driver-sa");
    assert_eq!(associations[0]["ownerArn"], driver["addonArn"]);
    let id = associations[0]["associationId"].as_str().expect("id");
    let association = aws_cli(
        endpoint,
        &[
            "eks",
            "describe-pod-identity-association",
            "--cluster-name",
            CLUSTER,
            "--association-id",
            id,
        ],
    );
    assert_eq!(
        association["association"]["roleArn"],
        json!(role_arn(CSI_ROLE))
    );

    proxy.clear();
    workspace
        .run(&proxy.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
    let run = workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    assert_eq!(
        proxy.writes().len(),
        0,
        "a no-op apply wrote: {:?}",
        proxy.writes()
    );
}

#[test]
fn access_changes_are_precise_and_entries_made_outside_comfyplat_are_never_touched() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    let endpoint = &emulator.endpoint;
    workspace.run(endpoint, &["apply", "--yes"]).expect(0);

    // Someone gives the ops team access by hand.
    reader
        .block_on(
            reader
                .eks
                .create_access_entry()
                .cluster_name(CLUSTER)
                .principal_arn(role_arn("platform-team-ops"))
                .send(),
        )
        .expect("create an outside entry");
    reader
        .block_on(
            reader
                .eks
                .associate_access_policy()
                .cluster_name(CLUSTER)
                .principal_arn(role_arn("platform-team-ops"))
                .policy_arn(policy("AmazonEKSViewPolicy"))
                .access_scope(
                    aws_sdk_eks::types::AccessScope::builder()
                        .r#type(aws_sdk_eks::types::AccessScopeType::Cluster)
                        .build(),
                )
                .send(),
        )
        .expect("associate a policy outside");
    let outside = associated(endpoint, "platform-team-ops");

    // The artists go from `view` to `admin` on two namespaces: one precise update.
    let yaml = sandbox_yaml().replace(
        "    policy: view\n    namespaces: [comfyui]",
        "    policy: admin\n    namespaces: [renders, comfyui]",
    );
    workspace.write(&yaml);
    let run = workspace.run(&proxy.endpoint, &["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let plan: Value = serde_json::from_str(&run.stdout).expect("plan JSON");
    let changes = plan["resource_changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(
        changes[0]["address"],
        "eks.access_entry.role/comfyui-artists"
    );
    assert_eq!(changes[0]["actions"], json!(["update"]));
    assert_eq!(
        changed_fields(&changes[0]),
        json!([
            {"path": format!("access_policies.{}", policy("AmazonEKSAdminPolicy")), "before": null, "after": {"type": "namespace", "namespaces": ["comfyui", "renders"]}},
            {"path": format!("access_policies.{}", policy("AmazonEKSViewPolicy")), "before": {"type": "namespace", "namespaces": ["comfyui"]}, "after": null}
        ])
    );
    proxy.clear();
    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    let writes: Vec<String> = proxy.writes().iter().map(|w| w.action.clone()).collect();
    assert_eq!(
        writes.len(),
        2,
        "an associate and a disassociate: {writes:?}"
    );
    assert_eq!(
        associated(endpoint, "comfyui-artists"),
        json!([{"policy": policy("AmazonEKSAdminPolicy"), "scope": {"type": "namespace", "namespaces": ["comfyui", "renders"]}}])
    );
    workspace
        .run(endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);

    // A principal removed from platform.yaml loses its entry.
    workspace.write(&yaml.replace(
        "  - principal: arn:aws:iam::123456789012:role/comfyui-admins\n    policy: cluster-admin\n",
        "",
    ));
    let run = workspace.run(endpoint, &["apply", "--yes"]).expect(0);
    assert!(
        run.stdout
            .contains("# eks.access_entry.role/comfyui-admins will be destroyed"),
        "{}",
        run.stdout
    );
    assert!(!access_entries(endpoint).contains(&role_arn("comfyui-admins")));

    // The outside entry survived both, and survives destroy.
    assert_eq!(associated(endpoint, "platform-team-ops"), outside);
    workspace
        .run(endpoint, &["destroy", "--yes", "--delete-data"])
        .expect(0);
    assert_eq!(
        access_entries(endpoint),
        vec![role_arn("platform-team-ops")]
    );
    assert_eq!(associated(endpoint, "platform-team-ops"), outside);
    let addons = aws_cli(endpoint, &["eks", "list-addons", "--cluster-name", CLUSTER]);
    assert_eq!(addons["addons"], json!([]));
    let associations = aws_cli(
        endpoint,
        &[
            "eks",
            "list-pod-identity-associations",
            "--cluster-name",
            CLUSTER,
        ],
    );
    assert_eq!(associations["associations"], json!([]));
    assert_eq!(
        authentication_mode(endpoint),
        "API_AND_CONFIG_MAP",
        "destroy leaves the authentication mode"
    );
}

#[test]
fn an_addon_version_change_is_applied_and_a_failed_addon_is_reported_then_retried() {
    let emulator = Emulator::start();
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    let endpoint = &emulator.endpoint;
    workspace.run(endpoint, &["apply", "--yes"]).expect(0);

    let newer = sandbox_yaml().replace("version: v2.1.0-eksbuild.1", "version: v2.2.0-eksbuild.1");
    workspace.write(&newer);
    let plan = workspace.run(endpoint, &["plan"]).expect(0).stdout;
    assert!(
        plan.contains("~ version: \"v2.1.0-eksbuild.1\" -> \"v2.2.0-eksbuild.1\""),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{plan}"
    );
    workspace.run(endpoint, &["apply", "--yes"]).expect(0);
    assert_eq!(addon(endpoint, DRIVER)["addonVersion"], "v2.2.0-eksbuild.1");

    // The emulator makes the next update of the driver fail.
    let cluster_arn = aws_cli(endpoint, &["eks", "describe-cluster", "--name", CLUSTER])["cluster"]
        ["arn"]
        .as_str()
        .expect("arn")
        .to_string();
    let fail_tag = format!("emulator.comfyplat.io/addon-{DRIVER}");
    reader
        .block_on(
            reader
                .eks
                .tag_resource()
                .resource_arn(&cluster_arn)
                .tags(&fail_tag, "UPDATE_FAILED")
                .send(),
        )
        .expect("tag the cluster");
    workspace.write(&sandbox_yaml());
    let run = workspace.run(endpoint, &["apply", "--yes"]).expect(1);
    assert!(
        run.stderr
            .contains("failed: eks.addon.aws-mountpoint-s3-csi-driver"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("UPDATE_FAILED: ConfigurationConflict"),
        "{}",
        run.stderr
    );
    let state = workspace.state();
    let entry = &state["resources"]["eks.addon.aws-mountpoint-s3-csi-driver"];
    assert!(
        entry["pending"].is_null(),
        "a failed operation is not waited for again: {entry}"
    );

    // The next plan says so and the next apply, with the cause gone, retries it.
    let plan = workspace.run(endpoint, &["plan"]).expect(0).stdout;
    assert!(plan.contains("it failed earlier; trying again"), "{plan}");
    reader
        .block_on(
            reader
                .eks
                .untag_resource()
                .resource_arn(&cluster_arn)
                .tag_keys(&fail_tag)
                .send(),
        )
        .expect("untag the cluster");
    workspace.run(endpoint, &["apply", "--yes"]).expect(0);
    let driver = addon(endpoint, DRIVER);
    assert_eq!(
        (driver["addonVersion"].as_str(), driver["status"].as_str()),
        (Some("v2.1.0-eksbuild.1"), Some("ACTIVE"))
    );
    workspace
        .run(endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn a_missing_cluster_another_region_or_a_busy_cluster_is_refused_before_any_write() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let reader = Reader::new(&emulator.endpoint);

    let missing =
        Workspace::new(&sandbox_yaml().replace("name: comfyui-sandbox", "name: comfyui-prod"));
    let run = missing.run(&proxy.endpoint, &["apply", "--yes"]).expect(1);
    assert!(
        run.stderr.contains(
            "EKS cluster `comfyui-prod` does not exist in account 123456789012, region us-west-2"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: clusters there: comfyui-sandbox"),
        "{}",
        run.stderr
    );

    let elsewhere =
        Workspace::new(&sandbox_yaml().replace("region: us-west-2", "region: eu-west-1"));
    let run = elsewhere.run(&proxy.endpoint, &["plan"]).expect(1);
    assert!(
        run.stderr
            .contains("does not exist in account 123456789012, region eu-west-1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("there is no EKS cluster in this account and region"),
        "{}",
        run.stderr
    );

    // An update of someone else's keeps the cluster UPDATING.
    reader
        .block_on(
            reader
                .eks
                .update_cluster_config()
                .name(CLUSTER)
                .logging(
                    aws_sdk_eks::types::Logging::builder()
                        .cluster_logging(
                            aws_sdk_eks::types::LogSetup::builder()
                                .types(aws_sdk_eks::types::LogType::Api)
                                .enabled(true)
                                .build(),
                        )
                        .build(),
                )
                .send(),
        )
        .expect("start an update");
    let busy = Workspace::sandbox();
    let run = busy.run(&proxy.endpoint, &["apply", "--yes"]).expect(1);
    assert!(
        run.stderr
            .contains("EKS cluster `comfyui-sandbox` is UPDATING, not ACTIVE"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: wait until the cluster is ACTIVE"),
        "{}",
        run.stderr
    );

    assert_eq!(
        proxy.writes().len(),
        0,
        "refused runs wrote: {:?}",
        proxy.writes()
    );
}

#[test]
fn a_driver_without_pod_identity_falls_back_to_irsa() {
    let emulator = Emulator::start();
    let workspace = Workspace::new(
        &sandbox_yaml().replace("version: v2.1.0-eksbuild.1", "version: v1.15.0-eksbuild.1"),
    );
    let reader = Reader::new(&emulator.endpoint);
    let endpoint = &emulator.endpoint;

    let plan = workspace.run(endpoint, &["plan"]).expect(0).stdout;
    assert!(
        plan.contains("note: aws-mountpoint-s3-csi-driver v1.15.0-eksbuild.1 does not support EKS Pod Identity"),
        "{plan}"
    );
    assert!(plan.contains("+ service_account_role_arn = "), "{plan}");
    workspace.run(endpoint, &["apply", "--yes"]).expect(0);

    let driver = addon(endpoint, DRIVER);
    assert_eq!(driver["serviceAccountRoleArn"], json!(role_arn(CSI_ROLE)));
    assert_eq!(driver["podIdentityAssociations"], json!([]));
    let role = reader
        .block_on(reader.iam.get_role().role_name(CSI_ROLE).send())
        .expect("role");
    let trust = percent_encoding::percent_decode_str(
        role.role()
            .and_then(|r| r.assume_role_policy_document())
            .unwrap_or_default(),
    )
    .decode_utf8()
    .expect("utf-8")
    .into_owned();
    let issuer = aws_cli(endpoint, &["eks", "describe-cluster", "--name", CLUSTER])["cluster"]["identity"]["oidc"]["issuer"]
        .as_str()
        .expect("issuer")
        .trim_start_matches("https://")
        .to_string();
    assert!(
        trust.contains(&format!("oidc-provider/{issuer}")),
        "{trust}"
    );
    assert!(
        trust.contains("system:serviceaccount:kube-system:s3-csi-driver-sa"),
        "{trust}"
    );
    assert!(trust.contains("sts:AssumeRoleWithWebIdentity"), "{trust}");
    workspace
        .run(endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);

    // comfyplat created the cluster's OIDC provider, so destroy removes it.
    let provider_arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}");
    let provider = reader
        .block_on(
            reader
                .iam
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(&provider_arn)
                .send(),
        )
        .expect("the OIDC provider exists");
    assert_eq!(provider.client_id_list(), ["sts.amazonaws.com"]);
    assert!(
        provider
            .tags()
            .iter()
            .any(|t| t.key() == "comfyplat:platform" && t.value() == "sandbox")
    );
    workspace
        .run(endpoint, &["destroy", "--yes", "--delete-data"])
        .expect(0);
    assert!(
        reader
            .block_on(
                reader
                    .iam
                    .get_open_id_connect_provider()
                    .open_id_connect_provider_arn(&provider_arn)
                    .send()
            )
            .is_err()
    );

    // One that someone else made is used as it is and survives destroy.
    reader
        .block_on(
            reader
                .iam
                .create_open_id_connect_provider()
                .url(format!("https://{issuer}"))
                .client_id_list("sts.amazonaws.com")
                .send(),
        )
        .expect("create a provider outside comfyplat");
    let run = workspace.run(endpoint, &["apply", "--yes"]).expect(0);
    assert!(
        run.stdout
            .contains("iam.oidc_provider.cluster: IAM OIDC provider"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("was not created by comfyplat; it is left as it is"),
        "{}",
        run.stdout
    );
    workspace
        .run(endpoint, &["destroy", "--yes", "--delete-data"])
        .expect(0);
    assert!(
        reader
            .block_on(
                reader
                    .iam
                    .get_open_id_connect_provider()
                    .open_id_connect_provider_arn(&provider_arn)
                    .send()
            )
            .is_ok()
    );
}

#[test]
fn an_interrupted_authentication_mode_update_is_waited_for_not_repeated() {
    let emulator = Emulator::start();
    let slow = Proxy::slow(&emulator.endpoint, 400);
    let workspace = Workspace::sandbox();
    let mut child = workspace.spawn(&slow.endpoint, &["apply", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = std::fs::read_to_string(workspace.state_file())
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|state| !state["resources"]["eks.access_config"]["pending"].is_null());
        if pending {
            break;
        }
        assert!(
            child.try_wait().expect("poll").is_none(),
            "apply finished before the update could be interrupted"
        );
        assert!(Instant::now() < deadline, "the update was never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");

    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let plan = workspace.run(&proxy.endpoint, &["plan"]).expect(0).stdout;
    assert!(
        plan.contains("in progress: an earlier apply started it and did not see it finish"),
        "{plan}"
    );
    workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    let updates = slow
        .requests()
        .into_iter()
        .chain(proxy.requests())
        .filter(|r| r.method == "POST" && r.path.ends_with("/update-config"))
        .count();
    assert_eq!(updates, 1, "the authentication mode update was sent again");
    assert_eq!(
        authentication_mode(&emulator.endpoint),
        "API_AND_CONFIG_MAP"
    );
    workspace
        .run(&proxy.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn a_degraded_addon_without_nodes_is_a_warning_and_configuration_values_pass_through() {
    let emulator = Emulator::start();
    let reader = Reader::new(&emulator.endpoint);
    let endpoint = &emulator.endpoint;
    let cluster_arn = aws_cli(endpoint, &["eks", "describe-cluster", "--name", CLUSTER])["cluster"]
        ["arn"]
        .as_str()
        .expect("arn")
        .to_string();
    reader
        .block_on(
            reader
                .eks
                .tag_resource()
                .resource_arn(&cluster_arn)
                .tags(format!("emulator.comfyplat.io/addon-{DRIVER}"), "DEGRADED")
                .send(),
        )
        .expect("tag the cluster");
    let yaml = sandbox_yaml().replace(
        "    version: v2.1.0-eksbuild.1\n",
        "    version: v2.1.0-eksbuild.1\n    configuration_values:\n      node:\n        tolerateAllTaints: true\n",
    );
    let workspace = Workspace::new(&yaml);

    let run = workspace.run(endpoint, &["apply", "--yes"]).expect(0);
    assert!(
        run.stderr.contains(
            "warning: eks.addon.aws-mountpoint-s3-csi-driver: add-on `aws-mountpoint-s3-csi-driver` is DEGRADED (InsufficientNumberOfReplicas:"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Complete: 11 done."), "{}", run.stderr);
    let driver = addon(endpoint, DRIVER);
    assert_eq!(driver["status"], "DEGRADED");
    let values: Value = serde_json::from_str(
        driver["configurationValues"]
            .as_str()
            .expect("configuration"),
    )
    .expect("JSON");
    assert_eq!(values, json!({"node": {"tolerateAllTaints": true}}));
    workspace
        .run(endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}

#[test]
fn an_authentication_mode_update_whose_answer_was_lost_is_waited_for() {
    // The update was started (here by the aws CLI, as an apply killed between the call and
    // saving state would have) and is still in progress: apply waits for it instead of
    // failing on EKS's ResourceInUseException.
    let emulator = Emulator::start();
    let workspace = Workspace::sandbox();
    aws_cli(
        &emulator.endpoint,
        &[
            "eks",
            "update-cluster-config",
            "--name",
            "comfyui-sandbox",
            "--access-config",
            "authenticationMode=API_AND_CONFIG_MAP",
        ],
    );
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let run = workspace
        .run(&proxy.endpoint, &["apply", "--yes"])
        .expect(0);
    assert!(!run.stderr.contains("failed:"), "{}", run.stderr);
    let refused = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/update-config"))
        .count();
    assert_eq!(
        refused, 1,
        "one refused attempt, then the running update is waited for"
    );
    assert_eq!(
        authentication_mode(&emulator.endpoint),
        "API_AND_CONFIG_MAP"
    );
    workspace
        .run(&proxy.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);
}
