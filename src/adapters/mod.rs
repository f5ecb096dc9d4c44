//! Adapters: the only code that calls AWS. One module per service.
//!
//! They translate between the model's terms (identities and flat fields) and the APIs, and
//! map API errors into typed outcomes: not found becomes `Observation::Absent` or an
//! idempotent success, throttling / 5xx / connection failures become
//! [`ErrorClass::Transient`] (retried by the SDK with jittered backoff, then by the executor),
//! and everything else a permanent error naming the operation and the object. Adapters never
//! print.
//!
//! Every mutating call is idempotent from the caller's view (create of something that
//! already exists and is ours succeeds; delete of something gone succeeds), because a
//! request can succeed on the server while its response is lost.

pub mod cloudfront;
pub mod eks;
pub mod iam;
pub mod kube;
pub mod leftovers;
pub mod s3;
pub mod sts;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::model::{Adopted, Identity, Observation, Pending, Resource};
use crate::planner::FieldChange;

/// What kind of failure an API call ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, connection failures: worth retrying.
    Transient,
    NotFound,
    AccessDenied,
    /// A name taken, a resource in use, a precondition not met.
    Conflict,
    /// The request was refused for its content.
    Rejected,
    /// No credentials were found in the standard chain.
    NoCredentials,
    /// The endpoint could not be reached at all.
    Unreachable,
}

/// An AWS call that failed: the operation and object in the message, the API's own words
/// as the cause.
#[derive(Debug, thiserror::Error)]
#[error("{operation}")]
pub struct ApiError {
    pub operation: String,
    pub class: ErrorClass,
    pub code: Option<String>,
    #[source]
    pub cause: Cause,
}

/// The API's own description of a failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cause(pub String);

impl ApiError {
    pub fn new(operation: impl Into<String>, class: ErrorClass, cause: impl Into<String>) -> Self {
        ApiError {
            operation: operation.into(),
            class,
            code: None,
            cause: Cause(cause.into()),
        }
    }

    /// Worth trying again: throttling, 5xx, timeouts, lost connections.
    pub fn is_transient(&self) -> bool {
        matches!(self.class, ErrorClass::Transient | ErrorClass::Unreachable)
    }

    pub fn hint(&self) -> Option<String> {
        match self.class {
            ErrorClass::AccessDenied => Some("the credentials lack a permission this needs; the README lists the IAM permissions comfyplat uses".to_string()),
            ErrorClass::Transient => Some("AWS kept failing or throttling this call; run the command again, it continues where it stopped".to_string()),
            ErrorClass::NoCredentials => Some("configure AWS credentials: `aws sso login` with AWS_PROFILE, a profile in ~/.aws, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role; for the local sandbox run `source .sandbox/env`".to_string()),
            ErrorClass::Unreachable => Some("check the network, and AWS_ENDPOINT_URL if it is set (is the sandbox running? `scripts/sandbox status`)".to_string()),
            _ => None,
        }
    }
}

const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "InternalError",
    "InternalFailure",
    "ServiceFailure",
    "ServiceUnavailable",
    "OperationAborted",
    "ConcurrentModification",
    "RequestTimeout",
    "RequestTimeoutException",
];

const NOT_FOUND_CODES: &[&str] = &[
    "NotFound",
    "NoSuchBucket",
    "NoSuchEntity",
    "NoSuchKey",
    "ResourceNotFoundException",
];

const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "ExpiredToken",
    "SignatureDoesNotMatch",
];

/// Maps an SDK error into an [`ApiError`] for `operation`.
pub fn aws_error<E>(operation: impl Into<String>, error: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    let code = error.code().map(str::to_string);
    let causes = source_messages(&error);
    let class = match &error {
        SdkError::DispatchFailure(failure)
            if causes.iter().any(|c| {
                c.contains("no providers in chain provided credentials") || c.contains("credential")
            }) && failure.is_other() =>
        {
            ErrorClass::NoCredentials
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => ErrorClass::Unreachable,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Transient
        }
        SdkError::ConstructionFailure(_) => ErrorClass::Rejected,
        _ => classify(code.as_deref(), status),
    };
    let cause = match (&code, error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        _ if !causes.is_empty() => {
            let text = causes.join(": ");
            match status {
                Some(status) => format!("HTTP {status}: {text}"),
                None => text,
            }
        }
        _ => DisplayErrorContext(&error).to_string(),
    };
    ApiError {
        operation: operation.into(),
        class,
        code,
        cause: Cause(cause),
    }
}

/// The messages of an error's sources, without repeats.
fn source_messages(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !messages.iter().any(|m| m.contains(&text)) {
            messages.push(text);
        }
        source = cause.source();
    }
    messages
}

fn classify(code: Option<&str>, status: Option<u16>) -> ErrorClass {
    match code {
        Some(code) if TRANSIENT_CODES.contains(&code) => return ErrorClass::Transient,
        Some(code) if NOT_FOUND_CODES.contains(&code) => return ErrorClass::NotFound,
        Some(code) if ACCESS_DENIED_CODES.contains(&code) => return ErrorClass::AccessDenied,
        _ => {}
    }
    status.map_or(ErrorClass::Rejected, status_class)
}

/// The class of an HTTP status, for AWS and Kubernetes alike.
pub fn status_class(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::Transient,
        status if status >= 500 => ErrorClass::Transient,
        404 => ErrorClass::NotFound,
        403 => ErrorClass::AccessDenied,
        409 | 412 => ErrorClass::Conflict,
        _ => ErrorClass::Rejected,
    }
}

/// Clients for every AWS service comfyplat uses, in the platform's region.
#[derive(Clone, Debug)]
pub struct Aws {
    pub sts: aws_sdk_sts::Client,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub eks: aws_sdk_eks::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    /// The Resource Groups Tagging API: what controllers left behind, found by tag.
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub region: String,
    /// The loaded configuration: credentials for EKS tokens.
    pub config: aws_config::SdkConfig,
}

impl Aws {
    /// Loads credentials from the standard chain (environment, profiles, SSO, IMDS) and
    /// honours `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`. Retries: standard mode with
    /// jittered exponential backoff, 8 attempts, unless `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE`
    /// say otherwise.
    pub async fn connect(region: &str) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
            && std::env::var_os("AWS_RETRY_MODE").is_none()
        {
            loader = loader.retry_config(
                RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            );
        }
        let config = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            // Emulators and S3-compatible endpoints only understand path-style requests.
            .force_path_style(endpoint_overridden("S3"))
            .build();
        Aws {
            sts: aws_sdk_sts::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iam: aws_sdk_iam::Client::new(&config),
            eks: aws_sdk_eks::Client::new(&config),
            cloudfront: aws_sdk_cloudfront::Client::new(&config),
            tagging: aws_sdk_resourcegroupstagging::Client::new(&config),
            region: region.to_string(),
            config,
        }
    }

    /// The live view of one identity.
    pub async fn observe(&self, identity: &Identity) -> Result<Observation, ApiError> {
        match identity {
            Identity::S3Bucket { name, region } => s3::observe_bucket(self, name, region).await,
            Identity::IamRole { name } => iam::observe_role(self, name).await,
            Identity::IamRolePolicy { role, policy } => {
                iam::observe_role_policy(self, role, policy).await
            }
            Identity::EksAccessConfig { cluster } => {
                eks::observe_access_config(self, cluster).await
            }
            Identity::EksAccessEntry { cluster, principal } => {
                eks::observe_access_entry(self, cluster, principal).await
            }
            Identity::EksAddon { cluster, name } => eks::observe_addon(self, cluster, name).await,
            Identity::IamOidcProvider { arn, .. } => iam::observe_oidc_provider(self, arn).await,
            Identity::CloudFrontDistribution { caller_reference } => {
                cloudfront::observe(self, caller_reference).await
            }
            Identity::K8sObject { .. } => Err(not_aws(identity)),
        }
    }

    /// Whether an adopted thing exists.
    pub async fn adopted_exists(&self, adopted: &Adopted) -> Result<bool, ApiError> {
        match adopted {
            Adopted::IamRole { name, .. } => iam::role_exists(self, name).await,
        }
    }

    /// Creates the resource with every managed field set, or finishes an earlier create.
    /// Returns what is still under way, to [`Aws::wait`] for.
    pub async fn create(&self, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        let fields = &resource.fields;
        match &resource.identity {
            Identity::S3Bucket { name, region } => s3::create_bucket(self, name, region, fields)
                .await
                .map(|()| None),
            Identity::IamRole { name } => iam::create_role(self, name, fields).await.map(|()| None),
            Identity::IamRolePolicy { role, policy } => {
                iam::put_role_policy(self, role, policy, fields)
                    .await
                    .map(|()| None)
            }
            Identity::EksAccessConfig { cluster } => {
                eks::update_access_config(self, cluster, fields).await
            }
            Identity::EksAccessEntry { cluster, principal } => {
                eks::create_access_entry(self, cluster, principal, fields)
                    .await
                    .map(|()| None)
            }
            Identity::EksAddon { cluster, name } => {
                eks::create_addon(self, cluster, name, fields).await
            }
            Identity::IamOidcProvider { arn, url } => {
                iam::create_oidc_provider(self, arn, url, fields)
                    .await
                    .map(|()| None)
            }
            Identity::CloudFrontDistribution { caller_reference } => {
                cloudfront::create(self, caller_reference, fields).await
            }
            Identity::K8sObject { .. } => Err(not_aws(&resource.identity)),
        }
    }

    /// Brings the changed fields to their desired values.
    pub async fn update(
        &self,
        resource: &Resource,
        changes: &[FieldChange],
    ) -> Result<Option<Pending>, ApiError> {
        let fields = &resource.fields;
        match &resource.identity {
            Identity::S3Bucket { name, .. } => s3::update_bucket(self, name, fields, changes)
                .await
                .map(|()| None),
            Identity::IamRole { name } => iam::update_role(self, name, fields, changes)
                .await
                .map(|()| None),
            Identity::IamRolePolicy { role, policy } => {
                iam::put_role_policy(self, role, policy, fields)
                    .await
                    .map(|()| None)
            }
            Identity::EksAccessConfig { cluster } => {
                eks::update_access_config(self, cluster, fields).await
            }
            Identity::EksAccessEntry { cluster, principal } => {
                eks::update_access_entry(self, cluster, principal, fields, changes)
                    .await
                    .map(|()| None)
            }
            Identity::EksAddon { cluster, name } => {
                eks::update_addon(self, cluster, name, fields, &resource.parameters, changes).await
            }
            Identity::IamOidcProvider { arn, .. } => {
                iam::update_oidc_provider(self, arn, fields, changes)
                    .await
                    .map(|()| None)
            }
            Identity::CloudFrontDistribution { caller_reference } => {
                cloudfront::update(self, caller_reference, fields, changes).await
            }
            Identity::K8sObject { .. } => Err(not_aws(&resource.identity)),
        }
    }

    /// Deletes the resource; succeeds if it is already gone. Buckets holding objects are
    /// emptied first only when `delete_data` is set; otherwise S3 refuses. Settings of adopted
    /// things (the cluster's authentication mode) are never undone.
    pub async fn delete(
        &self,
        identity: &Identity,
        delete_data: bool,
    ) -> Result<Option<Pending>, ApiError> {
        match identity {
            Identity::S3Bucket { name, .. } => s3::delete_bucket(self, name, delete_data)
                .await
                .map(|()| None),
            Identity::IamRole { name } => iam::delete_role(self, name).await.map(|()| None),
            Identity::IamRolePolicy { role, policy } => iam::delete_role_policy(self, role, policy)
                .await
                .map(|()| None),
            Identity::EksAccessConfig { .. } => Ok(None),
            Identity::EksAccessEntry { cluster, principal } => {
                eks::delete_access_entry(self, cluster, principal)
                    .await
                    .map(|()| None)
            }
            Identity::EksAddon { cluster, name } => eks::delete_addon(self, cluster, name).await,
            Identity::IamOidcProvider { arn, .. } => {
                iam::delete_oidc_provider(self, arn).await.map(|()| None)
            }
            Identity::CloudFrontDistribution { caller_reference } => {
                cloudfront::delete(self, caller_reference).await
            }
            Identity::K8sObject { .. } => Err(not_aws(identity)),
        }
    }
}

fn not_aws(identity: &Identity) -> ApiError {
    ApiError::new(
        format!("{identity} is not an AWS resource"),
        ErrorClass::Rejected,
        "internal error: Kubernetes objects go through the Kubernetes adapter",
    )
}

/// Every API comfyplat talks to: AWS, and the cluster's Kubernetes API once connected.
pub struct Apis {
    pub aws: Aws,
    /// `None` when the platform has no Kubernetes objects, or on destroy when the cluster is
    /// gone (its objects went with it).
    pub kube: Option<kube::Kube>,
    /// `--force-conflicts`: take over fields other field managers set, on every apply.
    pub force_conflicts: bool,
    /// How long a CloudFront deployment may take (`--wait-timeout`).
    pub wait_timeout: Duration,
}

impl Apis {
    fn kube(&self, identity: &Identity) -> Result<&kube::Kube, ApiError> {
        self.kube.as_ref().ok_or_else(|| {
            ApiError::new(
                format!("failed to reach the Kubernetes API for {identity}"),
                ErrorClass::Unreachable,
                "comfyplat is not connected to the cluster's Kubernetes API",
            )
        })
    }

    pub async fn observe(&self, identity: &Identity) -> Result<Observation, ApiError> {
        match identity {
            Identity::K8sObject { .. } => match &self.kube {
                Some(kube) => kube.observe(identity).await,
                // No cluster: nothing on it exists any more.
                None => Ok(Observation::Absent),
            },
            _ => self.aws.observe(identity).await,
        }
    }

    pub async fn adopted_exists(&self, adopted: &Adopted) -> Result<bool, ApiError> {
        self.aws.adopted_exists(adopted).await
    }

    pub async fn create(&self, resource: &Resource) -> Result<Option<Pending>, ApiError> {
        match &resource.identity {
            Identity::K8sObject { .. } => {
                self.kube(&resource.identity)?
                    .apply(resource, self.force_conflicts)
                    .await
            }
            _ => self.aws.create(resource).await,
        }
    }

    /// `repair`: the change reverts drift the plan showed, so fields another manager took
    /// are taken back.
    pub async fn update(
        &self,
        resource: &Resource,
        changes: &[FieldChange],
        repair: bool,
    ) -> Result<Option<Pending>, ApiError> {
        match &resource.identity {
            Identity::K8sObject { .. } => {
                self.kube(&resource.identity)?
                    .apply(resource, repair || self.force_conflicts)
                    .await
            }
            _ => self.aws.update(resource, changes).await,
        }
    }

    pub async fn delete(
        &self,
        identity: &Identity,
        delete_data: bool,
    ) -> Result<Option<Pending>, ApiError> {
        match identity {
            Identity::K8sObject { .. } => match &self.kube {
                Some(kube) => kube.delete(identity).await,
                None => Ok(None),
            },
            _ => self.aws.delete(identity, delete_data).await,
        }
    }

    pub async fn wait(
        &self,
        pending: &Pending,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<Vec<String>, ApiError> {
        match pending {
            Pending::Kubernetes { object, goal } => match &self.kube {
                Some(kube) => kube.wait(object, *goal, progress).await,
                None => Ok(Vec::new()),
            },
            Pending::Distribution { id, goal } => {
                cloudfront::wait(&self.aws, id, *goal, self.wait_timeout, progress).await
            }
            Pending::ClusterUpdate { cluster, update_id } => {
                eks::wait_cluster_update(&self.aws, cluster, update_id, progress).await
            }
            Pending::Addon {
                cluster,
                name,
                goal,
            } => eks::wait_addon(&self.aws, cluster, name, *goal, progress).await,
        }
    }
}

/// One look at something under way: still going (with its status), or done (with warnings).
pub enum Poll {
    Waiting(String),
    Done(Vec<String>),
}

/// How often, and how long, [`poll`] looks.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub longest: Duration,
    pub limit: Duration,
}

/// Calls `check` with doubling delays until it is done or fails, reporting each status; once
/// `limit` has passed, fails with `timed_out(last status)`. Shared by every wait (EKS updates
/// and add-ons, Kubernetes objects).
pub async fn poll<F, Fut>(
    backoff: Backoff,
    progress: &(dyn Fn(String) + Sync),
    mut check: F,
    timed_out: impl FnOnce(&str) -> ApiError,
) -> Result<Vec<String>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll, ApiError>>,
{
    let started = std::time::Instant::now();
    let mut delay = backoff.first;
    loop {
        match check().await? {
            Poll::Done(warnings) => return Ok(warnings),
            Poll::Waiting(status) => {
                progress(status.clone());
                if started.elapsed() >= backoff.limit {
                    return Err(timed_out(&status));
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(backoff.longest);
    }
}

/// Whether an endpoint override applies to `service` (e.g. `S3`).
pub fn endpoint_overridden(service: &str) -> bool {
    let ignored = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !ignored
        && (std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os(format!("AWS_ENDPOINT_URL_{service}")).is_some())
}

/// Parses a policy document as IAM returns it (URL-encoded JSON) or as S3 does (JSON).
pub fn parse_policy_document(text: &str) -> Option<serde_json::Value> {
    serde_json::from_str(text).ok().or_else(|| {
        let decoded = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()?;
        serde_json::from_str(&decoded).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_and_statuses_are_classified() {
        assert_eq!(classify(Some("SlowDown"), Some(503)), ErrorClass::Transient);
        assert_eq!(
            classify(Some("Throttling"), Some(400)),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(Some("NoSuchEntity"), Some(404)),
            ErrorClass::NotFound
        );
        assert_eq!(classify(None, Some(502)), ErrorClass::Transient);
        assert_eq!(
            classify(Some("BucketAlreadyExists"), Some(409)),
            ErrorClass::Conflict
        );
        assert_eq!(
            classify(Some("MalformedPolicy"), Some(400)),
            ErrorClass::Rejected
        );
        assert_eq!(
            classify(Some("AccessDenied"), Some(403)),
            ErrorClass::AccessDenied
        );
    }

    #[test]
    fn policy_documents_are_read_encoded_or_not() {
        let plain = r#"{"Version":"2012-10-17"}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(parse_policy_document(plain), parse_policy_document(encoded));
        assert!(parse_policy_document(plain).is_some());
        assert!(parse_policy_document("%7Bnot").is_none());
    }
}
