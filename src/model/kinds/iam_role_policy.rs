//! Inline IAM policies comfyplat writes: the CSI driver role's access to the outputs and
//! inputs buckets, and the adopted Karpenter node role's read access to the models bucket.
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
pub const NODE_POLICY: &str = "iam.role_policy.node_models_read";
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
            policy::Access::ReadWrite,
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

        // The GPU nodes read the models bucket to fill their model cache.
        let (addresses, names) = buckets(&[BucketPurpose::Models]);
        let document = policy::bucket_access_policy(
            &environment.partition,
            &names,
            policy::Access::Read,
            platform.kms_key_arn.as_deref(),
        );
        let id = Id {
            role: platform.node_role.clone(),
            policy: format!("comfyplat-{}-models-read", platform.name),
        };
        desired.resources.push(
            Resource::new(
                Address::new(NODE_POLICY),
                id,
                Fields::from([("document".to_string(), document)]),
            )
            .depending_on(addresses),
        );
        desired.adopt_role(&platform.node_role, NODE_ROLE_SETTING, None);
        Ok(())
    }
}
