//! What the adapters saw live, in the same terms as the desired resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Adopted, Fields, Identity};
use crate::config::OWNER_TAG;

/// Who a live resource says it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum Owner {
    /// The value of the `comfyplat:platform` tag (`None`: untagged).
    Tag(Option<String>),
    /// No tags on this kind; its name is one only comfyplat gives (an inline policy).
    Name,
}

/// A resource that exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    /// The managed fields as they are live, in the desired fields' terms.
    pub fields: Fields,
    pub owner: Owner,
    /// For kinds that hold data: whether any (buckets: object or object version; image
    /// repositories: image) is stored.
    #[serde(default)]
    pub holds_objects: Option<bool>,
    /// The service's own status word where it has one (an add-on's `ACTIVE`, `CREATE_FAILED`).
    #[serde(default)]
    pub status: Option<String>,
    /// Read-only facts the service assigned (a distribution's id and domain name, an image
    /// tag's digest): shown as outputs or filled into other resources, never compared.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub attributes: Fields,
}

impl Live {
    /// A resource with tags: they become `tags.<key>` fields, and the ownership tag its owner.
    pub fn tagged(
        mut fields: Fields,
        tags: Vec<(String, String)>,
        holds_objects: Option<bool>,
    ) -> Live {
        let owner = tags
            .iter()
            .find(|(key, _)| key == OWNER_TAG)
            .map(|(_, value)| value.clone());
        for (key, value) in tags {
            fields.insert(format!("tags.{key}"), serde_json::Value::String(value));
        }
        Live {
            fields,
            owner: Owner::Tag(owner),
            holds_objects,
            status: None,
            attributes: Fields::new(),
        }
    }

    /// A resource without tags whose name says it is comfyplat's.
    pub fn named(fields: Fields) -> Live {
        Live {
            fields,
            owner: Owner::Name,
            holds_objects: None,
            status: None,
            attributes: Fields::new(),
        }
    }
}

/// The live view of one identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Observation {
    Absent,
    Present(Live),
    /// It exists but cannot be used: e.g. the bucket name belongs to another account.
    Unavailable {
        reason: String,
    },
}

/// What was found of an adopted thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedState {
    pub exists: bool,
    /// For each permission it must have and lacks: the purpose and the actions missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<(String, Vec<String>)>,
}

/// Everything observed for one plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub resources: BTreeMap<Identity, Observation>,
    /// Each adopted thing and what was found of it.
    pub adopted: Vec<(Adopted, AdoptedState)>,
    /// Kubernetes objects that carry this platform's label (found by listing), so that those
    /// state does not know are pruned too.
    #[serde(default)]
    pub labelled: Vec<Identity>,
    /// Destroy only: everything of every kind found by the platform's tag (state or not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovered: Vec<Identity>,
}

/// The state lineage a live resource records (its `comfyplat:state` tag or
/// `comfyplat.io/state` label), if any.
pub fn live_lineage(fields: &Fields) -> Option<&str> {
    fields
        .get(&format!("tags.{}", crate::config::STATE_TAG))
        .or_else(|| {
            fields.get(&format!(
                "metadata.labels.{}",
                super::kubernetes::STATE_LABEL
            ))
        })
        .and_then(|value| value.as_str())
}

/// For each state lineage the platform's desired resources record live, those resources
/// (only those found live with the platform's ownership tag or label).
pub fn lineages(
    desired: &super::Desired,
    observations: &BTreeMap<Identity, Observation>,
) -> BTreeMap<String, Vec<super::Address>> {
    let owner = Owner::Tag(Some(desired.platform.clone()));
    let mut found: BTreeMap<String, Vec<super::Address>> = BTreeMap::new();
    for resource in &desired.resources {
        if let Some(Observation::Present(live)) = observations.get(&resource.identity)
            && live.owner == owner
            && let Some(lineage) = live_lineage(&live.fields)
        {
            found
                .entry(lineage.to_string())
                .or_default()
                .push(resource.address.clone());
        }
    }
    found
}
