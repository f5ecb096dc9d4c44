//! The platform's outputs and the report that ends a destroy.

use std::fmt::Write;

use super::Style;
use crate::model::report::{DestroyReport, Finding, Outputs};

/// `name = value` lines, as `comfyplat output` and the end of an apply show them: `url`
/// first, then every output in the kinds' order.
pub fn render_outputs(outputs: &Outputs, style: Style) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: &str| {
        let _ = writeln!(out, "{} = {value}", style.bold(&format!("{name:<30}")));
    };
    if let Some(url) = &outputs.url {
        line("url", url);
    }
    for output in &outputs.values {
        let value = match &output.value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Array(items) if items.is_empty() => continue,
            other => other.to_string(),
        };
        line(&output.name, &value);
    }
    out
}

/// What a destroy left: nothing, ideally.
pub fn render_destroy_report(report: &DestroyReport, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n{}", style.bold("Destroy report"));
    let mut section = |title: &str, findings: &[Finding], none: &str| {
        if findings.is_empty() {
            let _ = writeln!(out, "  {title}: {}", style.green(none));
            return;
        }
        let _ = writeln!(
            out,
            "  {title}: {}",
            style.yellow(&findings.len().to_string())
        );
        for finding in findings {
            let _ = writeln!(out, "    - {} {}", finding.what, finding.id);
            let _ = writeln!(out, "      {}", style.dim(&finding.advice));
        }
    };
    section(
        "owned by comfyplat and still there",
        &report.still_owned,
        "none",
    );
    section("kept because they hold data", &report.kept, "none");
    section(
        "left by the cluster's controllers (billable)",
        &report.left_by_controllers,
        "none",
    );
    for reason in &report.unchecked {
        let _ = writeln!(out, "  {} {reason}", style.yellow("not checked:"));
    }
    out
}
