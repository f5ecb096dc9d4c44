//! IAM roles comfyplat owns: observe (trust policy, description, tags), create, update,
//! delete with everything attached, and find them by name prefix and tag.

use serde_json::Value;

use super::Adapter;
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, aws_error, iam, parse_policy_document};
use crate::config::OWNER_TAG;
pub use crate::model::kinds::iam_role::Id;
use crate::model::{
    FieldChange, Fields, Live, Observation, Pending, Resource, field_group, policy, removed_tags,
};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        observe(&apis.aws, &self.name).await
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        create(&apis.aws, &self.name, &resource.fields).await?;
        Ok(None)
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        update(&apis.aws, &self.name, &resource.fields, changes).await?;
        Ok(None)
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        delete(&apis.aws, &self.name).await?;
        Ok(None)
    }

    /// comfyplat names its roles `comfyplat-<platform>-...`: those with the platform's tag.
    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let aws = &apis.aws;
        let prefix = format!("comfyplat-{}-", apis.platform);
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let output = aws
                .iam
                .list_roles()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| aws_error("failed to list IAM roles", e))?;
            names.extend(
                output
                    .roles()
                    .iter()
                    .map(|role| role.role_name().to_string())
                    .filter(|name| name.starts_with(&prefix)),
            );
            if !output.is_truncated() {
                break;
            }
            marker = output.marker().map(str::to_string);
        }
        let mut found = Vec::new();
        for name in names {
            let tags = iam::role_tags(aws, &name, &format!("failed to read IAM role `{name}`")).await?;
            if tags.iter().any(|(k, v)| k == OWNER_TAG && *v == apis.platform) {
                found.push(Id { name });
            }
        }
        Ok(Some(found))
    }
}

async fn observe(aws: &Aws, name: &str) -> Result<Observation, ApiError> {
    let operation = format!("failed to read IAM role `{name}`");
    let (role, tags) = tokio::join!(
        aws.iam.get_role().role_name(name).send(),
        iam::role_tags(aws, name, &operation)
    );
    let role = match role {
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
    let tags = tags?;
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

async fn create(aws: &Aws, name: &str, fields: &Fields) -> Result<(), ApiError> {
    let operation = format!("failed to create IAM role `{name}`");
    let result = aws
        .iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(iam::text(fields, "trust_policy").unwrap_or_default())
        .set_description(iam::text(fields, "description"))
        .set_tags(Some(iam::tags(fields, &operation)?))
        .send()
        .await;
    let Err(error) = result else {
        return Ok(());
    };
    let error = aws_error(&operation, error);
    if !iam::has_code(&error, "EntityAlreadyExists") {
        return Err(error);
    }
    // It exists: finish the job if it is ours (an earlier attempt's answer was lost).
    let wanted_owner = fields
        .get(&format!("tags.{OWNER_TAG}"))
        .and_then(Value::as_str);
    let live_tags = iam::role_tags(aws, name, &operation).await?;
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
        .map(|path| FieldChange::new(path, None, fields.get(path).cloned()))
        .chain(live_tags.iter().map(|(key, value)| {
            let path = format!("tags.{key}");
            let after = fields.get(&path).cloned();
            FieldChange::new(path, Some(Value::String(value.clone())), after)
        }))
        .collect();
    update(aws, name, fields, &everything).await
}

async fn update(
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
            .policy_document(iam::text(fields, "trust_policy").unwrap_or_default())
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    if touches("description") {
        let operation = format!("failed to update the description of IAM role `{name}`");
        aws.iam
            .update_role()
            .role_name(name)
            .description(iam::text(fields, "description").unwrap_or_default())
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
            .set_tags(Some(iam::tags(fields, &operation)?))
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
    }
    Ok(())
}

/// Deletes a role comfyplat owns, with everything attached to it.
async fn delete(aws: &Aws, name: &str) -> Result<(), ApiError> {
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
        super::iam_role_policy::delete(aws, name, &policy).await?;
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

