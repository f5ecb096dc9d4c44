//! The adopted cluster's authentication mode: read from DescribeCluster, changed with
//! `UpdateClusterConfig` (an EKS update, waited for through DescribeUpdate; its id is kept
//! in state so an interrupted apply waits instead of sending it again), never undone.

use aws_sdk_eks::types::{AuthenticationMode, UpdateAccessConfigRequest, UpdateStatus};
use serde_json::{Value, json};

use super::{Adapter, Progress};
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, Poll, aws_error, eks, poll};
pub use crate::model::kinds::eks_access_config::Id;
use crate::model::{FieldChange, Fields, Live, Observation, Pending, Resource};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        Ok(match eks::describe_cluster(&apis.aws, &self.cluster).await? {
            None => Observation::Absent,
            Some(facts) => {
                let mut live = Live::named(Fields::from([(
                    "authentication_mode".to_string(),
                    json!(facts.authentication_mode),
                )]));
                live.status = Some(facts.status);
                Observation::Present(live)
            }
        })
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        set_mode(&apis.aws, &self.cluster, &resource.fields).await
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        _changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        set_mode(&apis.aws, &self.cluster, &resource.fields).await
    }

    /// A setting of the adopted cluster: never undone.
    async fn delete(&self, _apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        Ok(None)
    }

    async fn wait(&self, apis: &Apis, pending: &Pending, progress: Progress<'_>) -> Result<Vec<String>, ApiError> {
        let Some(update_id) = pending.operation.as_deref() else {
            return Ok(Vec::new());
        };
        wait_update(&apis.aws, &self.cluster, update_id, apis.wait_timeout, progress).await
    }
}

async fn set_mode(aws: &Aws, cluster: &str, fields: &Fields) -> Result<Option<Pending>, ApiError> {
    let mode = fields
        .get("authentication_mode")
        .and_then(Value::as_str)
        .unwrap_or("API_AND_CONFIG_MAP");
    let operation =
        format!("failed to set the authentication mode of EKS cluster `{cluster}` to {mode}");
    let output = aws
        .eks
        .update_cluster_config()
        .name(cluster)
        .access_config(
            UpdateAccessConfigRequest::builder()
                .authentication_mode(AuthenticationMode::from(mode))
                .build(),
        )
        .send()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            let error = aws_error(&operation, error);
            // An earlier apply started the update and was stopped before it could record
            // it: wait for that one instead of failing.
            if eks::has_code(&error, "ResourceInUseException")
                && let Some(update_id) = eks::access_update_in_progress(aws, cluster, &operation).await?
            {
                return Ok(Some(Pending::ready().with_operation(update_id)));
            }
            return Err(error);
        }
    };
    let update_id = output.update().and_then(|u| u.id()).ok_or_else(|| {
        ApiError::new(
            &operation,
            ErrorClass::Rejected,
            "the response carries no update id",
        )
    })?;
    Ok(Some(Pending::ready().with_operation(update_id)))
}

/// Waits for an `UpdateClusterConfig` to finish.
async fn wait_update(
    aws: &Aws,
    cluster: &str,
    update_id: &str,
    limit: std::time::Duration,
    progress: Progress<'_>,
) -> Result<Vec<String>, ApiError> {
    let operation = format!("EKS cluster `{cluster}` update `{update_id}` did not succeed");
    let check = || async {
        let output = aws
            .eks
            .describe_update()
            .name(cluster)
            .update_id(update_id)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
        let update = output.update();
        let status = update
            .and_then(|u| u.status())
            .cloned()
            .unwrap_or(UpdateStatus::InProgress);
        match status {
            UpdateStatus::Successful => Ok(Poll::Done(Vec::new())),
            UpdateStatus::InProgress => Ok(Poll::Waiting("update in progress".to_string())),
            other => {
                let errors: Vec<String> = update
                    .map(|u| {
                        u.errors()
                            .iter()
                            .map(|e| {
                                format!(
                                    "{}: {}",
                                    e.error_code().map(|c| c.as_str()).unwrap_or("Error"),
                                    e.error_message().unwrap_or_default()
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Err(ApiError::new(
                    &operation,
                    ErrorClass::Rejected,
                    format!("the update ended {}: {}", other.as_str(), errors.join("; ")),
                ))
            }
        }
    };
    poll(eks::backoff(limit), progress, check, |status| {
        ApiError::new(
            format!("timed out waiting for the update of EKS cluster `{cluster}`"),
            ErrorClass::Timeout,
            format!("still `{status}`"),
        )
    })
    .await
}
