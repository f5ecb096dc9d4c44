//! The adopted cluster's authentication mode: access entries need the API, so
//! `CONFIG_MAP` is stepped up to `API_AND_CONFIG_MAP` (never down: EKS allows only
//! `CONFIG_MAP` -> `API_AND_CONFIG_MAP` -> `API`). A setting of the adopted cluster: the
//! change is marked irreversible, and destroy forgets it instead of undoing it.
//!
//! Field: `authentication_mode`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::model::{Address, Context, Desired, Fields, ModelError, Resource, ResourceKind};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub cluster: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cluster)
    }
}

pub const ADDRESS: &str = "eks.access_config";

impl ResourceKind for Id {
    const NOUN: &'static str = "EKS access configuration of cluster";
    const ONE_WAY: &'static [&'static str] = &["authentication_mode"];
    const SETTING: bool = true;

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let mode = if context.environment.cluster.authentication_mode == "API" {
            "API"
        } else {
            "API_AND_CONFIG_MAP"
        };
        let id = Id {
            cluster: context.platform.cluster_name.clone(),
        };
        desired.resources.push(Resource::new(
            Address::new(ADDRESS),
            id,
            Fields::from([("authentication_mode".to_string(), json!(mode))]),
        ));
        Ok(())
    }
}
