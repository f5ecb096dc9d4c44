//! The serde schema of `platform.yaml`, version 1, exactly as a user writes it.
//!
//! Every struct rejects unknown fields. Values that need a semantic check later carry
//! their source location (`Spanned`) so that a bad value is reported at `file:line:column`.
//! Nothing here has defaults or derived names: see [`super::validate`] for that.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The top level of `platform.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformFile {
    /// Schema version; this comfyplat understands `1`.
    pub version: Spanned<u32>,
    /// Platform name: used in tags, derived names and the state file name.
    pub name: Spanned<String>,
    /// AWS region everything lives in.
    pub region: Spanned<String>,
    /// Optional guard: comfyplat refuses to touch any other account.
    #[serde(default)]
    pub account: Option<Spanned<String>>,
    /// The existing (adopted) EKS cluster.
    pub cluster: ClusterFile,
    /// The existing Karpenter installation comfyplat builds on.
    pub karpenter: KarpenterFile,
    /// Tags added to every AWS resource comfyplat creates.
    #[serde(default)]
    pub tags: BTreeMap<Key, Spanned<String>>,
    /// The S3 buckets of the platform.
    #[serde(default)]
    pub storage: StorageFile,
    /// Who may use the cluster: EKS access entries and their access policies.
    #[serde(default)]
    pub access: Vec<AccessFile>,
    /// The EKS add-ons comfyplat installs.
    #[serde(default)]
    pub addons: AddonsFile,
    /// How comfyplat reaches the cluster's Kubernetes API (default: on its own).
    #[serde(default)]
    pub kubernetes: KubernetesFile,
    /// The ECR repository for the ComfyUI image; absent means none.
    #[serde(default)]
    pub image_repository: Option<ImageRepositoryFile>,
    /// The ComfyUI workload; absent means comfyplat manages the AWS side only.
    #[serde(default)]
    pub comfyui: Option<ComfyuiFile>,
    /// The CloudFront distribution in front of the ComfyUI load balancer (on by default
    /// when `comfyui` is present).
    #[serde(default)]
    pub cdn: Option<CdnFile>,
    /// A directory whose templates replace the built-in ones of the same name.
    #[serde(default)]
    pub templates_dir: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRepositoryFile {
    /// Repository name (default `comfyui-<name>`).
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// Tags cannot be moved to another image (default `true`).
    #[serde(default)]
    pub immutable_tags: Option<Spanned<bool>>,
    /// Full ARN of a KMS key for SSE-KMS (default: AES256).
    #[serde(default)]
    pub kms_key_arn: Option<Spanned<String>>,
    /// The lifecycle policy keeps the newest this many images (default 20).
    #[serde(default)]
    pub keep_images: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnFile {
    /// `false`: no distribution; browsers reach the load balancer directly.
    #[serde(default)]
    pub enabled: Option<Spanned<bool>>,
    /// `PriceClass_100`, `PriceClass_200` or `PriceClass_All` (default).
    #[serde(default)]
    pub price_class: Option<Spanned<String>>,
    /// How CloudFront talks to the load balancer.
    #[serde(default)]
    pub origin: CdnOriginFile,
    /// Domain names of the distribution (need `certificate_arn`).
    #[serde(default)]
    pub aliases: Option<Spanned<Vec<String>>>,
    /// ACM certificate in us-east-1 covering the aliases.
    #[serde(default)]
    pub certificate_arn: Option<Spanned<String>>,
    /// WAF (v2, CloudFront scope) web ACL ARN.
    #[serde(default)]
    pub web_acl_arn: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnOriginFile {
    /// `http` (default) or `https`.
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    /// ACM certificate in the platform's region for the load balancer's HTTPS listener.
    #[serde(default)]
    pub certificate_arn: Option<Spanned<String>>,
    /// Seconds CloudFront waits for a response (1 to 120, default 60).
    #[serde(default)]
    pub read_timeout_seconds: Option<Spanned<i64>>,
    /// Seconds CloudFront keeps an idle origin connection (1 to 120, default 5).
    #[serde(default)]
    pub keepalive_timeout_seconds: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesFile {
    /// Use this kubeconfig instead of connecting with EKS credentials directly.
    #[serde(default)]
    pub kubeconfig: Option<Spanned<String>>,
    /// The kubeconfig context (default: its current context).
    #[serde(default)]
    pub context: Option<Spanned<String>>,
    /// Accept a kubeconfig whose server is not the cluster's EKS endpoint.
    #[serde(default)]
    pub allow_other_endpoint: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComfyuiFile {
    /// The ComfyUI container image.
    pub image: Spanned<String>,
    /// Namespace of the workload (default `comfyui`).
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    /// Number of ComfyUI pods (default 1).
    #[serde(default)]
    pub replicas: Option<Spanned<i64>>,
    /// Whole GPUs per pod (default 1).
    #[serde(default)]
    pub gpus: Option<Spanned<i64>>,
    /// CPU request, e.g. `"4"` or `3500m`.
    #[serde(default)]
    pub cpu: Option<Spanned<String>>,
    /// Memory request, e.g. `16Gi`.
    #[serde(default)]
    pub memory: Option<Spanned<String>>,
    /// ComfyUI's HTTP port inside the image (default 8848).
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// The user id ComfyUI runs as (default 1000).
    #[serde(default)]
    pub run_as_user: Option<Spanned<i64>>,
    /// The node directory of the model cache (default `/mnt/k8s-disks/0/comfyplat`, on the
    /// instance-store array): the mirror of the models bucket is its `models/` folder.
    #[serde(default)]
    pub models_path: Option<Spanned<String>>,
    /// The model cache agent that keeps every GPU node's cache equal to the models bucket.
    #[serde(default)]
    pub model_agent: ModelAgentFile,
    /// Mount the inputs bucket (default: when `storage.inputs` exists).
    #[serde(default)]
    pub mount_inputs: Option<Spanned<bool>>,
    /// The path probes and the load balancer's health check ask (default `/system_stats`).
    #[serde(default)]
    pub health_path: Option<Spanned<String>>,
    #[serde(default)]
    pub ingress: IngressFile,
    /// Allow traffic to ComfyUI only from these CIDRs (a NetworkPolicy); absent: none.
    #[serde(default)]
    pub network_policy: Option<NetworkPolicyFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelAgentFile {
    /// The AWS CLI v2 image the agent runs (default: the version comfyplat pins).
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// Free space in GiB the agent keeps on the node's disk (default 20).
    #[serde(default)]
    pub disk_reserve_gib: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressFile {
    /// `internet-facing` (default, so CloudFront can reach it) or `internal`.
    #[serde(default)]
    pub scheme: Option<Spanned<String>>,
    /// Who may reach the load balancer (default `0.0.0.0/0`).
    #[serde(default)]
    pub inbound_cidrs: Option<Spanned<Vec<String>>>,
    /// ALB cookie stickiness in seconds (default 300).
    #[serde(default)]
    pub stickiness_seconds: Option<Spanned<i64>>,
    /// ALB idle timeout in seconds (default 4000, the most ALB allows, for the websocket).
    #[serde(default)]
    pub idle_timeout_seconds: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicyFile {
    /// CIDRs allowed to reach ComfyUI's port (the load balancer's subnets).
    pub allow_from: Spanned<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// IAM role or user ARN (an assumed-role session ARN is rewritten to its role).
    pub principal: Spanned<String>,
    /// `cluster-admin`, `admin`, `edit`, `view`, or a full access policy ARN.
    pub policy: Spanned<String>,
    /// Limit the policy to these namespaces; absent means the whole cluster.
    #[serde(default)]
    pub namespaces: Option<Spanned<Vec<String>>>,
    /// Kubernetes groups for RBAC bindings of your own.
    #[serde(default)]
    pub groups: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonsFile {
    #[serde(default)]
    pub pod_identity_agent: AddonFile,
    #[serde(default)]
    pub s3_csi_driver: AddonFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonFile {
    /// e.g. `v2.1.0-eksbuild.1`; absent: the cluster version's default at install time.
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    /// The add-on's configuration, as a mapping or a JSON/YAML string.
    #[serde(default)]
    pub configuration_values: Option<Spanned<serde_json::Value>>,
    /// How updates treat fields changed outside EKS: `preserve` (default), `overwrite`, `none`.
    #[serde(default)]
    pub resolve_conflicts: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Name of the existing EKS cluster in `region`.
    pub name: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KarpenterFile {
    /// Name of the existing IAM role Karpenter gives to the nodes it launches.
    pub node_role: Spanned<String>,
    /// GPU instance types the node pool may launch (default g6.2xlarge, g5.2xlarge).
    #[serde(default)]
    pub instance_types: Option<Spanned<Vec<Spanned<String>>>>,
    /// `spot-preferred` (default), `spot` or `on-demand`.
    #[serde(default)]
    pub capacity: Option<Spanned<String>>,
    /// Most GPUs the pool may run at once (default 8).
    #[serde(default)]
    pub max_gpus: Option<Spanned<i64>>,
    /// AL2023 AMI alias, e.g. `al2023@v20260828`; `al2023@latest` only when asked.
    #[serde(default)]
    pub ami: Option<Spanned<String>>,
    /// Root volume size in GiB (default 100).
    #[serde(default)]
    pub root_volume_gib: Option<Spanned<i64>>,
    /// `when-empty` (default: never moves a running generation) or `when-empty-or-underutilized`.
    #[serde(default)]
    pub consolidation: Option<Spanned<String>>,
    /// How long a node must stay empty or underused before it goes (default `30m`).
    #[serde(default)]
    pub consolidate_after: Option<Spanned<String>>,
    /// Replace nodes after this long (default `720h`; `Never` keeps them).
    #[serde(default)]
    pub expire_after: Option<Spanned<String>>,
    /// Most nodes disrupted at once, a count or a percentage (default `"1"`).
    #[serde(default)]
    pub disruption_budget: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// Bucket the models are cached from; read by the GPU nodes.
    #[serde(default)]
    pub models: BucketFile,
    /// Bucket ComfyUI writes its outputs to (mounted through Mountpoint for S3).
    #[serde(default)]
    pub outputs: BucketFile,
    /// Optional bucket ComfyUI reads its inputs from; absent means no inputs bucket.
    #[serde(default)]
    pub inputs: Option<BucketFile>,
    /// Additional buckets with the same hardening, keyed by an id used in their address.
    #[serde(default)]
    pub extra: BTreeMap<Key, BucketFile>,
    /// Full ARN of a KMS key for SSE-KMS on every bucket (default: SSE-S3).
    #[serde(default)]
    pub kms_key_arn: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketFile {
    /// Bucket name; `{account}`, `{region}` and `{name}` are substituted.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// Keep every version of every object.
    #[serde(default)]
    pub versioning: Option<bool>,
    /// Delete objects this many days after they were written.
    #[serde(default)]
    pub expire_after_days: Option<Spanned<i64>>,
    /// `storage.models` only: the key prefixes the GPU nodes mirror (default: everything).
    #[serde(default)]
    pub sync: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A mapping key that remembers where it was written; ordered by its text.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Key(pub Spanned<String>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.value == other.0.value
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.value.cmp(&other.0.value)
    }
}
