//! IAM: roles comfyplat owns, inline policies (on its own roles and on the adopted
//! Karpenter node role), and existence checks of adopted roles.
//!
//! Role fields: `trust_policy`, `description`, `tags.*`. Inline policy field: `document`.
//! IAM returns policy documents URL-encoded; they are decoded and normalised.

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::{ApiError, Aws, ErrorClass, aws_error, parse_policy_document};
use crate::config::OWNER_TAG;
use crate::model::{Fields, Live, Observation, Owner, field_group, policy, tags_of};
use crate::planner::{FieldChange, removed_tags};

fn has_code(error: &ApiError, code: &str) -> bool {
    error.code.as_deref() == Some(code)
}

pub async fn role_exists(aws: &Aws, name: &str) -> Result<bool, ApiError> {
    match aws.iam.get_role().role_name(name).send().await {
        Ok(_) => Ok(true),
        Err(error) => {
            let error = aws_error(format!("failed to read IAM role `{name}`"), error);
            if error.class == ErrorClass::NotFound {
                Ok(false)
            } else {
                Err(error)
            }
        }
    }
}

pub async fn observe_role(aws: &Aws, name: &str) -> Result<Observation, ApiError> {
    let operation = format!("failed to read IAM role `{name}`");
    let role = match aws.iam.get_role().role_name(name).send().await {
        Ok(output) => output.role,
        Err(error) => {
            let error = aws_error(&operation, error);
            return if error.class == ErrorClass::NotFound {
                Ok(Observation::Absent)
            } else {
                Err(error)
            };
        }
    };
    let tags = read_role_tags(aws, name, &operation).await?;
    let mut fields = Fields::new();
    if let Some(role) = &role {
        let trust = parse_policy_document(role.assume_role_policy_document().unwrap_or_default())
            .map(|doc| policy::normalize(&doc))
            .unwrap_or(Value::Null);
        fields.insert("trust_policy".to_string(), trust);
        if let Some(description) = role.description().filter(|d| !d.is_empty()) {
            fields.insert(
                "description".to_string(),
                Value::String(description.to_string()),
            );
        }
    }
    Ok(Observation::Present(Live::tagged(fields, tags, None)))
}

async fn read_role_tags(
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

fn role_tags(fields: &Fields, operation: &str) -> Result<Vec<Tag>, ApiError> {
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

fn text(fields: &Fields, key: &str) -> Option<String> {
    match fields.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    }
}

pub async fn create_role(aws: &Aws, name: &str, fields: &Fields) -> Result<(), ApiError> {
    let operation = format!("failed to create IAM role `{name}`");
    let result = aws
        .iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(text(fields, "trust_policy").unwrap_or_default())
        .set_description(text(fields, "description"))
        .set_tags(Some(role_tags(fields, &operation)?))
        .send()
        .await;
    let Err(error) = result else {
        return Ok(());
    };
    let error = aws_error(&operation, error);
    if !has_code(&error, "EntityAlreadyExists") {
        return Err(error);
    }
    // It exists: finish the job if it is ours (an earlier attempt's answer was lost).
    let wanted_owner = fields
        .get(&format!("tags.{OWNER_TAG}"))
        .and_then(Value::as_str);
    let live_tags = read_role_tags(aws, name, &operation).await?;
    let live_owner = live_tags
        .iter()
        .find(|(k, _)| k == OWNER_TAG)
        .map(|(_, v)| v.as_str());
    if live_owner != wanted_owner || wanted_owner.is_none() {
        return Err(ApiError {
            class: ErrorClass::Conflict,
            ..error
        });
    }
    let everything: Vec<FieldChange> = ["trust_policy", "description"]
        .into_iter()
        .map(|path| FieldChange {
            path: path.to_string(),
            before: None,
            after: fields.get(path).cloned(),
            irreversible: false,
        })
        .chain(live_tags.iter().map(|(key, value)| FieldChange {
            path: format!("tags.{key}"),
            before: Some(Value::String(value.clone())),
            after: fields.get(&format!("tags.{key}")).cloned(),
            irreversible: false,
        }))
        .collect();
    update_role(aws, name, fields, &everything).await
}

pub async fn update_role(
    aws: &Aws,
    name: &str,
    fields: &Fields,
    changes: &[FieldChange],
) -> Result<(), ApiError> {
    let touches = |group: &str| changes.iter().any(|c| field_group(&c.path) == group);
    if touches("trust_policy") {
        let operation = format!("failed to update the trust policy of IAM role `{name}`");
        aws.iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(text(fields, "trust_policy").unwrap_or_default())
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    if touches("description") {
        let operation = format!("failed to update the description of IAM role `{name}`");
        aws.iam
            .update_role()
            .role_name(name)
            .description(text(fields, "description").unwrap_or_default())
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    if touches("tags") {
        let operation = format!("failed to tag IAM role `{name}`");
        let removed = removed_tags(changes);
        if !removed.is_empty() {
            aws.iam
                .untag_role()
                .role_name(name)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
        }
        aws.iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(role_tags(fields, &operation)?))
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    Ok(())
}

/// Deletes a role comfyplat owns, with everything attached to it.
pub async fn delete_role(aws: &Aws, name: &str) -> Result<(), ApiError> {
    let operation = format!("failed to delete IAM role `{name}`");
    let gone = |error: ApiError| {
        if error.class == ErrorClass::NotFound {
            Ok(())
        } else {
            Err(error)
        }
    };
    let inline = match aws.iam.list_role_policies().role_name(name).send().await {
        Ok(output) => output.policy_names().to_vec(),
        Err(error) => return gone(aws_error(&operation, error)),
    };
    for policy in inline {
        delete_role_policy(aws, name, &policy).await?;
    }
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| aws_error(&operation, e))?;
    for arn in attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
    {
        if let Err(error) = aws
            .iam
            .detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
        {
            gone(aws_error(&operation, error))?;
        }
    }
    let profiles = aws
        .iam
        .list_instance_profiles_for_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| aws_error(&operation, e))?;
    for profile in profiles.instance_profiles() {
        let result = aws
            .iam
            .remove_role_from_instance_profile()
            .role_name(name)
            .instance_profile_name(profile.instance_profile_name())
            .send()
            .await;
        if let Err(error) = result {
            gone(aws_error(&operation, error))?;
        }
    }
    match aws.iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(error) => gone(aws_error(&operation, error)),
    }
}

pub async fn observe_role_policy(
    aws: &Aws,
    role: &str,
    policy_name: &str,
) -> Result<Observation, ApiError> {
    let operation = format!("failed to read inline policy `{policy_name}` of IAM role `{role}`");
    match aws
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy_name)
        .send()
        .await
    {
        Ok(output) => {
            let document = parse_policy_document(output.policy_document())
                .map(|doc| policy::normalize(&doc))
                .unwrap_or_else(|| Value::String(output.policy_document().to_string()));
            Ok(Observation::Present(Live {
                fields: Fields::from([("document".to_string(), document)]),
                owner: Owner::Name,
                holds_objects: None,
                status: None,
                attributes: Fields::new(),
            }))
        }
        Err(error) => {
            let error = aws_error(&operation, error);
            if error.class == ErrorClass::NotFound {
                Ok(Observation::Absent)
            } else {
                Err(error)
            }
        }
    }
}

pub async fn put_role_policy(
    aws: &Aws,
    role: &str,
    policy_name: &str,
    fields: &Fields,
) -> Result<(), ApiError> {
    let operation = format!("failed to write inline policy `{policy_name}` of IAM role `{role}`");
    let document = fields
        .get("document")
        .map(Value::to_string)
        .unwrap_or_default();
    aws.iam
        .put_role_policy()
        .role_name(role)
        .policy_name(policy_name)
        .policy_document(document)
        .send()
        .await
        .map_err(|e| aws_error(&operation, e))?;
    Ok(())
}

pub async fn delete_role_policy(aws: &Aws, role: &str, policy_name: &str) -> Result<(), ApiError> {
    let operation = format!("failed to delete inline policy `{policy_name}` of IAM role `{role}`");
    match aws
        .iam
        .delete_role_policy()
        .role_name(role)
        .policy_name(policy_name)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = aws_error(&operation, error);
            if error.class == ErrorClass::NotFound {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}

// ---- OIDC providers (IRSA) ------------------------------------------------------------

pub async fn observe_oidc_provider(aws: &Aws, arn: &str) -> Result<Observation, ApiError> {
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

pub async fn create_oidc_provider(
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
        .set_tags(Some(role_tags(fields, &operation)?))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = aws_error(&operation, error);
            // Already there: an earlier attempt got through although its answer was lost.
            if has_code(&error, "EntityAlreadyExists") {
                update_oidc_provider(aws, arn, fields, &[]).await
            } else {
                Err(error)
            }
        }
    }
}

pub async fn update_oidc_provider(
    aws: &Aws,
    arn: &str,
    fields: &Fields,
    changes: &[FieldChange],
) -> Result<(), ApiError> {
    let operation = format!("failed to update IAM OIDC provider `{arn}`");
    let live = match observe_oidc_provider(aws, arn).await? {
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
            .set_tags(Some(role_tags(fields, &operation)?))
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    Ok(())
}

pub async fn delete_oidc_provider(aws: &Aws, arn: &str) -> Result<(), ApiError> {
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
