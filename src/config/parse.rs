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

    // `read_file` stops after one byte more than the limit: the real size is not known.
    if bytes.len() > MAX_FILE_BYTES {
        let text = String::from_utf8_lossy(&bytes[..MAX_FILE_BYTES]).into_owned();
        let (line, column) = position_of_byte(&text, text.len());
        return Err(fail(
            &text,
            Diagnostic::new(
                line,
                column,
                format!(
                    "the file is larger than {MAX_FILE_BYTES} bytes; a platform file may be at most {MAX_FILE_BYTES} bytes (1 MiB)"
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
        let mut diagnostic = to_diagnostic(&error, &text);
        if diagnostic.hint.is_none() {
            // Tabs are named only when the file has some.
            diagnostic = diagnostic.with_hint(if text.contains('\t') {
                "this is not valid YAML here: indent with spaces, not tabs, and quote values that contain `: `, ` #` or start with `[`, `{`, `*`, `&`, `!`"
            } else {
                "this is not valid YAML here: check the indentation, and quote values that contain `: `, ` #` or start with `[`, `{`, `*`, `&`, `!`"
            });
        }
        return Err(fail(&text, diagnostic));
    }
    match serde_saphyr::from_str_with_options::<PlatformFile>(&text, options()) {
        Ok(file) => Ok((text, file)),
        Err(error) => Err(fail(&text, to_diagnostic(&error, &text))),
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
fn to_diagnostic(error: &serde_saphyr::Error, text: &str) -> Diagnostic {
    let (line, column) = error
        .location()
        .map(|location| (location.line() as usize, location.column() as usize))
        .unwrap_or((1, 1));
    let raw = bare_message(&error.without_snippet().to_string());
    if let Some(key) = null_value_of(&raw, text, line, column) {
        return Diagnostic::new(line, column, format!("`{key}` needs a value")).with_hint(
            format!(
                "write the value after `{key}:` (or indented on the lines below it), or remove the line; an empty value is YAML's null"
            ),
        );
    }
    let mut diagnostic = Diagnostic::new(line, column, friendlier(&raw));
    if let Some(hint) = hint_for(&raw) {
        diagnostic = diagnostic.with_hint(hint);
    }
    diagnostic
}

/// The key whose value is empty (YAML's null) where the error points, when the error is
/// about that value: the parser points right after `key:` on a line with nothing else.
fn null_value_of(raw: &str, text: &str, line: usize, column: usize) -> Option<String> {
    let about_a_value = raw.contains("null")
        || raw.starts_with("expected ")
        || raw.starts_with("invalid type")
        || raw.starts_with("invalid ");
    if !about_a_value {
        return None;
    }
    let source = text.lines().nth(line.checked_sub(1)?)?;
    // The parser points at the `:` or just after it.
    let split = if source.chars().nth(column.saturating_sub(1)) == Some(':') {
        column
    } else {
        column.saturating_sub(1)
    };
    let before: String = source.chars().take(split).collect();
    let after: String = source.chars().skip(split).collect();
    let after = after.trim();
    let empty = after.is_empty()
        || after.starts_with('#')
        || matches!(after, "~" | "null" | "Null" | "NULL");
    let key = before.trim_end().strip_suffix(':')?;
    let key = key.trim_start().trim_start_matches("- ").trim();
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    (empty && !key.is_empty() && !key.contains(' ')).then(|| key.to_string())
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
    if message.starts_with("recursion limit exceeded") {
        return "the file is nested too deeply (a platform file may nest at most 32 levels)"
            .to_string();
    }
    if let Some(rest) = message.strip_prefix("non-finite float `") {
        let value = rest.split('`').next().unwrap_or_default();
        let what = if value.to_ascii_lowercase().contains("nan") {
            "YAML's not-a-number"
        } else {
            "YAML's infinity"
        };
        return format!("`{value}` is {what}, not a number comfyplat can use");
    }
    // Whole messages: the parser's wording ends in details that make no sense once replaced
    // (`invalid boolean` would become "expected `true` or `false`ean").
    for (prefix, wording) in [
        ("invalid bool", "expected `true` or `false`"),
        ("invalid u32", "expected a whole number"),
        ("invalid i64", "expected a whole number"),
    ] {
        if message.starts_with(prefix) {
            return wording.to_string();
        }
    }
    let replaced = [
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
    if message.starts_with("budget breached: Depth") || message.starts_with("recursion limit") {
        return Some(
            "platform.yaml needs only a few levels; look for an unclosed `[` or `{`, or indentation that keeps growing".to_string(),
        );
    }
    if let Some(rest) = message.strip_prefix("non-finite float `") {
        let value = rest.split('`').next().unwrap_or_default();
        return Some(format!(
            "give a whole number here; if you mean the text, quote it: `\"{value}\"`"
        ));
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
    fn booleans_are_worded_without_the_parsers_tail() {
        assert_eq!(friendlier("invalid boolean"), "expected `true` or `false`");
        assert_eq!(
            friendlier("invalid boolean (true or false expected)"),
            "expected `true` or `false`"
        );
        assert_eq!(friendlier("invalid u32"), "expected a whole number");
    }

    #[test]
    fn null_values_name_their_key() {
        let text = "name:\ntags:\n  team:   # nobody yet\n  - principal: ~\nx: 1\n";
        let raw = "cannot deserialize null into string; use Option<String>";
        assert_eq!(null_value_of(raw, text, 1, 6).as_deref(), Some("name"));
        assert_eq!(null_value_of(raw, text, 3, 8).as_deref(), Some("team"));
        assert_eq!(
            null_value_of(raw, text, 4, 15).as_deref(),
            Some("principal")
        );
        assert_eq!(null_value_of(raw, text, 5, 3), None);
        assert_eq!(
            null_value_of("duplicate mapping key: name", text, 1, 6),
            None
        );
    }

    fn parse_error(text: &str) -> Diagnostic {
        match parse(Path::new("p.yaml"), text.as_bytes()) {
            Err(error) => error.diagnostics()[0].clone(),
            Ok(_) => panic!("`{text}` parsed"),
        }
    }

    const HEAD: &str = "version: 1\nname: studio\nregion: us-west-2\ncluster:\n  name: c\nkarpenter:\n  node_role: r\n";

    #[test]
    fn null_where_a_text_is_needed_says_so_in_plain_words() {
        let diagnostic = parse_error(&format!("{HEAD}tags:\n  team:\n"));
        assert_eq!(diagnostic.message, "`team` needs a value");
        assert!(!diagnostic.message.contains("Option<"));
        let diagnostic = parse_error(&HEAD.replace("name: studio", "name:"));
        assert_eq!(diagnostic.message, "`name` needs a value");
    }

    #[test]
    fn versioning_maybe_is_worded_without_ean() {
        let diagnostic = parse_error(&format!(
            "{HEAD}storage:\n  models:\n    versioning: maybe\n"
        ));
        assert_eq!(diagnostic.message, "expected `true` or `false`");
    }

    #[test]
    fn infinity_where_a_number_is_expected_is_not_a_number() {
        for value in [".inf", ".nan", "-.inf"] {
            let diagnostic = parse_error(&format!("{HEAD}  max_gpus: {value}\n"));
            assert!(
                diagnostic
                    .message
                    .contains("not a number comfyplat can use"),
                "{value}: {diagnostic:?}"
            );
            let hint = diagnostic.hint.unwrap_or_default();
            assert!(!hint.contains("tabs"), "{value}: {hint}");
        }
    }

    #[test]
    fn a_deep_document_gets_its_own_message_and_no_tabs_hint() {
        // 40 closed levels breach the budget; 10,000 unclosed ones the parser's own limit.
        for (depth, close) in [(40, 40), (10_000, 0)] {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(close));
            let diagnostic = parse_error(&format!("{HEAD}tags: {nested}\n"));
            assert!(
                diagnostic.message.contains("nested"),
                "{depth}: {diagnostic:?}"
            );
            let hint = diagnostic.hint.unwrap_or_default();
            assert!(hint.contains("unclosed"), "{depth}: {hint}");
            assert!(
                !hint.contains("tabs") && !hint.contains("aliases"),
                "{depth}: {hint}"
            );
        }
    }

    #[test]
    fn the_tabs_hint_appears_only_when_there_are_tabs() {
        let diagnostic = parse_error(&HEAD.replace("name: studio", "name: [studio"));
        assert!(!diagnostic.hint.unwrap_or_default().contains("tabs"));
        let diagnostic = parse_error(&HEAD.replace("  name: c", "\tname: c"));
        assert!(
            diagnostic
                .hint
                .unwrap_or_default()
                .contains("spaces, not tabs")
        );
    }

    #[test]
    fn unknown_field_hint_suggests_the_closest_key() {
        let hint =
            hint_for("unknown field `regoin`, expected one of version, name, region, account");
        assert_eq!(hint.as_deref(), Some("did you mean `region`?"));
    }
}
