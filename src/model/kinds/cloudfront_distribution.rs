//! The CloudFront distribution in front of the ComfyUI load balancer.
//!
//! Its origin is the Ingress's load balancer hostname (known after the Ingress is applied),
//! reached over HTTP (or HTTPS when configured); the default behaviour caches nothing
//! (managed policy CachingDisabled) and forwards everything (AllViewer: every header, so
//! the websocket upgrade and the ALB stickiness cookie pass), allows all seven methods,
//! redirects HTTP viewers to HTTPS and compresses. CloudFront adds a secret header to every
//! origin request; the Ingress makes the load balancer answer only requests that carry it.
//!
//! The distribution is found by its `CallerReference`, generated once (by the command, on
//! the first plan that needs one) and kept in state: the identity, so a create that was
//! interrupted or timed out never makes a second one. Deployments take minutes and run on
//! by themselves: `apply --no-wait` may leave one running.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::k8s_object;
use crate::config::OriginProtocol;
use crate::model::{
    Address, Context, Desired, Fields, Identity, Live, ModelError, Output, Resource, ResourceKind,
    deferred, insert_flat, insert_tags,
};

/// Found by the `CallerReference` it was created with (CloudFront assigns the id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub caller_reference: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "with caller reference {}", self.caller_reference)
    }
}

pub const DISTRIBUTION: &str = "cloudfront.distribution.comfyui";
/// How every CallerReference comfyplat generates starts: `comfyplat-<platform>-<uuid>`.
pub const CALLER_REFERENCE_PREFIX: &str = "comfyplat-";
/// The header that proves a request came through CloudFront.
pub const ORIGIN_HEADER: &str = "X-Origin-Verify";
pub const ORIGIN_ID: &str = "comfyui-load-balancer";
/// Managed cache policy CachingDisabled (TTL 0, nothing in the cache key).
pub const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
/// Managed origin request policy AllViewer (all headers incl. Host, cookies, query strings).
pub const ALL_VIEWER: &str = "216adef6-5c7f-47e4-b989-5492eafa07d3";
/// All seven methods, sorted (the plan compares them as a set).
pub const METHODS: [&str; 7] = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];
pub const CACHED_METHODS: [&str; 2] = ["GET", "HEAD"];

/// The comment comfyplat gives its distribution: how it is picked out of the account's
/// distribution list before its CallerReference is compared.
pub fn comment(platform: &str) -> String {
    format!("comfyplat platform {platform}")
}

impl ResourceKind for Id {
    const NOUN: &'static str = "CloudFront distribution";
    const MAY_RUN_ON: bool = true;
    const OUTPUTS_NEED_LIVE: bool = true;

    /// The distribution, when the platform has one, in front of the rendered Ingress.
    fn desired(context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let (platform, environment) = (context.platform, context.environment);
        let Some(cdn) = platform.cdn.as_ref() else {
            return Ok(());
        };
        let Some(ingress) = k8s_object::ingress(desired) else {
            return Ok(());
        };
        let Identity::K8sObject(object) = &ingress.identity else {
            return Ok(());
        };
        let (namespace, name) = (&object.namespace, &object.name);
        let mut fields = Fields::new();
        fields.insert("enabled".to_string(), json!(true));
        fields.insert("comment".to_string(), json!(comment(&platform.name)));
        fields.insert("price_class".to_string(), json!(cdn.price_class));
        fields.insert("http_version".to_string(), json!("http2and3"));
        fields.insert("ipv6".to_string(), json!(true));
        let mut aliases = cdn.aliases.clone();
        aliases.sort();
        fields.insert("aliases".to_string(), json!(aliases));
        let certificate = match &cdn.certificate_arn {
            Some(arn) => json!({
                "acm_certificate_arn": arn,
                "ssl_support_method": "sni-only",
                "minimum_protocol_version": "TLSv1.2_2021",
            }),
            None => json!({"cloudfront_default": true}),
        };
        insert_flat(&mut fields, "viewer_certificate", &certificate);
        fields.insert(
            "web_acl_id".to_string(),
            json!(cdn.web_acl_arn.clone().unwrap_or_default()),
        );
        let protocol_policy = match cdn.origin_protocol {
            OriginProtocol::Http => "http-only",
            OriginProtocol::Https => "https-only",
        };
        insert_flat(
            &mut fields,
            "origin",
            &json!({
                "id": ORIGIN_ID,
                "domain_name": deferred::ingress_hostname(namespace, name),
                "protocol_policy": protocol_policy,
                "http_port": 80,
                "https_port": 443,
                "ssl_protocols": ["TLSv1.2"],
                "read_timeout": cdn.read_timeout,
                "keepalive_timeout": cdn.keepalive_timeout,
                "connection_attempts": 3,
                "connection_timeout": 10,
            }),
        );
        fields.insert(
            format!("origin.headers.{ORIGIN_HEADER}"),
            Value::String(deferred::secret(deferred::ORIGIN_SECRET)),
        );
        insert_flat(
            &mut fields,
            "behavior",
            &json!({
                "viewer_protocol_policy": "redirect-to-https",
                "cache_policy_id": CACHING_DISABLED,
                "origin_request_policy_id": ALL_VIEWER,
                "compress": true,
            }),
        );
        fields.insert("behavior.allowed_methods".to_string(), json!(METHODS));
        fields.insert("behavior.cached_methods".to_string(), json!(CACHED_METHODS));
        insert_tags(&mut fields, &environment.resource_tags(platform));
        let id = Id {
            caller_reference: environment.distribution_reference.clone(),
        };
        let address = ingress.address.clone();
        desired
            .resources
            .push(Resource::new(Address::new(DISTRIBUTION), id, fields).depending_on([address]));
        Ok(())
    }

    fn outputs(&self, _address: &Address, live: Option<&Live>) -> Vec<Output> {
        let Some(live) = live else {
            return Vec::new();
        };
        let text = |key: &str| {
            live.attributes
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let domain = text("domain_name");
        let aliases: Vec<String> = live
            .fields
            .get("aliases")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut outputs = vec![
            Output::new("cloudfront.url", format!("https://{domain}")).url(1),
            Output::new("cloudfront.id", text("id")),
            Output::new("cloudfront.domain_name", domain),
            Output::new("cloudfront.status", live.status.clone().unwrap_or_default()),
        ];
        if let Some(alias) = aliases.first() {
            outputs.push(Output::new("cloudfront.alias_url", format!("https://{alias}")).url(0));
        }
        outputs.push(Output::new("cloudfront.aliases", json!(aliases)));
        outputs
    }
}

/// The Ingress annotation that makes the load balancer answer only CloudFront: the AWS Load
/// Balancer Controller's extra rule conditions for the backend service.
pub fn origin_condition() -> Value {
    json!([{
        "field": "http-header",
        "httpHeaderConfig": {
            "httpHeaderName": ORIGIN_HEADER,
            "values": [deferred::secret(deferred::ORIGIN_SECRET)],
        },
    }])
}
