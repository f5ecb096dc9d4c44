//! IAM roles comfyplat owns: the Mountpoint S3 CSI driver's, trusted through EKS Pod
//! Identity for this account (or, for a driver version without Pod Identity, through the
//! cluster's OIDC provider for exactly its service account: IRSA); and, with the ComfyUI
//! workload, the model cache agent's, trusted through EKS Pod Identity for exactly its
//! cluster, namespace and service account.
//!
//! Fields: `trust_policy` (normalised document), `description`, `tags.*`. The name is the
//! identity.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::iam_oidc_provider;
use crate::config::{Platform, S3_CSI_DRIVER};
use crate::model::{
    Context, Desired, Environment, Fields, ModelError, Resource, ResourceKind, insert_tags, policy,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub name: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

pub const CSI_ROLE: &str = "iam.role.s3_csi_driver";
pub const AGENT_ROLE: &str = "iam.role.model_agent";
/// The service account the model cache agent runs as (in the ComfyUI namespace).
pub const AGENT_SERVICE_ACCOUNT: &str = "comfyplat-model-agent";

/// Name of the IAM role the model cache agent runs as.
pub fn agent_role_name(platform: &Platform) -> String {
    format!("comfyplat-{}-model-agent", platform.name)
}
/// The service account the Mountpoint S3 CSI driver runs as.
pub const CSI_SERVICE_ACCOUNT: &str = "s3-csi-driver-sa";

/// Name of the IAM role the Mountpoint S3 CSI driver runs as.
pub fn csi_role_name(platform: &Platform) -> String {
    format!("comfyplat-{}-s3-csi", platform.name)
}

/// The cluster's OIDC issuer when the CSI driver's role must be trusted through IRSA: its
/// add-on version has no Pod Identity support.
pub fn csi_irsa_issuer(environment: &Environment) -> Option<&str> {
    let pod_identity = environment
        .addon(S3_CSI_DRIVER)
        .is_none_or(|addon| addon.pod_identity);
    match (&environment.cluster.oidc_issuer, pod_identity) {
        (Some(issuer), false) => Some(issuer),
        _ => None,
    }
}

/// A role's fields: its trust policy, a description naming what it is for, the tags.
fn role_fields(context: &Context, trust: Value, what: &str) -> Fields {
    let platform = context.platform;
    let mut fields = Fields::from([("trust_policy".to_string(), trust)]);
    fields.insert(
        "description".to_string(),
        Value::String(format!(
            "{what} of ComfyUI platform {} (managed by comfyplat)",
            platform.name
        )),
    );
    insert_tags(&mut fields, &context.environment.resource_tags(platform));
    fields
}

impl ResourceKind for Id {
    const NOUN: &'static str = "IAM role";

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let (platform, environment) = (context.platform, context.environment);
        let mut depends_on = Vec::new();
        let trust = match csi_irsa_issuer(environment) {
            Some(issuer) => {
                let version = environment
                    .addon(S3_CSI_DRIVER)
                    .map(|a| a.version.as_str())
                    .unwrap_or_default();
                desired.notes.push(format!(
                    "{S3_CSI_DRIVER} {version} does not support EKS Pod Identity: the driver's role trusts the cluster's OIDC provider (IRSA) instead"
                ));
                depends_on.push(crate::model::Address::new(iam_oidc_provider::ADDRESS));
                policy::irsa_trust_policy(
                    &environment.partition,
                    &environment.account,
                    issuer,
                    "kube-system",
                    CSI_SERVICE_ACCOUNT,
                )
            }
            None => policy::pod_identity_trust_policy(&environment.account),
        };
        let fields = role_fields(context, trust, "Mountpoint for Amazon S3 CSI driver");
        let id = Id {
            name: csi_role_name(platform),
        };
        desired.resources.push(
            Resource::new(crate::model::Address::new(CSI_ROLE), id, fields).depending_on(depends_on),
        );

        // The model cache agent reads the models bucket (its inline policy: iam_role_policy).
        if let Some(comfyui) = &platform.comfyui {
            let trust = policy::scoped_pod_identity_trust_policy(
                &environment.account,
                &platform.cluster_name,
                &comfyui.namespace,
                AGENT_SERVICE_ACCOUNT,
            );
            let fields = role_fields(context, trust, "Model cache agent");
            let id = Id {
                name: agent_role_name(platform),
            };
            desired
                .resources
                .push(Resource::new(crate::model::Address::new(AGENT_ROLE), id, fields));
        }
        Ok(())
    }
}
