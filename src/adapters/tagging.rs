//! The Resource Groups Tagging API: what carries a tag, in the platform's region. Kinds
//! whose resources it lists find theirs with it ([`owned`]); the Kubernetes kind finds the
//! load balancers and instances its controllers made ([`tagged`]).
//!
//! The API may list a resource for a while after it was deleted (terminated instances keep
//! their tags for about an hour), so what it finds is read again before it counts.

use aws_sdk_resourcegroupstagging::types::TagFilter;

use super::{ApiError, Aws, aws_error};
use crate::config::OWNER_TAG;

/// ARNs and tags of the resources of `types` (e.g. `s3`, `ecr:repository`) that carry the
/// platform's ownership tag.
pub async fn owned(
    aws: &Aws,
    platform: &str,
    types: &[&str],
) -> Result<Vec<(String, Vec<(String, String)>)>, ApiError> {
    tagged(aws, OWNER_TAG, platform, types).await
}

/// ARNs and tags of the resources tagged `key=value`, of the given types (all when empty).
pub async fn tagged(
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
