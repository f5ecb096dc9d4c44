//! The closed set of resources comfyplat manages, as plain data.
//!
//! A [`Resource`] has an [`Address`] (stable, what users see: `s3.bucket.models`), an
//! [`Identity`] (what the cloud knows it by: the bucket name), the [`Fields`] comfyplat manages
//! (flat dotted paths to JSON values, absent = not set) and its dependencies. [`Desired`] is the
//! whole wanted set plus the adopted things that must already exist. Pure: no I/O.

pub mod deferred;
mod desired;
pub mod edge;
pub mod kubernetes;
mod observed;
pub mod policy;
pub mod report;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use desired::{
    ACCESS_CONFIG, AddonFacts, CSI_POLICY, CSI_ROLE, CSI_SERVICE_ACCOUNT, ClusterFacts,
    Environment, NODE_ACCESS_ENTRY, NODE_POLICY, access_entry_address, addon_address,
    bucket_address, csi_role_name, desired,
};
pub use observed::{Live, Observation, Observed, Owner};

/// Secret values by name (see [`deferred`]).
pub type Secrets = BTreeMap<String, String>;

/// Field path (e.g. `public_access_block.block_public_acls`, `tags.team`) to value.
pub type Fields = BTreeMap<String, serde_json::Value>;

/// A resource's stable name in plans and state, e.g. `s3.bucket.models`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(pub String);

impl Address {
    pub fn new(text: impl Into<String>) -> Self {
        Address(text.into())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of resource comfyplat owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    S3Bucket,
    IamRole,
    IamRolePolicy,
    EksAccessConfig,
    EksAccessEntry,
    EksAddon,
    IamOidcProvider,
    K8sObject,
    CloudFrontDistribution,
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::S3Bucket => "S3 bucket",
            Kind::IamRole => "IAM role",
            Kind::IamRolePolicy => "IAM inline policy",
            Kind::EksAccessConfig => "EKS access configuration of cluster",
            Kind::EksAccessEntry => "EKS access entry",
            Kind::EksAddon => "EKS add-on",
            Kind::IamOidcProvider => "IAM OIDC provider",
            Kind::K8sObject => "Kubernetes object",
            Kind::CloudFrontDistribution => "CloudFront distribution",
        }
    }

    /// Fields that can change only one way: the plan marks them irreversible.
    pub fn one_way_fields(self) -> &'static [&'static str] {
        match self {
            Kind::EksAccessConfig => &["authentication_mode"],
            _ => &[],
        }
    }

    /// Kinds that are settings of something adopted: never deleted, only forgotten.
    pub fn is_setting(self) -> bool {
        matches!(self, Kind::EksAccessConfig)
    }
}

/// What the cloud knows a resource by. A change of identity means replacement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    S3Bucket {
        name: String,
        region: String,
    },
    IamRole {
        name: String,
    },
    IamRolePolicy {
        role: String,
        policy: String,
    },
    EksAccessConfig {
        cluster: String,
    },
    EksAccessEntry {
        cluster: String,
        principal: String,
    },
    EksAddon {
        cluster: String,
        name: String,
    },
    /// `url` is the issuer without `https://`.
    IamOidcProvider {
        arn: String,
        url: String,
    },
    /// `namespace` is empty for cluster-scoped kinds.
    K8sObject {
        api_version: String,
        #[serde(rename = "object_kind")]
        kind: String,
        namespace: String,
        name: String,
    },
    /// Found by the `CallerReference` it was created with (CloudFront assigns the id).
    CloudFrontDistribution {
        caller_reference: String,
    },
}

impl Identity {
    pub fn kind(&self) -> Kind {
        match self {
            Identity::S3Bucket { .. } => Kind::S3Bucket,
            Identity::IamRole { .. } => Kind::IamRole,
            Identity::IamRolePolicy { .. } => Kind::IamRolePolicy,
            Identity::EksAccessConfig { .. } => Kind::EksAccessConfig,
            Identity::EksAccessEntry { .. } => Kind::EksAccessEntry,
            Identity::EksAddon { .. } => Kind::EksAddon,
            Identity::IamOidcProvider { .. } => Kind::IamOidcProvider,
            Identity::K8sObject { .. } => Kind::K8sObject,
            Identity::CloudFrontDistribution { .. } => Kind::CloudFrontDistribution,
        }
    }

    /// Whether the resource may hold user data (and so is protected from deletion).
    pub fn holds_data(&self) -> bool {
        matches!(self, Identity::S3Bucket { .. })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::S3Bucket { name, region } => write!(f, "{name} ({region})"),
            Identity::IamRole { name } => f.write_str(name),
            Identity::IamRolePolicy { role, policy } => write!(f, "{policy} on role {role}"),
            Identity::EksAccessConfig { cluster } => f.write_str(cluster),
            Identity::EksAccessEntry { cluster, principal } => {
                write!(f, "{principal} on cluster {cluster}")
            }
            Identity::EksAddon { cluster, name } => write!(f, "{name} on cluster {cluster}"),
            Identity::IamOidcProvider { url, .. } => write!(f, "https://{url}"),
            Identity::K8sObject {
                kind,
                namespace,
                name,
                ..
            } if namespace.is_empty() => write!(f, "{kind} {name}"),
            Identity::K8sObject {
                kind,
                namespace,
                name,
                ..
            } => write!(f, "{kind} {namespace}/{name}"),
            Identity::CloudFrontDistribution { caller_reference } => {
                write!(f, "with caller reference {caller_reference}")
            }
        }
    }
}

/// One resource comfyplat wants to exist, with the fields it manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub address: Address,
    pub identity: Identity,
    pub fields: Fields,
    /// Resources that must exist (and be up to date) before this one.
    pub depends_on: Vec<Address>,
    /// Call parameters that are not observable fields (e.g. an add-on's conflict policy).
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub parameters: Fields,
    /// When something not owned by comfyplat already exists in its place, leave it alone
    /// instead of refusing (e.g. the node role's access entry).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub yield_to_existing: bool,
}

/// An operation the cloud carries on after the call that started it returned. Kept in state
/// while it runs, so that an interrupted apply waits for it instead of starting it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pending {
    /// `UpdateClusterConfig`, followed with `DescribeUpdate`.
    ClusterUpdate { cluster: String, update_id: String },
    /// An add-on becoming ACTIVE, or going away.
    Addon {
        cluster: String,
        name: String,
        goal: AddonGoal,
    },
    /// A Kubernetes object becoming ready (available, provisioned), or going away.
    Kubernetes { object: Identity, goal: ObjectGoal },
    /// A CloudFront distribution deploying a change; for `Deleted`, deploying its disabling,
    /// then deleted.
    Distribution { id: String, goal: DistributionGoal },
}

impl Pending {
    /// Whether the cloud finishes it by itself, so that `--no-wait` may leave it running:
    /// a CloudFront deployment (nothing waits for it, and CloudFront serves meanwhile).
    pub fn may_run_on(&self) -> bool {
        matches!(
            self,
            Pending::Distribution {
                goal: DistributionGoal::Deployed,
                ..
            }
        )
    }

    /// What is under way, for messages.
    pub fn describe(&self) -> String {
        match self {
            Pending::ClusterUpdate { cluster, .. } => format!("the update of cluster {cluster}"),
            Pending::Addon { name, .. } => format!("add-on {name}"),
            Pending::Kubernetes { object, .. } => object.to_string(),
            Pending::Distribution { id, .. } => {
                format!("CloudFront distribution {id} to deploy")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistributionGoal {
    Deployed,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectGoal {
    Ready,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddonGoal {
    Active,
    Deleted,
}

/// Something comfyplat builds on but never creates, changes or deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Adopted {
    /// An IAM role that must exist; `setting` is the platform.yaml key that names it.
    IamRole { name: String, setting: String },
}

/// The whole wanted world for one platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub platform: String,
    pub resources: Vec<Resource>,
    pub adopted: Vec<Adopted>,
    /// Decisions worth telling the user (e.g. IRSA instead of Pod Identity).
    pub notes: Vec<String>,
}

impl Desired {
    pub fn get(&self, address: &Address) -> Option<&Resource> {
        self.resources.iter().find(|r| &r.address == address)
    }
}

/// Flattens a JSON object into dotted paths under `prefix` (used for tags and settings).
pub fn insert_flat(fields: &mut Fields, prefix: &str, value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                insert_flat(fields, &format!("{prefix}.{key}"), inner);
            }
        }
        serde_json::Value::Null => {}
        other => {
            fields.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The field group of a path: what comes before the first dot (`tags.team` -> `tags`).
pub fn field_group(path: &str) -> &str {
    path.split_once('.').map(|(group, _)| group).unwrap_or(path)
}

/// Adds `tags.<key>` fields.
pub fn insert_tags(fields: &mut Fields, tags: &BTreeMap<String, String>) {
    for (key, value) in tags {
        fields.insert(
            format!("tags.{key}"),
            serde_json::Value::String(value.clone()),
        );
    }
}

/// The `tags.<key>` fields of a field set, as a map.
pub fn tags_of(fields: &Fields) -> BTreeMap<String, String> {
    fields
        .iter()
        .filter_map(|(path, value)| {
            let key = path.strip_prefix("tags.")?;
            Some((
                key.to_string(),
                value.as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}
