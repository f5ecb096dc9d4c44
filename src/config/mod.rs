//! `platform.yaml`: reading, parsing, schema, semantic validation, defaults and derived
//! names.
//!
//! [`read_file`] reads the file (at most [`MAX_FILE_BYTES`] + 1 bytes, whatever it is);
//! [`from_bytes`] turns its bytes into a validated [`Platform`] or a [`ConfigError`] listing
//! every problem with `file:line:column` and a hint; [`check_paths`] checks the files and
//! folders platform.yaml names with a probe the command passes in. None of them touches the
//! network, so every bad input is refused before any API call; only [`read_file`] reads
//! anything. Names that depend on the AWS account (bucket names like
//! `comfyui-models-{account}-{region}`) are kept as templates and resolved by
//! [`Platform::bucket_name`] once the account is known.

mod arn;
mod diagnostic;
mod edge;
mod images;
pub mod instance_types;
mod parse;
pub mod regions;
mod schema;
mod validate;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use diagnostic::{ConfigError, Diagnostic, did_you_mean};
pub use parse::MAX_FILE_BYTES;

/// The schema version this comfyplat reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The tag key that marks every AWS resource comfyplat owns; its value is the platform name.
pub const OWNER_TAG: &str = "comfyplat:platform";
/// The tag that records the lineage of the state a resource was applied from.
pub const STATE_TAG: &str = "comfyplat:state";

/// A validated platform definition with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The file it was read from.
    pub path: PathBuf,
    pub name: String,
    pub region: String,
    /// The only account comfyplat may touch, when the file names one.
    pub account: Option<String>,
    pub cluster_name: String,
    /// Name of the adopted IAM role of the Karpenter nodes.
    pub node_role: String,
    /// User tags, without the ownership tag.
    pub tags: BTreeMap<String, String>,
    /// Every bucket: models, outputs, then inputs and the extra ones when present.
    pub buckets: Vec<BucketSettings>,
    /// Full ARN of the KMS key for SSE-KMS; `None` means SSE-S3.
    pub kms_key_arn: Option<String>,
    /// The models bucket's key prefixes the GPU nodes mirror (`checkpoints/`); empty: all.
    pub models_sync: Vec<String>,
    /// EKS access entries for people and roles.
    pub access: Vec<AccessGrant>,
    /// The add-ons, pod identity agent first.
    pub addons: Vec<AddonSettings>,
    /// How comfyplat reaches the Kubernetes API.
    pub kubernetes: KubernetesAccess,
    /// The Karpenter GPU node pool.
    pub node_pool: NodePoolSettings,
    /// The ECR repository for the ComfyUI image; `None`: none.
    pub image_repository: Option<ImageRepositorySettings>,
    /// The ComfyUI workload; `None`: the AWS side only, no Kubernetes objects.
    pub comfyui: Option<ComfyuiSettings>,
    /// The CloudFront distribution; `None`: no distribution.
    pub cdn: Option<CdnSettings>,
    /// Templates that replace the built-in ones (resolved against platform.yaml's folder).
    pub templates_dir: Option<PathBuf>,
    /// The files and folders platform.yaml names, with where: checked by [`check_paths`].
    pub referenced_paths: Vec<ReferencedPath>,
    /// Things comfyplat changed about the input on the way (shown by plan).
    pub notes: Vec<String>,
}

/// A file or folder named in platform.yaml, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencedPath {
    /// The key, e.g. `templates_dir`.
    pub key: &'static str,
    /// Resolved against platform.yaml's folder.
    pub path: PathBuf,
    pub expected: PathKind,
    pub line: usize,
    pub column: usize,
}

/// What a referenced path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Directory,
}

/// How comfyplat reaches the cluster's Kubernetes API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesAccess {
    /// `None`: endpoint and CA from DescribeCluster, a token from the AWS credentials.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Accept a kubeconfig server other than the cluster's EKS endpoint.
    pub allow_other_endpoint: bool,
}

/// Which EC2 capacity the GPU nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Spot when there is some, else On-Demand (Karpenter prefers spot when both are allowed).
    SpotPreferred,
    Spot,
    OnDemand,
}

impl Capacity {
    /// Karpenter's `karpenter.sh/capacity-type` values, preferred first.
    pub fn capacity_types(self) -> Vec<&'static str> {
        match self {
            Capacity::SpotPreferred => vec!["spot", "on-demand"],
            Capacity::Spot => vec!["spot"],
            Capacity::OnDemand => vec!["on-demand"],
        }
    }
}

/// The Karpenter NodePool and EC2NodeClass of the GPU nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePoolSettings {
    pub instance_types: Vec<String>,
    pub capacity: Capacity,
    pub max_gpus: u32,
    /// AMI alias, e.g. `al2023@v20260828`.
    pub ami: String,
    pub root_volume_gib: u32,
    /// Karpenter's value: `WhenEmpty` or `WhenEmptyOrUnderutilized`.
    pub consolidation_policy: String,
    pub consolidate_after: String,
    pub expire_after: String,
    pub disruption_budget: String,
}

/// The platform's ECR repository for the ComfyUI image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRepositorySettings {
    /// `comfyui-<platform>` unless named.
    pub name: String,
    /// Tags cannot be moved to another image (ECR `IMMUTABLE`).
    pub immutable_tags: bool,
    /// SSE-KMS with this key; `None`: AES256.
    pub kms_key_arn: Option<String>,
    /// The lifecycle policy keeps the newest this many images.
    pub keep_images: u32,
}

/// What `comfyui.image` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// A full image reference, used as it is.
    External(String),
    /// `{repository}:TAG`: the platform's repository, pinned to the tag's digest.
    RepositoryTag(String),
    /// `{repository}@sha256:...`.
    RepositoryDigest(String),
}

/// The ComfyUI Deployment and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComfyuiSettings {
    pub image: ImageReference,
    pub namespace: String,
    pub replicas: u32,
    pub gpus: u32,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub port: u16,
    pub run_as_user: u32,
    /// The node directory of the model cache; the mirror is its `models/` folder.
    pub models_path: String,
    pub model_agent: ModelAgentSettings,
    pub mount_inputs: bool,
    pub health_path: String,
    pub ingress: IngressSettings,
    /// CIDRs allowed in by a NetworkPolicy; `None`: no NetworkPolicy.
    pub network_policy: Option<Vec<String>>,
}

/// The model cache agent (a DaemonSet on the GPU nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAgentSettings {
    /// The AWS CLI v2 image it runs.
    pub image: String,
    /// Free space it keeps on the node's disk.
    pub disk_reserve_gib: u32,
}

/// The AWS CLI v2 image the model agent runs unless platform.yaml names another: the one
/// place its version is pinned.
pub const MODEL_AGENT_IMAGE: &str = "public.ecr.aws/aws-cli/aws-cli:2.31.39";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSettings {
    /// `internet-facing` or `internal`.
    pub scheme: String,
    pub inbound_cidrs: Vec<String>,
    pub stickiness_seconds: u32,
    pub idle_timeout_seconds: u32,
}

/// How CloudFront reaches the load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginProtocol {
    Http,
    Https,
}

/// The CloudFront distribution in front of the ComfyUI load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnSettings {
    /// `PriceClass_100`, `PriceClass_200` or `PriceClass_All`.
    pub price_class: String,
    pub origin_protocol: OriginProtocol,
    /// The load balancer's certificate (HTTPS origin only).
    pub origin_certificate_arn: Option<String>,
    /// Seconds, 1 to 120.
    pub read_timeout: u32,
    /// Seconds, 1 to 120.
    pub keepalive_timeout: u32,
    pub aliases: Vec<String>,
    /// ACM certificate in us-east-1 for the aliases.
    pub certificate_arn: Option<String>,
    pub web_acl_arn: Option<String>,
}

/// One principal's access to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// IAM role or user ARN.
    pub principal: String,
    pub policy: AccessPolicy,
    /// `None`: the whole cluster.
    pub namespaces: Option<Vec<String>>,
    pub groups: Vec<String>,
}

/// An EKS access policy: one of the short names, or a full ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessPolicy {
    /// `AmazonEKSClusterAdminPolicy` and the like; the ARN's partition comes from the account.
    Managed(String),
    Arn(String),
}

impl AccessPolicy {
    pub fn arn(&self, partition: &str) -> String {
        match self {
            AccessPolicy::Managed(name) => {
                format!("arn:{partition}:eks::aws:cluster-access-policy/{name}")
            }
            AccessPolicy::Arn(arn) => arn.clone(),
        }
    }
}

/// The EKS add-ons comfyplat manages.
pub const POD_IDENTITY_AGENT: &str = "eks-pod-identity-agent";
pub const S3_CSI_DRIVER: &str = "aws-mountpoint-s3-csi-driver";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonSettings {
    /// The EKS add-on name, e.g. `aws-mountpoint-s3-csi-driver`.
    pub name: String,
    /// Pinned version; `None`: the cluster version's default when installed, then kept.
    pub version: Option<String>,
    /// A JSON object, or `None`.
    pub configuration_values: Option<serde_json::Value>,
    /// `PRESERVE`, `OVERWRITE` or `NONE`, for updates (creates always overwrite).
    pub resolve_conflicts: String,
}

/// What a bucket is for; decides which IAM policies reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BucketPurpose {
    /// Read by the GPU nodes (Karpenter node role) to fill the model cache.
    Models,
    /// Read and written by ComfyUI through the Mountpoint S3 CSI driver.
    Outputs,
    /// Read (and written) by ComfyUI through the Mountpoint S3 CSI driver.
    Inputs,
    /// Kept alongside with the same hardening; no workload access is granted.
    Extra,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSettings {
    /// `models`, `outputs`, `inputs` or the key under `storage.extra`; used in the address.
    pub id: String,
    pub purpose: BucketPurpose,
    /// The name with `{account}`, `{region}` and `{name}` still to substitute.
    pub name_template: String,
    pub versioning: bool,
    pub expire_after_days: Option<u32>,
}

impl Platform {
    /// The user's tags plus the ownership tag (`Environment::resource_tags` adds the
    /// state lineage).
    pub fn resource_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.tags.clone();
        tags.insert(OWNER_TAG.to_string(), self.name.clone());
        tags
    }

    /// The bucket's real name in `account`.
    pub fn bucket_name(&self, bucket: &BucketSettings, account: &str) -> String {
        expand_name(&bucket.name_template, account, &self.region, &self.name)
    }

    /// The state file of this platform inside `state_dir`.
    pub fn state_file(&self, state_dir: &Path) -> PathBuf {
        state_dir.join(format!("{}.json", self.name))
    }

    /// `state/` next to the platform file.
    pub fn default_state_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(|parent| parent.join("state"))
            .unwrap_or_else(|| PathBuf::from("state"))
    }
}

/// Substitutes the placeholders of a name template.
pub fn expand_name(template: &str, account: &str, region: &str, name: &str) -> String {
    template
        .replace("{account}", account)
        .replace("{region}", region)
        .replace("{name}", name)
}

/// Parses and validates the bytes of a platform file that was read from `path` (the path is
/// for messages and for resolving relative paths in it).
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Platform, ConfigError> {
    let (text, file) = parse::parse(path, bytes)?;
    validate::validate(path, &text, file)
}

/// Reads a platform file: at most [`MAX_FILE_BYTES`] + 1 bytes, so that `-f /dev/zero` or a
/// huge file is refused by [`from_bytes`] for its size without being read into memory.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(bytes)
}

/// What a path on disk turned out to be, as the command's probe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    File,
    Directory,
    /// Missing or unreadable, with the system's words.
    Unreadable(String),
}

/// Checks the files and folders `platform` names (`templates_dir`, `kubernetes.kubeconfig`)
/// with `probe`, reporting each problem at its value's `file:line:column` in `bytes` (the
/// platform file as read). The probe is the command's (it looks at the disk); this is pure.
pub fn check_paths(
    platform: &Platform,
    bytes: &[u8],
    skip: &[&str],
    probe: impl Fn(&Path) -> Probed,
) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    for referenced in platform
        .referenced_paths
        .iter()
        .filter(|r| !skip.contains(&r.key))
    {
        if let Some((message, hint)) = path_problem(
            referenced.key,
            &referenced.path,
            referenced.expected,
            probe(&referenced.path),
        ) {
            problems
                .push(Diagnostic::new(referenced.line, referenced.column, message).with_hint(hint));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(bytes);
        Err(ConfigError::invalid(&platform.path, &text, problems))
    }
}

/// What is wrong with a path named by `what` (a key, or a command-line option), if anything.
pub fn path_problem(
    what: &str,
    path: &Path,
    expected: PathKind,
    probed: Probed,
) -> Option<(String, String)> {
    let shown = path.display();
    match (expected, probed) {
        (PathKind::File, Probed::File) | (PathKind::Directory, Probed::Directory) => None,
        (PathKind::File, Probed::Directory) => Some((
            format!("`{what}`: `{shown}` is a folder, not a file"),
            "name the kubeconfig file itself, e.g. `~/.kube/config`".to_string(),
        )),
        (PathKind::Directory, Probed::File) => Some((
            format!("`{what}`: `{shown}` is a file, not a folder"),
            "name the folder that holds the `*.j2` overrides".to_string(),
        )),
        (expected, Probed::Unreadable(why)) => Some((
            format!("`{what}`: cannot read `{shown}`: {why}"),
            match expected {
                PathKind::File if what.starts_with("--") => "check the path (relative paths start at the current folder), or leave the option out".to_string(),
                PathKind::File => "check the path (relative paths start at platform.yaml's folder), or leave it out to let comfyplat connect with the AWS credentials".to_string(),
                PathKind::Directory => "check the path (relative paths start at platform.yaml's folder), or leave `templates_dir` out to use the built-in templates".to_string(),
            },
        )),
    }
}
