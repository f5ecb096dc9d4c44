//! Adapters: the only code that calls AWS and Kubernetes.
//!
//! One module per kind of resource under [`kinds`] (generated dispatch from the table in
//! `src/kinds.rs`), plus the facts read before planning: who the caller is ([`sts`]), the
//! adopted cluster and its add-on versions ([`eks`]), the node pool's instance types
//! ([`ec2`]), the adopted node role ([`iam`]), the
//! Kubernetes connection and preflight ([`kube`]) and the Tagging API ([`tagging`]); and the
//! model files of `comfyplat models` ([`s3_transfer`]); and ComfyUI's own API, for
//! `comfyplat run` ([`comfyui`]).
//!
//! They translate between the model's terms (identities and flat fields) and the APIs, and
//! map API errors into typed outcomes: not found becomes `Observation::Absent` or an
//! idempotent success, throttling / 5xx / connection failures become
//! [`ErrorClass::Transient`], and everything else a permanent error naming the operation
//! and the object, with the API's own words and the client's error under it.
//!
//! Retries have one owner per API: the AWS SDK retries each AWS call (standard mode:
//! throttling, 5xx, timeouts, lost connections, jittered backoff, a bounded number of
//! attempts, each attempt and the whole call under a time limit); the Kubernetes adapter
//! retries each Kubernetes call the same way (honouring `Retry-After`). Nobody retries on
//! top of them, and a wait that runs out of `--wait-timeout` ends with
//! [`ErrorClass::Timeout`], which nobody retries either: the next run waits again.
//! Adapters never print; waits report through a callback.
//!
//! Every mutating call is idempotent from the caller's view (create of something that
//! already exists and is ours succeeds; delete of something gone succeeds), because a
//! request can succeed on the server while its response is lost.

pub mod call_progress;
pub mod comfyui;
pub mod ec2;
pub mod eks;
pub mod iam;
pub mod kinds;
pub mod kube;
pub mod s3_transfer;
pub mod sts;
pub mod tagging;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// A boxed error from a client comfyplat uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an API call ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, connection failures: worth retrying (the clients did, as often as
    /// they may).
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
    /// A wait ran out of time; what it waited for goes on, and the next run waits again.
    Timeout,
}

/// An API call that failed: the operation and object in the message, the API's own words
/// as the cause, and the client's typed error under that.
#[derive(Debug, thiserror::Error)]
#[error("{operation}")]
pub struct ApiError {
    pub operation: String,
    pub class: ErrorClass,
    pub code: Option<String>,
    #[source]
    pub cause: Cause,
}

/// The API's own description of a failure; its source is the client's error, when there
/// is one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Cause {
    pub message: String,
    #[source]
    pub source: Option<BoxError>,
}

impl ApiError {
    pub fn new(operation: impl Into<String>, class: ErrorClass, cause: impl Into<String>) -> Self {
        ApiError {
            operation: operation.into(),
            class,
            code: None,
            cause: Cause {
                message: cause.into(),
                source: None,
            },
        }
    }

    /// The same failure with the client's error under its message.
    pub fn caused_by(mut self, source: impl Into<BoxError>) -> Self {
        self.cause.source = Some(source.into());
        self
    }

    /// Worth trying again in a later run: throttling, 5xx, lost connections.
    pub fn is_transient(&self) -> bool {
        matches!(self.class, ErrorClass::Transient | ErrorClass::Unreachable)
    }

    pub fn hint(&self) -> Option<String> {
        match self.class {
            ErrorClass::AccessDenied => Some("the credentials lack a permission this needs; the README lists the IAM permissions comfyplat uses".to_string()),
            ErrorClass::Transient => Some("the API kept failing or throttling this call; run the command again, it continues where it stopped".to_string()),
            ErrorClass::NoCredentials => Some("configure AWS credentials: `aws sso login` with AWS_PROFILE, a profile in ~/.aws, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role; for the local sandbox run `source .sandbox/env`".to_string()),
            ErrorClass::Unreachable => Some("the endpoint could not be reached or did not answer in time: check the network, and AWS_ENDPOINT_URL if it is set (is the sandbox running? `scripts/sandbox status`); run the command again, it continues where it stopped".to_string()),
            ErrorClass::Timeout => Some("it goes on by itself: run the same command again to wait for it, or give a longer `--wait-timeout`".to_string()),
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
        // The call got no answer within its time limit (not a wait running out): the
        // endpoint is as good as unreachable.
        SdkError::TimeoutError(_) => ErrorClass::Unreachable,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ErrorClass::Transient,
        SdkError::ConstructionFailure(_) => ErrorClass::Rejected,
        _ => classify(code.as_deref(), status),
    };
    let message = match (&code, error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        _ if !causes.is_empty() => {
            let text = causes.join(": ");
            match status {
                Some(status) => format!("HTTP {status}: {text}"),
                None => text,
            }
        }
        _ => match status {
            Some(status) => format!("HTTP {status}"),
            None => "no answer".to_string(),
        },
    };
    ApiError {
        operation: operation.into(),
        class,
        code,
        cause: Cause {
            message,
            source: Some(Box::new(error)),
        },
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
    pub ecr: aws_sdk_ecr::Client,
    /// Instance types and where they are offered (read only).
    pub ec2: aws_sdk_ec2::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    /// The Resource Groups Tagging API: what carries the platform's tag.
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub region: String,
    /// The loaded configuration: credentials for EKS tokens.
    pub config: aws_config::SdkConfig,
}

/// Attempts of one AWS call (the SDK's standard retry mode), unless `AWS_MAX_ATTEMPTS` says
/// otherwise.
pub const AWS_ATTEMPTS: u32 = 8;
/// Time limits of every AWS call. The control-plane APIs comfyplat calls answer in well
/// under a second (CloudFront's CreateDistribution in a few): a connection takes at most
/// 3 s, the first byte of an answer 15 s, one attempt 20 s, and the whole call, retries and
/// backoff included, 50 s. So an endpoint that never answers fails a plan within a minute
/// (the error names the call), and an answer lost after a write is retried, which every
/// adapter's writes tolerate (they are idempotent).
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const AWS_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(15);
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
pub const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(50);

impl Aws {
    /// Loads credentials from the standard chain (environment, profiles, SSO, IMDS) and
    /// honours `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`. Retries: standard mode with
    /// jittered exponential backoff, [`AWS_ATTEMPTS`] attempts, unless `AWS_MAX_ATTEMPTS` /
    /// `AWS_RETRY_MODE` say otherwise; every attempt and every whole call has a time limit.
    pub async fn connect(region: &str, notify: call_progress::Notify) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(AWS_CONNECT_TIMEOUT)
                    .read_timeout(AWS_FIRST_BYTE_TIMEOUT)
                    .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
                    .operation_timeout(AWS_CALL_TIMEOUT)
                    .build(),
            );
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
            && std::env::var_os("AWS_RETRY_MODE").is_none()
        {
            loader = loader.retry_config(
                RetryConfig::standard()
                    .with_max_attempts(AWS_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            );
        }
        let config = loader.load().await;
        let progress = call_progress::CallProgress {
            notify,
            attempts: config
                .retry_config()
                .map(|r| r.max_attempts())
                .unwrap_or(AWS_ATTEMPTS),
        };
        // Every client reports its retries (the same interceptor on each).
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(&config)
                        .interceptor(progress.clone())
                        .build(),
                )
            };
        }
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            // Emulators and S3-compatible endpoints only understand path-style requests.
            .force_path_style(endpoint_overridden("S3"))
            .interceptor(progress.clone())
            .build();
        Aws {
            sts: client!(aws_sdk_sts),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iam: client!(aws_sdk_iam),
            eks: client!(aws_sdk_eks),
            ecr: client!(aws_sdk_ecr),
            ec2: client!(aws_sdk_ec2),
            cloudfront: client!(aws_sdk_cloudfront),
            tagging: client!(aws_sdk_resourcegroupstagging),
            region: region.to_string(),
            config,
        }
    }
}

/// Every API comfyplat talks to: AWS, and the cluster's Kubernetes API once connected.
/// The kinds' operations on it are in [`kinds`].
pub struct Apis {
    pub aws: Aws,
    /// `None` when the platform has no Kubernetes objects, or on destroy when the cluster is
    /// gone (its objects went with it).
    pub kube: Option<kube::Kube>,
    /// `--force-conflicts`: take over fields other field managers set, on every apply.
    pub force_conflicts: bool,
    /// The longest any wait may take (`--wait-timeout`).
    pub wait_timeout: Duration,
    /// The platform's name: what its tags and labels say.
    pub platform: String,
    /// The account and partition the credentials belong to (ARNs are built from them).
    pub account: String,
    pub partition: String,
    /// The adopted cluster's name.
    pub cluster: String,
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

/// Calls `check` with doubling delays until it is done or fails, reporting each status with
/// how long it has waited; once `limit` has passed, fails with `timed_out(last status)`
/// (an [`ErrorClass::Timeout`]). Shared by every wait.
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
                    let mut error = timed_out(&status);
                    error.class = ErrorClass::Timeout;
                    return Err(error);
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
