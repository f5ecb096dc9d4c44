//! Kubernetes objects, through the cluster's API ([`crate::adapters::kube`]): read,
//! server-side apply, delete and wait (ready, or gone with its finalizers); found by the
//! platform's label; and what the cluster's controllers made for them and may have left
//! behind (the load balancer and target groups of an Ingress, the instances of a NodePool).
//!
//! Without a connection (no `comfyui`, or a cluster that is gone on destroy) nothing on the
//! cluster exists any more.

use super::{Adapter, Progress};
use crate::adapters::kube::Kube;
use crate::adapters::{ApiError, Apis, ErrorClass, tagging};
pub use crate::model::kinds::k8s_object::Id;
use crate::model::report::Finding;
use crate::model::{FieldChange, Observation, Pending, Resource};

fn connected<'a>(apis: &'a Apis, id: &Id) -> Result<&'a Kube, ApiError> {
    apis.kube.as_ref().ok_or_else(|| {
        ApiError::new(
            format!("failed to reach the Kubernetes API for {id}"),
            ErrorClass::Unreachable,
            "comfyplat is not connected to the cluster's Kubernetes API",
        )
    })
}

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        match &apis.kube {
            Some(kube) => kube.observe(self).await,
            None => Ok(Observation::Absent),
        }
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        connected(apis, self)?
            .apply(self, resource, apis.force_conflicts)
            .await
    }

    /// Drift the plan showed is taken back (force).
    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        _changes: &[FieldChange],
        repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        connected(apis, self)?
            .apply(self, resource, repair || apis.force_conflicts)
            .await
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        match &apis.kube {
            Some(kube) => kube.delete(self).await,
            None => Ok(None),
        }
    }

    async fn wait(&self, apis: &Apis, pending: &Pending, progress: Progress<'_>) -> Result<Vec<String>, ApiError> {
        match &apis.kube {
            Some(kube) => kube.wait(self, pending.goal, apis.wait_timeout, progress).await,
            None => Ok(Vec::new()),
        }
    }

    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        match &apis.kube {
            Some(kube) => kube.list_owned(&apis.platform).await.map(Some),
            None => Ok(Some(Vec::new())),
        }
    }

    /// Load balancers and target groups the AWS Load Balancer Controller tagged for a
    /// deleted Ingress of this cluster, and instances Karpenter tagged for a deleted
    /// NodePool.
    async fn left_behind(apis: &Apis, deleted: &[&Self]) -> Result<Vec<Finding>, ApiError> {
        let aws = &apis.aws;
        let stacks: Vec<String> = deleted
            .iter()
            .filter(|id| id.kind == "Ingress")
            .map(|id| format!("{}/{}", id.namespace, id.name))
            .collect();
        let mut found = Vec::new();
        if !stacks.is_empty() {
            let balancers = tagging::tagged(
                aws,
                "elbv2.k8s.aws/cluster",
                &apis.cluster,
                &[
                    "elasticloadbalancing:loadbalancer",
                    "elasticloadbalancing:targetgroup",
                ],
            )
            .await?;
            for (arn, tags) in balancers {
                let stack = tags
                    .iter()
                    .find(|(k, _)| k == "ingress.k8s.aws/stack")
                    .map(|(_, v)| v.as_str());
                if !stack.is_some_and(|s| stacks.iter().any(|i| i == s)) {
                    continue;
                }
                let (what, advice) = if arn.contains(":targetgroup/") {
                    (
                        "target group",
                        format!(
                            "the AWS Load Balancer Controller left it (is it running? see its logs); delete it with `aws elbv2 delete-target-group --target-group-arn {arn}`"
                        ),
                    )
                } else {
                    (
                        "load balancer",
                        format!(
                            "the AWS Load Balancer Controller left it and it is billed by the hour (is the controller running? see its logs); delete it with `aws elbv2 delete-load-balancer --load-balancer-arn {arn}`"
                        ),
                    )
                };
                found.push(Finding {
                    what: what.to_string(),
                    id: arn,
                    advice,
                });
            }
        }
        for pool in deleted.iter().filter(|id| id.kind == "NodePool") {
            let instances =
                tagging::tagged(aws, "karpenter.sh/nodepool", &pool.name, &["ec2:instance"]).await?;
            for (arn, _) in instances {
                let id = arn.rsplit('/').next().unwrap_or(&arn).to_string();
                found.push(Finding {
                    what: "EC2 instance".to_string(),
                    advice: format!(
                        "Karpenter launched it for NodePool `{}` and did not terminate it; if `aws ec2 describe-instances --instance-ids {id}` shows it running, `aws ec2 terminate-instances --instance-ids {id}`",
                        pool.name
                    ),
                    id,
                });
            }
        }
        Ok(found)
    }
}
