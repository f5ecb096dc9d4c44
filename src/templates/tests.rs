use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::*;

/// The context the config layer builds for a sandbox platform with inputs and a
/// NetworkPolicy enabled.
fn context() -> Value {
    json!({
        "platform": {"name": "sandbox", "region": "us-west-2", "account": "123456789012", "partition": "aws"},
        "cluster": {
            "name": "comfyui-sandbox",
            "version": "1.33",
            "subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            "security_group_ids": ["sg-0123456789abcdef0"]
        },
        "labels": {"app.kubernetes.io/managed-by": "comfyplat", "comfyplat.io/platform": "sandbox"},
        "aws_tags": {"comfyplat:platform": "sandbox", "team": "art", "cost-center": "0420"},
        "buckets": {
            "models": "comfyui-models-123456789012-us-west-2",
            "outputs": "comfyui-outputs-123456789012-us-west-2",
            "inputs": "comfyui-inputs-123456789012-us-west-2"
        },
        "karpenter": {
            "node_class": "sandbox-gpu",
            "node_pool": "sandbox-gpu",
            "node_role": "KarpenterNodeRole-comfyui-sandbox",
            "instance_types": ["g6.2xlarge", "g5.2xlarge"],
            "capacity_types": ["spot", "on-demand"],
            "max_gpus": 8,
            "ami_alias": "al2023@v20260828",
            "root_volume_gib": 100,
            "consolidation_policy": "WhenEmpty",
            "consolidate_after": "30m",
            "expire_after": "720h",
            "budget_nodes": "1"
        },
        "comfyui": {
            "namespace": "comfyui",
            "name": "comfyui",
            "service_account": "comfyui",
            "image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/comfyui:v0.3.60",
            "replicas": 1,
            "gpus": 1,
            "cpu": "4",
            "memory": "16Gi",
            "port": 8848,
            "run_as_user": 1000,
            "models_host_path": "/mnt/k8s-disks/0/comfyplat/models",
            "models_mount": "/app/ComfyUI/models",
            "health_path": "/system_stats",
            "strategy": "Recreate"
        },
        "model_agent": {
            "name": "comfyplat-model-agent",
            "namespace": "comfyui",
            "service_account": "comfyplat-model-agent",
            "image": "public.ecr.aws/aws-cli/aws-cli:2.31.39",
            "host_path": "/mnt/k8s-disks/0/comfyplat",
            "prefixes": "checkpoints/ loras/",
            "reserve_bytes": 21474836480u64,
            "check_seconds": 10,
            "reconcile_seconds": 300,
            "first_sync_timeout_seconds": 3600
        },
        "volumes": [
            {
                "purpose": "outputs",
                "bucket": "comfyui-outputs-123456789012-us-west-2",
                "pv": "sandbox-comfyui-outputs",
                "pvc": "comfyui-outputs",
                "volume_handle": "sandbox-comfyui-outputs",
                "mount_path": "/app/ComfyUI/output"
            },
            {
                "purpose": "inputs",
                "bucket": "comfyui-inputs-123456789012-us-west-2",
                "pv": "sandbox-comfyui-inputs",
                "pvc": "comfyui-inputs",
                "volume_handle": "sandbox-comfyui-inputs",
                "mount_path": "/app/ComfyUI/input"
            }
        ],
        "ingress": {
            "name": "comfyui",
            "scheme": "internal",
            "inbound_cidrs": ["10.2.0.0/16", "192.168.0.0/24"],
            "health_check_path": "/system_stats",
            "stickiness_seconds": 300,
            "idle_timeout_seconds": 4000,
            "tags": {"comfyplat:platform": "sandbox", "team": "art"},
            "origin_conditions": null,
            "certificate_arn": null
        },
        "network_policy": {"allow_from": ["10.2.0.0/16"]}
    })
}

/// Renders with the overrides of `dir`, as the commands load them.
fn render_from(context: &Value, dir: Option<&Path>) -> Result<Vec<Rendered>, TemplateError> {
    render(context, &load(dir)?)
}

fn render_ok(context: &Value) -> Vec<Rendered> {
    match render_from(context, None) {
        Ok(rendered) => rendered,
        Err(error) => panic!("{error}"),
    }
}

fn find<'a>(rendered: &'a [Rendered], kind: &str, name: &str) -> &'a Value {
    rendered
        .iter()
        .map(|rendered| &rendered.object)
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} `{name}` rendered"))
}

fn kinds(rendered: &[Rendered]) -> Vec<String> {
    rendered
        .iter()
        .map(|rendered| {
            format!(
                "{} {}",
                rendered.object["kind"].as_str().unwrap(),
                rendered.object["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// The model agent's script, as its ConfigMap holds it.
fn agent_script(rendered: &[Rendered]) -> String {
    find(rendered, "ConfigMap", "comfyplat-model-agent")["data"]["agent.sh"]
        .as_str()
        .unwrap()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn container<'a>(deployment: &'a Value, name: &str, list: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"][list]
        .as_array()
        .unwrap()
        .iter()
        .find(|container| container["name"] == name)
        .unwrap_or_else(|| panic!("no {list} entry `{name}`"))
}

#[test]
fn renders_every_object_in_template_order() {
    let rendered = render_ok(&context());
    assert_eq!(
        kinds(&rendered),
        [
            "Namespace comfyui",
            "ServiceAccount comfyui",
            "EC2NodeClass sandbox-gpu",
            "NodePool sandbox-gpu",
            "ServiceAccount comfyplat-model-agent",
            "ConfigMap comfyplat-model-agent",
            "DaemonSet comfyplat-model-agent",
            "PersistentVolume sandbox-comfyui-outputs",
            "PersistentVolumeClaim comfyui-outputs",
            "PersistentVolume sandbox-comfyui-inputs",
            "PersistentVolumeClaim comfyui-inputs",
            "Deployment comfyui",
            "Service comfyui",
            "Ingress comfyui",
            "NetworkPolicy comfyui",
        ]
    );
    let templates: Vec<&str> = rendered.iter().map(|r| r.template.as_str()).collect();
    assert_eq!(templates[0], "namespace.yaml.j2");
    assert_eq!(templates[4], "model-agent.yaml.j2");
    assert_eq!(templates[7], "volumes.yaml.j2");
    assert_eq!(templates[14], "networkpolicy.yaml.j2");
}

#[test]
fn every_rendered_object_matches_its_snapshot() {
    let rendered = render_ok(&context());
    for Rendered { template, object } in rendered {
        let mut object = object;
        if object["kind"] == "ConfigMap" {
            // The script is tested by running it (tests/it/model_agent.rs).
            object["data"]["agent.sh"] = json!("<the model agent's script>");
        }
        if object["kind"] == "DaemonSet" {
            object["spec"]["template"]["metadata"]["annotations"]["comfyplat.io/script-sha256"] =
                json!("<its SHA-256>");
        }
        let name = format!(
            "{}-{}",
            object["kind"].as_str().unwrap().to_lowercase(),
            object["metadata"]["name"].as_str().unwrap()
        );
        insta::with_settings!({ description => template, omit_expression => true }, {
            insta::assert_json_snapshot!(name, object);
        });
    }
}

#[test]
fn every_object_carries_the_ownership_labels_and_its_namespace() {
    let context = context();
    for Rendered { template, object } in render_ok(&context) {
        let labels = &object["metadata"]["labels"];
        for (key, value) in context["labels"].as_object().unwrap() {
            assert_eq!(&labels[key], value, "{template}: label {key}");
        }
        let name = if template == "model-agent.yaml.j2" {
            "comfyplat-model-agent"
        } else {
            "comfyui"
        };
        assert_eq!(labels["app.kubernetes.io/name"], name, "{template}");
        assert_eq!(
            labels["app.kubernetes.io/instance"], "sandbox",
            "{template}"
        );
        let cluster_scoped = ["Namespace", "PersistentVolume", "NodePool", "EC2NodeClass"];
        let kind = object["kind"].as_str().unwrap();
        if cluster_scoped.contains(&kind) {
            assert!(object["metadata"].get("namespace").is_none(), "{kind}");
        } else {
            assert_eq!(object["metadata"]["namespace"], "comfyui", "{kind}");
        }
    }
}

#[test]
fn selectors_match_the_pod_labels() {
    let rendered = render_ok(&context());
    let deployment = find(&rendered, "Deployment", "comfyui");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector =
        json!({"app.kubernetes.io/name": "comfyui", "app.kubernetes.io/instance": "sandbox"});
    assert_eq!(pod_labels, &selector);
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(
        find(&rendered, "Service", "comfyui")["spec"]["selector"],
        selector
    );
    assert_eq!(
        find(&rendered, "NetworkPolicy", "comfyui")["spec"]["podSelector"]["matchLabels"],
        selector
    );
}

#[test]
fn numbers_stay_numbers_and_strings_stay_strings() {
    let mut context = context();
    // Values YAML would read as a boolean, a number or null if they were not quoted.
    context["aws_tags"]["flag"] = json!("yes");
    context["aws_tags"]["cost-center"] = json!("0420");
    context["aws_tags"]["empty"] = json!("null");
    context["karpenter"]["budget_nodes"] = json!("10%");
    let rendered = render_ok(&context);
    let tags = &find(&rendered, "EC2NodeClass", "sandbox-gpu")["spec"]["tags"];
    assert_eq!(tags["flag"], "yes");
    assert_eq!(tags["cost-center"], "0420");
    assert_eq!(tags["empty"], "null");
    let node_pool = find(&rendered, "NodePool", "sandbox-gpu");
    assert_eq!(
        node_pool["spec"]["disruption"]["budgets"],
        json!([{"nodes": "10%"}])
    );
    // Quantities are strings, as the API server echoes them back.
    assert_eq!(node_pool["spec"]["limits"]["nvidia.com/gpu"], "8");
    let deployment = find(&rendered, "Deployment", "comfyui");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let comfyui = container(deployment, "comfyui", "containers");
    assert_eq!(comfyui["ports"][0]["containerPort"], 8848);
    assert_eq!(comfyui["resources"]["requests"]["nvidia.com/gpu"], "1");
    assert_eq!(comfyui["resources"]["requests"]["cpu"], "4");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        1000
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"],
        "true"
    );
    let node_class = find(&rendered, "EC2NodeClass", "sandbox-gpu");
    assert_eq!(
        node_class["spec"]["metadataOptions"]["httpPutResponseHopLimit"],
        2
    );
    assert_eq!(
        node_class["spec"]["blockDeviceMappings"][0]["ebs"]["volumeSize"],
        "100Gi"
    );
}

#[test]
fn a_missing_context_key_is_an_error_naming_the_template_and_line() {
    let mut context = context();
    context["comfyui"].as_object_mut().unwrap().remove("image");
    let error = render_from(&context, None).unwrap_err();
    assert_eq!(error.template, "deployment.yaml.j2");
    assert!(error.line.is_some(), "{error}");
    assert!(error.message.contains("undefined"), "{error}");
    assert!(error.message.contains("comfyui.image"), "{error}");
    assert!(
        error.to_string().starts_with(&format!(
            "template `deployment.yaml.j2` line {}: ",
            error.line.unwrap()
        )),
        "{error}"
    );
}

#[test]
fn a_missing_key_used_by_a_partial_names_the_partial() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "model-agent.sh.j2",
        "#!/bin/sh\necho {{ nope.bucket }}\n",
    );
    let error = render_from(&context(), Some(dir.path())).unwrap_err();
    assert_eq!(error.template, "model-agent.sh.j2", "{error}");
    assert!(error.message.contains("nope"), "{error}");
}

#[test]
fn a_missing_top_level_key_is_an_error() {
    let mut context = context();
    context.as_object_mut().unwrap().remove("network_policy");
    let error = render_from(&context, None).unwrap_err();
    assert_eq!(error.template, "networkpolicy.yaml.j2", "{error}");
}

#[test]
fn an_override_replaces_one_template() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "service.yaml.j2",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ comfyui.name | tojson }}\n  namespace: {{ comfyui.namespace | tojson }}\nspec:\n  type: NodePort\n",
    );
    write(dir.path(), "README.md", "other files are ignored\n");
    let embedded = render_ok(&context());
    let overridden = render_from(&context(), Some(dir.path())).unwrap();
    assert_eq!(kinds(&embedded), kinds(&overridden));
    for (embedded, overridden) in embedded.iter().zip(&overridden) {
        if overridden.template == "service.yaml.j2" {
            assert_eq!(overridden.object["spec"], json!({"type": "NodePort"}));
        } else {
            assert_eq!(embedded, overridden);
        }
    }
}

#[test]
fn an_override_of_the_agent_script_is_used_and_restarts_the_agents() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "model-agent.sh.j2",
        "#!/bin/sh\necho {{ buckets.models | shell_quote }}\n",
    );
    let embedded = render_ok(&context());
    let rendered = render_from(&context(), Some(dir.path())).unwrap();
    assert_eq!(
        agent_script(&rendered),
        "#!/bin/sh\necho 'comfyui-models-123456789012-us-west-2'"
    );
    let hash = |rendered: &[Rendered]| {
        find(rendered, "DaemonSet", "comfyplat-model-agent")["spec"]["template"]["metadata"]
            ["annotations"]["comfyplat.io/script-sha256"]
            .clone()
    };
    assert_ne!(hash(&embedded), hash(&rendered));
    let text = agent_script(&rendered);
    let expected: String = {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(hash(&rendered), json!(expected));
}

#[test]
fn the_configmap_holds_exactly_the_partial_rendered_alone() {
    let rendered = render_ok(&context());
    let alone = render_partial("model-agent.sh.j2", &context(), &Sources::embedded()).unwrap();
    assert_eq!(agent_script(&rendered), alone);
    assert!(alone.starts_with("#!/bin/sh\n"), "{alone}");
    assert!(render_partial("deployment.yaml.j2", &context(), &Sources::embedded()).is_err());
}

#[test]
fn the_agent_runs_on_the_gpu_pool_with_read_only_script_and_its_own_identity() {
    let rendered = render_ok(&context());
    let daemonset = find(&rendered, "DaemonSet", "comfyplat-model-agent");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"],
        json!({"karpenter.sh/nodepool": "sandbox-gpu"})
    );
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    assert_eq!(pod["serviceAccountName"], "comfyplat-model-agent");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let agent = container(daemonset, "agent", "containers");
    assert_eq!(agent["image"], "public.ecr.aws/aws-cli/aws-cli:2.31.39");
    assert_eq!(agent["command"], json!(["/bin/sh", "/comfyplat/agent.sh"]));
    let env: BTreeMap<String, Value> = agent["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        env["COMFYPLAT_BUCKET"],
        "comfyui-models-123456789012-us-west-2"
    );
    assert_eq!(env["COMFYPLAT_PREFIXES"], "checkpoints/ loras/");
    assert_eq!(env["COMFYPLAT_ROOT"], "/cache");
    assert_eq!(env["COMFYPLAT_RESERVE_BYTES"], "21474836480");
    assert_eq!(env["AWS_REGION"], "us-west-2");
    assert_eq!(agent["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        agent["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    let cache = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "cache")
        .unwrap();
    assert_eq!(
        cache["hostPath"],
        json!({"path": "/mnt/k8s-disks/0/comfyplat", "type": "DirectoryOrCreate"})
    );
    // The agent's pods never match ComfyUI's selectors.
    let labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "comfyplat-model-agent");
    // The node class builds the instance-store array and runs no script of comfyplat's.
    let node_class = find(&rendered, "EC2NodeClass", "sandbox-gpu");
    assert_eq!(node_class["spec"]["instanceStorePolicy"], "RAID0");
    assert!(node_class["spec"].get("userData").is_none());
}

#[test]
fn an_unknown_override_file_is_refused_with_the_known_names() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "servise.yaml.j2", "kind: Service\n");
    let error = render_from(&context(), Some(dir.path())).unwrap_err();
    assert!(error.template.ends_with("servise.yaml.j2"), "{error}");
    for name in TEMPLATE_NAMES.iter().chain(PARTIAL_NAMES) {
        assert!(error.message.contains(&format!("`{name}`")), "{error}");
    }
}

#[test]
fn a_missing_override_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = render_from(&context(), Some(&missing)).unwrap_err();
    assert_eq!(error.template, missing.display().to_string());
    assert!(
        error
            .message
            .contains("cannot read the templates directory"),
        "{error}"
    );
}

#[test]
fn a_syntax_error_in_an_override_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ingress.yaml.j2",
        "apiVersion: v1\n\n{% if %}\n",
    );
    let error = render_from(&context(), Some(dir.path())).unwrap_err();
    assert_eq!(error.template, "ingress.yaml.j2");
    assert_eq!(error.line, Some(3), "{error}");
    assert!(error.message.contains("syntax error"), "{error}");
}

#[test]
fn rendered_output_that_is_not_a_kubernetes_object_is_refused() {
    let cases = [
        (
            "kind: Service\nmetadata:\n  name: x\n",
            "`apiVersion` is missing",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {}\n",
            "`metadata.name` is missing",
        ),
        ("- a\n- b\n", "not a mapping"),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  namespace: 7\n",
            "`metadata.namespace` is not a non-empty string",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  selector:\n    app: null\n",
            "`spec.selector.app` is null",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  name: y\n",
            "not valid YAML at rendered line",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n",
            "not valid YAML",
        ),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "service.yaml.j2", text);
        let error = render_from(&context(), Some(dir.path())).unwrap_err();
        assert_eq!(error.template, "service.yaml.j2", "{error}");
        assert!(error.message.contains(expected), "{text:?}: {error}");
    }
}

#[test]
fn the_same_object_rendered_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "service.yaml.j2",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: comfyui\n  namespace: comfyui\n",
    );
    let error = render_from(&context(), Some(dir.path())).unwrap_err();
    assert_eq!(error.template, "service.yaml.j2");
    assert!(
        error
            .message
            .contains("ServiceAccount `comfyui/comfyui` a second time")
            && error.message.contains("`serviceaccount.yaml.j2`"),
        "{error}"
    );
}

#[test]
fn empty_documents_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "service.yaml.j2",
        "---\n# nothing\n---\n\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n",
    );
    let rendered = render_from(&context(), Some(dir.path())).unwrap();
    let services: Vec<_> = rendered
        .iter()
        .filter(|rendered| rendered.template == "service.yaml.j2")
        .collect();
    assert_eq!(services.len(), 1);
}

#[test]
fn without_inputs_there_is_no_inputs_volume_claim_or_mount() {
    let mut context = context();
    context["buckets"]["inputs"] = Value::Null;
    context["volumes"].as_array_mut().unwrap().truncate(1);
    let rendered = render_ok(&context);
    let names = kinds(&rendered);
    assert!(
        names.iter().all(|name| !name.contains("inputs")),
        "{names:?}"
    );
    let deployment = find(&rendered, "Deployment", "comfyui");
    let text = deployment.to_string();
    assert!(
        !text.contains("inputs") && !text.contains("/app/ComfyUI/input\""),
        "{text}"
    );
    let mounts = &container(deployment, "comfyui", "containers")["volumeMounts"];
    assert_eq!(mounts.as_array().unwrap().len(), 2);
}

#[test]
fn without_a_network_policy_none_is_rendered() {
    let mut context = context();
    context["network_policy"] = Value::Null;
    let rendered = render_ok(&context);
    assert!(
        rendered
            .iter()
            .all(|rendered| rendered.object["kind"] != "NetworkPolicy")
    );
    assert_eq!(rendered.len(), 14);
}

#[test]
fn the_network_policy_admits_the_listed_cidrs_to_the_comfyui_port_only() {
    let mut context = context();
    context["network_policy"]["allow_from"] = json!(["10.2.0.0/16", "100.64.0.0/16"]);
    let rendered = render_ok(&context);
    let policy = find(&rendered, "NetworkPolicy", "comfyui");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{
            "from": [{"ipBlock": {"cidr": "10.2.0.0/16"}}, {"ipBlock": {"cidr": "100.64.0.0/16"}}],
            "ports": [{"protocol": "TCP", "port": 8848}]
        }])
    );
    assert!(policy["spec"].get("egress").is_none());
}

#[test]
fn capacity_types_follow_the_spot_policy() {
    for capacity_types in [
        json!(["spot"]),
        json!(["on-demand"]),
        json!(["spot", "on-demand"]),
    ] {
        let mut context = context();
        context["karpenter"]["capacity_types"] = capacity_types.clone();
        let rendered = render_ok(&context);
        let requirements =
            &find(&rendered, "NodePool", "sandbox-gpu")["spec"]["template"]["spec"]["requirements"];
        assert_eq!(
            requirements[0],
            json!({"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types})
        );
    }
}

#[test]
fn the_node_pool_carries_the_cost_guardrails() {
    let mut context = context();
    context["karpenter"]["consolidation_policy"] = json!("WhenEmptyOrUnderutilized");
    context["karpenter"]["expire_after"] = json!("Never");
    context["karpenter"]["max_gpus"] = json!(16);
    let rendered = render_ok(&context);
    let spec = &find(&rendered, "NodePool", "sandbox-gpu")["spec"];
    assert_eq!(spec["limits"], json!({"nvidia.com/gpu": "16"}));
    assert_eq!(
        spec["disruption"],
        json!({"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "30m", "budgets": [{"nodes": "1"}]})
    );
    assert_eq!(spec["template"]["spec"]["expireAfter"], "Never");
    assert_eq!(
        spec["template"]["spec"]["taints"],
        json!([{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])
    );
    assert_eq!(
        spec["template"]["spec"]["startupTaints"],
        json!([{"key": "s3.csi.aws.com/agent-not-ready", "effect": "NoExecute"}])
    );
    // Karpenter refuses node labels in the kubernetes.io domain.
    let node_labels = spec["template"]["metadata"]["labels"].as_object().unwrap();
    assert!(node_labels.keys().all(|key| !key.contains("kubernetes.io")));
    assert_eq!(node_labels["comfyplat.io/pool"], "gpu");
}

#[test]
fn without_cpu_and_memory_only_gpus_are_requested() {
    let mut context = context();
    context["comfyui"]["cpu"] = Value::Null;
    context["comfyui"]["memory"] = Value::Null;
    context["comfyui"]["gpus"] = json!(2);
    let rendered = render_ok(&context);
    let comfyui = container(
        find(&rendered, "Deployment", "comfyui"),
        "comfyui",
        "containers",
    );
    assert_eq!(
        comfyui["resources"],
        json!({"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}})
    );
}

#[test]
fn the_strategy_has_no_rolling_update_block() {
    for strategy in ["Recreate", "RollingUpdate"] {
        let mut context = context();
        context["comfyui"]["strategy"] = json!(strategy);
        let rendered = render_ok(&context);
        assert_eq!(
            find(&rendered, "Deployment", "comfyui")["spec"]["strategy"],
            json!({"type": strategy})
        );
    }
}

#[test]
fn the_init_container_waits_for_the_agents_first_sync_and_fails_with_its_status() {
    let rendered = render_ok(&context());
    let deployment = find(&rendered, "Deployment", "comfyui");
    let wait = container(deployment, "wait-for-models", "initContainers");
    let command = wait["command"].as_array().unwrap();
    assert_eq!(command[0], "/bin/sh");
    assert_eq!(command[4], "/comfyplat-cache");
    assert_eq!(command[5], "3600");
    assert_eq!(wait["image"], context()["comfyui"]["image"]);
    assert_eq!(
        wait["volumeMounts"],
        json!([{"name": "model-cache", "mountPath": "/comfyplat-cache", "readOnly": true}])
    );
    let comfyui = container(deployment, "comfyui", "containers");
    assert!(comfyui["volumeMounts"].as_array().unwrap().contains(
        &json!({"name": "models", "mountPath": "/app/ComfyUI/models", "readOnly": true})
    ));
    if !Path::new("/bin/sh").exists() {
        return;
    }
    // Run it for real against status files in the agent's format.
    let run = |status: Option<&str>, timeout: &str| {
        let dir = tempfile::tempdir().unwrap();
        if let Some(status) = status {
            std::fs::write(dir.path().join("status.json"), status).unwrap();
        }
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command[2].as_str().unwrap())
            .arg("wait-for-models")
            .arg(dir.path())
            .arg(timeout)
            .env("NODE_NAME", "ip-10-0-1-1")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let synced = r#"{"agent":"comfyplat-model-agent","node":"ip-10-0-1-1","state":"synced","first_sync_done":true,"errors":[]}"#;
    let (ok, out, _) = run(Some(synced), "0");
    assert!(ok && out.contains("\"state\":\"synced\""), "{out}");
    let failing = r#"{"agent":"comfyplat-model-agent","node":"ip-10-0-1-1","state":"error","first_sync_done":false,"errors":["AccessDenied on ListObjectsV2"]}"#;
    let (ok, _, err) = run(Some(failing), "0");
    assert!(
        !ok && err.contains("AccessDenied on ListObjectsV2"),
        "{err}"
    );
    let full = r#"{"agent":"comfyplat-model-agent","state":"does_not_fit","first_sync_done":false,"errors":["needs 90 GiB, 40 GiB free"]}"#;
    let (ok, _, err) = run(Some(full), "3600");
    assert!(
        !ok && err.contains("do not fit") && err.contains("needs 90 GiB"),
        "{err}"
    );
    let (ok, _, err) = run(None, "0");
    assert!(!ok && err.contains("no status"), "{err}");
}
#[test]
fn shell_quote_quotes_single_quotes() {
    let quote = |value: minijinja::Value| shell_quote(&value).unwrap();
    assert_eq!(quote(minijinja::Value::from("a b")), "'a b'");
    assert_eq!(quote(minijinja::Value::from("it's")), r"'it'\''s'");
    assert_eq!(quote(minijinja::Value::from(1000)), "'1000'");
    assert!(shell_quote(&minijinja::Value::UNDEFINED).is_err());
}

#[test]
fn the_error_display_names_the_template_and_line() {
    let error = TemplateError {
        template: "deployment.yaml.j2".to_string(),
        line: Some(12),
        message: "undefined value".to_string(),
    };
    assert_eq!(
        error.to_string(),
        "template `deployment.yaml.j2` line 12: undefined value"
    );
    let error = TemplateError {
        line: None,
        ..error
    };
    assert_eq!(
        error.to_string(),
        "template `deployment.yaml.j2`: undefined value"
    );
}

#[test]
fn every_template_name_is_embedded_once() {
    let names: Vec<&str> = EMBEDDED.iter().map(|(name, _)| *name).collect();
    let expected: Vec<&str> = TEMPLATE_NAMES
        .iter()
        .chain(PARTIAL_NAMES)
        .copied()
        .collect();
    assert_eq!(names, expected);
}

/// Everything inventory sections 1.8-1.11 say the reference's manifests set, minus what the
/// inventory shows to be broken, object by object. The broken or replaced items are listed
/// at the end with what comfyplat renders instead.
#[test]
fn rendered_manifests_cover_what_the_reference_sets() {
    let context = context();
    let rendered = render_ok(&context);

    // 1.8 NodePool
    let node_pool = find(&rendered, "NodePool", "sandbox-gpu");
    assert_eq!(node_pool["apiVersion"], "karpenter.sh/v1");
    let template = &node_pool["spec"]["template"]["spec"];
    let requirement = |key: &str| {
        template["requirements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|requirement| requirement["key"] == key)
            .unwrap_or_else(|| panic!("no requirement {key}"))
            .clone()
    };
    assert_eq!(
        requirement("karpenter.sh/capacity-type")["values"],
        json!(["spot", "on-demand"])
    );
    assert_eq!(
        requirement("node.kubernetes.io/instance-type")["values"],
        json!(["g6.2xlarge", "g5.2xlarge"])
    );
    assert_eq!(requirement("kubernetes.io/os")["values"], json!(["linux"]));
    assert_eq!(
        requirement("kubernetes.io/arch")["values"],
        json!(["amd64"])
    );
    assert_eq!(
        template["nodeClassRef"],
        json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "sandbox-gpu"})
    );
    let disruption = &node_pool["spec"]["disruption"];
    assert_eq!(disruption["consolidationPolicy"], "WhenEmpty");
    assert_eq!(disruption["consolidateAfter"], "30m");
    assert_eq!(disruption["budgets"], json!([{"nodes": "1"}]));
    assert_eq!(template["expireAfter"], "720h");

    // 1.8 EC2NodeClass
    let node_class = find(&rendered, "EC2NodeClass", "sandbox-gpu");
    assert_eq!(node_class["apiVersion"], "karpenter.k8s.aws/v1");
    let spec = &node_class["spec"];
    assert_eq!(
        spec["amiSelectorTerms"],
        json!([{"alias": "al2023@v20260828"}])
    );
    assert_eq!(spec["role"], "KarpenterNodeRole-comfyui-sandbox");
    assert_eq!(
        spec["blockDeviceMappings"],
        json!([{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "100Gi", "volumeType": "gp3", "encrypted": true, "deleteOnTermination": true}}])
    );
    assert_eq!(spec["metadataOptions"]["httpEndpoint"], "enabled");
    assert_eq!(spec["metadataOptions"]["httpTokens"], "required");
    assert_eq!(spec["tags"]["team"], "art");
    assert_eq!(spec["tags"]["comfyplat:platform"], "sandbox");
    // the instance store is one RAID0 array under kubelet, containerd and the model cache
    // (the reference formatted a hard-coded /dev/nvme1n1 in userData instead)
    assert_eq!(spec["instanceStorePolicy"], "RAID0");
    assert!(!spec.as_object().unwrap().contains_key("userData"));

    // 1.10 PV/PVC per bucket
    let mut handles = Vec::new();
    for (purpose, pv_name, pvc_name, bucket) in [
        (
            "outputs",
            "sandbox-comfyui-outputs",
            "comfyui-outputs",
            "comfyui-outputs-123456789012-us-west-2",
        ),
        (
            "inputs",
            "sandbox-comfyui-inputs",
            "comfyui-inputs",
            "comfyui-inputs-123456789012-us-west-2",
        ),
    ] {
        let pv = &find(&rendered, "PersistentVolume", pv_name)["spec"];
        assert_eq!(pv["capacity"]["storage"], "1200Gi", "{purpose}");
        assert_eq!(pv["accessModes"], json!(["ReadWriteMany"]), "{purpose}");
        let options = pv["mountOptions"].as_array().unwrap();
        assert!(options.contains(&json!("allow-delete")), "{purpose}");
        assert!(options.contains(&json!("region us-west-2")), "{purpose}");
        assert_eq!(pv["csi"]["driver"], "s3.csi.aws.com", "{purpose}");
        assert_eq!(
            pv["csi"]["volumeAttributes"]["bucketName"], bucket,
            "{purpose}"
        );
        assert_eq!(pv["storageClassName"], "", "{purpose}");
        handles.push(pv["csi"]["volumeHandle"].as_str().unwrap().to_string());
        let pvc = &find(&rendered, "PersistentVolumeClaim", pvc_name)["spec"];
        assert_eq!(pvc["storageClassName"], "", "{purpose}");
        assert_eq!(pvc["accessModes"], json!(["ReadWriteMany"]), "{purpose}");
        assert_eq!(pvc["volumeName"], pv_name, "{purpose}");
        assert_eq!(
            pvc["resources"]["requests"]["storage"], "1200Gi",
            "{purpose}"
        );
    }
    handles.sort();
    handles.dedup();
    assert_eq!(handles.len(), 2, "volumeHandles must be unique");

    // 1.11 Deployment
    let deployment = find(&rendered, "Deployment", "comfyui");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "comfyui");
    let comfyui = container(deployment, "comfyui", "containers");
    assert_eq!(comfyui["image"], context["comfyui"]["image"]);
    assert_eq!(comfyui["ports"][0]["containerPort"], 8848);
    assert_eq!(comfyui["resources"]["requests"]["nvidia.com/gpu"], "1");
    assert_eq!(comfyui["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(
        comfyui["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        comfyui["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(volumes.contains(
        &json!({"name": "models", "hostPath": {"path": "/mnt/k8s-disks/0/comfyplat/models", "type": "DirectoryOrCreate"}})
    ));
    assert!(volumes.contains(
        &json!({"name": "outputs", "persistentVolumeClaim": {"claimName": "comfyui-outputs"}})
    ));
    assert!(volumes.contains(
        &json!({"name": "inputs", "persistentVolumeClaim": {"claimName": "comfyui-inputs"}})
    ));
    let mounts = comfyui["volumeMounts"].as_array().unwrap();
    assert!(mounts.contains(
        &json!({"name": "models", "mountPath": "/app/ComfyUI/models", "readOnly": true})
    ));
    assert!(mounts.contains(&json!({"name": "outputs", "mountPath": "/app/ComfyUI/output"})));
    assert!(mounts.contains(&json!({"name": "inputs", "mountPath": "/app/ComfyUI/input"})));

    // 1.11 Service and Ingress
    let service = find(&rendered, "Service", "comfyui");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let ingress = find(&rendered, "Ingress", "comfyui");
    assert_eq!(ingress["spec"]["ingressClassName"], "alb");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(annotations["alb.ingress.kubernetes.io/scheme"], "internal");
    assert_eq!(annotations["alb.ingress.kubernetes.io/target-type"], "ip");
    assert_eq!(
        annotations["alb.ingress.kubernetes.io/target-group-attributes"],
        "stickiness.enabled=true,stickiness.lb_cookie.duration_seconds=300"
    );
    assert_eq!(
        annotations["alb.ingress.kubernetes.io/load-balancer-attributes"],
        "idle_timeout.timeout_seconds=4000"
    );
    assert_eq!(
        annotations["alb.ingress.kubernetes.io/tags"],
        "comfyplat:platform=sandbox,team=art"
    );
    assert_eq!(
        ingress["spec"]["rules"],
        json!([{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "comfyui", "port": {"name": "http"}}}}]}}])
    );

    // 1.11 NetworkPolicy: ingress from the listed CIDRs to the ComfyUI port
    let policy = find(&rendered, "NetworkPolicy", "comfyui");
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"],
        json!([{"protocol": "TCP", "port": 8848}])
    );

    // 1.11 PodSecurity labels: audit and warn, never an enforce level hostPath breaks
    let namespace = find(&rendered, "Namespace", "comfyui");
    let labels = &namespace["metadata"]["labels"];
    assert!(labels.get("pod-security.kubernetes.io/audit").is_some());
    assert!(labels.get("pod-security.kubernetes.io/warn").is_some());
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");

    // What the inventory shows to be broken, and what is rendered instead:
    // - NVMe at a hard-coded /dev/nvme1n1, models copied once at boot by userData with
    //   failures ignored: Karpenter builds the array, and the model agent keeps the cache in
    //   step and reports (tests/it/model_agent.rs runs it);
    assert!(
        !rendered
            .iter()
            .any(|r| r.object.to_string().contains("nvme1n1"))
    );
    assert!(rendered.iter().any(|r| r.object["kind"] == "DaemonSet"));
    // - no GPU taint, no limits: both present;
    assert!(template["taints"].is_array() && node_pool["spec"]["limits"].is_object());
    // - metadata hop limit 1 (breaks Mountpoint v2 in pods): 2;
    assert_eq!(spec["metadataOptions"]["httpPutResponseHopLimit"], 2);
    // - a PodDisruptionBudget that cannot protect one replica, and no do-not-disrupt:
    //   karpenter.sh/do-not-disrupt on the pods, no PDB;
    assert!(
        rendered
            .iter()
            .all(|r| r.object["kind"] != "PodDisruptionBudget")
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"],
        "true"
    );
    // - the video emptyDir grown by an unpinned `aws-cli:latest` sidecar: neither;
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    assert!(
        volumes
            .iter()
            .all(|volume| volume.get("emptyDir").is_none())
    );
    // - runs as root, no probes, default RollingUpdate needing a second GPU node:
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            comfyui[probe]["httpGet"]["path"], "/system_stats",
            "{probe}"
        );
        assert_eq!(comfyui[probe]["httpGet"]["port"], "http", "{probe}");
    }
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    // - a NodePort Service the ALB (target-type ip) never used: ClusterIP;
    assert_eq!(service["spec"]["type"], "ClusterIP");
    // - NetworkPolicy egress without the Pod Identity endpoint: no egress rules.
    assert!(policy["spec"].get("egress").is_none());
    // - GPU pods could land anywhere, nothing kept other pods off GPU nodes:
    assert_eq!(pod["nodeSelector"]["karpenter.sh/nodepool"], "sandbox-gpu");
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
}

#[test]
fn behind_cloudfront_the_ingress_requires_the_secret_header() {
    let mut context = context();
    let conditions = crate::model::kinds::cloudfront_distribution::origin_condition().to_string();
    context["ingress"]["origin_conditions"] = json!(conditions);
    context["ingress"]["certificate_arn"] =
        json!("arn:aws:acm:us-west-2:123456789012:certificate/abc");
    let rendered = render_ok(&context);
    let ingress = find(&rendered, "Ingress", "comfyui");
    let annotations = &ingress["metadata"]["annotations"];
    let condition: Value = serde_json::from_str(
        annotations["alb.ingress.kubernetes.io/conditions.comfyui"]
            .as_str()
            .expect("the conditions annotation is a string"),
    )
    .expect("the conditions annotation is JSON");
    assert_eq!(condition[0]["field"], "http-header");
    assert_eq!(
        condition[0]["httpHeaderConfig"]["httpHeaderName"],
        "X-Origin-Verify"
    );
    assert_eq!(
        condition[0]["httpHeaderConfig"]["values"][0],
        "((secret:origin-secret))"
    );
    assert_eq!(
        annotations["alb.ingress.kubernetes.io/listen-ports"],
        r#"[{"HTTP": 80}, {"HTTPS": 443}]"#
    );
    assert_eq!(
        annotations["alb.ingress.kubernetes.io/certificate-arn"],
        "arn:aws:acm:us-west-2:123456789012:certificate/abc"
    );
    // Without CloudFront neither annotation is rendered.
    let plain = render_ok(&super::tests::context());
    let annotations = &find(&plain, "Ingress", "comfyui")["metadata"]["annotations"];
    assert!(
        annotations
            .get("alb.ingress.kubernetes.io/conditions.comfyui")
            .is_none()
    );
    assert!(
        annotations
            .get("alb.ingress.kubernetes.io/listen-ports")
            .is_none()
    );
}
