//! The CloudFront distribution in front of the ComfyUI load balancer.
//!
//! CloudFront assigns a distribution's id; comfyplat finds its distribution by the
//! `CallerReference` it created it with (kept in state): among the distributions whose
//! comment starts with `comfyplat platform`, the one whose configuration has that reference.
//! A create whose response was lost is retried with the same reference, and CloudFront's
//! `DistributionAlreadyExists` then names the distribution that was made, so there is never
//! a second one.
//!
//! Updates replace the whole configuration (CloudFront has no partial update): comfyplat
//! reads the live configuration and its ETag, sets the fields it manages and keeps the rest
//! (logging, restrictions, other behaviours someone added), and updates with `IfMatch`; when
//! someone else updated in between (`PreconditionFailed`) it reads again and retries.
//! Deleting disables first, waits until the disabling is deployed, then deletes with the
//! latest ETag; each step is resumable (the distribution's id is the pending operation).

use std::time::Duration;

use aws_sdk_cloudfront::types::{
    Aliases, AllowedMethods, CachedMethods, CustomHeaders, CustomOriginConfig,
    DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags, HttpVersion, Method,
    MinimumProtocolVersion, Origin, OriginCustomHeader, OriginProtocolPolicy, OriginSslProtocols,
    Origins, PriceClass, SslProtocol, SslSupportMethod, Tag, TagKeys, Tags, ViewerCertificate,
    ViewerProtocolPolicy,
};
use serde_json::{Value, json};

use super::{Adapter, Progress};
use crate::adapters::{ApiError, Apis, Aws, Backoff, ErrorClass, Poll, aws_error, poll};
use crate::model::kinds::cloudfront_distribution as distribution;
pub use crate::model::kinds::cloudfront_distribution::Id;
use crate::model::{
    FieldChange, Fields, Goal, Live, Observation, Pending, Resource, field_group,
    insert_flat, removed_tags, tags_of,
};

impl Adapter for Id {
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError> {
        observe(apis, &self.caller_reference).await
    }

    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        create(&apis.aws, &self.caller_reference, &resource.fields).await
    }

    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        _repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        update(&apis.aws, &self.caller_reference, &resource.fields, changes).await
    }

    async fn delete(&self, apis: &Apis, _delete_data: bool) -> Result<Option<Pending>, ApiError> {
        delete(&apis.aws, &self.caller_reference).await
    }

    async fn wait(&self, apis: &Apis, pending: &Pending, progress: Progress<'_>) -> Result<Vec<String>, ApiError> {
        let Some(id) = pending.operation.as_deref() else {
            return Ok(Vec::new());
        };
        wait(&apis.aws, id, pending.goal, apis.wait_timeout, progress).await
    }

    /// Distributions with this platform's comment and ownership tag.
    async fn discover(apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        let found = platform_distributions(apis).await?;
        Ok(Some(found.into_iter().map(|(id, _)| id).collect()))
    }
}

/// The distributions that carry this platform's comment and ownership tag: their
/// CallerReference (the identity) and CloudFront id. How a lost state finds the one it had.
pub async fn platform_distributions(apis: &Apis) -> Result<Vec<(Id, String)>, ApiError> {
    let aws = &apis.aws;
    let comment = distribution::comment(&apis.platform);
    let candidates: Vec<String> = list_ours(aws)
        .await?
        .into_iter()
        .filter(|(_, c)| *c == comment)
        .map(|(id, _)| id)
        .collect();
    let mut owned = Vec::new();
    for (found, tags) in read_with_tags(apis, &candidates).await? {
        if tags?
            .iter()
            .any(|(key, value)| key == crate::config::OWNER_TAG && *value == apis.platform)
        {
            let reference = Id {
                caller_reference: found.config.caller_reference,
            };
            owned.push((reference, found.id));
        }
    }
    Ok(owned)
}

/// A distribution's tags as read, or why they could not be.
type TagRead = Result<Vec<(String, String)>, ApiError>;

/// Each of the distributions `ids`' configuration and tags, all read at once (a
/// distribution's ARN follows from its id); those gone in between are left out. A failed
/// tag read is the caller's to judge (it matters only for the distributions it wants).
async fn read_with_tags(apis: &Apis, ids: &[String]) -> Result<Vec<(Found, TagRead)>, ApiError> {
    let aws = &apis.aws;
    let reads = ids.iter().map(|id| async move {
        let arn = format!(
            "arn:{}:cloudfront::{}:distribution/{id}",
            apis.partition, apis.account
        );
        let (found, tags) = tokio::join!(read(aws, id), list_tags(aws, &arn));
        Ok::<_, ApiError>(found?.map(|found| (found, tags)))
    });
    let found = futures::future::try_join_all(reads).await?;
    Ok(found.into_iter().flatten().collect())
}

/// The comment prefix of every distribution comfyplat makes.
const COMMENT_PREFIX: &str = "comfyplat platform";
/// Reads and updates tried when someone else keeps changing the distribution.
const PRECONDITION_ATTEMPTS: u32 = 5;
const FIRST_POLL: Duration = Duration::from_secs(1);
const LONGEST_POLL: Duration = Duration::from_secs(20);

/// A distribution as found: ids, status and its configuration with the ETag to update it.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub arn: String,
    pub domain_name: String,
    pub status: String,
    pub config: DistributionConfig,
    pub etag: String,
}

async fn observe(apis: &Apis, caller_reference: &str) -> Result<Observation, ApiError> {
    let Some((found, tags)) = find_with_tags(apis, caller_reference).await? else {
        return Ok(Observation::Absent);
    };
    let mut live = Live::tagged(fields_of(&found.config), tags, None);
    live.status = Some(found.status.clone());
    live.attributes = Fields::from([
        ("id".to_string(), json!(found.id)),
        ("arn".to_string(), json!(found.arn)),
        ("domain_name".to_string(), json!(found.domain_name)),
    ]);
    Ok(Observation::Present(live))
}

/// The distribution created with `caller_reference`, if there is one.
pub async fn find(aws: &Aws, caller_reference: &str) -> Result<Option<Found>, ApiError> {
    for (id, _) in list_ours(aws).await? {
        if let Some(found) = read(aws, &id).await?
            && found.config.caller_reference == caller_reference
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// [`find`] with the distribution's tags, in two rounds: the list, then each candidate's
/// configuration and tags at once (its ARN follows from its id).
async fn find_with_tags(
    apis: &Apis,
    caller_reference: &str,
) -> Result<Option<(Found, Vec<(String, String)>)>, ApiError> {
    let candidates: Vec<String> = list_ours(&apis.aws)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let found = read_with_tags(apis, &candidates).await?;
    match found
        .into_iter()
        .find(|(found, _)| found.config.caller_reference == caller_reference)
    {
        Some((found, tags)) => Ok(Some((found, tags?))),
        None => Ok(None),
    }
}

/// Ids and comments of the distributions whose comment says comfyplat made them.
pub async fn list_ours(aws: &Aws) -> Result<Vec<(String, String)>, ApiError> {
    let mut ours = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = aws
            .cloudfront
            .list_distributions()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| aws_error("failed to list CloudFront distributions", e))?;
        let Some(list) = page.distribution_list else {
            break;
        };
        for summary in list.items.unwrap_or_default() {
            if summary.comment.starts_with(COMMENT_PREFIX) {
                ours.push((summary.id, summary.comment));
            }
        }
        match list
            .next_marker
            .filter(|m| list.is_truncated && !m.is_empty())
        {
            Some(next) => marker = Some(next),
            None => break,
        }
    }
    Ok(ours)
}

/// One distribution with its configuration and current ETag; `None` when it is gone.
pub async fn read(aws: &Aws, id: &str) -> Result<Option<Found>, ApiError> {
    let output = match aws.cloudfront.get_distribution().id(id).send().await {
        Ok(output) => output,
        Err(error) => {
            let error = aws_error(
                format!("failed to read CloudFront distribution `{id}`"),
                error,
            );
            return match error.class {
                ErrorClass::NotFound => Ok(None),
                _ => Err(error),
            };
        }
    };
    let etag = output.e_tag.unwrap_or_default();
    let Some(distribution) = output.distribution else {
        return Ok(None);
    };
    let Some(config) = distribution.distribution_config else {
        return Err(ApiError::new(
            format!("failed to read CloudFront distribution `{id}`"),
            ErrorClass::Rejected,
            "the response has no DistributionConfig",
        ));
    };
    Ok(Some(Found {
        id: distribution.id,
        arn: distribution.arn,
        domain_name: distribution.domain_name,
        status: distribution.status,
        config,
        etag,
    }))
}

pub async fn list_tags(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>, ApiError> {
    let output = aws
        .cloudfront
        .list_tags_for_resource()
        .resource(arn)
        .send()
        .await
        .map_err(|e| aws_error(format!("failed to read the tags of `{arn}`"), e))?;
    Ok(output
        .tags
        .and_then(|t| t.items)
        .unwrap_or_default()
        .into_iter()
        .map(|tag| (tag.key, tag.value.unwrap_or_default()))
        .collect())
}

/// Creates the distribution with its tags, or finds the one an earlier attempt with the same
/// CallerReference made. Returns the deployment to wait for.
async fn create(
    aws: &Aws,
    caller_reference: &str,
    fields: &Fields,
) -> Result<Option<Pending>, ApiError> {
    let operation = "failed to create the CloudFront distribution";
    let mut config = empty_config(caller_reference, fields)?;
    apply_fields(&mut config, fields)?;
    let with_tags = DistributionConfigWithTags::builder()
        .distribution_config(config)
        .tags(tags(fields, operation)?)
        .build();
    let id = match aws
        .cloudfront
        .create_distribution_with_tags()
        .distribution_config_with_tags(with_tags)
        .send()
        .await
    {
        Ok(output) => output.distribution.map(|d| d.id).ok_or_else(|| {
            ApiError::new(
                operation,
                ErrorClass::Rejected,
                "no distribution in the response",
            )
        })?,
        Err(error) => {
            let error = aws_error(operation, error);
            if error.code.as_deref() != Some("DistributionAlreadyExists") {
                return Err(error);
            }
            // An earlier attempt made it (its response was lost): that one is ours.
            match find(aws, caller_reference).await? {
                Some(found) => found.id,
                None => return Err(error),
            }
        }
    };
    Ok(Some(Pending::ready().with_operation(id)))
}

/// Brings the configuration and tags to `fields`.
async fn update(
    aws: &Aws,
    caller_reference: &str,
    fields: &Fields,
    changes: &[FieldChange],
) -> Result<Option<Pending>, ApiError> {
    let operation = "failed to update the CloudFront distribution";
    let mut pending = None;
    let mut arn = String::new();
    for attempt in 1..=PRECONDITION_ATTEMPTS {
        let Some(found) = find(aws, caller_reference).await? else {
            return Err(ApiError::new(
                operation,
                ErrorClass::NotFound,
                format!("no distribution has the caller reference `{caller_reference}` any more"),
            ));
        };
        arn = found.arn.clone();
        if untagged(&fields_of(&found.config)) == untagged(fields) {
            break;
        }
        let mut config = found.config.clone();
        apply_fields(&mut config, fields)?;
        match aws
            .cloudfront
            .update_distribution()
            .id(&found.id)
            .if_match(&found.etag)
            .distribution_config(config)
            .send()
            .await
        {
            Ok(_) => {
                pending = Some(Pending::ready().with_operation(found.id));
                break;
            }
            Err(error) => {
                let error = aws_error(operation, error);
                let stale = error.code.as_deref() == Some("PreconditionFailed");
                if !stale || attempt == PRECONDITION_ATTEMPTS {
                    return Err(error);
                }
            }
        }
    }
    retag(aws, &arn, fields, changes).await?;
    Ok(pending)
}

/// Like the other adapters: the tags removed from the plan's changes are untagged, then
/// every wanted tag is set; nothing when no tag changed.
async fn retag(
    aws: &Aws,
    arn: &str,
    fields: &Fields,
    changes: &[FieldChange],
) -> Result<(), ApiError> {
    if !changes.iter().any(|c| field_group(&c.path) == "tags") {
        return Ok(());
    }
    let operation = format!("failed to tag `{arn}`");
    let removed = removed_tags(changes);
    if !removed.is_empty() {
        aws.cloudfront
            .untag_resource()
            .resource(arn)
            .tag_keys(TagKeys::builder().set_items(Some(removed)).build())
            .send()
            .await
            .map_err(|e| aws_error(operation.clone(), e))?;
    }
    aws.cloudfront
        .tag_resource()
        .resource(arn)
        .tags(tags(fields, &operation)?)
        .send()
        .await
        .map_err(|e| aws_error(operation, e))?;
    Ok(())
}

/// The `tags.<key>` fields as CloudFront tags.
fn tags(fields: &Fields, operation: &str) -> Result<Tags, ApiError> {
    let items = tags_of(fields)
        .into_iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| rejected(operation, e))?;
    Ok(Tags::builder().set_items(Some(items)).build())
}

/// Disables the distribution (when it is enabled); the wait then deletes it once the
/// disabling is deployed.
async fn delete(aws: &Aws, caller_reference: &str) -> Result<Option<Pending>, ApiError> {
    let operation = "failed to disable the CloudFront distribution";
    for attempt in 1..=PRECONDITION_ATTEMPTS {
        let Some(found) = find(aws, caller_reference).await? else {
            return Ok(None);
        };
        if !found.config.enabled {
            return Ok(Some(Pending::deleted().with_operation(found.id)));
        }
        match disable(aws, &found).await {
            Ok(()) => {
                return Ok(Some(Pending::deleted().with_operation(found.id)));
            }
            Err(error)
                if error.code.as_deref() == Some("PreconditionFailed")
                    && attempt < PRECONDITION_ATTEMPTS => {}
            Err(error) => return Err(error),
        }
    }
    Err(ApiError::new(
        operation,
        ErrorClass::Conflict,
        "the distribution kept changing while comfyplat tried to disable it",
    ))
}

async fn disable(aws: &Aws, found: &Found) -> Result<(), ApiError> {
    let mut config = found.config.clone();
    config.enabled = false;
    aws.cloudfront
        .update_distribution()
        .id(&found.id)
        .if_match(&found.etag)
        .distribution_config(config)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            aws_error(
                format!("failed to disable CloudFront distribution `{}`", found.id),
                e,
            )
        })
}

/// Waits until the distribution is deployed; for [`Goal::Deleted`], until its
/// disabling is deployed, then deletes it with the latest ETag.
async fn wait(
    aws: &Aws,
    id: &str,
    goal: Goal,
    limit: Duration,
    progress: Progress<'_>,
) -> Result<Vec<String>, ApiError> {
    let backoff = Backoff {
        first: FIRST_POLL,
        longest: LONGEST_POLL,
        limit,
    };
    let check = || async move {
        let Some(found) = read(aws, id).await? else {
            return match goal {
                Goal::Deleted => Ok(Poll::Done(Vec::new())),
                Goal::Ready => Err(ApiError::new(
                    format!("failed to wait for CloudFront distribution `{id}`"),
                    ErrorClass::NotFound,
                    "it was deleted while it deployed",
                )),
            };
        };
        let deployed = found.status == "Deployed";
        match goal {
            Goal::Ready if deployed => Ok(Poll::Done(Vec::new())),
            Goal::Ready => Ok(Poll::Waiting(format!(
                "CloudFront {} (deploying to the edge locations)",
                found.status
            ))),
            Goal::Deleted if found.config.enabled => {
                // Enabled again meanwhile (or the disabling was lost): disable again.
                match disable(aws, &found).await {
                    Ok(()) => Ok(Poll::Waiting("CloudFront disabling".to_string())),
                    Err(error) if error.code.as_deref() == Some("PreconditionFailed") => {
                        Ok(Poll::Waiting("CloudFront disabling".to_string()))
                    }
                    Err(error) => Err(error),
                }
            }
            Goal::Deleted if !deployed => Ok(Poll::Waiting(format!(
                "CloudFront disabled, {} (deploying the disabling)",
                found.status
            ))),
            Goal::Deleted => {
                match aws
                    .cloudfront
                    .delete_distribution()
                    .id(id)
                    .if_match(&found.etag)
                    .send()
                    .await
                {
                    Ok(_) => Ok(Poll::Done(Vec::new())),
                    Err(error) => {
                        let error = aws_error(
                            format!("failed to delete CloudFront distribution `{id}`"),
                            error,
                        );
                        match (error.class, error.code.as_deref()) {
                            (ErrorClass::NotFound, _) => Ok(Poll::Done(Vec::new())),
                            (_, Some("PreconditionFailed" | "DistributionNotDisabled")) => {
                                Ok(Poll::Waiting("CloudFront deleting".to_string()))
                            }
                            _ => Err(error),
                        }
                    }
                }
            }
        }
    };
    poll(backoff, progress, check, |status| {
        ApiError::new(
            format!("gave up waiting for CloudFront distribution `{id}`"),
            ErrorClass::Timeout,
            format!(
                "still `{status}` after {}s; CloudFront goes on by itself, and the next apply waits again (`--wait-timeout` sets the limit)",
                limit.as_secs()
            ),
        )
    })
    .await
}

/// The fields comfyplat manages, read from a configuration (the inverse of [`apply_fields`]).
pub fn fields_of(config: &DistributionConfig) -> Fields {
    let mut fields = Fields::new();
    fields.insert("enabled".to_string(), json!(config.enabled));
    fields.insert("comment".to_string(), json!(config.comment));
    if let Some(class) = &config.price_class {
        fields.insert("price_class".to_string(), json!(class.as_str()));
    }
    if let Some(version) = &config.http_version {
        fields.insert("http_version".to_string(), json!(version.as_str()));
    }
    if let Some(ipv6) = config.is_ipv6_enabled {
        fields.insert("ipv6".to_string(), json!(ipv6));
    }
    let mut aliases = config
        .aliases
        .as_ref()
        .and_then(|a| a.items.clone())
        .unwrap_or_default();
    aliases.sort();
    fields.insert("aliases".to_string(), json!(aliases));
    if let Some(certificate) = &config.viewer_certificate {
        let value = if certificate.cloud_front_default_certificate == Some(true) {
            json!({"cloudfront_default": true})
        } else {
            json!({
                "acm_certificate_arn": certificate.acm_certificate_arn,
                "ssl_support_method": certificate.ssl_support_method.as_ref().map(|m| m.as_str()),
                "minimum_protocol_version": certificate.minimum_protocol_version.as_ref().map(|m| m.as_str()),
            })
        };
        insert_flat(&mut fields, "viewer_certificate", &value);
    }
    fields.insert(
        "web_acl_id".to_string(),
        json!(config.web_acl_id.clone().unwrap_or_default()),
    );
    let origins = config
        .origins
        .as_ref()
        .map(|o| o.items.as_slice())
        .unwrap_or_default();
    let origin = origins
        .iter()
        .find(|o| o.id == distribution::ORIGIN_ID)
        .or(origins.first());
    if let Some(origin) = origin {
        let custom = origin.custom_origin_config.as_ref();
        let mut protocols: Vec<&str> = custom
            .and_then(|c| c.origin_ssl_protocols.as_ref())
            .map(|p| p.items.iter().map(|i| i.as_str()).collect())
            .unwrap_or_default();
        protocols.sort();
        insert_flat(
            &mut fields,
            "origin",
            &json!({
                "id": origin.id,
                "domain_name": origin.domain_name,
                "protocol_policy": custom.map(|c| c.origin_protocol_policy.as_str()),
                "http_port": custom.map(|c| c.http_port),
                "https_port": custom.map(|c| c.https_port),
                "ssl_protocols": custom.map(|_| protocols),
                "read_timeout": custom.and_then(|c| c.origin_read_timeout),
                "keepalive_timeout": custom.and_then(|c| c.origin_keepalive_timeout),
                "connection_attempts": origin.connection_attempts,
                "connection_timeout": origin.connection_timeout,
            }),
        );
        for header in origin
            .custom_headers
            .as_ref()
            .and_then(|h| h.items.as_deref())
            .unwrap_or_default()
        {
            fields.insert(
                format!("origin.headers.{}", header.header_name),
                json!(header.header_value),
            );
        }
    }
    if let Some(behavior) = &config.default_cache_behavior {
        let methods = |items: &[Method]| {
            let mut names: Vec<&str> = items.iter().map(|m| m.as_str()).collect();
            names.sort();
            json!(names)
        };
        insert_flat(
            &mut fields,
            "behavior",
            &json!({
                "viewer_protocol_policy": behavior.viewer_protocol_policy.as_str(),
                "cache_policy_id": behavior.cache_policy_id,
                "origin_request_policy_id": behavior.origin_request_policy_id,
                "compress": behavior.compress,
            }),
        );
        if let Some(allowed) = &behavior.allowed_methods {
            fields.insert(
                "behavior.allowed_methods".to_string(),
                methods(&allowed.items),
            );
            if let Some(cached) = &allowed.cached_methods {
                fields.insert(
                    "behavior.cached_methods".to_string(),
                    methods(&cached.items),
                );
            }
        }
    }
    fields
}

fn untagged(fields: &Fields) -> Fields {
    fields
        .iter()
        .filter(|(path, _)| field_group(path) != "tags")
        .map(|(path, value)| (path.clone(), value.clone()))
        .collect()
}

fn rejected(operation: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::new(operation, ErrorClass::Rejected, error.to_string())
}

fn text<'a>(fields: &'a Fields, path: &str) -> &'a str {
    fields.get(path).and_then(Value::as_str).unwrap_or_default()
}

fn number(fields: &Fields, path: &str) -> Option<i32> {
    fields
        .get(path)
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
}

fn strings(fields: &Fields, path: &str) -> Vec<String> {
    fields
        .get(path)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A configuration with only what CloudFront requires, for a create.
fn empty_config(caller_reference: &str, fields: &Fields) -> Result<DistributionConfig, ApiError> {
    DistributionConfig::builder()
        .caller_reference(caller_reference)
        .comment(text(fields, "comment"))
        .enabled(true)
        .build()
        .map_err(|e| rejected("failed to build the CloudFront configuration", e))
}

/// Sets the managed parts of `config` from `fields`, keeping everything else.
pub fn apply_fields(config: &mut DistributionConfig, fields: &Fields) -> Result<(), ApiError> {
    let operation = "failed to build the CloudFront configuration";
    let bad = |e: aws_sdk_cloudfront::error::BuildError| rejected(operation, e);
    config.enabled = fields
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    config.comment = text(fields, "comment").to_string();
    config.price_class = Some(PriceClass::from(text(fields, "price_class")));
    config.http_version = Some(HttpVersion::from(text(fields, "http_version")));
    config.is_ipv6_enabled = fields.get("ipv6").and_then(Value::as_bool);
    let aliases = strings(fields, "aliases");
    config.aliases = Some(
        Aliases::builder()
            .quantity(aliases.len() as i32)
            .set_items((!aliases.is_empty()).then_some(aliases))
            .build()
            .map_err(bad)?,
    );
    config.viewer_certificate = Some(
        if fields.contains_key("viewer_certificate.cloudfront_default") {
            ViewerCertificate::builder()
                .cloud_front_default_certificate(true)
                .build()
        } else {
            ViewerCertificate::builder()
                .acm_certificate_arn(text(fields, "viewer_certificate.acm_certificate_arn"))
                .ssl_support_method(SslSupportMethod::from(text(
                    fields,
                    "viewer_certificate.ssl_support_method",
                )))
                .minimum_protocol_version(MinimumProtocolVersion::from(text(
                    fields,
                    "viewer_certificate.minimum_protocol_version",
                )))
                .build()
        },
    );
    config.web_acl_id = Some(text(fields, "web_acl_id").to_string());
    let headers: Vec<OriginCustomHeader> = fields
        .iter()
        .filter_map(|(path, value)| {
            let name = path.strip_prefix("origin.headers.")?;
            Some(
                OriginCustomHeader::builder()
                    .header_name(name)
                    .header_value(value.as_str().unwrap_or_default())
                    .build(),
            )
        })
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    let protocols: Vec<SslProtocol> = strings(fields, "origin.ssl_protocols")
        .iter()
        .map(|p| SslProtocol::from(p.as_str()))
        .collect();
    let custom = CustomOriginConfig::builder()
        .http_port(number(fields, "origin.http_port").unwrap_or(80))
        .https_port(number(fields, "origin.https_port").unwrap_or(443))
        .origin_protocol_policy(OriginProtocolPolicy::from(text(
            fields,
            "origin.protocol_policy",
        )))
        .origin_ssl_protocols(
            OriginSslProtocols::builder()
                .quantity(protocols.len() as i32)
                .set_items(Some(protocols))
                .build()
                .map_err(bad)?,
        )
        .set_origin_read_timeout(number(fields, "origin.read_timeout"))
        .set_origin_keepalive_timeout(number(fields, "origin.keepalive_timeout"))
        .build()
        .map_err(bad)?;
    let origin = Origin::builder()
        .id(text(fields, "origin.id"))
        .domain_name(text(fields, "origin.domain_name"))
        .custom_origin_config(custom)
        .custom_headers(
            CustomHeaders::builder()
                .quantity(headers.len() as i32)
                .set_items(Some(headers))
                .build()
                .map_err(bad)?,
        )
        .set_connection_attempts(number(fields, "origin.connection_attempts"))
        .set_connection_timeout(number(fields, "origin.connection_timeout"))
        .build()
        .map_err(bad)?;
    config.origins = Some(
        Origins::builder()
            .quantity(1)
            .items(origin)
            .build()
            .map_err(bad)?,
    );
    let methods = |path: &str| -> Vec<Method> {
        strings(fields, path)
            .iter()
            .map(|m| Method::from(m.as_str()))
            .collect()
    };
    let allowed = methods("behavior.allowed_methods");
    let cached = methods("behavior.cached_methods");
    let behavior = DefaultCacheBehavior::builder()
        .target_origin_id(text(fields, "origin.id"))
        .viewer_protocol_policy(ViewerProtocolPolicy::from(text(
            fields,
            "behavior.viewer_protocol_policy",
        )))
        .allowed_methods(
            AllowedMethods::builder()
                .quantity(allowed.len() as i32)
                .set_items(Some(allowed))
                .cached_methods(
                    CachedMethods::builder()
                        .quantity(cached.len() as i32)
                        .set_items(Some(cached))
                        .build()
                        .map_err(bad)?,
                )
                .build()
                .map_err(bad)?,
        )
        .compress(
            fields
                .get("behavior.compress")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        )
        .cache_policy_id(text(fields, "behavior.cache_policy_id"))
        .origin_request_policy_id(text(fields, "behavior.origin_request_policy_id"))
        .build()
        .map_err(bad)?;
    config.default_cache_behavior = Some(behavior);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Fields {
        let mut fields = Fields::new();
        fields.insert("enabled".into(), json!(true));
        fields.insert("comment".into(), json!("comfyplat platform sandbox"));
        fields.insert("price_class".into(), json!("PriceClass_100"));
        fields.insert("http_version".into(), json!("http2and3"));
        fields.insert("ipv6".into(), json!(true));
        fields.insert("aliases".into(), json!([]));
        fields.insert("viewer_certificate.cloudfront_default".into(), json!(true));
        fields.insert("web_acl_id".into(), json!(""));
        insert_flat(
            &mut fields,
            "origin",
            &json!({"id": distribution::ORIGIN_ID, "domain_name": "lb.example.com",
                    "protocol_policy": "http-only", "http_port": 80, "https_port": 443,
                    "ssl_protocols": ["TLSv1.2"], "read_timeout": 60, "keepalive_timeout": 5,
                    "connection_attempts": 3, "connection_timeout": 10}),
        );
        fields.insert("origin.headers.X-Origin-Verify".into(), json!("s3cr3t"));
        insert_flat(
            &mut fields,
            "behavior",
            &json!({"viewer_protocol_policy": "redirect-to-https",
                    "cache_policy_id": distribution::CACHING_DISABLED,
                    "origin_request_policy_id": distribution::ALL_VIEWER, "compress": true}),
        );
        fields.insert("behavior.allowed_methods".into(), json!(distribution::METHODS));
        fields.insert(
            "behavior.cached_methods".into(),
            json!(distribution::CACHED_METHODS),
        );
        fields
    }

    #[test]
    fn a_configuration_reads_back_as_the_fields_it_was_built_from() {
        let fields = desired();
        let mut config = empty_config("ref-1", &fields).unwrap();
        apply_fields(&mut config, &fields).unwrap();
        assert_eq!(fields_of(&config), fields);
        assert_eq!(config.caller_reference, "ref-1");
        assert_eq!(
            config
                .default_cache_behavior
                .as_ref()
                .and_then(|b| b.allowed_methods.as_ref())
                .map(|m| m.quantity),
            Some(7)
        );
    }

    #[test]
    fn applying_fields_keeps_what_comfyplat_does_not_manage() {
        let fields = desired();
        let mut config = empty_config("ref-1", &fields).unwrap();
        config.default_root_object = Some("index.html".to_string());
        apply_fields(&mut config, &fields).unwrap();
        let mut changed = fields.clone();
        changed.insert("price_class".into(), json!("PriceClass_All"));
        apply_fields(&mut config, &changed).unwrap();
        assert_eq!(config.default_root_object.as_deref(), Some("index.html"));
        assert_eq!(fields_of(&config)["price_class"], json!("PriceClass_All"));
        assert_eq!(config.caller_reference, "ref-1");
    }
}
