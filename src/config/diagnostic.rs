//! Located problems in `platform.yaml`: `file:line:column`, what is wrong, a hint, and the
//! offending source line with a caret under the column.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem at one place in the platform file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            line: line.max(1),
            column: column.max(1),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// `platform.yaml` could not be read or is not valid; nothing was sent to any API.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", Invalid { path, source_text, diagnostics })]
    Invalid {
        path: PathBuf,
        source_text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { path, .. } => Some(format!(
                "create `{}` from the commented platform.yaml in the comfyplat repository, or name another file with `-f`",
                path.display()
            )),
            // Each diagnostic carries its own hint, printed inline.
            ConfigError::Invalid { .. } => None,
        }
    }

    pub fn invalid(path: &Path, source_text: &str, diagnostics: Vec<Diagnostic>) -> Self {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            source_text: source_text.to_string(),
            diagnostics,
        }
    }

    /// The diagnostics of an invalid file (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid { diagnostics, .. } => diagnostics,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// Renders a list of diagnostics, each as `file:line:column: message`, the source line with
/// a caret, and `hint:` when there is one.
struct Invalid<'a> {
    path: &'a Path,
    source_text: &'a str,
    diagnostics: &'a [Diagnostic],
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.diagnostics.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                diagnostic.line,
                diagnostic.column,
                diagnostic.message
            )?;
            if let Some(line) = self.source_text.lines().nth(diagnostic.line - 1) {
                // Control characters (a NUL from `-f /dev/zero`) are shown as `·`.
                let shown: String = line
                    .chars()
                    .take(160)
                    .map(|c| if c.is_control() && c != '\t' { '·' } else { c })
                    .collect();
                let gutter = diagnostic.line.to_string().len();
                let caret_at = (diagnostic.column - 1).min(shown.chars().count());
                write!(
                    f,
                    "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:caret_at$}^",
                    "", diagnostic.line, shown, "", ""
                )?;
            }
            if let Some(hint) = &diagnostic.hint {
                write!(f, "\n  hint: {hint}")?;
            }
        }
        Ok(())
    }
}

/// Line and column (1-based, in characters) of a byte offset in `text`.
pub fn position_of_byte(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_plural_for_a_singular_typo() {
        let candidates = ["instance_types", "capacity", "limits"];
        assert_eq!(
            did_you_mean("instance_type", candidates),
            Some("instance_types")
        );
        assert_eq!(did_you_mean("zzz", candidates), None);
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a: 1\nbé: 2\n";
        assert_eq!(position_of_byte(text, 0), (1, 1));
        assert_eq!(position_of_byte(text, 5), (2, 1));
        assert_eq!(position_of_byte(text, 9), (2, 4));
        assert_eq!(position_of_byte(text, 1000), (3, 1));
    }
}
