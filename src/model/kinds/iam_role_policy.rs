//! Inline IAM policies comfyplat writes: the CSI driver role's access to the outputs and
//! inputs buckets, and the model cache agent role's read access to the models bucket (its
//! `storage.models.sync` prefixes). The adopted Karpenter node role gets none: the nodes
//! need no bucket access since the agent fills the cache (a platform applied by an earlier
//! comfyplat has `comfyplat-<platform>-models-read` on the node role in its state; the next
//! apply or destroy deletes it like any resource that left the desired set).
//!
//! Field: `document` (normalised). Inline policies have no tags; their names are ones only
//! comfyplat gives (`comfyplat-...`), which is how they are known to be its own.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{iam_role, s3_bucket};
use crate::config::BucketPurpose;
use crate::model::{
    Address, Context, Desired, Fields, ModelError, Resource, ResourceKind, policy,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub role: String,
    pub policy: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on role {}", self.policy, self.role)
    }
}

pub const CSI_POLICY: &str = "iam.role_policy.s3_csi_driver";
pub const AGENT_POLICY: &str = "iam.role_policy.model_agent";
/// The platform.yaml key that names the adopted node role.
pub const NODE_ROLE_SETTING: &str = "karpenter.node_role";

impl ResourceKind for Id {
    const NOUN: &'static str = "IAM inline policy";

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let (platform, environment) = (context.platform, context.environment);
        let buckets = |purposes: &[BucketPurpose]| -> (Vec<Address>, Vec<String>) {
            platform
                .buckets
                .iter()
                .filter(|b| purposes.contains(&b.purpose))
                .map(|b| {
                    (
                        s3_bucket::address(&b.id),
                        platform.bucket_name(b, &environment.account),
                    )
                })
                .unzip()
        };

        // The Mountpoint S3 CSI driver reads and writes outputs and inputs.
        let (addresses, names) = buckets(&[BucketPurpose::Outputs, BucketPurpose::Inputs]);
        let document = policy::bucket_access_policy(
            &environment.partition,
            &names,
            platform.kms_key_arn.as_deref(),
        );
        let id = Id {
            role: iam_role::csi_role_name(platform),
            policy: "comfyplat-s3-access".to_string(),
        };
        desired.resources.push(
            Resource::new(
                Address::new(CSI_POLICY),
                id,
                Fields::from([("document".to_string(), document)]),
            )
            .depending_on([Address::new(iam_role::CSI_ROLE)])
            .depending_on(addresses),
        );

        // The model cache agent reads the models bucket to fill the nodes' caches.
        let (addresses, names) = buckets(&[BucketPurpose::Models]);
        if platform.comfyui.is_some()
            && let Some(bucket) = names.first()
        {
            let document = policy::models_read_policy(
                &environment.partition,
                bucket,
                &platform.models_sync,
                platform.kms_key_arn.as_deref(),
            );
            let id = Id {
                role: iam_role::agent_role_name(platform),
                policy: "comfyplat-models-read".to_string(),
            };
            desired.resources.push(
                Resource::new(
                    Address::new(AGENT_POLICY),
                    id,
                    Fields::from([("document".to_string(), document)]),
                )
                .depending_on([Address::new(iam_role::AGENT_ROLE)])
                .depending_on(addresses),
            );
        }
        desired.adopt_role(&platform.node_role, NODE_ROLE_SETTING, None);
        Ok(())
    }
}
