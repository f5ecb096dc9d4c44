//! The Kubernetes side of the model: the template context built from platform.yaml and
//! the cluster, the object kinds comfyplat renders, and the flat field view that plan
//! compares (the kind itself, with its rendering and dependencies, is
//! [`super::kinds::k8s_object`]).
//!
//! Fields are the rendered object flattened to dotted paths, without `apiVersion`, `kind`,
//! `metadata.name` and `metadata.namespace` (they are the identity). Lists whose items all
//! have a distinct `name` are keyed by it (`spec.template.spec.containers[comfyui].image`),
//! as server-side apply merges them; other lists of objects by position
//! (`spec.template.spec.requirements[1].values`); lists of scalars are one value. The plan
//! compares only the paths comfyplat renders or rendered last time, so what the API server
//! fills in by default never shows up as a change.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::kinds::{ecr_repository, iam_role};
use super::{Address, Environment, Fields};
use crate::config::{BucketPurpose, Platform};

/// Label on every Kubernetes object comfyplat owns: `app.kubernetes.io/managed-by=comfyplat`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "comfyplat";
/// Label with the platform name: how pruning finds what is ours.
pub const PLATFORM_LABEL: &str = "comfyplat.io/platform";
/// The label that records the lineage of the state an object was applied from.
pub const STATE_LABEL: &str = "comfyplat.io/state";
/// The live attribute holding an Ingress's load balancer hostname (from its status).
pub const INGRESS_HOSTNAME: &str = "load_balancer_hostname";
/// The key of the full manifest in a resource's parameters.
pub const MANIFEST: &str = "manifest";

/// The kinds comfyplat renders, as (apiVersion, kind, plural, namespaced), in apply order.
pub const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    (
        "karpenter.k8s.aws/v1",
        "EC2NodeClass",
        "ec2nodeclasses",
        false,
    ),
    ("karpenter.sh/v1", "NodePool", "nodepools", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "PersistentVolume", "persistentvolumes", false),
    (
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    ("apps/v1", "Deployment", "deployments", true),
    ("v1", "Service", "services", true),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
];

/// The plural and scope of a kind comfyplat renders.
pub fn kind_info(api_version: &str, kind: &str) -> Option<(&'static str, bool)> {
    KINDS
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
        .map(|(_, _, plural, namespaced)| (*plural, *namespaced))
}

/// Address of a Kubernetes object: `k8s.apps/v1.Deployment.comfyui/comfyui`.
pub fn object_address(api_version: &str, kind: &str, namespace: &str, name: &str) -> Address {
    if namespace.is_empty() {
        Address::new(format!("k8s.{api_version}.{kind}.{name}"))
    } else {
        Address::new(format!("k8s.{api_version}.{kind}.{namespace}/{name}"))
    }
}

/// The model cache agent's DaemonSet, ConfigMap and pod label `app.kubernetes.io/name`.
pub const MODEL_AGENT: &str = "comfyplat-model-agent";
/// How often the agent reads the generation marker (a GET of a few bytes).
pub const MODEL_AGENT_CHECK_SECONDS: u32 = 10;
/// How often the agent lists the bucket anyway, for changes made without `comfyplat models`.
pub const MODEL_AGENT_RECONCILE_SECONDS: u32 = 300;
/// How long a ComfyUI pod's init container waits for the first sync on its node: the
/// time to copy a large model set (200 GiB at ~500 MiB/s is 7 minutes) with a margin.
pub const MODEL_AGENT_FIRST_SYNC_TIMEOUT_SECONDS: u32 = 3600;

/// What the templates are rendered from.
pub fn context(platform: &Platform, environment: &Environment) -> Option<Value> {
    let comfyui = platform.comfyui.as_ref()?;
    let pool = &platform.node_pool;
    let bucket = |purpose: BucketPurpose| {
        platform
            .buckets
            .iter()
            .find(|b| b.purpose == purpose)
            .map(|b| platform.bucket_name(b, &environment.account))
    };
    let mut volumes = Vec::new();
    for (purpose, id, mount) in [
        (BucketPurpose::Outputs, "outputs", "/app/ComfyUI/output"),
        (BucketPurpose::Inputs, "inputs", "/app/ComfyUI/input"),
    ] {
        if purpose == BucketPurpose::Inputs && !comfyui.mount_inputs {
            continue;
        }
        if let Some(name) = bucket(purpose) {
            // PersistentVolumes are cluster-wide: the platform name keeps them apart.
            let pv = format!("{}-comfyui-{id}", platform.name);
            volumes.push(json!({
                "purpose": id,
                "bucket": name,
                "pv": pv,
                "pvc": format!("comfyui-{id}"),
                "volume_handle": pv,
                "mount_path": mount,
            }));
        }
    }
    let labels = json!({
        MANAGED_BY_LABEL: MANAGED_BY,
        PLATFORM_LABEL: platform.name,
        STATE_LABEL: environment.state_lineage,
    });
    let tags: BTreeMap<String, String> = environment.resource_tags(platform);
    let pool_name = format!("{}-gpu", platform.name);
    Some(json!({
        "platform": {
            "name": platform.name,
            "region": environment.region,
            "account": environment.account,
            "partition": environment.partition,
        },
        "cluster": {
            "name": environment.cluster.name,
            "version": environment.cluster.version,
            "subnet_ids": environment.cluster.subnet_ids,
            "security_group_ids": environment.cluster.security_group_id.iter().collect::<Vec<_>>(),
        },
        "labels": labels,
        "aws_tags": tags,
        "buckets": {
            "models": bucket(BucketPurpose::Models),
            "outputs": bucket(BucketPurpose::Outputs),
            "inputs": bucket(BucketPurpose::Inputs),
        },
        "karpenter": {
            "node_class": pool_name,
            "node_pool": pool_name,
            "node_role": platform.node_role,
            "instance_types": pool.instance_types,
            "capacity_types": pool.capacity.capacity_types(),
            "max_gpus": pool.max_gpus,
            "ami_alias": pool.ami,
            "root_volume_gib": pool.root_volume_gib,
            "consolidation_policy": pool.consolidation_policy,
            "consolidate_after": pool.consolidate_after,
            "expire_after": pool.expire_after,
            "budget_nodes": pool.disruption_budget,
        },
        "comfyui": {
            "namespace": comfyui.namespace,
            "name": "comfyui",
            "service_account": "comfyui",
            "image": ecr_repository::image(platform, environment, &comfyui.image),
            "replicas": comfyui.replicas,
            "gpus": comfyui.gpus,
            "cpu": comfyui.cpu,
            "memory": comfyui.memory,
            "port": comfyui.port,
            "run_as_user": comfyui.run_as_user,
            "models_host_path": format!("{}/models", comfyui.models_path.trim_end_matches('/')),
            "models_mount": "/app/ComfyUI/models",
            "health_path": comfyui.health_path,
            // Each replica holds whole GPUs: a rolling update would need a spare GPU node.
            "strategy": "Recreate",
        },
        "model_agent": {
            "name": MODEL_AGENT,
            "namespace": comfyui.namespace,
            "service_account": iam_role::AGENT_SERVICE_ACCOUNT,
            "image": comfyui.model_agent.image,
            "host_path": comfyui.models_path.trim_end_matches('/'),
            "prefixes": platform.models_sync.join(" "),
            "reserve_bytes": u64::from(comfyui.model_agent.disk_reserve_gib) << 30,
            "check_seconds": MODEL_AGENT_CHECK_SECONDS,
            "reconcile_seconds": MODEL_AGENT_RECONCILE_SECONDS,
            // How long a ComfyUI pod waits for the agent's first sync on its node.
            "first_sync_timeout_seconds": MODEL_AGENT_FIRST_SYNC_TIMEOUT_SECONDS,
        },
        "volumes": volumes,
        "ingress": {
            "name": "comfyui",
            "scheme": comfyui.ingress.scheme,
            "inbound_cidrs": comfyui.ingress.inbound_cidrs,
            "health_check_path": comfyui.health_path,
            "stickiness_seconds": comfyui.ingress.stickiness_seconds,
            "idle_timeout_seconds": comfyui.ingress.idle_timeout_seconds,
            "tags": tags,
            // With CloudFront in front: only requests carrying its secret header get through.
            "origin_conditions": platform.cdn.as_ref().map(|_| super::kinds::cloudfront_distribution::origin_condition().to_string()),
            "certificate_arn": platform.cdn.as_ref().and_then(|cdn| cdn.origin_certificate_arn.clone()),
        },
        "network_policy": comfyui.network_policy.as_ref().map(|cidrs| json!({"allow_from": cidrs})),
    }))
}

/// The fields of an object: everything but its identity, flattened.
pub fn object_fields(object: &Value) -> Fields {
    let mut fields = Fields::new();
    if let Value::Object(map) = object {
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    if let Value::Object(meta) = value {
                        for key in ["labels", "annotations"] {
                            if let Some(inner) = meta.get(key) {
                                flatten(&mut fields, &format!("metadata.{key}"), inner);
                            }
                        }
                    }
                }
                _ => flatten(&mut fields, key, value),
            }
        }
    }
    fields
}

fn flatten(fields: &mut Fields, prefix: &str, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                flatten(fields, &format!("{prefix}.{key}"), inner);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let names: Vec<Option<&str>> = items
                .iter()
                .map(|item| item.get("name").and_then(Value::as_str))
                .collect();
            let distinct: BTreeSet<&str> = names.iter().flatten().copied().collect();
            let keyed = names.iter().all(Option::is_some) && distinct.len() == items.len();
            for (index, item) in items.iter().enumerate() {
                let key = match names[index] {
                    Some(name) if keyed => name.to_string(),
                    _ => index.to_string(),
                };
                flatten(fields, &format!("{prefix}[{key}]"), item);
            }
        }
        Value::Null => {}
        other => {
            fields.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The live fields worth comparing: those comfyplat renders now or rendered last time.
/// Everything else on a live object belongs to the API server or to someone else.
pub fn comparable(live: &Fields, desired: &Fields, last_applied: Option<&Fields>) -> Fields {
    live.iter()
        .filter(|(path, _)| {
            desired.contains_key(*path) || last_applied.is_some_and(|f| f.contains_key(*path))
        })
        .map(|(path, value)| (path.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_with_names_are_keyed_by_name_and_others_by_position() {
        let object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "comfyui", "namespace": "comfyui", "labels": {"a": "b"}, "uid": "x"},
            "spec": {
                "replicas": 1,
                "template": {"spec": {
                    "containers": [{"name": "comfyui", "image": "i:1", "args": ["--listen"]}],
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                }},
            },
            "status": {"availableReplicas": 1},
        });
        let fields = object_fields(&object);
        let paths: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            vec![
                "metadata.labels.a",
                "spec.replicas",
                "spec.template.spec.containers[comfyui].args",
                "spec.template.spec.containers[comfyui].image",
                "spec.template.spec.containers[comfyui].name",
                "spec.template.spec.tolerations[0].key",
                "spec.template.spec.tolerations[0].operator",
            ]
        );
    }

    #[test]
    fn server_defaults_are_not_compared() {
        let desired = Fields::from([("spec.replicas".to_string(), json!(1))]);
        let live = Fields::from([
            ("spec.replicas".to_string(), json!(3)),
            ("spec.progressDeadlineSeconds".to_string(), json!(600)),
            ("spec.paused".to_string(), json!(false)),
        ]);
        let last = Fields::from([("spec.paused".to_string(), json!(false))]);
        let compared = comparable(&live, &desired, Some(&last));
        assert_eq!(compared.len(), 2);
        assert_eq!(compared.get("spec.replicas"), Some(&json!(3)));
        assert!(!compared.contains_key("spec.progressDeadlineSeconds"));
    }
}
