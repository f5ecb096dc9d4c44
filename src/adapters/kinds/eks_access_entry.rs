//! EKS access entries with their access policies: read (entry and policies in one round),
//! create (then associate), update groups, policies and tags, delete; found by the
//! platform's tag. Entries comfyplat did not make are never touched.

use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use serde_json::{Value, json};

use super::Adapter;
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, aws_error, eks};
pub use crate::model::kinds::eks_access_entry::Id;
use crate::model::{FieldChange, Fields, Live, Observation, Pending, Resource, field_group, tags_of};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        observe(&apis.aws, &self.cluster, &self.principal).await
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        create(&apis.aws, &self.cluster, &self.principal, &resource.fields).await?;
        Ok(None)
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        update(&apis.aws, &self.cluster, &self.principal, &resource.fields, changes).await?;
        Ok(None)
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        delete(&apis.aws, &self.cluster, &self.principal).await?;
        Ok(None)
    }

    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let (aws, cluster) = (&apis.aws, &apis.cluster);
        let operation = format!("failed to list the access entries of EKS cluster `{cluster}`");
        let principals = eks::list_names(&operation, |token| async {
            let page = aws
                .eks
                .list_access_entries()
                .cluster_name(cluster)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
            Ok((page.access_entries().to_vec(), page.next_token().map(str::to_string)))
        })
        .await?;
        let candidates = principals
            .into_iter()
            .map(|principal| Id {
                cluster: cluster.clone(),
                principal,
            })
            .collect();
        super::owned(apis, candidates, |id: Id| async move {
            observe(aws, &id.cluster, &id.principal).await
        })
            .await
            .map(Some)
    }
}

async fn observe(
    aws: &Aws,
    cluster: &str,
    principal: &str,
) -> Result<Observation, ApiError> {
    let operation = format!("failed to read the EKS access entry of `{principal}`");
    let (entry, policies) = tokio::join!(
        aws.eks
            .describe_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send(),
        aws.eks
            .list_associated_access_policies()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
    );
    let entry = match entry {
        Ok(output) => output.access_entry,
        Err(error) => {
            let error = aws_error(&operation, error);
            // No entry, or access entries not enabled yet (CONFIG_MAP): either way, none.
            return if error.class == ErrorClass::NotFound
                || eks::has_code(&error, "InvalidRequestException")
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
    let policies = policies.map_err(|e| aws_error(&operation, e))?;
    for policy in policies.associated_access_policies() {
        let Some(arn) = policy.policy_arn() else {
            continue;
        };
        fields.insert(
            format!("access_policies.{arn}"),
            scope_value(policy.access_scope()),
        );
    }
    let tags = eks::sorted_tags(entry.tags());
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

async fn create(
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
        if !eks::has_code(&error, "ResourceInUseException")
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
    Ok(match observe(aws, cluster, principal).await? {
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

async fn update(
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
        eks::retag(
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

async fn delete(
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

