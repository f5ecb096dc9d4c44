//! EKS: the adopted cluster (preflight facts), its access configuration, access entries with
//! their access policies, and add-ons (with their Pod Identity associations).
//!
//! Fields: access configuration `authentication_mode`; access entry `type`,
//! `kubernetes_groups` (STANDARD entries only), `access_policies.<policy ARN>` = scope,
//! `tags.*`; add-on `version`, `configuration_values`, `service_account_role_arn`,
//! `pod_identity_associations.<service account>` = role ARN, `tags.*`.
//!
//! Long operations are two-phase: the call returns a [`Pending`] that the executor persists
//! in state before [`wait`] polls it, so an interrupted apply resumes waiting instead of
//! starting the operation again. Polls start at 1 s and back off to 15 s.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AddonIssue, AddonPodIdentityAssociations, AddonStatus,
    AuthenticationMode, ResolveConflicts, UpdateAccessConfigRequest, UpdateStatus,
};
use serde_json::{Value, json};

use super::{ApiError, Aws, Backoff, ErrorClass, Poll, aws_error};
use crate::model::{
    AddonGoal, ClusterFacts, Fields, Live, Observation, Owner, Pending, field_group, tags_of,
};
use crate::planner::{FieldChange, removed_tags};

/// How long an add-on or cluster update may take before comfyplat gives up waiting.
const WAIT_LIMIT: Duration = Duration::from_secs(30 * 60);
const FIRST_POLL: Duration = Duration::from_secs(1);
const LONGEST_POLL: Duration = Duration::from_secs(15);

fn has_code(error: &ApiError, code: &str) -> bool {
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

// ---- access configuration -------------------------------------------------------------

pub async fn observe_access_config(aws: &Aws, cluster: &str) -> Result<Observation, ApiError> {
    Ok(match describe_cluster(aws, cluster).await? {
        None => Observation::Absent,
        Some(facts) => Observation::Present(Live {
            fields: Fields::from([(
                "authentication_mode".to_string(),
                json!(facts.authentication_mode),
            )]),
            owner: Owner::Name,
            holds_objects: None,
            status: Some(facts.status),
            attributes: Fields::new(),
        }),
    })
}

pub async fn update_access_config(
    aws: &Aws,
    cluster: &str,
    fields: &Fields,
) -> Result<Option<Pending>, ApiError> {
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
        .await
        .map_err(|e| aws_error(&operation, e))?;
    let update_id = output.update().and_then(|u| u.id()).ok_or_else(|| {
        ApiError::new(
            &operation,
            ErrorClass::Rejected,
            "the response carries no update id",
        )
    })?;
    Ok(Some(Pending::ClusterUpdate {
        cluster: cluster.to_string(),
        update_id: update_id.to_string(),
    }))
}

/// Waits for an `UpdateClusterConfig` to finish.
pub async fn wait_cluster_update(
    aws: &Aws,
    cluster: &str,
    update_id: &str,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Vec<String>, ApiError> {
    let operation = format!("EKS cluster `{cluster}` update `{update_id}` did not succeed");
    poll(&operation, progress, || async {
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
    })
    .await
}

// ---- access entries -------------------------------------------------------------------

pub async fn observe_access_entry(
    aws: &Aws,
    cluster: &str,
    principal: &str,
) -> Result<Observation, ApiError> {
    let operation = format!("failed to read the EKS access entry of `{principal}`");
    let entry = match aws
        .eks
        .describe_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
    {
        Ok(output) => output.access_entry,
        Err(error) => {
            let error = aws_error(&operation, error);
            // No entry, or access entries not enabled yet (CONFIG_MAP): either way, none.
            return if error.class == ErrorClass::NotFound
                || has_code(&error, "InvalidRequestException")
            {
                Ok(Observation::Absent)
            } else {
                Err(error)
            };
        }
    };
    let Some(entry) = entry else {
        return Ok(Observation::Absent);
    };
    let kind = entry.r#type().unwrap_or("STANDARD").to_string();
    let mut fields = Fields::from([("type".to_string(), json!(kind))]);
    if kind == "STANDARD" && !entry.kubernetes_groups().is_empty() {
        let mut groups = entry.kubernetes_groups().to_vec();
        groups.sort();
        fields.insert("kubernetes_groups".to_string(), json!(groups));
    }
    let policies = aws
        .eks
        .list_associated_access_policies()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
        .map_err(|e| aws_error(&operation, e))?;
    for policy in policies.associated_access_policies() {
        let Some(arn) = policy.policy_arn() else {
            continue;
        };
        fields.insert(
            format!("access_policies.{arn}"),
            scope_value(policy.access_scope()),
        );
    }
    let tags = sorted_tags(entry.tags());
    Ok(Observation::Present(Live::tagged(fields, tags, None)))
}

fn scope_value(scope: Option<&AccessScope>) -> Value {
    match scope.and_then(|s| s.r#type()) {
        Some(AccessScopeType::Namespace) => {
            let mut namespaces = scope.map(|s| s.namespaces().to_vec()).unwrap_or_default();
            namespaces.sort();
            json!({"type": "namespace", "namespaces": namespaces})
        }
        _ => json!({"type": "cluster"}),
    }
}

fn sorted_tags(tags: Option<&HashMap<String, String>>) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = tags
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

fn access_policies(fields: &Fields) -> Vec<(String, &Value)> {
    fields
        .iter()
        .filter_map(|(path, scope)| {
            path.strip_prefix("access_policies.")
                .map(|arn| (arn.to_string(), scope))
        })
        .collect()
}

fn access_scope(scope: &Value) -> AccessScope {
    match scope.get("namespaces").and_then(Value::as_array) {
        Some(namespaces) => AccessScope::builder()
            .r#type(AccessScopeType::Namespace)
            .set_namespaces(Some(
                namespaces
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect(),
            ))
            .build(),
        None => AccessScope::builder()
            .r#type(AccessScopeType::Cluster)
            .build(),
    }
}

fn string_list(fields: &Fields, key: &str) -> Option<Vec<String>> {
    fields.get(key).and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

pub async fn create_access_entry(
    aws: &Aws,
    cluster: &str,
    principal: &str,
    fields: &Fields,
) -> Result<(), ApiError> {
    let operation = format!("failed to create the EKS access entry of `{principal}`");
    let kind = fields
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("STANDARD");
    let result = aws
        .eks
        .create_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .r#type(kind)
        .set_kubernetes_groups(string_list(fields, "kubernetes_groups"))
        .set_tags(Some(tags_of(fields).into_iter().collect()))
        .send()
        .await;
    if let Err(error) = result {
        let error = aws_error(&operation, error);
        // Ours already: an earlier attempt got through although its answer was lost.
        if !has_code(&error, "ResourceInUseException")
            || !entry_is_tagged_like(aws, cluster, principal, fields).await?
        {
            return Err(error);
        }
    }
    for (policy, scope) in access_policies(fields) {
        associate(aws, cluster, principal, &policy, scope).await?;
    }
    Ok(())
}

async fn entry_is_tagged_like(
    aws: &Aws,
    cluster: &str,
    principal: &str,
    fields: &Fields,
) -> Result<bool, ApiError> {
    let owner_key = format!("tags.{}", crate::config::OWNER_TAG);
    Ok(match observe_access_entry(aws, cluster, principal).await? {
        Observation::Present(live) => fields
            .get(&owner_key)
            .is_some_and(|wanted| live.fields.get(&owner_key) == Some(wanted)),
        _ => false,
    })
}

async fn associate(
    aws: &Aws,
    cluster: &str,
    principal: &str,
    policy: &str,
    scope: &Value,
) -> Result<(), ApiError> {
    aws.eks
        .associate_access_policy()
        .cluster_name(cluster)
        .principal_arn(principal)
        .policy_arn(policy)
        .access_scope(access_scope(scope))
        .send()
        .await
        .map_err(|e| {
            aws_error(
                format!("failed to associate access policy `{policy}` with `{principal}`"),
                e,
            )
        })?;
    Ok(())
}

pub async fn update_access_entry(
    aws: &Aws,
    cluster: &str,
    principal: &str,
    fields: &Fields,
    changes: &[FieldChange],
) -> Result<(), ApiError> {
    let touches = |group: &str| changes.iter().any(|c| field_group(&c.path) == group);
    if touches("kubernetes_groups") {
        aws.eks
            .update_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .set_kubernetes_groups(Some(
                string_list(fields, "kubernetes_groups").unwrap_or_default(),
            ))
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    format!("failed to update the Kubernetes groups of `{principal}`"),
                    e,
                )
            })?;
    }
    for change in changes
        .iter()
        .filter(|c| field_group(&c.path) == "access_policies")
    {
        let policy = change.path.trim_start_matches("access_policies.");
        match &change.after {
            Some(scope) => associate(aws, cluster, principal, policy, scope).await?,
            None => {
                let result = aws
                    .eks
                    .disassociate_access_policy()
                    .cluster_name(cluster)
                    .principal_arn(principal)
                    .policy_arn(policy)
                    .send()
                    .await;
                if let Err(error) = result {
                    let error = aws_error(
                        format!(
                            "failed to disassociate access policy `{policy}` from `{principal}`"
                        ),
                        error,
                    );
                    if error.class != ErrorClass::NotFound {
                        return Err(error);
                    }
                }
            }
        }
    }
    if touches("tags") {
        let arn = aws
            .eks
            .describe_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    format!("failed to read the EKS access entry of `{principal}`"),
                    e,
                )
            })?
            .access_entry()
            .and_then(|e| e.access_entry_arn())
            .map(str::to_string)
            .unwrap_or_default();
        retag(
            aws,
            &arn,
            fields,
            changes,
            &format!("failed to tag the EKS access entry of `{principal}`"),
        )
        .await?;
    }
    Ok(())
}

async fn retag(
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

pub async fn delete_access_entry(
    aws: &Aws,
    cluster: &str,
    principal: &str,
) -> Result<(), ApiError> {
    match aws
        .eks
        .delete_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = aws_error(
                format!("failed to delete the EKS access entry of `{principal}`"),
                error,
            );
            if error.class == ErrorClass::NotFound {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}

// ---- add-ons --------------------------------------------------------------------------

/// The version of an installed add-on (one DescribeAddon), or `None` if it is not installed.
pub async fn installed_addon_version(
    aws: &Aws,
    cluster: &str,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
    {
        Ok(output) => Ok(output
            .addon()
            .and_then(|a| a.addon_version())
            .map(str::to_string)),
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

pub async fn observe_addon(aws: &Aws, cluster: &str, name: &str) -> Result<Observation, ApiError> {
    let operation = format!("failed to read EKS add-on `{name}`");
    let addon = match aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
    {
        Ok(output) => output.addon,
        Err(error) => {
            let error = aws_error(&operation, error);
            return if error.class == ErrorClass::NotFound {
                Ok(Observation::Absent)
            } else {
                Err(error)
            };
        }
    };
    let Some(addon) = addon else {
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
    let tags = sorted_tags(addon.tags());
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

pub async fn create_addon(
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
        if !has_code(&error, "ResourceInUseException") {
            return Err(error);
        }
    }
    Ok(Some(Pending::Addon {
        cluster: cluster.to_string(),
        name: name.to_string(),
        goal: AddonGoal::Active,
    }))
}

pub async fn update_addon(
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
        retag(
            aws,
            &arn,
            fields,
            changes,
            &format!("failed to tag EKS add-on `{name}`"),
        )
        .await?;
    }
    Ok((!only_tags).then(|| Pending::Addon {
        cluster: cluster.to_string(),
        name: name.to_string(),
        goal: AddonGoal::Active,
    }))
}

pub async fn delete_addon(
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
    Ok(Some(Pending::Addon {
        cluster: cluster.to_string(),
        name: name.to_string(),
        goal: AddonGoal::Deleted,
    }))
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
pub async fn wait_addon(
    aws: &Aws,
    cluster: &str,
    name: &str,
    goal: AddonGoal,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Vec<String>, ApiError> {
    let operation = match goal {
        AddonGoal::Active => format!("EKS add-on `{name}` did not become ACTIVE"),
        AddonGoal::Deleted => format!("EKS add-on `{name}` was not deleted"),
    };
    poll(&operation, progress, || async {
        let addon = match aws.eks.describe_addon().cluster_name(cluster).addon_name(name).send().await {
            Ok(output) => output.addon,
            Err(error) => {
                let error = aws_error(&operation, error);
                return match (error.class, goal) {
                    (ErrorClass::NotFound, AddonGoal::Deleted) => Ok(Poll::Done(Vec::new())),
                    _ => Err(error),
                };
            }
        };
        let status = addon.as_ref().and_then(|a| a.status()).cloned();
        let issues = addon.as_ref().and_then(|a| a.health()).map(|h| h.issues().to_vec()).unwrap_or_default();
        let failed = |status: &str| Err(ApiError::new(&operation, ErrorClass::Rejected, format!("{status}: {}", issues_text(&issues))));
        match (goal, status) {
            (AddonGoal::Active, Some(AddonStatus::Active)) => Ok(Poll::Done(Vec::new())),
            (AddonGoal::Active, Some(AddonStatus::Degraded))
                if !issues.is_empty() && issues.iter().all(|i| i.code().map(|c| c.as_str()) == Some("InsufficientNumberOfReplicas")) =>
            {
                Ok(Poll::Done(vec![format!(
                    "add-on `{name}` is DEGRADED ({}): no node can run its pods yet; it becomes ACTIVE once nodes join",
                    issues_text(&issues)
                )]))
            }
            (AddonGoal::Active, Some(status @ (AddonStatus::CreateFailed | AddonStatus::UpdateFailed | AddonStatus::Degraded))) => failed(status.as_str()),
            (AddonGoal::Deleted, Some(AddonStatus::DeleteFailed)) => failed("DELETE_FAILED"),
            (_, status) => Ok(Poll::Waiting(status.map(|s| s.as_str().to_string()).unwrap_or_default())),
        }
    })
    .await
}

/// Polls `check` with backoff until it is done, fails, or [`WAIT_LIMIT`] passes; then the
/// wait fails as transient (the next apply waits again).
async fn poll<F, Fut>(
    operation: &str,
    progress: &(dyn Fn(String) + Sync),
    check: F,
) -> Result<Vec<String>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll, ApiError>>,
{
    let backoff = Backoff {
        first: FIRST_POLL,
        longest: LONGEST_POLL,
        limit: WAIT_LIMIT,
    };
    super::poll(backoff, progress, check, |status| {
        ApiError::new(
            operation,
            ErrorClass::Transient,
            format!(
                "still `{status}` after {} minutes",
                WAIT_LIMIT.as_secs() / 60
            ),
        )
    })
    .await
}
