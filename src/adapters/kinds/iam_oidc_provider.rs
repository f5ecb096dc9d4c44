//! The cluster's IAM OIDC provider (IRSA only): read, create, update client ids and tags,
//! delete; found by the platform's tag.

use serde_json::Value;

use super::Adapter;
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, aws_error, iam};
pub use crate::model::kinds::iam_oidc_provider::Id;
use crate::model::{FieldChange, Fields, Live, Observation, Pending, Resource, field_group, tags_of};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        observe(&apis.aws, &self.arn).await
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        create(&apis.aws, &self.arn, &self.url, &resource.fields).await?;
        Ok(None)
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        update(&apis.aws, &self.arn, &resource.fields, changes).await?;
        Ok(None)
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        delete(&apis.aws, &self.arn).await?;
        Ok(None)
    }

    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let aws = &apis.aws;
        let list = aws
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| aws_error("failed to list IAM OIDC providers", e))?;
        let candidates = list
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn())
            .map(|arn| Id {
                arn: arn.to_string(),
                url: arn.split(":oidc-provider/").nth(1).unwrap_or_default().to_string(),
            })
            .collect();
        super::owned(apis, candidates, |id: Id| async move { observe(aws, &id.arn).await })
            .await
            .map(Some)
    }
}

async fn observe(aws: &Aws, arn: &str) -> Result<Observation, ApiError> {
    let operation = format!("failed to read IAM OIDC provider `{arn}`");
    let output = match aws
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
    {
        Ok(output) => output,
        Err(error) => {
            let error = aws_error(&operation, error);
            return if error.class == ErrorClass::NotFound {
                Ok(Observation::Absent)
            } else {
                Err(error)
            };
        }
    };
    let mut client_ids = output.client_id_list().to_vec();
    client_ids.sort();
    let fields = Fields::from([("client_ids".to_string(), Value::from(client_ids))]);
    let tags = output
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    Ok(Observation::Present(Live::tagged(fields, tags, None)))
}

fn client_ids(fields: &Fields) -> Vec<String> {
    fields
        .get("client_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn create(
    aws: &Aws,
    arn: &str,
    url: &str,
    fields: &Fields,
) -> Result<(), ApiError> {
    let operation = format!("failed to create IAM OIDC provider `https://{url}`");
    let result = aws
        .iam
        .create_open_id_connect_provider()
        .url(format!("https://{url}"))
        .set_client_id_list(Some(client_ids(fields)))
        .set_tags(Some(iam::tags(fields, &operation)?))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = aws_error(&operation, error);
            // Already there: an earlier attempt got through although its answer was lost.
            if iam::has_code(&error, "EntityAlreadyExists") {
                update(aws, arn, fields, &[]).await
            } else {
                Err(error)
            }
        }
    }
}

async fn update(
    aws: &Aws,
    arn: &str,
    fields: &Fields,
    changes: &[FieldChange],
) -> Result<(), ApiError> {
    let operation = format!("failed to update IAM OIDC provider `{arn}`");
    let live = match observe(aws, arn).await? {
        Observation::Present(live) => live,
        _ => {
            return Err(ApiError::new(
                &operation,
                ErrorClass::NotFound,
                "it no longer exists",
            ));
        }
    };
    let (wanted, have) = (client_ids(fields), client_ids(&live.fields));
    for id in wanted.iter().filter(|id| !have.contains(id)) {
        aws.iam
            .add_client_id_to_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .client_id(id)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    for id in have.iter().filter(|id| !wanted.contains(id)) {
        aws.iam
            .remove_client_id_from_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .client_id(id)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    if changes.is_empty() || changes.iter().any(|c| field_group(&c.path) == "tags") {
        let removed: Vec<String> = tags_of(&live.fields)
            .into_keys()
            .filter(|k| !tags_of(fields).contains_key(k))
            .collect();
        if !removed.is_empty() {
            aws.iam
                .untag_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
        }
        aws.iam
            .tag_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .set_tags(Some(iam::tags(fields, &operation)?))
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    Ok(())
}

async fn delete(aws: &Aws, arn: &str) -> Result<(), ApiError> {
    match aws
        .iam
        .delete_open_id_connect_provider()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = aws_error(format!("failed to delete IAM OIDC provider `{arn}`"), error);
            if error.class == ErrorClass::NotFound {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}
