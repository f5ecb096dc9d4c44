//! From bytes to the typed schema: size and encoding limits, a budgeted YAML parse (alias
//! bombs and deep nesting are refused), and parser errors rewritten into [`Diagnostic`]s with
//! "did you mean" hints for misspelt keys.

use std::path::Path;

use serde_saphyr::{Budget, Options};

use super::diagnostic::{ConfigError, Diagnostic, did_you_mean, position_of_byte};
use super::schema::PlatformFile;

/// Platform files are small; anything bigger is a mistake (or an attack).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

pub fn parse(path: &Path, bytes: &[u8]) -> Result<(String, PlatformFile), ConfigError> {
    let fail =
        |text: &str, diagnostic: Diagnostic| ConfigError::invalid(path, text, vec![diagnostic]);

    if bytes.len() > MAX_FILE_BYTES {
        let text = String::from_utf8_lossy(&bytes[..MAX_FILE_BYTES]).into_owned();
        let (line, column) = position_of_byte(&text, text.len());
        return Err(fail(
            &text,
            Diagnostic::new(
                line,
                column,
                format!(
                    "the file is {} bytes; a platform file may be at most {} bytes (1 MiB)",
                    bytes.len(),
                    MAX_FILE_BYTES
                ),
            )
            .with_hint(
                "is this the right file? platform.yaml describes one platform in a few dozen lines",
            ),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(error) => {
            let valid = String::from_utf8_lossy(&bytes[..error.valid_up_to()]).into_owned();
            let (line, column) = position_of_byte(&valid, valid.len());
            return Err(fail(
                &valid,
                Diagnostic::new(line, column, "the file is not valid UTF-8")
                    .with_hint("save the file as UTF-8 text"),
            ));
        }
    };
    let has_content = text.lines().any(|line| {
        !line.trim().is_empty() && !line.trim_start().starts_with('#') && line.trim() != "---"
    });
    if !has_content {
        return Err(fail(
            &text,
            Diagnostic::new(1, 1, "the file is empty").with_hint(
                "start from the commented platform.yaml in the comfyplat repository; it needs at least `version`, `name`, `region`, `cluster.name` and `karpenter.node_role`",
            ),
        ));
    }

    // First pass without a schema: the budget stops alias bombs and absurd nesting before any
    // value is expanded into memory.
    if let Err(error) =
        serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(&text, options())
    {
        let mut diagnostic = to_diagnostic(&error);
        if diagnostic.hint.is_none() {
            diagnostic = diagnostic.with_hint(
                "this is not valid YAML here: check the indentation (spaces, not tabs) and quote values that contain `: `, ` #` or start with `[`, `{`, `*`, `&`, `!`",
            );
        }
        return Err(fail(&text, diagnostic));
    }
    match serde_saphyr::from_str_with_options::<PlatformFile>(&text, options()) {
        Ok(file) => Ok((text, file)),
        Err(error) => Err(fail(&text, to_diagnostic(&error))),
    }
}

fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_aliases = 64;
    budget.max_anchors = 64;
    budget.max_depth = 32;
    budget.max_nodes = 20_000;
    budget.max_events = 100_000;
    budget.max_documents = 1;
    let mut options = Options::default();
    options.budget = Some(budget);
    options
}

/// Rewrites a parser error into our wording, keeping its location.
fn to_diagnostic(error: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = error
        .location()
        .map(|location| (location.line() as usize, location.column() as usize))
        .unwrap_or((1, 1));
    let raw = bare_message(&error.without_snippet().to_string());
    let mut diagnostic = Diagnostic::new(line, column, friendlier(&raw));
    if let Some(hint) = hint_for(&raw) {
        diagnostic = diagnostic.with_hint(hint);
    }
    diagnostic
}

/// Strips the parser's own `error: line N column M:` prefix and any trailing location.
fn bare_message(rendered: &str) -> String {
    let first_line = rendered.lines().next().unwrap_or(rendered).trim();
    let without_prefix = first_line
        .strip_prefix("error: line ")
        .and_then(|rest| rest.split_once(": ").map(|(_, message)| message))
        .unwrap_or(first_line);
    match without_prefix.find(" at line ") {
        Some(index) => without_prefix[..index].to_string(),
        None => without_prefix.to_string(),
    }
}

fn friendlier(message: &str) -> String {
    if let Some(breach) = message.strip_prefix("budget breached: ") {
        let what = breach.split([' ', '{']).next().unwrap_or_default();
        return match what {
            "Documents" => "the file holds more than one YAML document".to_string(),
            "Aliases" | "Anchors" | "Nodes" | "Events" => {
                "the file expands to too many values (more than the 20000 a platform file may have); is it an alias bomb?".to_string()
            }
            "Depth" => "the file is nested more than 32 levels deep".to_string(),
            _ => format!("the file is too large or complex to read ({breach})"),
        };
    }
    let replaced = [
        ("invalid u32", "expected a whole number"),
        ("invalid i64", "expected a whole number"),
        ("invalid bool", "expected `true` or `false`"),
        (
            "expected string scalar",
            "expected a single text value here",
        ),
        (
            "expected mapping start",
            "expected a mapping (`key: value` lines) here",
        ),
        ("unexpected end of input", "the file ends too early"),
    ]
    .iter()
    .fold(message.to_string(), |text, (from, to)| {
        if text.starts_with(from) {
            text.replacen(from, to, 1)
        } else {
            text
        }
    });
    match replaced.split_once(", set DuplicateKeyPolicy") {
        Some((head, _)) => head.to_string(),
        None => replaced,
    }
}

fn hint_for(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`')?;
        let expected = expected.trim_start_matches(", ");
        let list = expected
            .strip_prefix("expected one of ")
            .or_else(|| expected.strip_prefix("expected "))
            .unwrap_or("");
        let candidates: Vec<&str> = list
            .split(", ")
            .flat_map(|part| part.split(" or "))
            .map(|part| part.trim().trim_matches('`'))
            .filter(|part| !part.is_empty())
            .collect();
        return Some(match did_you_mean(field, candidates.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None if candidates.is_empty() => "remove this key".to_string(),
            None => format!(
                "the keys allowed here are: {}",
                candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        return Some(match field {
            "version" => "add `version: 1` at the top of the file".to_string(),
            "name" => "add the name, e.g. `name: studio` (the platform name is used in tags and derived names)".to_string(),
            "region" => "add the AWS region, e.g. `region: us-west-2`".to_string(),
            "cluster" => "add `cluster:` with the `name` of your existing EKS cluster".to_string(),
            "karpenter" => "add `karpenter:` with the `node_role` Karpenter gives its nodes".to_string(),
            "node_role" => "name the IAM role of the Karpenter nodes, e.g. `node_role: KarpenterNodeRole-comfyui`".to_string(),
            other => format!("add `{other}:`; see the platform.yaml reference in the README"),
        });
    }
    if message.starts_with("budget breached: Documents") {
        return Some(
            "a platform file holds one YAML document; remove the extra `---` sections".to_string(),
        );
    }
    if message.starts_with("budget") {
        return Some(
            "write the values out instead of repeating them through YAML aliases (`*name`)"
                .to_string(),
        );
    }
    if message.starts_with("duplicate mapping key") {
        return Some("each key may appear once; remove one of them".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_parser_prefix() {
        assert_eq!(
            bare_message(
                "error: line 6 column 3: unknown field `nmae`, expected one of name\n --> x"
            ),
            "unknown field `nmae`, expected one of name"
        );
        assert_eq!(
            bare_message("unexpected end of input at line 1, column 1"),
            "unexpected end of input"
        );
    }

    #[test]
    fn unknown_field_hint_suggests_the_closest_key() {
        let hint =
            hint_for("unknown field `regoin`, expected one of version, name, region, account");
        assert_eq!(hint.as_deref(), Some("did you mean `region`?"));
    }
}
