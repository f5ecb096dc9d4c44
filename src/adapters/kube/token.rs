//! EKS bearer tokens, as `aws eks get-token` makes them: a presigned STS GetCallerIdentity
//! URL that carries the cluster name in the signed header `x-k8s-aws-id`, base64url-encoded
//! without padding, prefixed `k8s-aws-v1.`. EKS resolves the caller by calling that URL; no
//! request is sent from here.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::adapters::{ApiError, ErrorClass};

/// What the presigned URL allows: the same 60 s as `aws eks get-token`. EKS accepts a token
/// for 15 minutes; comfyplat makes a new one after [`TOKEN_LIFETIME`].
const PRESIGN_EXPIRY: Duration = Duration::from_secs(60);
/// How long a token is used before a fresh one is made (EKS accepts them for 15 minutes).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// RFC 3986 unreserved characters stay; everything else is percent-encoded, as SigV4 wants.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A fresh token for `cluster`, signed with the credentials of `config`.
pub async fn token(
    config: &aws_config::SdkConfig,
    cluster: &str,
    region: &str,
    partition: &str,
) -> Result<String, ApiError> {
    const OPERATION: &str = "failed to make an EKS token (a presigned STS GetCallerIdentity)";
    let Some(provider) = config.credentials_provider() else {
        return Err(ApiError::new(
            OPERATION,
            ErrorClass::NoCredentials,
            "no AWS credentials provider is configured",
        ));
    };
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| ApiError::new(OPERATION, ErrorClass::NoCredentials, e.to_string()))?;
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRY);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| ApiError::new(OPERATION, ErrorClass::Rejected, e.to_string()))?
        .into();
    let suffix = if partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let base =
        format!("https://sts.{region}.{suffix}/?Action=GetCallerIdentity&Version=2011-06-15");
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        [("x-k8s-aws-id", cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| ApiError::new(OPERATION, ErrorClass::Rejected, e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| ApiError::new(OPERATION, ErrorClass::Rejected, e.to_string()))?
        .into_parts();
    let (_headers, query) = instructions.into_parts();
    let mut url = base;
    for (name, value) in query {
        url.push('&');
        url.push_str(name);
        url.push('=');
        url.push_str(&utf8_percent_encode(&value, QUERY).to_string());
    }
    Ok(format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    #[tokio::test]
    async fn tokens_are_presigned_get_caller_identity_urls() {
        let config = aws_config::SdkConfig::builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "AKIDEXAMPLE",
                    "secret",
                    Some("session".into()),
                    None,
                    "test",
                )),
            )
            .build();
        let token = token(&config, "comfyui-sandbox", "us-west-2", "aws")
            .await
            .expect("token");
        let encoded = token.strip_prefix("k8s-aws-v1.").expect("prefix");
        assert!(!encoded.contains('='), "no padding");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .expect("base64url"),
        )
        .expect("utf-8");
        assert!(url.starts_with(
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ));
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Security-Token=session",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
    }
}
