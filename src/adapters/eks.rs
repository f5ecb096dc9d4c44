//! EKS facts read before planning: the adopted cluster (preflight), the add-on versions it
//! offers and whether a version supports Pod Identity; and what the EKS kinds share (tags,
//! the poll timing).

use std::collections::HashMap;
use std::time::Duration;

use super::{ApiError, Aws, Backoff, ErrorClass, aws_error};
use crate::model::{ClusterFacts, FieldChange, Fields, removed_tags, tags_of};

/// How EKS operations are polled: 1 s, backing off to 15 s.
pub fn backoff(limit: Duration) -> Backoff {
    Backoff {
        first: Duration::from_secs(1),
        longest: Duration::from_secs(15),
        limit,
    }
}

/// Every name of a paginated EKS listing of the cluster: `page(token)` gives one page and the
/// next token. A cluster that is gone, or one without access entries (`CONFIG_MAP`), lists
/// nothing.
pub async fn list_names<F, Fut>(operation: &str, mut page: F) -> Result<Vec<String>, ApiError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<String>, Option<String>), ApiError>>,
{
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = match page(token).await {
            Ok(page) => page,
            Err(error)
                if error.class == ErrorClass::NotFound
                    || has_code(&error, "InvalidRequestException") =>
            {
                return Ok(Vec::new());
            }
            Err(error) => {
                return Err(ApiError {
                    operation: operation.to_string(),
                    ..error
                });
            }
        };
        names.extend(items);
        token = next;
        if token.is_none() {
            return Ok(names);
        }
    }
}

/// The add-on as DescribeAddon shows it, or `None` when it is not installed.
pub async fn describe_addon(
    aws: &Aws,
    cluster: &str,
    name: &str,
) -> Result<Option<aws_sdk_eks::types::Addon>, ApiError> {
    match aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
    {
        Ok(output) => Ok(output.addon),
        Err(error) => {
            let error = aws_error(format!("failed to read EKS add-on `{name}`"), error);
            if error.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

/// The id of the cluster's authentication-mode update still in progress, if there is one.
pub async fn access_update_in_progress(
    aws: &Aws,
    cluster: &str,
    operation: &str,
) -> Result<Option<String>, ApiError> {
    let ids = aws
        .eks
        .list_updates()
        .name(cluster)
        .send()
        .await
        .map_err(|e| aws_error(operation, e))?
        .update_ids()
        .to_vec();
    for id in ids.iter().rev() {
        let output = aws
            .eks
            .describe_update()
            .name(cluster)
            .update_id(id)
            .send()
            .await
            .map_err(|e| aws_error(operation, e))?;
        if let Some(update) = output.update()
            && update.status() == Some(&aws_sdk_eks::types::UpdateStatus::InProgress)
            && update.r#type() == Some(&aws_sdk_eks::types::UpdateType::AccessConfigUpdate)
        {
            return Ok(Some(id.clone()));
        }
    }
    Ok(None)
}

pub fn has_code(error: &ApiError, code: &str) -> bool {
    error.code.as_deref() == Some(code)
}

/// The cluster, or `None` if there is no cluster of that name in the region.
pub async fn describe_cluster(aws: &Aws, name: &str) -> Result<Option<ClusterFacts>, ApiError> {
    let operation = format!("failed to read EKS cluster `{name}`");
    let output = match aws.eks.describe_cluster().name(name).send().await {
        Ok(output) => output,
        Err(error) => {
            let error = aws_error(&operation, error);
            return if error.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(error)
            };
        }
    };
    let Some(cluster) = output.cluster() else {
        return Ok(None);
    };
    let vpc = cluster.resources_vpc_config();
    Ok(Some(ClusterFacts {
        name: name.to_string(),
        arn: cluster.arn().unwrap_or_default().to_string(),
        version: cluster.version().unwrap_or_default().to_string(),
        status: cluster
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        endpoint: cluster.endpoint().map(str::to_string),
        certificate_authority: cluster
            .certificate_authority()
            .and_then(|c| c.data())
            .map(str::to_string),
        oidc_issuer: cluster
            .identity()
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer())
            .map(str::to_string),
        vpc_id: vpc.and_then(|v| v.vpc_id()).map(str::to_string),
        subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
        // The security group EKS made for the cluster; clusters that predate it (and the
        // emulator) have only the ones given at creation.
        security_group_id: vpc
            .and_then(|v| {
                v.cluster_security_group_id()
                    .or_else(|| v.security_group_ids().first().map(String::as_str))
            })
            .map(str::to_string),
        authentication_mode: cluster
            .access_config()
            .and_then(|a| a.authentication_mode())
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "CONFIG_MAP".to_string()),
    }))
}

pub async fn list_clusters(aws: &Aws) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let output = aws
            .eks
            .list_clusters()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error("failed to list the EKS clusters", e))?;
        names.extend(output.clusters().iter().cloned());
        token = output.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(names);
        }
    }
}

/// Versions of an add-on available for a Kubernetes version, and which is the default.
pub async fn addon_versions(
    aws: &Aws,
    addon: &str,
    kubernetes: &str,
) -> Result<Vec<(String, bool)>, ApiError> {
    let operation =
        format!("failed to list the versions of EKS add-on `{addon}` for Kubernetes {kubernetes}");
    let mut versions = Vec::new();
    let mut token = None;
    loop {
        let output = aws
            .eks
            .describe_addon_versions()
            .addon_name(addon)
            .kubernetes_version(kubernetes)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
        for info in output
            .addons()
            .iter()
            .filter(|a| a.addon_name() == Some(addon))
        {
            for version in info.addon_versions() {
                let default = version
                    .compatibilities()
                    .iter()
                    .any(|c| c.cluster_version() == Some(kubernetes) && c.default_version());
                if let Some(name) = version.addon_version() {
                    versions.push((name.to_string(), default));
                }
            }
        }
        token = output.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(versions);
        }
    }
}

/// Whether this add-on version can bind service accounts through EKS Pod Identity.
pub async fn supports_pod_identity(
    aws: &Aws,
    addon: &str,
    version: &str,
) -> Result<bool, ApiError> {
    let output = aws
        .eks
        .describe_addon_configuration()
        .addon_name(addon)
        .addon_version(version)
        .send()
        .await
        .map_err(|e| {
            aws_error(
                format!(
                    "failed to read the configuration schema of EKS add-on `{addon}` {version}"
                ),
                e,
            )
        })?;
    Ok(!output.pod_identity_configuration().is_empty())
}

/// The version of an installed add-on (one DescribeAddon), or `None` if it is not installed.
/// The installed version of an add-on and its status (`ACTIVE`, `CREATING`, ...).
pub async fn installed_addon(
    aws: &Aws,
    cluster: &str,
    name: &str,
) -> Result<Option<(String, String)>, ApiError> {
    Ok(describe_addon(aws, cluster, name).await?.and_then(|addon| {
        let status = addon
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        addon
            .addon_version()
            .map(|version| (version.to_string(), status))
    }))
}

pub fn sorted_tags(tags: Option<&HashMap<String, String>>) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = tags
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

pub async fn retag(
    aws: &Aws,
    arn: &str,
    fields: &Fields,
    changes: &[FieldChange],
    operation: &str,
) -> Result<(), ApiError> {
    let removed = removed_tags(changes);
    if !removed.is_empty() {
        aws.eks
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| aws_error(operation, e))?;
    }
    aws.eks
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags_of(fields).into_iter().collect()))
        .send()
        .await
        .map_err(|e| aws_error(operation, e))?;
    Ok(())
}
