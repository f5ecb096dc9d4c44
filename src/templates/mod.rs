//! The Kubernetes manifests comfyplat applies, rendered from the minijinja templates in
//! `templates/` at the root of the repository.
//!
//! [`render`] takes the context built from `platform.yaml` and the observed cluster (a JSON
//! object; its keys are listed below) and returns one [`Rendered`] per Kubernetes object, in
//! [`TEMPLATE_NAMES`] order and then in document order within each template. Pure: no
//! network, no printing, no file access; [`load`] reads the override directory (the
//! commands call it before planning, so that the model never touches a file).
//!
//! # Templates
//!
//! The templates are embedded in the binary (`include_str!`). A `templates_dir` named in
//! platform.yaml overrides them one file at a time: a file there whose name is one of
//! [`TEMPLATE_NAMES`] or [`PARTIAL_NAMES`] replaces the embedded one, any other `*.j2` file is
//! refused (a misspelt override would otherwise be ignored without a word), other files
//! (a README) are ignored. Partials are not rendered on their own: `model-agent.sh.j2`, the
//! model cache agent's script, is included by `model-agent.yaml.j2` (into its ConfigMap);
//! [`render_partial`] renders it alone, to the same text.
//!
//! The environment the templates see:
//! - undefined is strict: a missing key, or a misspelt one, is an error naming the template
//!   and the line, never an empty string;
//! - `trim_blocks` and `lstrip_blocks` are on, so a line holding only a `{% ... %}` tag
//!   leaves nothing in the output;
//! - no auto-escaping: values go through `| tojson` wherever they land in YAML, which quotes
//!   strings (a tag value `yes` or `0123` stays a string) and leaves numbers as numbers;
//! - `tojson` refuses an undefined value (minijinja's own would write `null`);
//! - two extra filters: `shell_quote` quotes a value for a POSIX shell, `sha256` gives a
//!   text's SHA-256 in hex (the agent pods' script annotation). Shell text with `${#var}`
//!   must sit in a `{% raw %}` block: `{#` opens a template comment.
//!
//! Context keys (all always present, `null` where noted): `platform`, `cluster`, `labels`
//! (the ownership labels), `aws_tags`, `buckets` (`inputs` may be null), `karpenter`,
//! `comfyui` (`cpu`, `memory` may be null), `model_agent`, `volumes` (one entry per mounted bucket),
//! `ingress`, `network_policy` (null when disabled).
//!
//! # Output checks
//!
//! Each template renders to zero or more YAML documents separated by `---`; empty documents
//! are skipped (the NetworkPolicy when it is disabled). Every document must be a mapping
//! with `apiVersion`, `kind` and `metadata.name`, must contain no `null` (the API server
//! drops nulls, so a null would be a diff that never converges; leave the field out
//! instead), and no two documents may name the same object. A failed check is a
//! [`TemplateError`] naming the template.
//!
//! # Labels
//!
//! Every object carries the ownership labels plus `app.kubernetes.io/name: comfyui` (the
//! model agent's objects: `comfyplat-model-agent`, so that its pods never match ComfyUI's
//! selectors) and `app.kubernetes.io/instance: <platform name>`; the pods carry only the last two,
//! which are also the Deployment's selector, the Service's selector and the NetworkPolicy's
//! pod selector (pods are owned by their ReplicaSet, not by comfyplat, so they do not claim
//! `managed-by: comfyplat`). The nodes Karpenter launches get `comfyplat.io/platform` and
//! `comfyplat.io/pool: gpu` (Karpenter refuses `app.kubernetes.io/*` node labels: the
//! `kubernetes.io` domain is restricted in NodePool templates).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value;

#[cfg(test)]
mod tests;

/// The templates that render Kubernetes objects, in render order.
pub const TEMPLATE_NAMES: &[&str] = &[
    "namespace.yaml.j2",
    "serviceaccount.yaml.j2",
    "ec2nodeclass.yaml.j2",
    "nodepool.yaml.j2",
    "model-agent.yaml.j2",
    "volumes.yaml.j2",
    "deployment.yaml.j2",
    "service.yaml.j2",
    "ingress.yaml.j2",
    "networkpolicy.yaml.j2",
];

/// Templates that are only included by others; they can be overridden like the rest.
pub const PARTIAL_NAMES: &[&str] = &["model-agent.sh.j2"];

const EMBEDDED: &[(&str, &str)] = &[
    (
        "namespace.yaml.j2",
        include_str!("../../templates/namespace.yaml.j2"),
    ),
    (
        "serviceaccount.yaml.j2",
        include_str!("../../templates/serviceaccount.yaml.j2"),
    ),
    (
        "ec2nodeclass.yaml.j2",
        include_str!("../../templates/ec2nodeclass.yaml.j2"),
    ),
    (
        "nodepool.yaml.j2",
        include_str!("../../templates/nodepool.yaml.j2"),
    ),
    (
        "model-agent.yaml.j2",
        include_str!("../../templates/model-agent.yaml.j2"),
    ),
    (
        "volumes.yaml.j2",
        include_str!("../../templates/volumes.yaml.j2"),
    ),
    (
        "deployment.yaml.j2",
        include_str!("../../templates/deployment.yaml.j2"),
    ),
    (
        "service.yaml.j2",
        include_str!("../../templates/service.yaml.j2"),
    ),
    (
        "ingress.yaml.j2",
        include_str!("../../templates/ingress.yaml.j2"),
    ),
    (
        "networkpolicy.yaml.j2",
        include_str!("../../templates/networkpolicy.yaml.j2"),
    ),
    (
        "model-agent.sh.j2",
        include_str!("../../templates/model-agent.sh.j2"),
    ),
];

/// One Kubernetes object and the template it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub template: String,
    pub object: Value,
}

/// A template that could not be read, rendered, or did not render Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}`{}: {message}", line_suffix(*.line))]
pub struct TemplateError {
    /// The template file name (or the override directory, when it cannot be read).
    pub template: String,
    /// The line in the template, when the error points at one.
    pub line: Option<usize>,
    pub message: String,
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|line| format!(" line {line}")).unwrap_or_default()
}

impl TemplateError {
    fn new(template: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            line: None,
            message: message.into(),
        }
    }
}

/// The template sources: the embedded templates, with the overrides of platform.yaml's
/// `templates_dir` in their place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(Vec<(&'static str, String)>);

impl Sources {
    /// The embedded templates only.
    pub fn embedded() -> Sources {
        Sources(
            EMBEDDED
                .iter()
                .map(|&(name, source)| (name, source.to_string()))
                .collect(),
        )
    }
}

/// Renders every template against `context` and returns the Kubernetes objects.
pub fn render(context: &Value, sources: &Sources) -> Result<Vec<Rendered>, TemplateError> {
    let environment = environment(sources.0.clone())?;
    let context = minijinja::Value::from_serialize(context);
    let mut rendered = Vec::new();
    // (kind, namespace, name) -> the template that rendered it first
    let mut seen: BTreeMap<(String, String, String), &str> = BTreeMap::new();
    for &name in TEMPLATE_NAMES {
        let template = environment
            .get_template(name)
            .map_err(|error| template_error(name, &error))?;
        let text = template
            .render(&context)
            .map_err(|error| template_error(name, &error))?;
        for (index, object) in documents(name, &text)?.into_iter().enumerate() {
            let identity = identity(name, index + 1, &object)?;
            if let Some(first) = seen.get(&identity) {
                let (kind, namespace, object_name) = &identity;
                return Err(TemplateError::new(
                    name,
                    format!(
                        "renders {kind} `{}` a second time (first rendered by `{first}`)",
                        qualified(namespace, object_name)
                    ),
                ));
            }
            seen.insert(identity, name);
            rendered.push(Rendered {
                template: name.to_string(),
                object,
            });
        }
    }
    Ok(rendered)
}

/// Renders one partial on its own against `context`: the exact text a template that
/// includes it (`{% set text %}{% include "NAME" %}{% endset %}`) gets, e.g. the model
/// agent's script that goes into its ConfigMap.
pub fn render_partial(
    name: &str,
    context: &Value,
    sources: &Sources,
) -> Result<String, TemplateError> {
    if !PARTIAL_NAMES.contains(&name) {
        return Err(TemplateError::new(name, "not a partial template"));
    }
    let environment = environment(sources.0.clone())?;
    let context = minijinja::Value::from_serialize(context);
    environment
        .get_template(name)
        .and_then(|template| template.render(&context))
        .map_err(|error| template_error(name, &error))
}

fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// The embedded templates, with the files of the override directory `dir` (which must
/// exist) in their place.
pub fn load(dir: Option<&Path>) -> Result<Sources, TemplateError> {
    let mut sources = Sources::embedded();
    let Some(dir) = dir else {
        return Ok(sources);
    };
    let unreadable = |error: std::io::Error| {
        TemplateError::new(
            dir.display().to_string(),
            format!("cannot read the templates directory ({error})"),
        )
    };
    let mut overrides = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".j2") {
            overrides.push((file_name, entry.path()));
        }
    }
    overrides.sort();
    for (file_name, path) in overrides {
        let Some(slot) = sources.0.iter_mut().find(|(name, _)| *name == file_name) else {
            let known: Vec<String> = TEMPLATE_NAMES
                .iter()
                .chain(PARTIAL_NAMES)
                .map(|name| format!("`{name}`"))
                .collect();
            return Err(TemplateError::new(
                path.display().to_string(),
                format!(
                    "not a template comfyplat knows; an override must be named after the \
                     template it replaces: {}",
                    known.join(", ")
                ),
            ));
        };
        slot.1 = std::fs::read_to_string(&path).map_err(|error| {
            TemplateError::new(
                path.display().to_string(),
                format!("cannot read the override ({error})"),
            )
        })?;
    }
    Ok(sources)
}

fn environment(
    sources: Vec<(&'static str, String)>,
) -> Result<Environment<'static>, TemplateError> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_auto_escape_callback(|_| AutoEscape::None);
    environment.set_trim_blocks(true);
    environment.set_lstrip_blocks(true);
    // minijinja's tojson writes an undefined value as `null`; strict means an error.
    environment.add_filter("tojson", strict_tojson);
    environment.add_filter("shell_quote", shell_quote);
    environment.add_filter("sha256", sha256_hex);
    for (name, source) in sources {
        environment
            .add_template_owned(name, source)
            .map_err(|error| template_error(name, &error))?;
    }
    Ok(environment)
}

fn defined(value: &minijinja::Value) -> Result<(), minijinja::Error> {
    if value.is_undefined() {
        Err(minijinja::Error::from(minijinja::ErrorKind::UndefinedError))
    } else {
        Ok(())
    }
}

fn strict_tojson(
    value: &minijinja::Value,
    indent: Option<minijinja::Value>,
    arguments: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    defined(value)?;
    minijinja::filters::tojson(value, indent, arguments)
}

/// The SHA-256 of a text, in hex (a pod annotation that changes with a script).
fn sha256_hex(value: &minijinja::Value) -> Result<String, minijinja::Error> {
    use sha2::Digest;
    defined(value)?;
    let text = match value.as_str() {
        Some(text) => text.to_string(),
        None => value.to_string(),
    };
    Ok(sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Quotes a value for a POSIX shell: `it's` becomes `'it'\''s'`.
fn shell_quote(value: &minijinja::Value) -> Result<String, minijinja::Error> {
    defined(value)?;
    let text = match value.as_str() {
        Some(text) => text.to_string(),
        None => value.to_string(),
    };
    Ok(format!("'{}'", text.replace('\'', r"'\''")))
}

fn template_error(name: &str, error: &minijinja::Error) -> TemplateError {
    // An error inside an included template comes wrapped in the including one's: report
    // the innermost, which names the file and line that failed.
    let mut innermost = error;
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        if let Some(inner) = inner.downcast_ref::<minijinja::Error>() {
            innermost = inner;
        }
        cause = inner.source();
    }
    let error = innermost;
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    // Quote the template line, which shows what was undefined or misspelt.
    if let (Some(source), Some(line)) = (error.template_source(), error.line())
        && let Some(text) = source.lines().nth(line.saturating_sub(1))
        && !text.trim().is_empty()
    {
        message.push_str(&format!(" in `{}`", text.trim()));
    }
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        message.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    TemplateError {
        template: error.name().unwrap_or(name).to_string(),
        line: error.line(),
        message,
    }
}

/// Parses the rendered text into its YAML documents, each a Kubernetes object.
fn documents(template: &str, text: &str) -> Result<Vec<Value>, TemplateError> {
    let options = serde_saphyr::options! { with_snippet: false };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|error| {
            let at = error
                .location()
                .map(|location| {
                    let line = usize::try_from(location.line()).unwrap_or(usize::MAX);
                    let excerpt = text
                        .lines()
                        .nth(line.saturating_sub(1))
                        .map(|excerpt| format!(" (`{}`)", excerpt.trim()))
                        .unwrap_or_default();
                    format!(" at rendered line {line}{excerpt}")
                })
                .unwrap_or_default();
            TemplateError::new(
                template,
                format!("the rendered output is not valid YAML{at}: {error}"),
            )
        })?;
    Ok(documents)
}

/// Checks that a document is a Kubernetes object and returns (kind, namespace, name).
fn identity(
    template: &str,
    index: usize,
    object: &Value,
) -> Result<(String, String, String), TemplateError> {
    let invalid = |what: String| {
        TemplateError::new(
            template,
            format!("rendered document {index} is not a Kubernetes object: {what}"),
        )
    };
    if !object.is_object() {
        return Err(invalid("it is not a mapping".to_string()));
    }
    let text = |pointer: &str, field: &str| match object.pointer(pointer) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(_) => Err(invalid(format!("`{field}` is not a non-empty string"))),
        None => Err(invalid(format!("`{field}` is missing"))),
    };
    text("/apiVersion", "apiVersion")?;
    let kind = text("/kind", "kind")?;
    let name = text("/metadata/name", "metadata.name")?;
    let namespace = match object.pointer("/metadata/namespace") {
        None => String::new(),
        Some(_) => text("/metadata/namespace", "metadata.namespace")?,
    };
    if let Some(path) = first_null(object, String::new()) {
        return Err(TemplateError::new(
            template,
            format!(
                "{kind} `{}`: `{path}` is null; leave the field out instead",
                qualified(&namespace, &name)
            ),
        ));
    }
    Ok((kind, namespace, name))
}

/// The path of the first `null` in a value, like `spec.containers[0].resources`.
fn first_null(value: &Value, path: String) -> Option<String> {
    match value {
        Value::Null => Some(path),
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            first_null(value, path)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, value)| first_null(value, format!("{path}[{index}]"))),
        _ => None,
    }
}
