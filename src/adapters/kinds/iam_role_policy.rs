//! Inline IAM policies: read, write (PutRolePolicy both creates and updates), delete; found
//! on the adopted node role by their `comfyplat-<platform>-` name (inline policies have no
//! tags; the CSI role's go with the role).

use serde_json::Value;

use super::Adapter;
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, aws_error, parse_policy_document};
pub use crate::model::kinds::iam_role_policy::Id;
use crate::model::{FieldChange, Fields, Live, Observation, Pending, Resource, policy};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        observe(&apis.aws, &self.role, &self.policy).await
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        put(&apis.aws, &self.role, &self.policy, &resource.fields).await?;
        Ok(None)
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        _changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        put(&apis.aws, &self.role, &self.policy, &resource.fields).await?;
        Ok(None)
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        delete(&apis.aws, &self.role, &self.policy).await?;
        Ok(None)
    }
}

async fn observe(
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
            Ok(Observation::Present(Live::named(Fields::from([(
                "document".to_string(),
                document,
            )]))))
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

async fn put(
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

pub(super) async fn delete(aws: &Aws, role: &str, policy_name: &str) -> Result<(), ApiError> {
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

