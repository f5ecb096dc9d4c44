//! IAM facts and helpers shared by the IAM kinds: the adopted node role (does it exist, may
//! it do what the platform needs), and tags.

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::{ApiError, Aws, ErrorClass, aws_error, parse_policy_document};
use crate::model::{AdoptedState, Fields, Permission, policy, tags_of};

pub fn has_code(error: &ApiError, code: &str) -> bool {
    error.code.as_deref() == Some(code)
}

/// What is found of an adopted role: whether it exists and which of the permissions it
/// must have it lacks. A permission counts as granted when one of its AWS managed policies
/// is attached, or when the role's inline and attached policies allow every action of it.
pub async fn adopted_role(
    aws: &Aws,
    name: &str,
    must_allow: &[Permission],
) -> Result<AdoptedState, ApiError> {
    let operation = format!("failed to read IAM role `{name}`");
    let exists = async {
        match aws.iam.get_role().role_name(name).send().await {
            Ok(_) => Ok(true),
            Err(error) => {
                let error = aws_error(&operation, error);
                if error.class == ErrorClass::NotFound {
                    Ok(false)
                } else {
                    Err(error)
                }
            }
        }
    };
    if must_allow.is_empty() {
        return Ok(AdoptedState {
            exists: exists.await?,
            missing: Vec::new(),
        });
    }
    let (exists, attached) = tokio::join!(exists, attached_policies(aws, name, &operation));
    let exists = exists?;
    if !exists {
        return Ok(AdoptedState {
            exists,
            missing: Vec::new(),
        });
    }
    let attached = attached?;
    let granted_by_name = |permission: &Permission| {
        attached.iter().any(|arn| {
            arn.rsplit('/').next().is_some_and(|policy| {
                arn.contains(":iam::aws:policy/")
                    && permission.managed_policies.iter().any(|m| m == policy)
            })
        })
    };
    let mut missing = Vec::new();
    let mut documents: Option<Vec<Value>> = None;
    for permission in must_allow {
        if granted_by_name(permission) {
            continue;
        }
        if documents.is_none() {
            documents = Some(role_documents(aws, name, &attached, &operation).await?);
        }
        let documents = documents.as_deref().unwrap_or_default();
        let lacking: Vec<String> = permission
            .actions
            .iter()
            .filter(|action| !policy::allows(documents, action))
            .cloned()
            .collect();
        if !lacking.is_empty() {
            missing.push((permission.purpose.clone(), lacking));
        }
    }
    Ok(AdoptedState { exists, missing })
}

async fn attached_policies(
    aws: &Aws,
    role: &str,
    operation: &str,
) -> Result<Vec<String>, ApiError> {
    let mut arns = Vec::new();
    let mut marker = None;
    loop {
        let output = match aws
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .set_marker(marker)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                let error = aws_error(operation, error);
                return if error.class == ErrorClass::NotFound {
                    Ok(arns)
                } else {
                    Err(error)
                };
            }
        };
        arns.extend(
            output
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string)),
        );
        if !output.is_truncated() {
            return Ok(arns);
        }
        marker = output.marker().map(str::to_string);
    }
}

/// The documents of a role's inline policies and of its attached policies.
async fn role_documents(
    aws: &Aws,
    role: &str,
    attached: &[String],
    operation: &str,
) -> Result<Vec<Value>, ApiError> {
    let inline = aws
        .iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| aws_error(operation, e))?;
    let inline =
        futures::future::try_join_all(inline.policy_names().iter().map(|policy| async move {
            let output = aws
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(policy)
                .send()
                .await
                .map_err(|e| aws_error(operation, e))?;
            Ok::<_, ApiError>(parse_policy_document(output.policy_document()))
        }));
    let managed = futures::future::try_join_all(attached.iter().map(|arn| async move {
        let policy = aws
            .iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| aws_error(operation, e))?;
        let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
            return Ok(None);
        };
        let output = aws
            .iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .map_err(|e| aws_error(operation, e))?;
        Ok::<_, ApiError>(
            output
                .policy_version()
                .and_then(|v| v.document())
                .and_then(parse_policy_document),
        )
    }));
    let (inline, managed) = tokio::try_join!(inline, managed)?;
    Ok(inline
        .into_iter()
        .chain(managed)
        .flatten()
        .map(|document| policy::normalize(&document))
        .collect())
}

/// The tags of an IAM role.
pub async fn role_tags(
    aws: &Aws,
    name: &str,
    operation: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut tags = Vec::new();
    let mut marker = None;
    loop {
        let output = aws
            .iam
            .list_role_tags()
            .role_name(name)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| aws_error(operation, e))?;
        tags.extend(
            output
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string())),
        );
        if !output.is_truncated() {
            return Ok(tags);
        }
        marker = output.marker().map(str::to_string);
    }
}

/// The `tags.<key>` fields as IAM tags.
pub fn tags(fields: &Fields, operation: &str) -> Result<Vec<Tag>, ApiError> {
    tags_of(fields)
        .into_iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| ApiError::new(operation, ErrorClass::Rejected, e.to_string()))
        })
        .collect()
}

/// A field as the text IAM takes (documents as JSON).
pub fn text(fields: &Fields, key: &str) -> Option<String> {
    match fields.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    }
}
