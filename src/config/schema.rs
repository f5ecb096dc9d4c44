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
