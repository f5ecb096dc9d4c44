//! EKS add-ons with their Pod Identity associations: read (with the associations' roles),
//! create, update (version, configuration, service account role, associations; tags),
//! delete, wait until ACTIVE or gone; found by the platform's tag.
//!
//! An add-on that is DEGRADED only because no node can run its pods yet
//! (`InsufficientNumberOfReplicas`, a Karpenter cluster with no nodes) is done, with a
//! warning; `CREATE_FAILED`, `UPDATE_FAILED` and other DEGRADED states fail with the
//! add-on's health issues.

use aws_sdk_eks::types::{AddonIssue, AddonPodIdentityAssociations, AddonStatus, ResolveConflicts};
use serde_json::{Value, json};

use super::{Adapter, Progress};
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, Poll, aws_error, eks, poll};
pub use crate::model::kinds::eks_addon::Id;
use crate::model::{
    FieldChange, Fields, Goal, Live, Observation, Pending, Resource, field_group, tags_of,
};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        observe(&apis.aws, &self.cluster, &self.name).await
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        create(&apis.aws, &self.cluster, &self.name, &resource.fields).await
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        update(
            &apis.aws,
            &self.cluster,
            &self.name,
            &resource.fields,
            &resource.parameters,
            changes,
        )
        .await
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        delete(&apis.aws, &self.cluster, &self.name).await
    }

    async fn wait(&self, apis: &Apis, pending: &Pending, progress: Progress<'_>) -> Result<Vec<String>, ApiError> {
        wait(&apis.aws, &self.cluster, &self.name, pending.goal, apis.wait_timeout, progress).await
    }

    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let (aws, cluster) = (&apis.aws, &apis.cluster);
        let operation = format!("failed to list the add-ons of EKS cluster `{cluster}`");
        let names = eks::list_names(&operation, |token| async {
            let page = aws
                .eks
                .list_addons()
                .cluster_name(cluster)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
            Ok((page.addons().to_vec(), page.next_token().map(str::to_string)))
        })
        .await?;
        let candidates = names
            .into_iter()
            .map(|name| Id {
                cluster: cluster.clone(),
                name,
            })
            .collect();
        super::owned(apis, candidates, |id: Id| async move {
            observe(aws, &id.cluster, &id.name).await
        })
            .await
            .map(Some)
    }
}

async fn observe(aws: &Aws, cluster: &str, name: &str) -> Result<Observation, ApiError> {
    let operation = format!("failed to read EKS add-on `{name}`");
    let Some(addon) = eks::describe_addon(aws, cluster, name).await? else {
        return Ok(Observation::Absent);
    };
    let mut fields = Fields::new();
    if let Some(version) = addon.addon_version() {
        fields.insert("version".to_string(), json!(version));
    }
    if let Some(values) = addon
        .configuration_values()
        .filter(|v| !v.trim().is_empty())
    {
        let parsed = serde_json::from_str::<Value>(values)
            .ok()
            .or_else(|| serde_saphyr::from_str::<Value>(values).ok())
            .unwrap_or_else(|| json!(values));
        // `{}` is how a configuration is cleared: the same as none.
        if parsed != json!({}) {
            fields.insert("configuration_values".to_string(), parsed);
        }
    }
    if let Some(role) = addon.service_account_role_arn() {
        fields.insert("service_account_role_arn".to_string(), json!(role));
    }
    for association in addon.pod_identity_associations() {
        let id = association.rsplit('/').next().unwrap_or_default();
        let output = aws
            .eks
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
        if let Some(found) = output.association()
            && let (Some(account), Some(role)) = (found.service_account(), found.role_arn())
        {
            fields.insert(format!("pod_identity_associations.{account}"), json!(role));
        }
    }
    let status = addon.status().map(|s| s.as_str().to_string());
    let tags = eks::sorted_tags(addon.tags());
    let mut live = Live::tagged(fields, tags, None);
    live.status = status;
    Ok(Observation::Present(live))
}

fn pod_identity_associations(
    fields: &Fields,
    operation: &str,
) -> Result<Option<Vec<AddonPodIdentityAssociations>>, ApiError> {
    fields
        .iter()
        .filter_map(|(path, role)| {
            Some((
                path.strip_prefix("pod_identity_associations.")?,
                role.as_str()?,
            ))
        })
        .map(|(account, role)| {
            AddonPodIdentityAssociations::builder()
                .service_account(account)
                .role_arn(role)
                .build()
                .map_err(|e| ApiError::new(operation, ErrorClass::Rejected, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn configuration_text(fields: &Fields) -> Option<String> {
    fields.get("configuration_values").map(Value::to_string)
}

async fn create(
    aws: &Aws,
    cluster: &str,
    name: &str,
    fields: &Fields,
) -> Result<Option<Pending>, ApiError> {
    let operation = format!("failed to create EKS add-on `{name}`");
    let result = aws
        .eks
        .create_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .set_addon_version(
            fields
                .get("version")
                .and_then(Value::as_str)
                .map(str::to_string),
        )
        .set_configuration_values(configuration_text(fields))
        .set_service_account_role_arn(
            fields
                .get("service_account_role_arn")
                .and_then(Value::as_str)
                .map(str::to_string),
        )
        .set_pod_identity_associations(
            pod_identity_associations(fields, &operation)?.filter(|a| !a.is_empty()),
        )
        .resolve_conflicts(ResolveConflicts::Overwrite)
        .set_tags(Some(tags_of(fields).into_iter().collect()))
        .send()
        .await;
    if let Err(error) = result {
        let error = aws_error(&operation, error);
        // Already there: an earlier attempt's answer was lost; wait for it like the first.
        if !eks::has_code(&error, "ResourceInUseException") {
            return Err(error);
        }
    }
    Ok(Some(Pending::ready()))
}

async fn update(
    aws: &Aws,
    cluster: &str,
    name: &str,
    fields: &Fields,
    parameters: &Fields,
    changes: &[FieldChange],
) -> Result<Option<Pending>, ApiError> {
    let operation = format!("failed to update EKS add-on `{name}`");
    let only_tags = !changes.is_empty() && changes.iter().all(|c| field_group(&c.path) == "tags");
    if !only_tags {
        let resolve = parameters
            .get("resolve_conflicts")
            .and_then(Value::as_str)
            .unwrap_or("PRESERVE");
        aws.eks
            .update_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .set_addon_version(
                fields
                    .get("version")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )
            // `{}` clears a configuration that left platform.yaml.
            .configuration_values(configuration_text(fields).unwrap_or_else(|| "{}".to_string()))
            .set_service_account_role_arn(
                fields
                    .get("service_account_role_arn")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )
            .set_pod_identity_associations(pod_identity_associations(fields, &operation)?)
            .resolve_conflicts(ResolveConflicts::from(resolve))
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    if changes.iter().any(|c| field_group(&c.path) == "tags") {
        let arn = aws
            .eks
            .describe_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?
            .addon()
            .and_then(|a| a.addon_arn())
            .map(str::to_string)
            .unwrap_or_default();
        eks::retag(
            aws,
            &arn,
            fields,
            changes,
            &format!("failed to tag EKS add-on `{name}`"),
        )
        .await?;
    }
    Ok((!only_tags).then(Pending::ready))
}

async fn delete(
    aws: &Aws,
    cluster: &str,
    name: &str,
) -> Result<Option<Pending>, ApiError> {
    match aws
        .eks
        .delete_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
    {
        Ok(_) => {}
        Err(error) => {
            let error = aws_error(format!("failed to delete EKS add-on `{name}`"), error);
            if error.class == ErrorClass::NotFound {
                return Ok(None);
            }
            return Err(error);
        }
    }
    Ok(Some(Pending::deleted()))
}

fn issues_text(issues: &[AddonIssue]) -> String {
    issues
        .iter()
        .map(|i| {
            format!(
                "{}: {}",
                i.code().map(|c| c.as_str()).unwrap_or("Issue"),
                i.message().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits for an add-on to become ACTIVE or to be gone.
async fn wait(
    aws: &Aws,
    cluster: &str,
    name: &str,
    goal: Goal,
    limit: std::time::Duration,
    progress: Progress<'_>,
) -> Result<Vec<String>, ApiError> {
    let operation = match goal {
        Goal::Ready => format!("EKS add-on `{name}` did not become ACTIVE"),
        Goal::Deleted => format!("EKS add-on `{name}` was not deleted"),
    };
    let check = || async {
        let Some(addon) = eks::describe_addon(aws, cluster, name).await? else {
            return match goal {
                Goal::Deleted => Ok(Poll::Done(Vec::new())),
                Goal::Ready => Err(ApiError::new(&operation, ErrorClass::NotFound, "the add-on is gone")),
            };
        };
        let status = addon.status().cloned();
        let issues = addon.health().map(|h| h.issues().to_vec()).unwrap_or_default();
        let failed = |status: &str| Err(ApiError::new(&operation, ErrorClass::Rejected, format!("{status}: {}", issues_text(&issues))));
        match (goal, status) {
            (Goal::Ready, Some(AddonStatus::Active)) => Ok(Poll::Done(Vec::new())),
            (Goal::Ready, Some(AddonStatus::Degraded))
                if !issues.is_empty() && issues.iter().all(|i| i.code().map(|c| c.as_str()) == Some("InsufficientNumberOfReplicas")) =>
            {
                Ok(Poll::Done(vec![format!(
                    "add-on `{name}` is DEGRADED ({}): no node can run its pods yet; it becomes ACTIVE once nodes join",
                    issues_text(&issues)
                )]))
            }
            (Goal::Ready, Some(status @ (AddonStatus::CreateFailed | AddonStatus::UpdateFailed | AddonStatus::Degraded))) => failed(status.as_str()),
            (Goal::Deleted, Some(AddonStatus::DeleteFailed)) => failed("DELETE_FAILED"),
            (_, status) => Ok(Poll::Waiting(status.map(|s| s.as_str().to_string()).unwrap_or_default())),
        }
    };
    poll(eks::backoff(limit), progress, check, |status| {
        ApiError::new(
            format!("timed out waiting for EKS add-on `{name}`"),
            ErrorClass::Timeout,
            format!("still `{status}`"),
        )
    })
    .await
}

