//! S3 buckets: models, outputs, inputs and the extra ones of `storage.extra`.
//!
//! Fields: `public_access_block.*` (all four on), `encryption.*` (SSE-S3, or SSE-KMS with
//! the platform's key and the bucket key on), `policy` (deny every request not made over
//! TLS), `versioning` (`Enabled` / `Disabled`), `lifecycle.expiration_days`, `tags.*`.
//! A bucket's name and region are its identity: changing either replaces it (and a bucket
//! that holds objects is then refused unless `--delete-data`).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{
    Address, Context, Desired, Fields, Live, ModelError, Output, Resource, ResourceKind,
    insert_flat, insert_tags, policy,
};

/// A bucket: its name in its region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub name: String,
    pub region: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.region)
    }
}

/// Address of the bucket with the given id (`models`, `outputs`, ...).
pub fn address(id: &str) -> Address {
    Address::new(format!("{PREFIX}{id}"))
}

const PREFIX: &str = "s3.bucket.";

impl ResourceKind for Id {
    const NOUN: &'static str = "S3 bucket";
    const DATA: Option<&'static str> = Some("objects");

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let platform = context.platform;
        let environment = context.environment;
        let tags = context.environment.resource_tags(platform);
        for bucket in &platform.buckets {
            let name = platform.bucket_name(bucket, &environment.account);
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
            let versioning = if bucket.versioning {
                "Enabled"
            } else {
                "Disabled"
            };
            fields.insert("versioning".to_string(), json!(versioning));
            if let Some(days) = bucket.expire_after_days {
                fields.insert("lifecycle.expiration_days".to_string(), json!(days));
            }
            insert_tags(&mut fields, &tags);
            let id = Id {
                name,
                region: environment.region.clone(),
            };
            desired
                .resources
                .push(Resource::new(address(&bucket.id), id, fields));
        }
        Ok(())
    }

    fn outputs(&self, address: &Address, _live: Option<&Live>) -> Vec<Output> {
        let id = address.0.strip_prefix(PREFIX).unwrap_or(&address.0);
        vec![Output::new(
            format!("buckets.{id}"),
            Value::String(self.name.clone()),
        )]
    }
}
