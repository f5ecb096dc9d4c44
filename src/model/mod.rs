//! The closed set of resources comfyplat manages, as plain data.
//!
//! A [`Resource`] has an [`Address`] (stable, what users see: `s3.bucket.models`), an
//! [`Identity`] (what the cloud knows it by: the bucket name), the [`Fields`] comfyplat manages
//! (flat dotted paths to JSON values, absent = not set) and its dependencies. [`Desired`] is the
//! whole wanted set plus the adopted things that must already exist. Pure: no I/O.

mod desired;
mod observed;
pub mod policy;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use desired::{
    CSI_POLICY, CSI_ROLE, Environment, NODE_POLICY, bucket_address, csi_role_name, desired,
};
pub use observed::{Live, Observation, Observed, Owner};

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
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::S3Bucket => "S3 bucket",
            Kind::IamRole => "IAM role",
            Kind::IamRolePolicy => "IAM inline policy",
        }
    }
}

/// What the cloud knows a resource by. A change of identity means replacement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    S3Bucket { name: String, region: String },
    IamRole { name: String },
    IamRolePolicy { role: String, policy: String },
}

impl Identity {
    pub fn kind(&self) -> Kind {
        match self {
            Identity::S3Bucket { .. } => Kind::S3Bucket,
            Identity::IamRole { .. } => Kind::IamRole,
            Identity::IamRolePolicy { .. } => Kind::IamRolePolicy,
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
