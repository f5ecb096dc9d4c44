//! From a validated [`Platform`] and the account it runs in to the [`Desired`] resources.

use serde_json::{Value, json};

use super::policy;
use super::{Address, Adopted, Desired, Fields, Identity, Resource, insert_flat, insert_tags};
use crate::config::{BucketPurpose, Platform};

/// Where the platform runs: known after asking STS who the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub account: String,
    /// `aws`, `aws-cn` or `aws-us-gov`, from the caller's ARN.
    pub partition: String,
    pub region: String,
}

/// Address of the bucket with the given id.
pub fn bucket_address(id: &str) -> Address {
    Address::new(format!("s3.bucket.{id}"))
}

pub const CSI_ROLE: &str = "iam.role.s3_csi_driver";
pub const CSI_POLICY: &str = "iam.role_policy.s3_csi_driver";
pub const NODE_POLICY: &str = "iam.role_policy.node_models_read";

/// Name of the IAM role the Mountpoint S3 CSI driver runs as.
pub fn csi_role_name(platform: &Platform) -> String {
    format!("comfyplat-{}-s3-csi", platform.name)
}

pub fn desired(platform: &Platform, environment: &Environment) -> Desired {
    let tags = platform.resource_tags();
    let mut resources = Vec::new();

    let mut names_by_purpose: Vec<(BucketPurpose, Address, String)> = Vec::new();
    for bucket in &platform.buckets {
        let name = platform.bucket_name(bucket, &environment.account);
        let address = bucket_address(&bucket.id);
        let mut fields = Fields::new();
        insert_flat(
            &mut fields,
            "public_access_block",
            &json!({
                "block_public_acls": true,
                "ignore_public_acls": true,
                "block_public_policy": true,
                "restrict_public_buckets": true,
            }),
        );
        let encryption = match &platform.kms_key_arn {
            Some(key) => {
                json!({"sse_algorithm": "aws:kms", "kms_master_key_id": key, "bucket_key_enabled": true})
            }
            None => json!({"sse_algorithm": "AES256"}),
        };
        insert_flat(&mut fields, "encryption", &encryption);
        fields.insert(
            "policy".to_string(),
            policy::tls_only_bucket_policy(&environment.partition, &name),
        );
        fields.insert(
            "versioning".to_string(),
            Value::String(
                if bucket.versioning {
                    "Enabled"
                } else {
                    "Disabled"
                }
                .to_string(),
            ),
        );
        if let Some(days) = bucket.expire_after_days {
            fields.insert("lifecycle.expiration_days".to_string(), json!(days));
        }
        insert_tags(&mut fields, &tags);
        names_by_purpose.push((bucket.purpose, address.clone(), name.clone()));
        resources.push(Resource {
            address,
            identity: Identity::S3Bucket {
                name,
                region: environment.region.clone(),
            },
            fields,
            depends_on: Vec::new(),
        });
    }

    let select = |purposes: &[BucketPurpose]| -> (Vec<Address>, Vec<String>) {
        names_by_purpose
            .iter()
            .filter(|(purpose, _, _)| purposes.contains(purpose))
            .map(|(_, address, name)| (address.clone(), name.clone()))
            .unzip()
    };

    // The Mountpoint S3 CSI driver: its own role, reading and writing outputs and inputs.
    let role_name = csi_role_name(platform);
    let mut role_fields = Fields::new();
    role_fields.insert(
        "trust_policy".to_string(),
        policy::pod_identity_trust_policy(&environment.account),
    );
    role_fields.insert(
        "description".to_string(),
        Value::String(format!(
            "Mountpoint for Amazon S3 CSI driver of ComfyUI platform {} (managed by comfyplat)",
            platform.name
        )),
    );
    insert_tags(&mut role_fields, &tags);
    resources.push(Resource {
        address: Address::new(CSI_ROLE),
        identity: Identity::IamRole {
            name: role_name.clone(),
        },
        fields: role_fields,
        depends_on: Vec::new(),
    });
    let (mounted_addresses, mounted_names) =
        select(&[BucketPurpose::Outputs, BucketPurpose::Inputs]);
    let mut depends_on = vec![Address::new(CSI_ROLE)];
    depends_on.extend(mounted_addresses);
    resources.push(Resource {
        address: Address::new(CSI_POLICY),
        identity: Identity::IamRolePolicy {
            role: role_name,
            policy: "comfyplat-s3-access".to_string(),
        },
        fields: Fields::from([(
            "document".to_string(),
            policy::bucket_access_policy(
                &environment.partition,
                &mounted_names,
                policy::Access::ReadWrite,
                platform.kms_key_arn.as_deref(),
            ),
        )]),
        depends_on,
    });

    // The GPU nodes: read the models bucket to fill the local model cache.
    let (model_addresses, model_names) = select(&[BucketPurpose::Models]);
    resources.push(Resource {
        address: Address::new(NODE_POLICY),
        identity: Identity::IamRolePolicy {
            role: platform.node_role.clone(),
            policy: format!("comfyplat-{}-models-read", platform.name),
        },
        fields: Fields::from([(
            "document".to_string(),
            policy::bucket_access_policy(
                &environment.partition,
                &model_names,
                policy::Access::Read,
                platform.kms_key_arn.as_deref(),
            ),
        )]),
        depends_on: model_addresses,
    });

    Desired {
        platform: platform.name.clone(),
        resources,
        adopted: vec![Adopted::IamRole {
            name: platform.node_role.clone(),
            setting: "karpenter.node_role".to_string(),
        }],
    }
}
