//! S3 buckets: observe, create, update by field group, empty and delete.
//!
//! Field groups (see the kind's model): `public_access_block.*`, `encryption.*`, `policy`,
//! `versioning`, `lifecycle.*`, `tags.*`; each is read and written by one API call, and a
//! bucket is read in one round of concurrent calls. Versioning, once enabled, can only be
//! suspended: `Disabled` is written as `Suspended` and a suspended bucket reads back as
//! `Disabled`.

use aws_sdk_s3::error::BuildError;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use serde_json::{Value, json};

use super::Adapter;
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, aws_error, parse_policy_document, tagging};
pub use crate::model::kinds::s3_bucket::Id;
use crate::model::{
    FieldChange, Fields, Live, Observation, Pending, Resource, field_group, insert_flat, policy,
    tags_of,
};

/// The id of the one lifecycle rule comfyplat manages.
const EXPIRATION_RULE_ID: &str = "comfyplat-expiration";
/// Objects deleted per DeleteObjects call (the API's maximum).
const DELETE_BATCH: i32 = 1000;

fn built<T>(result: Result<T, BuildError>, operation: &str) -> Result<T, ApiError> {
    result.map_err(|e| ApiError::new(operation, ErrorClass::Rejected, e.to_string()).caused_by(e))
}

fn has_code(error: &ApiError, codes: &[&str]) -> bool {
    error
        .code
        .as_deref()
        .is_some_and(|code| codes.contains(&code))
}

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        observe(&apis.aws, &self.name, &self.region).await
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        create(&apis.aws, &self.name, &self.region, &resource.fields).await?;
        Ok(None)
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        let mut groups: Vec<&str> = changes.iter().map(|c| field_group(&c.path)).collect();
        groups.dedup();
        for group in groups {
            write_group(&apis.aws, &self.name, group, &resource.fields).await?;
        }
        Ok(None)
    }

    async fn delete(&self, apis: &Apis, delete_data: bool) -> Result<Option<Pending>, ApiError> {
        delete(&apis.aws, &self.name, delete_data).await?;
        Ok(None)
    }

    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let found = tagging::owned(&apis.aws, &apis.platform, &["s3"]).await?;
        Ok(Some(
            found
                .into_iter()
                .filter_map(|(arn, _)| {
                    let name = arn.strip_prefix("arn:")?.split(":::").nth(1)?;
                    Some(Id {
                        name: name.to_string(),
                        region: apis.aws.region.clone(),
                    })
                })
                .collect(),
        ))
    }
}

async fn observe(aws: &Aws, name: &str, region: &str) -> Result<Observation, ApiError> {
    let operation = format!("failed to read S3 bucket `{name}`");
    // Everything at once: one round trip. The location decides whether the rest counts.
    let (location, tags, public_access, encryption, bucket_policy, versioning, lifecycle, holds) = tokio::join!(
        aws.s3.get_bucket_location().bucket(name).send(),
        read_tags(aws, name, &operation),
        read_public_access_block(aws, name, &operation),
        read_encryption(aws, name, &operation),
        read_policy(aws, name, &operation),
        read_versioning(aws, name, &operation),
        read_expiration_days(aws, name, &operation),
        holds_objects(aws, name, &operation),
    );
    let location = match location {
        Ok(location) => location,
        Err(error) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            let error = aws_error(&operation, error);
            return match (error.class, status) {
                (ErrorClass::NotFound, _) => Ok(Observation::Absent),
                (_, Some(403)) => Ok(Observation::Unavailable {
                    reason: "the name is taken by another AWS account, or these credentials may not read it".to_string(),
                }),
                (_, Some(301)) => Ok(Observation::Unavailable {
                    reason: "a bucket with this name exists in another region".to_string(),
                }),
                _ => Err(error),
            };
        }
    };
    let live_region = match location
        .location_constraint()
        .map(BucketLocationConstraint::as_str)
    {
        None | Some("") => "us-east-1",
        Some("EU") => "eu-west-1",
        Some(other) => other,
    };
    if live_region != region {
        return Ok(Observation::Unavailable {
            reason: format!("it exists in region `{live_region}`, not `{region}`"),
        });
    }
    let mut fields = Fields::new();
    insert_flat(&mut fields, "public_access_block", &public_access?);
    insert_flat(&mut fields, "encryption", &encryption?);
    if let Some(document) = bucket_policy? {
        fields.insert("policy".to_string(), document);
    }
    fields.insert("versioning".to_string(), Value::String(versioning?));
    if let Some(days) = lifecycle? {
        fields.insert("lifecycle.expiration_days".to_string(), json!(days));
    }
    Ok(Observation::Present(Live::tagged(fields, tags?, Some(holds?))))
}

async fn read_tags(
    aws: &Aws,
    name: &str,
    operation: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    match aws.s3.get_bucket_tagging().bucket(name).send().await {
        Ok(output) => Ok(output
            .tag_set()
            .iter()
            .map(|tag| (tag.key().to_string(), tag.value().to_string()))
            .collect()),
        Err(error) => {
            let error = aws_error(operation, error);
            if has_code(&error, &["NoSuchTagSet", "NoSuchTagSetError"]) {
                Ok(Vec::new())
            } else {
                Err(error)
            }
        }
    }
}

async fn read_public_access_block(
    aws: &Aws,
    name: &str,
    operation: &str,
) -> Result<Value, ApiError> {
    match aws.s3.get_public_access_block().bucket(name).send().await {
        Ok(output) => {
            let config = output.public_access_block_configuration();
            let flag = |get: fn(&PublicAccessBlockConfiguration) -> Option<bool>| {
                config.and_then(get).unwrap_or(false)
            };
            Ok(json!({
                "block_public_acls": flag(PublicAccessBlockConfiguration::block_public_acls),
                "ignore_public_acls": flag(PublicAccessBlockConfiguration::ignore_public_acls),
                "block_public_policy": flag(PublicAccessBlockConfiguration::block_public_policy),
                "restrict_public_buckets": flag(PublicAccessBlockConfiguration::restrict_public_buckets),
            }))
        }
        Err(error) => {
            let error = aws_error(operation, error);
            if has_code(&error, &["NoSuchPublicAccessBlockConfiguration"]) {
                Ok(json!({
                    "block_public_acls": false,
                    "ignore_public_acls": false,
                    "block_public_policy": false,
                    "restrict_public_buckets": false,
                }))
            } else {
                Err(error)
            }
        }
    }
}

async fn read_encryption(aws: &Aws, name: &str, operation: &str) -> Result<Value, ApiError> {
    match aws.s3.get_bucket_encryption().bucket(name).send().await {
        Ok(output) => {
            let rule = output
                .server_side_encryption_configuration()
                .and_then(|config| config.rules().first());
            let default =
                rule.and_then(ServerSideEncryptionRule::apply_server_side_encryption_by_default);
            let mut value = serde_json::Map::new();
            if let Some(default) = default {
                value.insert(
                    "sse_algorithm".into(),
                    json!(default.sse_algorithm().as_str()),
                );
                if let Some(key) = default.kms_master_key_id() {
                    value.insert("kms_master_key_id".into(), json!(key));
                }
                if default.sse_algorithm() != &ServerSideEncryption::Aes256
                    && rule.and_then(ServerSideEncryptionRule::bucket_key_enabled) == Some(true)
                {
                    value.insert("bucket_key_enabled".into(), json!(true));
                }
            }
            Ok(Value::Object(value))
        }
        Err(error) => {
            let error = aws_error(operation, error);
            if has_code(&error, &["ServerSideEncryptionConfigurationNotFoundError"]) {
                Ok(json!({}))
            } else {
                Err(error)
            }
        }
    }
}

async fn read_policy(aws: &Aws, name: &str, operation: &str) -> Result<Option<Value>, ApiError> {
    match aws.s3.get_bucket_policy().bucket(name).send().await {
        Ok(output) => Ok(output.policy().map(|text| {
            parse_policy_document(text)
                .map(|doc| policy::normalize(&doc))
                .unwrap_or(json!(text))
        })),
        Err(error) => {
            let error = aws_error(operation, error);
            if has_code(&error, &["NoSuchBucketPolicy"]) {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

async fn read_versioning(aws: &Aws, name: &str, operation: &str) -> Result<String, ApiError> {
    let output = aws
        .s3
        .get_bucket_versioning()
        .bucket(name)
        .send()
        .await
        .map_err(|e| aws_error(operation, e))?;
    Ok(match output.status() {
        Some(BucketVersioningStatus::Enabled) => "Enabled",
        _ => "Disabled",
    }
    .to_string())
}

async fn read_expiration_days(
    aws: &Aws,
    name: &str,
    operation: &str,
) -> Result<Option<i32>, ApiError> {
    match aws
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(name)
        .send()
        .await
    {
        Ok(output) => Ok(output
            .rules()
            .iter()
            .find(|rule| {
                rule.id() == Some(EXPIRATION_RULE_ID) && rule.status() == &ExpirationStatus::Enabled
            })
            .and_then(|rule| rule.expiration())
            .and_then(LifecycleExpiration::days)),
        Err(error) => {
            let error = aws_error(operation, error);
            if has_code(&error, &["NoSuchLifecycleConfiguration"]) {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

async fn holds_objects(aws: &Aws, name: &str, operation: &str) -> Result<bool, ApiError> {
    let output = aws
        .s3
        .list_object_versions()
        .bucket(name)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| aws_error(operation, e))?;
    Ok(!output.versions().is_empty() || !output.delete_markers().is_empty())
}

async fn create(
    aws: &Aws,
    name: &str,
    region: &str,
    fields: &Fields,
) -> Result<(), ApiError> {
    let operation = format!("failed to create S3 bucket `{name}`");
    let mut request = aws.s3.create_bucket().bucket(name);
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    if let Err(error) = request.send().await {
        let error = aws_error(&operation, error);
        if has_code(&error, &["BucketAlreadyExists"]) {
            return Err(ApiError {
                class: ErrorClass::Conflict,
                ..error
            });
        }
        // Ours already: an earlier attempt got through although its answer was lost.
        if !has_code(&error, &["BucketAlreadyOwnedByYou"]) {
            return Err(error);
        }
    }
    let groups: Vec<&str> = [
        "tags",
        "public_access_block",
        "encryption",
        "policy",
        "versioning",
        "lifecycle",
    ]
    .into_iter()
    .filter(|group| fields.keys().any(|k| field_group(k) == *group))
    .collect();
    for group in groups {
        // Versioning is off on a new bucket; only turning it on needs a call.
        if group == "versioning" && fields.get("versioning") != Some(&json!("Enabled")) {
            continue;
        }
        write_group(aws, name, group, fields).await?;
    }
    Ok(())
}

/// Writes one field group of a bucket to its desired value.
async fn write_group(aws: &Aws, name: &str, group: &str, fields: &Fields) -> Result<(), ApiError> {
    let flag = |key: &str| {
        fields
            .get(&format!("public_access_block.{key}"))
            .and_then(Value::as_bool)
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
    match group {
        "tags" => {
            let operation = format!("failed to tag S3 bucket `{name}`");
            let tags = tags_of(fields)
                .into_iter()
                .map(|(key, value)| built(Tag::builder().key(key).value(value).build(), &operation))
                .collect::<Result<Vec<_>, _>>()?;
            let tagging = built(
                Tagging::builder().set_tag_set(Some(tags)).build(),
                &operation,
            )?;
            aws.s3
                .put_bucket_tagging()
                .bucket(name)
                .tagging(tagging)
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
        }
        "public_access_block" => {
            let operation = format!("failed to block public access to S3 bucket `{name}`");
            let config = PublicAccessBlockConfiguration::builder()
                .set_block_public_acls(flag("block_public_acls"))
                .set_ignore_public_acls(flag("ignore_public_acls"))
                .set_block_public_policy(flag("block_public_policy"))
                .set_restrict_public_buckets(flag("restrict_public_buckets"))
                .build();
            aws.s3
                .put_public_access_block()
                .bucket(name)
                .public_access_block_configuration(config)
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
        }
        "encryption" => {
            let operation = format!("failed to set default encryption of S3 bucket `{name}`");
            let algorithm =
                text("encryption.sse_algorithm").unwrap_or_else(|| "AES256".to_string());
            let default = built(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::from(algorithm.as_str()))
                    .set_kms_master_key_id(text("encryption.kms_master_key_id"))
                    .build(),
                &operation,
            )?;
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(default)
                .set_bucket_key_enabled(
                    fields
                        .get("encryption.bucket_key_enabled")
                        .and_then(Value::as_bool),
                )
                .build();
            let config = built(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build(),
                &operation,
            )?;
            aws.s3
                .put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(config)
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
        }
        "policy" => {
            let operation = format!("failed to set the bucket policy of S3 bucket `{name}`");
            match fields.get("policy") {
                Some(document) => {
                    aws.s3
                        .put_bucket_policy()
                        .bucket(name)
                        .policy(document.to_string())
                        .send()
                        .await
                        .map_err(|e| aws_error(&operation, e))?;
                }
                None => {
                    aws.s3
                        .delete_bucket_policy()
                        .bucket(name)
                        .send()
                        .await
                        .map_err(|e| aws_error(&operation, e))?;
                }
            }
        }
        "versioning" => {
            let operation = format!("failed to set versioning of S3 bucket `{name}`");
            let status = if text("versioning").as_deref() == Some("Enabled") {
                BucketVersioningStatus::Enabled
            } else {
                BucketVersioningStatus::Suspended
            };
            aws.s3
                .put_bucket_versioning()
                .bucket(name)
                .versioning_configuration(VersioningConfiguration::builder().status(status).build())
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
        }
        "lifecycle" => {
            let operation = format!("failed to set the lifecycle rules of S3 bucket `{name}`");
            match fields
                .get("lifecycle.expiration_days")
                .and_then(Value::as_i64)
            {
                Some(days) => {
                    let rule = built(
                        LifecycleRule::builder()
                            .id(EXPIRATION_RULE_ID)
                            .status(ExpirationStatus::Enabled)
                            .filter(LifecycleRuleFilter::builder().prefix("").build())
                            .expiration(LifecycleExpiration::builder().days(days as i32).build())
                            .build(),
                        &operation,
                    )?;
                    let config = built(
                        BucketLifecycleConfiguration::builder().rules(rule).build(),
                        &operation,
                    )?;
                    aws.s3
                        .put_bucket_lifecycle_configuration()
                        .bucket(name)
                        .lifecycle_configuration(config)
                        .send()
                        .await
                        .map_err(|e| aws_error(&operation, e))?;
                }
                None => {
                    aws.s3
                        .delete_bucket_lifecycle()
                        .bucket(name)
                        .send()
                        .await
                        .map_err(|e| aws_error(&operation, e))?;
                }
            }
        }
        other => {
            return Err(ApiError::new(
                format!("failed to update S3 bucket `{name}`"),
                ErrorClass::Rejected,
                format!("comfyplat does not manage `{other}` on buckets"),
            ));
        }
    }
    Ok(())
}

async fn delete(aws: &Aws, name: &str, delete_data: bool) -> Result<(), ApiError> {
    if delete_data {
        empty_bucket(aws, name).await?;
    }
    let operation = format!("failed to delete S3 bucket `{name}`");
    match aws.s3.delete_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = aws_error(&operation, error);
            if error.class == ErrorClass::NotFound {
                Ok(())
            } else if has_code(&error, &["BucketNotEmpty"]) {
                Err(ApiError {
                    class: ErrorClass::Conflict,
                    ..error
                })
            } else {
                Err(error)
            }
        }
    }
}

/// Deletes every object version and delete marker of a bucket.
async fn empty_bucket(aws: &Aws, name: &str) -> Result<(), ApiError> {
    let operation = format!("failed to delete the objects of S3 bucket `{name}`");
    loop {
        let page = match aws
            .s3
            .list_object_versions()
            .bucket(name)
            .max_keys(DELETE_BATCH)
            .send()
            .await
        {
            Ok(page) => page,
            Err(error) => {
                let error = aws_error(&operation, error);
                return if error.class == ErrorClass::NotFound {
                    Ok(())
                } else {
                    Err(error)
                };
            }
        };
        let mut objects = Vec::new();
        for (key, version) in page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
        {
            let Some(key) = key else { continue };
            let identifier = ObjectIdentifier::builder()
                .key(key)
                .set_version_id(version.filter(|v| *v != "null").map(str::to_string))
                .build();
            objects.push(built(identifier, &operation)?);
        }
        if objects.is_empty() {
            return Ok(());
        }
        let delete = built(
            Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build(),
            &operation,
        )?;
        let output = aws
            .s3
            .delete_objects()
            .bucket(name)
            .delete(delete)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
        if let Some(failed) = output.errors().first() {
            return Err(ApiError::new(
                operation,
                ErrorClass::Rejected,
                format!(
                    "{}: {} (object `{}`)",
                    failed.code().unwrap_or("Error"),
                    failed.message().unwrap_or("could not delete"),
                    failed.key().unwrap_or_default()
                ),
            ));
        }
    }
}
