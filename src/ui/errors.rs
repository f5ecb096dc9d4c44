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

use std::error::Error;

use super::Style;
use crate::adapters::ApiError;
use crate::config::ConfigError;
use crate::state::StateError;
use crate::state::lock::LockError;

/// An error and its causes on one line, `: `-separated (for progress lines and reports).
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The full rendering of an error for stderr.
pub fn render_error(error: &anyhow::Error, style: Style) -> String {
    let mut out = format!("{} {}", style.red(&style.bold("error:")), error);
    let causes: Vec<String> = error
        .chain()
        .skip(1)
        .map(|cause| cause.to_string())
        .collect();
    if !causes.is_empty() {
        out.push_str("\n\nCaused by:");
        for cause in causes {
            for (index, line) in cause.lines().enumerate() {
                out.push_str(if index == 0 { "\n  " } else { "\n    " });
                out.push_str(line);
            }
        }
    }
    if let Some(hint) = hint_for(error) {
        out.push_str(&format!("\n\n{} {hint}", style.cyan(&style.bold("hint:"))));
    }
    out
}

/// The first hint any error in the chain offers.
fn hint_for(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<ConfigError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<ApiError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<StateError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<LockError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<crate::commands::CommandError>() {
            return e.hint();
        }
        None
    })
}
