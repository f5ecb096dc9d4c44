//! Values that are not known, or must not be seen, when a plan is made.
//!
//! A desired field may hold a *placeholder* instead of its value:
//!
//! - `((secret:NAME))`: a secret comfyplat generates on the first apply that needs it and
//!   keeps in state (`State::secrets`), e.g. the header CloudFront sends so that the load
//!   balancer answers only CloudFront. Plans, saved plan files, `--json`, state entries and
//!   progress show the placeholder (printed as `(sensitive)`), never the value; only the
//!   request that sets it carries the value. Live values are masked back into placeholders
//!   before the planner compares them, so a secret never shows up as a difference.
//! - `((after-apply:ingress-hostname:NAMESPACE/NAME))`: the hostname the load balancer
//!   controller gives an Ingress. The planner fills it in when the Ingress has one already;
//!   otherwise the plan shows `(known after apply)` and the executor reads it once the
//!   Ingress is ready.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Fields;

/// The header CloudFront adds to every request to the origin; the Ingress lets only
/// requests that carry it through.
pub const ORIGIN_SECRET: &str = "origin-secret";

/// Placeholder of a secret.
pub fn secret(name: &str) -> String {
    format!("((secret:{name}))")
}

/// Placeholder of an Ingress's load balancer hostname.
pub fn ingress_hostname(namespace: &str, name: &str) -> String {
    format!("((after-apply:ingress-hostname:{namespace}/{name}))")
}

/// What an after-apply placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterApply {
    IngressHostname { namespace: String, name: String },
}

/// The after-apply placeholder a value is, if it is one.
pub fn after_apply(value: &Value) -> Option<AfterApply> {
    let text = value.as_str()?;
    let inner = text
        .strip_prefix("((after-apply:ingress-hostname:")?
        .strip_suffix("))")?;
    let (namespace, name) = inner.split_once('/')?;
    Some(AfterApply::IngressHostname {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Whether any field still waits for an after-apply value.
pub fn has_after_apply(fields: &Fields) -> bool {
    fields.values().any(|v| after_apply(v).is_some())
}

/// Names of the secrets a value refers to.
pub fn secrets_in(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::String(text) => secrets_in_text(text, names),
        Value::Array(items) => items.iter().for_each(|v| secrets_in(v, names)),
        Value::Object(map) => map.values().for_each(|v| secrets_in(v, names)),
        _ => {}
    }
}

fn secrets_in_text(text: &str, names: &mut Vec<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("((secret:") {
        let after = &rest[start + "((secret:".len()..];
        let Some(end) = after.find("))") else {
            break;
        };
        let name = after[..end].to_string();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end..];
    }
}

/// Replaces every placeholder of a known secret by its value (for the request only).
pub fn reveal(value: &mut Value, secrets: &BTreeMap<String, String>) {
    rewrite(value, &|text: &str| {
        let mut out = text.to_string();
        for (name, secret_value) in secrets {
            out = out.replace(&secret(name), secret_value);
        }
        out
    });
}

/// Replaces every occurrence of a secret's value by its placeholder (for what is compared
/// and shown).
pub fn mask(value: &mut Value, secrets: &BTreeMap<String, String>) {
    if secrets.is_empty() {
        return;
    }
    rewrite(value, &|text: &str| mask_text(text, secrets));
}

/// [`mask`] for text (error messages).
pub fn mask_text(text: &str, secrets: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in secrets {
        if !value.is_empty() {
            out = out.replace(value.as_str(), &secret(name));
        }
    }
    out
}

/// How a value reads in a plan: placeholders become `(sensitive)` / `(known after apply)`.
pub fn display(text: &str) -> String {
    if text.starts_with("((after-apply:") && text.ends_with("))") {
        return "(known after apply)".to_string();
    }
    let mut names = Vec::new();
    secrets_in_text(text, &mut names);
    names.iter().fold(text.to_string(), |shown, name| {
        shown.replace(&secret(name), "(sensitive)")
    })
}

fn rewrite(value: &mut Value, change: &dyn Fn(&str) -> String) {
    match value {
        Value::String(text) => *text = change(text),
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, change)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite(v, change)),
        _ => {}
    }
}

/// A new secret: 64 hex digits from two v4 UUIDs (244 random bits from the OS generator).
pub fn generate_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_revealed_for_requests_and_masked_for_display() {
        let secrets = BTreeMap::from([(ORIGIN_SECRET.to_string(), "s3cr3t".to_string())]);
        let placeholder = secret(ORIGIN_SECRET);
        let mut value = json!({"a": [format!("[\"{placeholder}\"]")], "b": placeholder});
        reveal(&mut value, &secrets);
        assert_eq!(value, json!({"a": ["[\"s3cr3t\"]"], "b": "s3cr3t"}));
        mask(&mut value, &secrets);
        assert_eq!(
            value,
            json!({"a": [format!("[\"{placeholder}\"]")], "b": placeholder})
        );
        let mut names = Vec::new();
        secrets_in(&value, &mut names);
        assert_eq!(names, vec![ORIGIN_SECRET.to_string()]);
        assert_eq!(
            display(&format!("[\"{placeholder}\"]")),
            "[\"(sensitive)\"]"
        );
        assert_eq!(
            mask_text("failed: s3cr3t is bad", &secrets),
            format!("failed: {placeholder} is bad")
        );
    }

    #[test]
    fn ingress_hostnames_are_known_after_apply() {
        let value = json!(ingress_hostname("comfyui", "web"));
        assert_eq!(
            after_apply(&value),
            Some(AfterApply::IngressHostname {
                namespace: "comfyui".to_string(),
                name: "web".to_string()
            })
        );
        assert_eq!(display(value.as_str().unwrap()), "(known after apply)");
        assert_eq!(after_apply(&json!("lb.example.com")), None);
        assert_ne!(generate_secret(), generate_secret());
        assert_eq!(generate_secret().len(), 64);
    }
}
