//! EKS access entries: one per `access:` principal (STANDARD, its Kubernetes groups and one
//! access policy with its scope), and the Karpenter node role's `EC2_LINUX` entry so its
//! nodes can join (left as it is when the role has an entry already).
//!
//! Fields: `type`, `kubernetes_groups` (sorted), `access_policies.<policy ARN>` = scope,
//! `tags.*`. An entry's type cannot be changed: a change of it replaces the entry.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::eks_access_config;
use crate::model::{
    Address, Context, Desired, Fields, ModelError, Resource, ResourceKind, insert_tags,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub cluster: String,
    pub principal: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on cluster {}", self.principal, self.cluster)
    }
}

pub const NODE_ACCESS_ENTRY: &str = "eks.access_entry.karpenter_node";

/// Address of a principal's access entry: `eks.access_entry.role/Artists`.
pub fn address(principal: &str) -> Address {
    let name = principal
        .split_once(":role/")
        .map(|(_, n)| format!("role/{n}"))
        .or_else(|| {
            principal
                .split_once(":user/")
                .map(|(_, n)| format!("user/{n}"))
        });
    Address::new(format!(
        "eks.access_entry.{}",
        name.unwrap_or_else(|| principal.to_string())
    ))
}

impl ResourceKind for Id {
    const NOUN: &'static str = "EKS access entry";

    fn forces_replacement(&self, path: &str) -> bool {
        path == "type"
    }

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let (platform, environment) = (context.platform, context.environment);
        let tags = context.environment.resource_tags(platform);
        let cluster = &platform.cluster_name;
        let config = Address::new(eks_access_config::ADDRESS);
        for grant in &platform.access {
            let mut fields = Fields::from([("type".to_string(), json!("STANDARD"))]);
            if !grant.groups.is_empty() {
                fields.insert("kubernetes_groups".to_string(), json!(grant.groups));
            }
            let scope = match &grant.namespaces {
                Some(namespaces) => json!({"type": "namespace", "namespaces": namespaces}),
                None => json!({"type": "cluster"}),
            };
            fields.insert(
                format!(
                    "access_policies.{}",
                    grant.policy.arn(&environment.partition)
                ),
                scope,
            );
            insert_tags(&mut fields, &tags);
            let id = Id {
                cluster: cluster.clone(),
                principal: grant.principal.clone(),
            };
            desired.resources.push(
                Resource::new(address(&grant.principal), id, fields)
                    .depending_on([config.clone()]),
            );
        }

        // The Karpenter nodes join through an EC2_LINUX entry, unless one exists already.
        let mut fields = Fields::from([("type".to_string(), json!("EC2_LINUX"))]);
        insert_tags(&mut fields, &tags);
        let id = Id {
            cluster: cluster.clone(),
            principal: environment.role_arn(&platform.node_role),
        };
        let mut entry = Resource::new(Address::new(NODE_ACCESS_ENTRY), id, fields)
            .depending_on([config]);
        entry.yield_to_existing = true;
        desired.resources.push(entry);
        Ok(())
    }
}
