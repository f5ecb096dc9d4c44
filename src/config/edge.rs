//! Checks and defaults of `cdn`: the CloudFront distribution in front of the ComfyUI load
//! balancer.
//!
//! The bounds are CloudFront's own (origin read and keep-alive timeouts 1 to 120 seconds,
//! the three price classes, a viewer certificate in us-east-1, a CloudFront-scope WAF web
//! ACL), so a file that validates is one CloudFront accepts.

use serde_saphyr::Spanned;

use super::arn::{Arn, check_partition, is_account_id};
use super::diagnostic::did_you_mean;
use super::schema::CdnFile;
use super::workloads::{Problems, is_dns_label, number};
use super::{CdnSettings, ComfyuiSettings, OriginProtocol};

pub const PRICE_CLASSES: &[&str] = &["PriceClass_100", "PriceClass_200", "PriceClass_All"];

/// The distribution's settings, or `None` when there is none: `enabled: false`, or no
/// ComfyUI workload to put it in front of (then a `cdn` block that asks for one is an
/// error, reported at `cdn_line`).
pub fn cdn(
    file: Option<&CdnFile>,
    comfyui: Option<&ComfyuiSettings>,
    scheme: Option<&Spanned<String>>,
    region: Option<&str>,
    cdn_line: Option<(usize, usize)>,
    problems: &mut Problems,
) -> Option<CdnSettings> {
    let default = CdnFile::default();
    let explicit = file.is_some();
    let file = file.unwrap_or(&default);
    if file.enabled.as_ref().is_some_and(|e| !e.value) {
        return None;
    }
    if comfyui.is_none() {
        if explicit && let Some((line, column)) = cdn_line {
            problems.at_position(
                line,
                column,
                "`cdn` needs `comfyui`: the distribution's origin is the ComfyUI load balancer"
                    .to_string(),
                "add the `comfyui` block, or set `cdn.enabled: false`",
            );
        }
        return None;
    };
    if let Some(scheme) = scheme.filter(|s| s.value == "internal") {
        problems.at(
            scheme,
            "CloudFront cannot reach an `internal` load balancer without a VPC origin, which comfyplat does not create".to_string(),
            "use `internet-facing` (comfyplat lets the load balancer answer only CloudFront, by a secret header), or set `cdn.enabled: false`",
        );
    }
    let price_class = match &file.price_class {
        None => "PriceClass_All".to_string(),
        Some(class) if PRICE_CLASSES.contains(&class.value.as_str()) => class.value.clone(),
        Some(class) => {
            let hint = match did_you_mean(&class.value, PRICE_CLASSES.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("use one of {}", PRICE_CLASSES.join(", ")),
            };
            problems.at(
                class,
                format!("unknown price class `{}`", class.value),
                &hint,
            );
            "PriceClass_All".to_string()
        }
    };
    let origin = &file.origin;
    let protocol = match &origin.protocol {
        None => OriginProtocol::Http,
        Some(p) if p.value == "http" => OriginProtocol::Http,
        Some(p) if p.value == "https" => OriginProtocol::Https,
        Some(p) => {
            problems.at(
                p,
                format!("unknown origin protocol `{}`", p.value),
                "use `http` (CloudFront to the load balancer in clear, the default) or `https`",
            );
            OriginProtocol::Http
        }
    };
    let read_timeout = number(
        &origin.read_timeout_seconds,
        60,
        1..=120,
        "cdn.origin.read_timeout_seconds",
        problems,
    );
    let keepalive_timeout = number(
        &origin.keepalive_timeout_seconds,
        5,
        1..=120,
        "cdn.origin.keepalive_timeout_seconds",
        problems,
    );
    let aliases: Vec<String> = file
        .aliases
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_default();
    if let Some(spanned) = &file.aliases {
        for alias in &aliases {
            if !is_domain_name(alias) {
                problems.at(
                    spanned,
                    format!("`{alias}` is not a domain name"),
                    "give names like `comfy.example.com` or `*.example.com`, lowercase",
                );
            }
        }
        let mut sorted = aliases.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != aliases.len() {
            problems.at(spanned, "`cdn.aliases` lists a name twice".to_string(), "");
        }
    }
    let certificate_arn = file.certificate_arn.as_ref().map(|c| c.value.clone());
    match (&file.certificate_arn, aliases.is_empty()) {
        (Some(arn), _) => {
            if let Err(why) = check_acm_arn(&arn.value, "us-east-1", region) {
                problems.at(
                    arn,
                    format!("invalid `cdn.certificate_arn`: {why}"),
                    "CloudFront only uses ACM certificates from us-east-1, e.g. `arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-...`",
                );
            } else if aliases.is_empty() {
                problems.at(
                    arn,
                    "`cdn.certificate_arn` is set but `cdn.aliases` is empty".to_string(),
                    "list the domain names the certificate covers under `cdn.aliases`",
                );
            }
        }
        (None, false) => {
            if let Some(spanned) = &file.aliases {
                problems.at(
                    spanned,
                    "`cdn.aliases` need `cdn.certificate_arn`".to_string(),
                    "CloudFront serves its own names only with a certificate for them: an ACM certificate in us-east-1",
                );
            }
        }
        (None, true) => {}
    }
    let origin_certificate_arn = origin.certificate_arn.as_ref().map(|c| c.value.clone());
    if protocol == OriginProtocol::Https {
        let at = origin.protocol.as_ref();
        match (&origin.certificate_arn, at) {
            (None, Some(at)) => problems.at(
                at,
                "`cdn.origin.protocol: https` needs `cdn.origin.certificate_arn`".to_string(),
                "the load balancer's HTTPS listener needs an ACM certificate (in the platform's region) for the alias names",
            ),
            (Some(arn), _) => {
                if aliases.is_empty() {
                    problems.at(
                        arn,
                        "`cdn.origin.protocol: https` needs `cdn.aliases`".to_string(),
                        "CloudFront checks the load balancer's certificate against the Host it forwards, one of the aliases",
                    );
                }
            }
            (None, None) => {}
        }
    }
    if let Some(arn) = &origin.certificate_arn
        && let Some(region) = region
    {
        if let Err(why) = check_acm_arn(&arn.value, region, Some(region)) {
            problems.at(
                arn,
                format!("invalid `cdn.origin.certificate_arn`: {why}"),
                "a load balancer uses ACM certificates of its own region",
            );
        } else if protocol == OriginProtocol::Http {
            problems.at(
                arn,
                "`cdn.origin.certificate_arn` is only used with `protocol: https`".to_string(),
                "set `cdn.origin.protocol: https`, or remove the certificate",
            );
        }
    }
    let web_acl_arn = file.web_acl_arn.as_ref().map(|w| w.value.clone());
    if let Some(arn) = &file.web_acl_arn {
        if !is_cloudfront_web_acl(&arn.value) {
            problems.at(
                arn,
                format!("`{}` is not a CloudFront-scope WAF web ACL ARN", arn.value),
                "e.g. `arn:aws:wafv2:us-east-1:123456789012:global/webacl/comfyui/0a1b2c3d-...`",
            );
        } else if let (Some(parts), Some(region)) = (Arn::parse(&arn.value), region)
            && let Err(why) = check_partition(&parts, region)
        {
            problems.at(
                arn,
                format!("invalid `cdn.web_acl_arn`: {why}"),
                "give a web ACL of the platform's partition",
            );
        }
    }
    Some(CdnSettings {
        price_class,
        origin_protocol: protocol,
        origin_certificate_arn,
        read_timeout,
        keepalive_timeout,
        aliases,
        certificate_arn,
        web_acl_arn,
    })
}

/// An ACM certificate in `region`, of the partition of `platform_region` (when known).
fn check_acm_arn(arn: &str, region: &str, platform_region: Option<&str>) -> Result<(), String> {
    let Some(parts) = Arn::parse(arn).filter(|a| {
        a.service == "acm" && a.resource.starts_with("certificate/") && is_account_id(a.account)
    }) else {
        return Err(format!("`{arn}` is not an ACM certificate ARN"));
    };
    if let Some(platform_region) = platform_region {
        check_partition(&parts, platform_region)?;
    }
    if parts.region != region {
        return Err(format!(
            "the certificate is in `{}`, not `{region}`",
            parts.region
        ));
    }
    Ok(())
}

fn is_cloudfront_web_acl(arn: &str) -> bool {
    Arn::parse(arn).is_some_and(|a| {
        a.service == "wafv2" && a.region == "us-east-1" && a.resource.starts_with("global/webacl/")
    })
}

fn is_domain_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    name.len() <= 253 && name.contains('.') && name.split('.').all(is_dns_label)
}

/// Where a top-level key starts in the file (for problems about a block as a whole).
pub fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|index| (index + 1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_and_arns() {
        assert!(is_domain_name("comfy.example.com"));
        assert!(is_domain_name("*.example.com"));
        assert!(!is_domain_name("Comfy.example.com"));
        assert!(!is_domain_name("localhost"));
        assert!(!is_domain_name("a..b"));
        assert!(
            check_acm_arn(
                "arn:aws:acm:us-east-1:123456789012:certificate/abc",
                "us-east-1",
                Some("us-west-2")
            )
            .is_ok()
        );
        assert!(
            check_acm_arn(
                "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
                "us-east-1",
                None
            )
            .is_err()
        );
        assert!(check_acm_arn("arn:aws:iam::123456789012:role/x", "us-east-1", None).is_err());
        let why = check_acm_arn(
            "arn:aws-us-gov:acm:us-east-1:123456789012:certificate/abc",
            "us-east-1",
            Some("us-west-2"),
        )
        .expect_err("another partition");
        assert!(why.contains("partition `aws-us-gov`"), "{why}");
        assert!(is_cloudfront_web_acl(
            "arn:aws:wafv2:us-east-1:123456789012:global/webacl/comfy/1234"
        ));
        assert!(!is_cloudfront_web_acl(
            "arn:aws:wafv2:us-west-2:123456789012:regional/webacl/comfy/1234"
        ));
        assert_eq!(
            key_position("name: x\ncdn:\n  enabled: true\n", "cdn"),
            Some((2, 1))
        );
        assert_eq!(key_position("cdnx: 1\n", "cdn"), None);
    }
}
