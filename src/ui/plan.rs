//! Terraform-style rendering of a plan and of an apply's outcome. Pure functions of their
//! input, tested on exact text.

use std::fmt::Write;

use serde_json::Value;

use super::Style;
use crate::executor::{ChangeResult, Outcome};
use crate::model::{FieldChange, deferred};
use crate::planner::{Action, Change, Mode, Plan, Reason};

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace => "-/+",
        Action::Delete => "-",
        Action::Adopt => "=",
        Action::Forget => "-",
        Action::Keep => "!",
    }
}

fn painted_symbol(action: Action, style: Style) -> String {
    let text = format!("{:>3}", symbol(action));
    match action {
        Action::Create | Action::Adopt => style.green(&text),
        Action::Update => style.yellow(&text),
        Action::Replace | Action::Delete | Action::Forget => style.red(&text),
        Action::Keep => style.cyan(&text),
    }
}

/// What a symbol means, in the plan's legend.
fn legend(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update in place",
        Action::Replace => "destroy and then create replacement",
        Action::Delete => "destroy",
        Action::Adopt => "record in state (no change)",
        Action::Forget => "remove from state (already gone)",
        Action::Keep => "keep (holds data)",
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::Replace => "must be replaced",
        Action::Delete => "will be destroyed",
        Action::Adopt => "will be recorded in state",
        Action::Forget => "will be removed from state",
        Action::Keep => "will be kept",
    }
}

pub fn reason_text(reason: &Reason, identity: &crate::model::Identity) -> String {
    match reason {
        Reason::NotInState => "not in state".to_string(),
        Reason::IncompleteCreate => {
            "an earlier apply was interrupted while creating it".to_string()
        }
        Reason::DeletedOutside => "it was deleted outside comfyplat".to_string(),
        Reason::FoundOwned => {
            "it exists with this platform's ownership tag but was missing from state".to_string()
        }
        Reason::ConfigChanged => "platform.yaml changed".to_string(),
        Reason::Drifted => "changed outside comfyplat; repairing".to_string(),
        Reason::IdentityChanged { before } => format!("its name or region changed from {before}"),
        Reason::CannotChangeInPlace { paths } => format!(
            "{} cannot be changed in place",
            paths
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Reason::ReplacedWith { address } => {
            format!("replaced together with {address}, which it stays bound to")
        }
        Reason::NotInConfig => "no longer in platform.yaml".to_string(),
        Reason::Destroying => String::new(),
        Reason::AlreadyGone => "it no longer exists".to_string(),
        Reason::HoldsData => {
            let data = identity.data().unwrap_or("data");
            format!("it holds {data}; pass --delete-data to delete it with its {data}")
        }
        Reason::InProgress => {
            "in progress: an earlier apply started it and did not see it finish (interrupted, or --no-wait); apply waits for it".to_string()
        }
        Reason::FailedEarlier => "it failed earlier; trying again".to_string(),
        Reason::LeftAsIs => {
            "a setting of the adopted cluster: comfyplat never undoes it".to_string()
        }
    }
}

/// The whole plan as text.
pub fn render_plan(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let what = match plan.mode {
        Mode::Apply => "plan",
        Mode::Destroy => "destroy plan",
    };
    let _ = writeln!(
        out,
        "comfyplat {what} for platform `{}` in account {}, {}",
        plan.platform, plan.account, plan.region
    );

    if !plan.drift.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            style.bold(
                "Objects changed outside comfyplat since the last apply (last applied -> live):"
            )
        );
        for drift in &plan.drift {
            let _ = writeln!(
                out,
                "\n  {}: {} {}",
                style.bold(&drift.address.to_string()),
                drift.identity.kind().noun(),
                drift.identity
            );
            if drift.gone {
                let _ = writeln!(out, "      {} deleted", style.red("-"));
            }
            for field in &drift.fields {
                render_field(&mut out, field, style);
            }
        }
    }

    if !plan.notes.is_empty() {
        let _ = writeln!(out);
        for note in &plan.notes {
            let _ = writeln!(out, "{} {note}", style.cyan("note:"));
        }
    }

    if !plan.has_changes() && !plan.changes.iter().any(|c| c.action == Action::Keep) {
        let _ = writeln!(out, "\nNo changes. The platform matches platform.yaml.");
        return out;
    }

    let legend: Vec<String> = Action::ALL
        .iter()
        .filter(|action| plan.changes.iter().any(|c| c.action == **action))
        .map(|action| format!("  {} {}", symbol(*action), legend(*action)))
        .collect();
    let _ = writeln!(
        out,
        "\nResource actions are indicated with the following symbols:\n{}",
        legend.join("\n")
    );
    let _ = writeln!(out, "\ncomfyplat will perform the following actions:");
    for change in &plan.changes {
        render_change(&mut out, change, style);
    }
    let summary = plan.summary();
    let mut line = format!(
        "\nPlan: {} to add, {} to change, {} to destroy.",
        summary.add, summary.change, summary.destroy
    );
    if summary.forget > 0 {
        let _ = write!(line, " {} to remove from state.", summary.forget);
    }
    if summary.keep > 0 {
        let _ = write!(line, " {} kept because it holds data.", summary.keep);
    }
    let _ = writeln!(out, "{}", style.bold(&line));
    out
}

fn render_change(out: &mut String, change: &Change, style: Style) {
    let reasons: Vec<String> = change
        .reasons
        .iter()
        .map(|reason| reason_text(reason, &change.identity))
        .filter(|r| !r.is_empty())
        .collect();
    let because = if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    };
    let _ = writeln!(
        out,
        "\n  {} {} {}{}",
        style.dim("#"),
        style.bold(&change.address.to_string()),
        verb(change.action),
        because
    );
    let _ = writeln!(
        out,
        "{} {} {}",
        painted_symbol(change.action, style),
        change.identity.kind().noun(),
        change.identity
    );
    for field in &change.fields {
        render_field(out, field, style);
    }
    for reason in &change.reasons {
        if let Reason::ReplacedWith { address } = reason {
            let _ = writeln!(
                out,
                "      {} bound to {address}, which is replaced{}",
                style.yellow("~"),
                style.red(" # forces replacement")
            );
        }
    }
}

fn render_field(out: &mut String, field: &FieldChange, style: Style) {
    let indent = "      ";
    match (&field.before, &field.after) {
        (None, Some(after)) => {
            let _ = writeln!(
                out,
                "{indent}{} {} = {}{}",
                style.green("+"),
                field.path,
                inline(after, indent),
                forces(field, style)
            );
        }
        (Some(before), None) => {
            let _ = writeln!(
                out,
                "{indent}{} {} = {}{}",
                style.red("-"),
                field.path,
                inline(before, indent),
                forces(field, style)
            );
        }
        (Some(before), Some(after))
            if text_lines(before).is_some() || text_lines(after).is_some() =>
        {
            let _ = writeln!(
                out,
                "{indent}{} {}:{}",
                style.yellow("~"),
                field.path,
                forces(field, style)
            );
            let lines = |value: &Value| match value.as_str() {
                Some(text) => text.lines().map(str::to_string).collect(),
                None => vec![inline(value, indent)],
            };
            render_diff(
                out,
                &line_diff(&lines(before), &lines(after)),
                indent,
                style,
                true,
            );
        }
        (Some(before), Some(after)) if is_document(before) && is_document(after) => {
            let _ = writeln!(
                out,
                "{indent}{} {}:{}",
                style.yellow("~"),
                field.path,
                forces(field, style)
            );
            render_diff(
                out,
                &line_diff(&pretty(before), &pretty(after)),
                indent,
                style,
                false,
            );
        }
        (Some(before), Some(after)) => {
            let _ = writeln!(
                out,
                "{indent}{} {}: {} -> {}{}{}",
                style.yellow("~"),
                field.path,
                inline(before, indent),
                inline(after, indent),
                if field.irreversible {
                    style.red("  # irreversible: it can never be changed back")
                } else {
                    String::new()
                },
                forces(field, style)
            );
        }
        (None, None) => {}
    }
}

/// The marker of a field whose change replaces the resource.
fn forces(field: &FieldChange, style: Style) -> String {
    if field.forces_replacement {
        style.red(" # forces replacement")
    } else {
        String::new()
    }
}

/// Lines of a diff; with `context`, unchanged runs are cut to 2 lines around each change (a
/// script of hundreds of lines shows what changed, not all of it).
fn render_diff(out: &mut String, lines: &[DiffLine], indent: &str, style: Style, context: bool) {
    const AROUND: usize = 2;
    let changed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| !matches!(line, DiffLine::Same(_)))
        .map(|(i, _)| i)
        .collect();
    let near = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= AROUND);
    let mut skipped = 0;
    for (i, line) in lines.iter().enumerate() {
        if context && matches!(line, DiffLine::Same(_)) && !near(i) {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            let _ = writeln!(
                out,
                "{indent}      {}",
                style.dim(&format!("({skipped} unchanged lines)"))
            );
            skipped = 0;
        }
        let _ = match line {
            DiffLine::Same(text) => writeln!(out, "{indent}      {text}"),
            DiffLine::Removed(text) => writeln!(out, "{indent}    {} {text}", style.red("-")),
            DiffLine::Added(text) => writeln!(out, "{indent}    {} {text}", style.green("+")),
        };
    }
    if skipped > 0 {
        let _ = writeln!(
            out,
            "{indent}      {}",
            style.dim(&format!("({skipped} unchanged lines)"))
        );
    }
}

/// The number of lines of a text of several lines (a script in a ConfigMap), which the plan
/// summarises instead of printing on one line.
fn text_lines(value: &Value) -> Option<usize> {
    let text = value.as_str()?;
    let lines = text.lines().count();
    (lines > 3).then_some(lines)
}

fn is_document(value: &Value) -> bool {
    value.is_object() || value.is_array()
}

fn pretty(value: &Value) -> Vec<String> {
    serde_json::to_string_pretty(&shown(value))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A value on one line, or a JSON document indented under the field; a text of several
/// lines as its size and digest.
fn inline(value: &Value, indent: &str) -> String {
    if is_document(value) {
        return pretty(value).join(&format!("\n{indent}    "));
    }
    if let (Some(lines), Some(text)) = (text_lines(value), value.as_str()) {
        use sha2::Digest;
        let digest: String = sha2::Sha256::digest(text.as_bytes())
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        return format!(
            "({lines} lines of text, {} bytes, sha256 {digest}…)",
            text.len()
        );
    }
    match shown(value) {
        Value::String(text) if text == "(known after apply)" || text == "(sensitive)" => text,
        other => other.to_string(),
    }
}

/// The value as the plan shows it: secrets as `(sensitive)`, values only known once
/// applied as `(known after apply)` (see `model::deferred`).
fn shown(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(deferred::display(text)),
        Value::Array(items) => Value::Array(items.iter().map(shown).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), shown(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

enum DiffLine {
    Same(String),
    Removed(String),
    Added(String),
}

/// A line diff by longest common subsequence (documents are small).
fn line_diff(before: &[String], after: &[String]) -> Vec<DiffLine> {
    let (n, m) = (before.len(), after.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if before[i] == after[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut lines = Vec::new();
    while i < n || j < m {
        if i < n && j < m && before[i] == after[j] {
            lines.push(DiffLine::Same(before[i].clone()));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(DiffLine::Removed(before[i].clone()));
            i += 1;
        } else {
            lines.push(DiffLine::Added(after[j].clone()));
            j += 1;
        }
    }
    lines
}

/// The summary after an apply or destroy.
pub fn render_outcome(outcome: &Outcome, style: Style) -> String {
    let mut out = String::new();
    let done = outcome.count(|r| matches!(r, ChangeResult::Done));
    let failed = outcome.count(|r| matches!(r, ChangeResult::Failed(_)));
    let skipped = outcome.count(|r| matches!(r, ChangeResult::Skipped { .. }));
    let kept = outcome.count(|r| matches!(r, ChangeResult::Kept));
    let not_started = outcome.count(|r| matches!(r, ChangeResult::NotStarted));
    for (address, _, result) in &outcome.results {
        match result {
            ChangeResult::Failed(error) => {
                let _ = writeln!(out, "{} {address}: {error}", style.red("failed:"));
            }
            ChangeResult::Skipped { because } => {
                let _ = writeln!(
                    out,
                    "{} {address}: waits for {because}, which did not complete",
                    style.yellow("skipped:")
                );
            }
            ChangeResult::Kept => {
                let _ = writeln!(
                    out,
                    "{} {address}: it holds data; run `comfyplat destroy --delete-data` to delete it with its data",
                    style.cyan("kept:")
                );
            }
            _ => {}
        }
    }
    let mut line = format!("{done} done");
    for (count, label) in [
        (failed, "failed"),
        (skipped, "skipped"),
        (kept, "kept"),
        (not_started, "not started"),
    ] {
        if count > 0 {
            let _ = write!(line, ", {count} {label}");
        }
    }
    let status = if outcome.succeeded() {
        style.green(&style.bold("Complete:"))
    } else if outcome.interrupted {
        style.yellow(&style.bold("Interrupted:"))
    } else {
        style.red(&style.bold("Incomplete:"))
    };
    let _ = writeln!(out, "{status} {line}.");
    if !outcome.succeeded() {
        let _ = writeln!(
            out,
            "State records everything that completed; run the same command again to finish."
        );
    }
    out
}

/// The blockers of a plan, each as `error:` with its `hint:`.
pub fn render_blockers(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    for blocker in &plan.blockers {
        let _ = writeln!(
            out,
            "{} {}",
            style.red(&style.bold("error:")),
            blocker.message
        );
        let _ = writeln!(
            out,
            "  {} {}",
            style.cyan(&style.bold("hint:")),
            blocker.hint
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(before: Option<&str>, after: Option<&str>) -> FieldChange {
        FieldChange {
            path: "data.agent.sh".to_string(),
            before: before.map(|t| Value::String(t.to_string())),
            after: after.map(|t| Value::String(t.to_string())),
            irreversible: false,
            forces_replacement: false,
        }
    }

    #[test]
    fn a_long_text_is_summarised_when_new_and_diffed_with_context_when_changed() {
        let old: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 20\n", "line twenty\n");
        let mut out = String::new();
        render_field(&mut out, &field(None, Some(&old)), Style::PLAIN);
        assert!(
            out.contains("+ data.agent.sh = (40 lines of text, 311 bytes, sha256 "),
            "{out}"
        );
        let mut out = String::new();
        render_field(&mut out, &field(Some(&old), Some(&new)), Style::PLAIN);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            vec![
                "      ~ data.agent.sh:",
                "            (17 unchanged lines)",
                "            line 18",
                "            line 19",
                "          - line 20",
                "          + line twenty",
                "            line 21",
                "            line 22",
                "            (18 unchanged lines)",
            ],
            "{out}"
        );
        // Short texts stay on one line.
        let mut out = String::new();
        render_field(&mut out, &field(Some("a"), Some("b")), Style::PLAIN);
        assert_eq!(out, "      ~ data.agent.sh: \"a\" -> \"b\"\n");
    }
}
