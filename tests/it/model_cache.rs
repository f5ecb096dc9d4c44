//! The model cache on the cluster: apply makes the agent's role, policy, Pod Identity
//! association, service account, ConfigMap and DaemonSet (read back with the aws CLI and
//! kubectl), the node role gets nothing, and destroy removes it all. The Kubernetes test
//! server plays GPU nodes and their agents (pods with status lines in their logs), so that
//! `comfyplat models status` is tested end to end.

use serde_json::{Value, json};

use crate::support::*;

const NS: &str = "comfyui";
const AGENT: &str = "comfyplat-model-agent";
const AGENT_ROLE: &str = "comfyplat-sandbox-model-agent";
const CLUSTER: &str = "comfyui-sandbox";

fn full() -> Workspace {
    Workspace::new(&full_sandbox_yaml())
}

#[test]
fn apply_makes_the_agent_with_its_own_identity_and_destroy_removes_it() {
    let emulator = Emulator::start();
    let workspace = full();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);

    // Kubernetes, through kubectl.
    let daemonset = emulator.kubectl_json(&["-n", NS, "get", "daemonset", AGENT]);
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"],
        json!({"karpenter.sh/nodepool": "sandbox-gpu"})
    );
    assert_eq!(pod["serviceAccountName"], AGENT);
    assert_eq!(
        pod["containers"][0]["image"],
        "public.ecr.aws/aws-cli/aws-cli:2.31.39"
    );
    let configmap = emulator.kubectl_json(&["-n", NS, "get", "configmap", AGENT]);
    let context = json!({});
    let script = comfyplat::templates::render_partial(
        "model-agent.sh.j2",
        &context,
        &comfyplat::templates::Sources::embedded(),
    )
    .expect("render the agent's script");
    assert_eq!(configmap["data"]["agent.sh"], Value::String(script));
    let account = emulator.kubectl_json(&["-n", NS, "get", "serviceaccount", AGENT]);
    assert_eq!(account["automountServiceAccountToken"], false);
    let node_class = emulator.kubectl_json(&["get", "ec2nodeclass", "sandbox-gpu"]);
    assert_eq!(node_class["spec"]["instanceStorePolicy"], "RAID0");
    assert!(node_class["spec"].get("userData").is_none());

    // AWS, through the aws CLI.
    let role = aws_cli(
        &emulator.endpoint,
        &["iam", "get-role", "--role-name", AGENT_ROLE],
    );
    let trust = role["Role"]["AssumeRolePolicyDocument"].to_string();
    for expected in [
        "pods.eks.amazonaws.com",
        "sts:TagSession",
        r#""aws:RequestTag/kubernetes-service-account":["comfyplat-model-agent"]"#,
        r#""aws:RequestTag/kubernetes-namespace":["comfyui"]"#,
        r#""aws:RequestTag/eks-cluster-name":["comfyui-sandbox"]"#,
    ] {
        assert!(trust.contains(expected), "{expected} missing from {trust}");
    }
    let policy = aws_cli(
        &emulator.endpoint,
        &[
            "iam",
            "get-role-policy",
            "--role-name",
            AGENT_ROLE,
            "--policy-name",
            "comfyplat-models-read",
        ],
    );
    let document = policy["PolicyDocument"].to_string();
    assert!(document.contains(&bucket("models")), "{document}");
    assert!(
        !document.contains("s3:PutObject") && !document.contains(&bucket("outputs")),
        "{document}"
    );
    let associations = aws_cli(
        &emulator.endpoint,
        &[
            "eks",
            "list-pod-identity-associations",
            "--cluster-name",
            CLUSTER,
            "--namespace",
            NS,
            "--service-account",
            AGENT,
        ],
    );
    let found = associations["associations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(found.len(), 1, "{associations}");
    let id = found[0]["associationId"].as_str().expect("association id");
    let association = aws_cli(
        &emulator.endpoint,
        &[
            "eks",
            "describe-pod-identity-association",
            "--cluster-name",
            CLUSTER,
            "--association-id",
            id,
        ],
    );
    assert_eq!(association["association"]["roleArn"], role_arn(AGENT_ROLE));
    assert_eq!(
        association["association"]["tags"]["comfyplat:platform"],
        "sandbox"
    );
    // The node role keeps only what was there before comfyplat.
    assert_eq!(
        Reader::new(&emulator.endpoint).role_policy_names(NODE_ROLE),
        vec![UNOWNED_NODE_POLICY.to_string()]
    );

    workspace
        .run(&emulator.endpoint, &["plan", "--detailed-exitcode"])
        .expect(0);

    workspace
        .run(&emulator.endpoint, &["destroy", "--yes"])
        .expect(0);
    assert!(
        emulator.labelled_objects().is_empty(),
        "{:?}",
        emulator.labelled_objects()
    );
    let associations = aws_cli(
        &emulator.endpoint,
        &[
            "eks",
            "list-pod-identity-associations",
            "--cluster-name",
            CLUSTER,
            "--namespace",
            NS,
        ],
    );
    assert!(
        associations["associations"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{associations}"
    );
    let roles = aws_cli(&emulator.endpoint, &["iam", "list-roles"]).to_string();
    assert!(!roles.contains(AGENT_ROLE), "{roles}");
}

#[test]
fn a_platform_applied_with_the_node_role_policy_loses_it_on_the_next_apply() {
    // What an earlier comfyplat left: its models policy on the node role, recorded in state.
    let emulator = Emulator::start();
    let workspace = Workspace::sandbox();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    let reader = Reader::new(&emulator.endpoint);
    let legacy = "comfyplat-sandbox-models-read";
    reader
        .block_on(
            reader
                .iam
                .put_role_policy()
                .role_name(NODE_ROLE)
                .policy_name(legacy)
                .policy_document(
                    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [format!("arn:aws:s3:::{}/*", bucket("models"))]}]})
                        .to_string(),
                )
                .send(),
        )
        .expect("put the legacy policy");
    let mut state = workspace.state();
    let mut entry = state["resources"]["iam.role_policy.s3_csi_driver"].clone();
    entry["identity"]["role"] = json!(NODE_ROLE);
    entry["identity"]["policy"] = json!(legacy);
    state["resources"]["iam.role_policy.node_models_read"] = entry;
    std::fs::write(
        workspace.state_file(),
        serde_json::to_vec_pretty(&state).expect("json"),
    )
    .expect("write state");
    let plan = workspace
        .run(&emulator.endpoint, &["plan"])
        .expect(0)
        .stdout;
    assert!(
        plan.contains("# iam.role_policy.node_models_read will be destroyed"),
        "{plan}"
    );
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);
    assert_eq!(
        reader.role_policy_names(NODE_ROLE),
        vec![UNOWNED_NODE_POLICY.to_string()]
    );
}

/// A status line as the agent prints it.
fn status_line(
    node: &str,
    state: &str,
    generation: &str,
    first_sync_done: bool,
    errors: &[&str],
) -> String {
    format!(
        "{}\n",
        json!({
            "agent": AGENT, "node": node, "time": "2026-12-02T15:04:05Z", "state": state,
            "generation": generation, "first_sync_done": first_sync_done, "files": 12,
            "bytes": 44_291_850_240u64, "free_bytes": 880_468_295_680u64, "duration_ms": 850,
            "errors": errors,
        })
    )
}

#[test]
fn models_status_shows_every_gpu_node_with_its_agent() {
    let emulator = Emulator::start();
    let workspace = full();
    workspace
        .run(&emulator.endpoint, &["apply", "--yes"])
        .expect(0);

    // Three GPU nodes of the pool (tainted as Karpenter makes them) and one other node.
    let gpu = |name: &str| {
        json!({"name": name, "labels": {"karpenter.sh/nodepool": "sandbox-gpu", "node.kubernetes.io/instance-type": "g6.2xlarge"},
               "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]})
    };
    let nodes = [
        "ip-10-0-1-11.us-west-2.compute.internal",
        "ip-10-0-1-12.us-west-2.compute.internal",
        "ip-10-0-1-13.us-west-2.compute.internal",
    ];
    emulator.kube_control(
        "POST",
        "nodes",
        &json!({"nodes": [gpu(nodes[0]), gpu(nodes[1]), gpu(nodes[2]), {"name": "ip-10-0-9-9.us-west-2.compute.internal", "labels": {"role": "system"}}]}),
    );
    let pods = emulator.kubectl_json(&[
        "-n",
        NS,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=comfyplat-model-agent",
    ]);
    assert_eq!(
        pods["items"].as_array().map(Vec::len),
        Some(3),
        "one agent per GPU node"
    );

    // The bucket is at generation G; node 1 has it, node 2 is behind and failing, node 3's
    // agent has printed nothing yet.
    let generation = "1764686400123-9f2c4a1b";
    let reader = Reader::new(&emulator.endpoint);
    reader
        .block_on(
            reader
                .s3
                .put_object()
                .bucket(bucket("models"))
                .key(".comfyplat/generation")
                .body(aws_sdk_s3::primitives::ByteStream::from(
                    format!("{generation}\n").into_bytes(),
                ))
                .send(),
        )
        .expect("put the marker");
    let log = |node: &str, text: String, ready: bool| {
        emulator.kube_control(
            "POST",
            "pods/log",
            &json!({"namespace": NS, "node": node, "selector": "app.kubernetes.io/name=comfyplat-model-agent",
                    "container": "agent", "append": text, "ready": ready}),
        );
    };
    log(
        nodes[0],
        format!(
            "syncing\n{}",
            status_line(nodes[0], "synced", generation, true, &[])
        ),
        true,
    );
    log(
        nodes[1],
        status_line(nodes[1], "synced", "1764680000000-00000000", true, &[])
            + &status_line(
                nodes[1],
                "error",
                "1764680000000-00000000",
                true,
                &["AccessDenied: ListObjectsV2"],
            ),
        false,
    );

    let run = workspace
        .run(&emulator.endpoint, &["models", "status"])
        .expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let row = |node: &str| -> &str {
        lines
            .iter()
            .find(|l| l.starts_with(node))
            .copied()
            .unwrap_or_else(|| panic!("no line for {node} in\n{}", run.stdout))
    };
    assert!(
        run.stdout.contains(&format!("generation {generation}")),
        "{}",
        run.stdout
    );
    assert!(
        row(nodes[0]).contains(" ready ") && row(nodes[0]).contains("in step"),
        "{}",
        run.stdout
    );
    assert!(row(nodes[0]).contains("41.2 GiB"), "{}", run.stdout);
    assert!(
        row(nodes[1]).contains("not ready")
            && row(nodes[1]).contains("behind")
            && row(nodes[1]).ends_with("AccessDenied: ListObjectsV2"),
        "{}",
        run.stdout
    );
    assert!(row(nodes[2]).contains("starting"), "{}", run.stdout);
    assert!(!run.stdout.contains("ip-10-0-9-9"), "{}", run.stdout);
    assert!(
        run.stdout.contains("1 of 3 node(s) in step"),
        "{}",
        run.stdout
    );

    let json_run = workspace
        .run(&emulator.endpoint, &["models", "status", "--json"])
        .expect(0);
    let summary: Value = serde_json::from_str(&json_run.stdout).expect("JSON");
    assert_eq!(summary["bucket"], bucket("models"));
    assert_eq!(summary["generation"], generation);
    let by_node = |node: &str| {
        summary["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|r| r["node"] == node))
            .cloned()
            .unwrap_or_else(|| panic!("{node} missing: {summary:#}"))
    };
    assert_eq!(by_node(nodes[0])["in_step"], true);
    assert_eq!(by_node(nodes[0])["ready"], true);
    assert_eq!(by_node(nodes[1])["state"], "error");
    assert_eq!(
        by_node(nodes[1])["errors"],
        json!(["AccessDenied: ListObjectsV2"])
    );
    assert!(by_node(nodes[1])["lag_seconds"].as_u64().is_some());
    assert_eq!(by_node(nodes[2])["state"], Value::Null);

    // A node that goes takes its agent with it.
    emulator.kube_control("DELETE", &format!("nodes/{}", nodes[2]), &json!({}));
    let run = workspace
        .run(&emulator.endpoint, &["models", "status"])
        .expect(0);
    assert!(!run.stdout.contains(nodes[2]), "{}", run.stdout);
}
