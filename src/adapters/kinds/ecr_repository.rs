//! The ECR repository for the ComfyUI image: read in one round (repository, lifecycle
//! policy, tags, its images with the digest of every tag), create, update by field group,
//! delete (with its images only with `--delete-data`); found by the platform's tag.

use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use serde_json::{Value, json};

use super::Adapter;
use crate::adapters::{ApiError, Apis, ErrorClass, aws_error, tagging};
pub use crate::model::kinds::ecr_repository::Id;
use crate::model::{
    FieldChange, Fields, Live, Observation, Pending, Resource, field_group, insert_flat,
    removed_tags, tags_of,
};

fn has_code(error: &ApiError, code: &str) -> bool {
    error.code.as_deref() == Some(code)
}

impl Id {
    fn arn(&self, apis: &Apis) -> String {
        format!(
            "arn:{}:ecr:{}:{}:repository/{}",
            apis.partition, self.region, apis.account, self.name
        )
    }
}

impl Adapter for Id {
    /// One round: the repository, its lifecycle policy, its tags, and its images with their
    /// tags (the lifecycle policy keeps them few), which give the digest of every tag.
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        let ecr = &apis.aws.ecr;
        let name = self.name.as_str();
        let operation = format!("failed to read ECR repository `{name}`");
        let arn = self.arn(apis);
        let images = async {
            let mut digests = Vec::new();
            let mut token = None;
            loop {
                let page = match ecr
                    .describe_images()
                    .repository_name(name)
                    .set_next_token(token)
                    .send()
                    .await
                {
                    Ok(page) => page,
                    Err(error) => {
                        let error = aws_error(&operation, error);
                        if has_code(&error, "RepositoryNotFoundException") {
                            return Ok(digests);
                        }
                        return Err(error);
                    }
                };
                for image in page.image_details() {
                    let Some(digest) = image.image_digest() else {
                        continue;
                    };
                    digests.push((image.image_tags().to_vec(), digest.to_string()));
                }
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    return Ok(digests);
                }
            }
        };
        let (repository, policy, tags, images) = tokio::join!(
            ecr.describe_repositories().repository_names(name).send(),
            ecr.get_lifecycle_policy().repository_name(name).send(),
            ecr.list_tags_for_resource().resource_arn(&arn).send(),
            images,
        );
        let repository = match repository {
            Ok(output) => output.repositories().first().cloned(),
            Err(error) => {
                let error = aws_error(&operation, error);
                return if has_code(&error, "RepositoryNotFoundException") {
                    Ok(Observation::Absent)
                } else {
                    Err(error)
                };
            }
        };
        let Some(repository) = repository else {
            return Ok(Observation::Absent);
        };
        let mut fields = Fields::new();
        let mutability = repository
            .image_tag_mutability()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "MUTABLE".to_string());
        fields.insert("image_tag_mutability".to_string(), json!(mutability));
        let scan = repository
            .image_scanning_configuration()
            .is_some_and(|c| c.scan_on_push());
        fields.insert("scan_on_push".to_string(), json!(scan));
        let encryption = repository.encryption_configuration();
        let kind = encryption
            .map(|e| e.encryption_type().as_str().to_string())
            .unwrap_or_else(|| "AES256".to_string());
        let mut value = json!({"type": kind});
        if let Some(key) = encryption.and_then(|e| e.kms_key()).filter(|_| kind != "AES256") {
            value["kms_key"] = json!(key);
        }
        insert_flat(&mut fields, "encryption", &value);
        match policy {
            Ok(output) => {
                if let Some(text) = output.lifecycle_policy_text() {
                    let document = serde_json::from_str(text).unwrap_or_else(|_| json!(text));
                    fields.insert("lifecycle_policy".to_string(), document);
                }
            }
            Err(error) => {
                let error = aws_error(&operation, error);
                if !has_code(&error, "LifecyclePolicyNotFoundException") {
                    return Err(error);
                }
            }
        }
        let tags = tags
            .map_err(|e| aws_error(&operation, e))?
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let images = images?;
        let mut live = Live::tagged(fields, tags, Some(!images.is_empty()));
        if let Some(uri) = repository.repository_uri() {
            live.attributes.insert("uri".to_string(), json!(uri));
        }
        if let Some(arn) = repository.repository_arn() {
            live.attributes.insert("arn".to_string(), json!(arn));
        }
        for (tags, digest) in images {
            for tag in tags {
                live.attributes.insert(format!("digests.{tag}"), json!(digest));
            }
        }
        Ok(Observation::Present(live))
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        let fields = &resource.fields;
        let operation = format!("failed to create ECR repository `{}`", self.name);
        let encryption = EncryptionConfiguration::builder()
            .encryption_type(EncryptionType::from(text(fields, "encryption.type")))
            .set_kms_key(fields.get("encryption.kms_key").and_then(Value::as_str).map(str::to_string))
            .build()
            .map_err(|e| rejected(&operation, e))?;
        let result = apis
            .aws
            .ecr
            .create_repository()
            .repository_name(&self.name)
            .image_tag_mutability(ImageTagMutability::from(text(fields, "image_tag_mutability")))
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(fields.get("scan_on_push").and_then(Value::as_bool).unwrap_or(true))
                    .build(),
            )
            .encryption_configuration(encryption)
            .set_tags(Some(tags(fields, &operation)?))
            .send()
            .await;
        if let Err(error) = result {
            let error = aws_error(&operation, error);
            if !has_code(&error, "RepositoryAlreadyExistsException") {
                return Err(error);
            }
            // It exists: finish the job if it is ours (an earlier attempt's answer was lost).
            let owner = format!("tags.{}", crate::config::OWNER_TAG);
            let ours = match self.observe(apis).await? {
                Observation::Present(live) => live.fields.get(&owner) == fields.get(&owner),
                _ => false,
            };
            if !ours {
                return Err(ApiError { class: ErrorClass::Conflict, ..error });
            }
            let everything: Vec<FieldChange> = ["image_tag_mutability", "scan_on_push", "tags"]
                .into_iter()
                .map(|path| FieldChange::new(path, None, None))
                .collect();
            self.update(apis, resource, &everything, false).await?;
        }
        put_lifecycle_policy(apis, &self.name, fields).await?;
        Ok(None)
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        let fields = &resource.fields;
        let ecr = &apis.aws.ecr;
        let name = self.name.as_str();
        let mut groups: Vec<&str> = changes.iter().map(|c| field_group(&c.path)).collect();
        groups.dedup();
        for group in groups {
            let operation = format!("failed to update `{group}` of ECR repository `{name}`");
            match group {
                "image_tag_mutability" => {
                    ecr.put_image_tag_mutability()
                        .repository_name(name)
                        .image_tag_mutability(ImageTagMutability::from(text(fields, group)))
                        .send()
                        .await
                        .map_err(|e| aws_error(&operation, e))?;
                }
                "scan_on_push" => {
                    ecr.put_image_scanning_configuration()
                        .repository_name(name)
                        .image_scanning_configuration(
                            ImageScanningConfiguration::builder()
                                .scan_on_push(fields.get(group).and_then(Value::as_bool).unwrap_or(true))
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| aws_error(&operation, e))?;
                }
                "lifecycle_policy" => put_lifecycle_policy(apis, name, fields).await?,
                "tags" => {
                    let arn = self.arn(apis);
                    let removed = removed_tags(changes);
                    if !removed.is_empty() {
                        ecr.untag_resource()
                            .resource_arn(&arn)
                            .set_tag_keys(Some(removed))
                            .send()
                            .await
                            .map_err(|e| aws_error(&operation, e))?;
                    }
                    ecr.tag_resource()
                        .resource_arn(&arn)
                        .set_tags(Some(tags(fields, &operation)?))
                        .send()
                        .await
                        .map_err(|e| aws_error(&operation, e))?;
                }
                other => {
                    return Err(ApiError::new(
                        operation,
                        ErrorClass::Rejected,
                        format!("ECR cannot change `{other}` of a repository; the plan replaces it"),
                    ));
                }
            }
        }
        Ok(None)
    }

    async fn delete(&self, apis: &Apis, delete_data: bool) -> Result<Option<Pending>, ApiError> {
        let operation = format!("failed to delete ECR repository `{}`", self.name);
        match apis
            .aws
            .ecr
            .delete_repository()
            .repository_name(&self.name)
            .force(delete_data)
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(error) => {
                let error = aws_error(&operation, error);
                if has_code(&error, "RepositoryNotFoundException") {
                    Ok(None)
                } else if has_code(&error, "RepositoryNotEmptyException") {
                    Err(ApiError { class: ErrorClass::Conflict, ..error })
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let found = tagging::owned(&apis.aws, &apis.platform, &["ecr:repository"]).await?;
        Ok(Some(
            found
                .into_iter()
                .filter_map(|(arn, _)| {
                    let name = arn.split_once(":repository/")?.1;
                    Some(Id {
                        name: name.to_string(),
                        region: apis.aws.region.clone(),
                    })
                })
                .collect(),
        ))
    }
}

async fn put_lifecycle_policy(apis: &Apis, name: &str, fields: &Fields) -> Result<(), ApiError> {
    let ecr = &apis.aws.ecr;
    let operation = format!("failed to set the lifecycle policy of ECR repository `{name}`");
    match fields.get("lifecycle_policy") {
        Some(policy) => {
            ecr.put_lifecycle_policy()
                .repository_name(name)
                .lifecycle_policy_text(policy.to_string())
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
        }
        None => {
            if let Err(error) = ecr.delete_lifecycle_policy().repository_name(name).send().await {
                let error = aws_error(&operation, error);
                if !has_code(&error, "LifecyclePolicyNotFoundException") {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

fn text<'a>(fields: &'a Fields, path: &str) -> &'a str {
    fields.get(path).and_then(Value::as_str).unwrap_or_default()
}

fn rejected(operation: &str, error: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::new(operation, ErrorClass::Rejected, error.to_string()).caused_by(error)
}

fn tags(fields: &Fields, operation: &str) -> Result<Vec<Tag>, ApiError> {
    tags_of(fields)
        .into_iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| rejected(operation, e))
        })
        .collect()
}
