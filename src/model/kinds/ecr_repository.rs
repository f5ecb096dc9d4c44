//! The ECR repository for the ComfyUI image (`image_repository:` in platform.yaml).
//!
//! Fields: `image_tag_mutability` (`IMMUTABLE` by default, so a tag always means the same
//! image), `scan_on_push`, `encryption.type` (`AES256` or `KMS`) and `encryption.kms_key`,
//! `lifecycle_policy` (keep the newest N images, expire untagged ones after 7 days),
//! `tags.*`. ECR cannot change a repository's encryption: a change of it replaces the
//! repository. A repository that holds images is kept by destroy unless `--delete-data`.
//!
//! `comfyui.image: "{repository}:TAG"` refers to it: the Deployment gets the placeholder
//! [`deferred::ecr_image`], and the planner fills in `URI@sha256:...`, the digest the tag
//! points at now (the repository's observation holds every tag's digest). A moved tag is a
//! change in the plan; a missing one stops the plan. The Karpenter node role must be allowed
//! to pull (checked before planning).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::iam_role_policy::NODE_ROLE_SETTING;
use crate::config::{ImageReference, Platform};
use crate::model::{
    Address, Context, Desired, Environment, Fields, Live, ModelError, Output, Permission,
    Resource, ResourceKind, deferred, insert_flat, insert_tags, path_under,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub name: String,
    pub region: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.region)
    }
}

pub const ADDRESS: &str = "ecr.repository.comfyui";
/// How long untagged images are kept.
pub const UNTAGGED_DAYS: u32 = 7;
/// What the nodes need to pull from ECR, and the AWS managed policies that grant it.
pub const PULL_ACTIONS: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
];
pub const PULL_POLICIES: &[&str] = &[
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEC2ContainerRegistryPowerUser",
    "AmazonEC2ContainerRegistryFullAccess",
];

/// The repository's URI: `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
pub fn uri(environment: &Environment, name: &str) -> String {
    let domain = if environment.partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!(
        "{}.dkr.ecr.{}.{domain}/{name}",
        environment.account, environment.region
    )
}

/// The ECR lifecycle policy: untagged images expire after [`UNTAGGED_DAYS`] days, and of all
/// images only the newest `keep` stay (ECR wants the `any` rule last).
pub fn lifecycle_policy(keep: u32) -> Value {
    json!({"rules": [
        {
            "rulePriority": 1,
            "description": format!("expire untagged images after {UNTAGGED_DAYS} days"),
            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": UNTAGGED_DAYS},
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": format!("keep the newest {keep} images"),
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
            "action": {"type": "expire"},
        },
    ]})
}

/// What `comfyui.image` becomes in the Deployment: the image itself, or for the platform's
/// repository its URI pinned to a digest (a placeholder the planner fills in for a tag).
pub fn image(platform: &Platform, environment: &Environment, image: &ImageReference) -> String {
    let name = || {
        platform
            .image_repository
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or_default()
    };
    match image {
        ImageReference::External(text) => text.clone(),
        ImageReference::RepositoryTag(tag) => deferred::ecr_image(name(), tag),
        ImageReference::RepositoryDigest(digest) => {
            format!("{}@{digest}", uri(environment, name()))
        }
    }
}

impl ResourceKind for Id {
    const NOUN: &'static str = "ECR repository";
    const DATA: Option<&'static str> = Some("images");

    fn forces_replacement(&self, path: &str) -> bool {
        path_under(path, "encryption")
    }

    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let (platform, environment) = (context.platform, context.environment);
        let Some(settings) = &platform.image_repository else {
            return Ok(());
        };
        let mut fields = Fields::new();
        let mutability = if settings.immutable_tags {
            "IMMUTABLE"
        } else {
            "MUTABLE"
        };
        fields.insert("image_tag_mutability".to_string(), json!(mutability));
        fields.insert("scan_on_push".to_string(), json!(true));
        let encryption = match &settings.kms_key_arn {
            Some(key) => json!({"type": "KMS", "kms_key": key}),
            None => json!({"type": "AES256"}),
        };
        insert_flat(&mut fields, "encryption", &encryption);
        fields.insert(
            "lifecycle_policy".to_string(),
            lifecycle_policy(settings.keep_images),
        );
        insert_tags(&mut fields, &context.environment.resource_tags(platform));
        let id = Id {
            name: settings.name.clone(),
            region: environment.region.clone(),
        };
        desired
            .resources
            .push(Resource::new(Address::new(ADDRESS), id, fields));
        let from_repository = platform
            .comfyui
            .as_ref()
            .is_some_and(|c| !matches!(c.image, ImageReference::External(_)));
        if from_repository {
            desired.adopt_role(
                &platform.node_role,
                NODE_ROLE_SETTING,
                Some(Permission {
                    purpose: format!("pull the ComfyUI image from ECR repository `{}`", settings.name),
                    actions: PULL_ACTIONS.iter().map(|a| a.to_string()).collect(),
                    managed_policies: PULL_POLICIES.iter().map(|p| p.to_string()).collect(),
                }),
            );
        }
        Ok(())
    }

    fn outputs(&self, _address: &Address, live: Option<&Live>) -> Vec<Output> {
        live.and_then(|live| live.attributes.get("uri"))
            .map(|uri| vec![Output::new("image_repository.uri", uri.clone())])
            .unwrap_or_default()
    }

    const OUTPUTS_NEED_LIVE: bool = true;
}
