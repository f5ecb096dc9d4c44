//! What is left after a destroy, found by tags with the Resource Groups Tagging API: AWS
//! resources that still carry this platform's ownership tag, and the billable things the
//! cluster's controllers made for it and should have removed (the load balancer and target
//! groups of its Ingress, the GPU instances of its NodePool).
//!
//! The Tagging API may list a resource for a while after it was deleted (terminated
//! instances keep their tags for about an hour), so each finding says how to check it.

use aws_sdk_resourcegroupstagging::types::TagFilter;

use super::{ApiError, Aws, aws_error, cloudfront};
use crate::config::OWNER_TAG;
use crate::model::report::Finding;

/// Where to look.
pub struct Scope<'a> {
    pub cluster: &'a str,
    /// `namespace/name` of each Ingress the platform had (the controller's stack tag).
    pub ingress_stacks: &'a [String],
    /// Names of the platform's NodePools.
    pub node_pools: &'a [String],
}

/// AWS resources that still carry the platform's ownership tag (in its region, and its
/// CloudFront distributions, which are global).
pub async fn owned(aws: &Aws, platform: &str) -> Result<Vec<Finding>, ApiError> {
    let mut found = Vec::new();
    for (arn, _) in tagged(aws, OWNER_TAG, platform, &[]).await? {
        found.push(Finding {
            what: kind_of(&arn),
            advice: "comfyplat owns it but did not delete it: run `comfyplat destroy` again, or delete it by hand".to_string(),
            id: arn,
        });
    }
    for (id, comment) in cloudfront::list_ours(aws).await? {
        let listed = found.iter().any(|f| f.id.ends_with(&format!("/{id}")));
        if comment == crate::model::edge::comment(platform) && !listed {
            found.push(Finding {
                what: "CloudFront distribution".to_string(),
                id: id.clone(),
                advice: "made by comfyplat for this platform but not in its state (state lost?): disable it in the CloudFront console, wait until it is deployed, then delete it".to_string(),
            });
        }
    }
    found.sort_by(|a, b| (&a.what, &a.id).cmp(&(&b.what, &b.id)));
    Ok(found)
}

/// Billable things the controllers made for the platform and left behind.
pub async fn controllers(aws: &Aws, scope: &Scope<'_>) -> Result<Vec<Finding>, ApiError> {
    let mut found = Vec::new();
    let balancers = tagged(
        aws,
        "elbv2.k8s.aws/cluster",
        scope.cluster,
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
        if !stack.is_some_and(|s| scope.ingress_stacks.iter().any(|i| i == s)) {
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
    for pool in scope.node_pools {
        for (arn, _) in tagged(aws, "karpenter.sh/nodepool", pool, &["ec2:instance"]).await? {
            let id = arn.rsplit('/').next().unwrap_or(&arn).to_string();
            found.push(Finding {
                what: "EC2 instance".to_string(),
                advice: format!("Karpenter launched it for NodePool `{pool}` and did not terminate it; if `aws ec2 describe-instances --instance-ids {id}` shows it running, `aws ec2 terminate-instances --instance-ids {id}`"),
                id,
            });
        }
    }
    Ok(found)
}

/// ARNs and tags of the resources tagged `key=value`, of the given types (all when empty).
async fn tagged(
    aws: &Aws,
    key: &str,
    value: &str,
    types: &[&str],
) -> Result<Vec<(String, Vec<(String, String)>)>, ApiError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = aws
            .tagging
            .get_resources()
            .tag_filters(TagFilter::builder().key(key).values(value).build())
            .set_pagination_token(token.clone());
        for kind in types {
            request = request.resource_type_filters(*kind);
        }
        let page = request.send().await.map_err(|e| {
            aws_error(
                format!("failed to list the resources tagged `{key}={value}`"),
                e,
            )
        })?;
        for mapping in page.resource_tag_mapping_list.unwrap_or_default() {
            let Some(arn) = mapping.resource_arn else {
                continue;
            };
            let tags = mapping
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect();
            found.push((arn, tags));
        }
        match page.pagination_token.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(found)
}

/// A readable kind from an ARN: `arn:aws:s3:::bucket` -> `s3`, `arn:aws:ec2:...:instance/i-1`
/// -> `ec2 instance`.
fn kind_of(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let service = parts.get(2).copied().unwrap_or("aws");
    let resource = parts.get(5).copied().unwrap_or_default();
    match resource.split_once(['/', ':']) {
        Some((kind, _)) => format!("{service} {kind}"),
        None => service.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_from_arns() {
        assert_eq!(kind_of("arn:aws:s3:::comfyui-models"), "s3");
        assert_eq!(
            kind_of("arn:aws:ec2:us-west-2:111122223333:instance/i-0abc"),
            "ec2 instance"
        );
        assert_eq!(
            kind_of("arn:aws:elasticloadbalancing:us-west-2:111122223333:loadbalancer/app/k8s/1"),
            "elasticloadbalancing loadbalancer"
        );
    }
}
