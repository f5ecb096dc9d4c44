//! Error rendering at the edge, cargo-style:
//!
//! ```text
//! error: failed to create S3 bucket `comfyui-models-…`
//!
//! Caused by:
//!   AccessDenied: Access Denied
//!
//! hint: the credentials lack a permission this needs; …
//! ```
//!
//! The causes end with the API's own words ([`crate::adapters::Cause`]); the client's typed
//! error below them is shown with `-v`.

use super::Style;

/// The full rendering of an error for stderr, with the hint the caller found for it.
pub fn render_error(
    error: &anyhow::Error,
    hint: Option<String>,
    style: Style,
    verbose: bool,
) -> String {
    let mut out = format!("{} {}", style.red(&style.bold("error:")), error);
    let mut causes: Vec<String> = Vec::new();
    let mut below_api = false;
    for cause in error.chain().skip(1) {
        if below_api && !verbose {
            break;
        }
        let text = cause.to_string();
        if !text.is_empty() && !causes.contains(&text) {
            causes.push(text);
        }
        below_api |= cause.is::<crate::adapters::Cause>();
    }
    if !causes.is_empty() {
        out.push_str("\n\nCaused by:");
        for cause in causes {
            for (index, line) in cause.lines().enumerate() {
                out.push_str(if index == 0 { "\n  " } else { "\n    " });
                out.push_str(line);
            }
        }
    }
    if let Some(hint) = hint {
        out.push_str(&format!("\n\n{} {hint}", style.cyan(&style.bold("hint:"))));
    }
    out
}
