//! EKS Pod Identity associations: found by their service account (EKS allows one per
//! service account), created with the role and tags, the role changed in place, deleted;
//! discovered by the platform's tag. Associations owned by an add-on (the CSI driver's)
//! are the add-on's business and never touched here.

use serde_json::{Value, json};

use super::Adapter;
use crate::adapters::{ApiError, Apis, Aws, ErrorClass, aws_error, eks};
pub use crate::model::kinds::eks_pod_identity_association::Id;
use crate::model::{FieldChange, Live, Observation, Pending, Resource, field_group, tags_of};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        Ok(match describe(&apis.aws, self).await? {
            Some((_, live)) => Observation::Present(live),
            None => Observation::Absent,
        })
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        let aws = &apis.aws;
        let role = role_arn(resource);
        let result = aws
            .eks
            .create_pod_identity_association()
            .cluster_name(&self.cluster)
            .namespace(&self.namespace)
            .service_account(&self.service_account)
            .role_arn(&role)
            .set_tags(Some(tags_of(&resource.fields).into_iter().collect()))
            .send()
            .await;
        if let Err(error) = result {
            let error = aws_error(format!("failed to create the {}", describe_what(self)), error);
            if !eks::has_code(&error, "ResourceInUseException") {
                return Err(error);
            }
            // One exists: ours from an attempt whose answer was lost, or someone else's.
            let owner_key = format!("tags.{}", crate::config::OWNER_TAG);
            match describe(aws, self).await? {
                Some((_, live)) if live.fields.get(&owner_key) == resource.fields.get(&owner_key) => {
                    if live.fields.get("role_arn") != resource.fields.get("role_arn") {
                        self.set_role(aws, &role).await?;
                    }
                }
                _ => {
                    return Err(ApiError {
                        operation: format!(
                            "{}: service account {}/{} already has a Pod Identity association comfyplat did not make; delete it (`aws eks delete-pod-identity-association`) or give ComfyUI another namespace",
                            error.operation, self.namespace, self.service_account
                        ),
                        ..error
                    });
                }
            }
        }
        Ok(None)
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        let aws = &apis.aws;
        if changes.iter().any(|c| c.path == "role_arn") {
            self.set_role(aws, &role_arn(resource)).await?;
        }
        if changes.iter().any(|c| field_group(&c.path) == "tags") {
            let arn = self.association(aws).await?.map(|(_, arn)| arn).unwrap_or_default();
            eks::retag(
                aws,
                &arn,
                &resource.fields,
                changes,
                &format!("failed to tag the {}", describe_what(self)),
            )
            .await?;
        }
        Ok(None)
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        let aws = &apis.aws;
        let Some((id, _)) = self.association(aws).await? else {
            return Ok(None);
        };
        match aws
            .eks
            .delete_pod_identity_association()
            .cluster_name(&self.cluster)
            .association_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(error) => {
                let error = aws_error(format!("failed to delete the {}", describe_what(self)), error);
                if error.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let (aws, cluster) = (&apis.aws, &apis.cluster);
        let operation =
            format!("failed to list the Pod Identity associations of EKS cluster `{cluster}`");
        let found = eks::list_names(&operation, |token| async {
            let page = aws
                .eks
                .list_pod_identity_associations()
                .cluster_name(cluster)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error(&operation, e))?;
            let items = page
                .associations()
                .iter()
                .filter(|a| a.owner_arn().is_none())
                .map(|a| {
                    format!(
                        "{}/{}",
                        a.namespace().unwrap_or_default(),
                        a.service_account().unwrap_or_default()
                    )
                })
                .collect();
            Ok((items, page.next_token().map(str::to_string)))
        })
        .await?;
        let candidates = found
            .into_iter()
            .filter_map(|name| {
                let (namespace, service_account) = name.split_once('/')?;
                Some(Id {
                    cluster: cluster.clone(),
                    namespace: namespace.to_string(),
                    service_account: service_account.to_string(),
                })
            })
            .collect();
        super::owned(apis, candidates, |id: Id| async move {
            Ok(match describe(aws, &id).await? {
                Some((_, live)) => Observation::Present(live),
                None => Observation::Absent,
            })
        })
        .await
        .map(Some)
    }
}

fn describe_what(id: &Id) -> String {
    format!(
        "Pod Identity association of {}/{}",
        id.namespace, id.service_account
    )
}

fn role_arn(resource: &Resource) -> String {
    resource
        .fields
        .get("role_arn")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Id {
    /// The association's id and ARN, when there is one that no add-on owns.
    async fn association(&self, aws: &Aws) -> Result<Option<(String, String)>, ApiError> {
        let operation = format!("failed to read the {}", describe_what(self));
        let page = aws
            .eks
            .list_pod_identity_associations()
            .cluster_name(&self.cluster)
            .namespace(&self.namespace)
            .service_account(&self.service_account)
            .send()
            .await
            .map_err(|e| aws_error(&operation, e))?;
        Ok(page
            .associations()
            .iter()
            .find(|a| a.owner_arn().is_none())
            .and_then(|a| {
                Some((
                    a.association_id()?.to_string(),
                    a.association_arn()?.to_string(),
                ))
            }))
    }

    async fn set_role(&self, aws: &Aws, role: &str) -> Result<(), ApiError> {
        let Some((id, _)) = self.association(aws).await? else {
            return Ok(());
        };
        aws.eks
            .update_pod_identity_association()
            .cluster_name(&self.cluster)
            .association_id(id)
            .role_arn(role)
            .send()
            .await
            .map_err(|e| aws_error(format!("failed to update the {}", describe_what(self)), e))?;
        Ok(())
    }
}

/// The association's id and its live view.
async fn describe(aws: &Aws, id: &Id) -> Result<Option<(String, Live)>, ApiError> {
    let result = match id.association(aws).await {
        Ok(found) => found,
        Err(error) if error.class == ErrorClass::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let Some((association_id, _)) = result else {
        return Ok(None);
    };
    let output = aws
        .eks
        .describe_pod_identity_association()
        .cluster_name(&id.cluster)
        .association_id(&association_id)
        .send()
        .await;
    let association = match output {
        Ok(output) => output.association,
        Err(error) => {
            let error = aws_error(format!("failed to read the {}", describe_what(id)), error);
            return if error.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(error)
            };
        }
    };
    let Some(association) = association else {
        return Ok(None);
    };
    let fields = crate::model::Fields::from([(
        "role_arn".to_string(),
        json!(association.role_arn().unwrap_or_default()),
    )]);
    let tags = eks::sorted_tags(association.tags());
    Ok(Some((association_id, Live::tagged(fields, tags, None))))
}
