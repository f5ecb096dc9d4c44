//! EKS Pod Identity associations comfyplat makes on its own (the CSI driver's is part of
//! its add-on): the model cache agent's service account runs as the agent's role.
//!
//! Identity: cluster, namespace and service account (EKS allows one association per
//! service account; its generated id is looked up). Fields: `role_arn`, `tags.*`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{eks_addon, iam_role};
use crate::config::POD_IDENTITY_AGENT;
use crate::model::{
    Address, Context, Desired, Fields, ModelError, Resource, ResourceKind, insert_tags,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub cluster: String,
    pub namespace: String,
    pub service_account: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on cluster {}",
            self.namespace, self.service_account, self.cluster
        )
    }
}

pub const AGENT_ASSOCIATION: &str = "eks.pod_identity_association.model_agent";

impl ResourceKind for Id {
    const NOUN: &'static str = "EKS Pod Identity association";

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let (platform, environment) = (context.platform, context.environment);
        let Some(comfyui) = &platform.comfyui else {
            return Ok(());
        };
        let mut fields = Fields::from([(
            "role_arn".to_string(),
            json!(environment.role_arn(&iam_role::agent_role_name(platform))),
        )]);
        insert_tags(&mut fields, &environment.resource_tags(platform));
        let id = Id {
            cluster: platform.cluster_name.clone(),
            namespace: comfyui.namespace.clone(),
            service_account: iam_role::AGENT_SERVICE_ACCOUNT.to_string(),
        };
        desired.resources.push(
            Resource::new(Address::new(AGENT_ASSOCIATION), id, fields).depending_on([
                Address::new(iam_role::AGENT_ROLE),
                eks_addon::address(POD_IDENTITY_AGENT),
            ]),
        );
        Ok(())
    }
}
