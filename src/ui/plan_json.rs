//! `plan --json`: the plan in a documented, versioned format for programs (CI checks,
//! policy engines), like `terraform show -json`. The JSON Schema is
//! `schemas/plan.schema.json` in the repository; tests validate real plans against it.
//!
//! Format `1.0`:
//! - `resource_changes`: one entry per change, in the order they may run: `address`,
//!   `kind` (the kind's name, e.g. `s3_bucket`), `identity` (what the cloud knows it by),
//!   `previous_identity` (a replacement's old one), `actions` (`["create"]`, `["update"]`,
//!   `["delete", "create"]` for a replacement, `["delete"]`, `["adopt"]` (recorded in state,
//!   no API change), `["forget"]` (removed from state, already gone), `["keep"]` (holds
//!   data)), `reasons`, `before` and `after` (the managed fields as flat `path: value`
//!   maps: live and wanted; `null` where there is none), `after_unknown` (paths known only
//!   after apply, left out of `after`), `before_sensitive` / `after_sensitive` (paths whose
//!   values are secrets, left out of `before` / `after`), `replace_paths` (the paths that
//!   force the replacement), `irreversible_paths`, `in_progress` (an earlier apply started
//!   it), `after_changes` (the addresses whose changes come first);
//! - `resource_drift`: what changed outside comfyplat since the last apply, apart from the
//!   intended changes (`before` = last applied, `after` = live, `gone`);
//! - `blockers`, `notes`, `summary`, `has_changes`.
//!
//! Minor versions add fields; a major version changes or removes them.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::{FieldChange, Fields, Identity, deferred};
use crate::planner::{Action, Change, Drift, Mode, Plan, Summary};

pub const FORMAT_VERSION: &str = "1.0";

#[derive(Serialize)]
struct PlanJson<'a> {
    format_version: &'static str,
    comfyplat_version: &'static str,
    platform: &'a str,
    account: &'a str,
    region: &'a str,
    mode: Mode,
    delete_data: bool,
    has_changes: bool,
    summary: Summary,
    resource_changes: Vec<Value>,
    resource_drift: Vec<Value>,
    blockers: Vec<Value>,
    notes: &'a [String],
}

/// The plan as format `1.0` JSON.
pub fn render_plan_json(plan: &Plan) -> Value {
    let json = PlanJson {
        format_version: FORMAT_VERSION,
        comfyplat_version: env!("CARGO_PKG_VERSION"),
        platform: &plan.platform,
        account: &plan.account,
        region: &plan.region,
        mode: plan.mode,
        delete_data: plan.delete_data,
        has_changes: plan.has_changes(),
        summary: plan.summary(),
        resource_changes: plan.changes.iter().map(change).collect(),
        resource_drift: plan.drift.iter().map(drift).collect(),
        blockers: plan
            .blockers
            .iter()
            .map(|b| json!({"address": b.address, "message": b.message, "hint": b.hint}))
            .collect(),
        notes: &plan.notes,
    };
    serde_json::to_value(json).unwrap_or(Value::Null)
}

fn actions(action: Action) -> &'static [&'static str] {
    match action {
        Action::Create => &["create"],
        Action::Update => &["update"],
        Action::Replace => &["delete", "create"],
        Action::Delete => &["delete"],
        Action::Adopt => &["adopt"],
        Action::Forget => &["forget"],
        Action::Keep => &["keep"],
    }
}

/// An identity's own fields, without the kind tag.
fn identity(identity: &Identity) -> Value {
    let mut value = serde_json::to_value(identity).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("kind");
    }
    value
}

/// Values split into what can be shown, and the paths of unknown and sensitive values.
struct Values {
    shown: Map<String, Value>,
    unknown: Map<String, Value>,
    sensitive: Map<String, Value>,
}

fn values(fields: &Fields) -> Values {
    let mut values = Values {
        shown: Map::new(),
        unknown: Map::new(),
        sensitive: Map::new(),
    };
    for (path, value) in fields {
        let mut secrets = Vec::new();
        deferred::secrets_in(value, &mut secrets);
        if !secrets.is_empty() {
            values.sensitive.insert(path.clone(), Value::Bool(true));
        } else if deferred::contains_placeholder(value) {
            values.unknown.insert(path.clone(), Value::Bool(true));
        } else {
            values.shown.insert(path.clone(), value.clone());
        }
    }
    values
}

/// The live fields: the wanted ones with the changed fields' live values in their place.
fn before(after: &Fields, changes: &[FieldChange]) -> Fields {
    let mut before = after.clone();
    for change in changes {
        match &change.before {
            Some(value) => before.insert(change.path.clone(), value.clone()),
            None => before.remove(&change.path),
        };
    }
    before
}

fn change(change: &Change) -> Value {
    let wanted = change.resource.as_ref().map(|r| &r.fields);
    let exists_before = match change.action {
        Action::Create => false,
        // A renamed resource: the old one's fields are not compared.
        Action::Replace => change.previous.as_ref() == Some(&change.identity),
        _ => true,
    };
    let (before, before_sensitive) = match (wanted, exists_before) {
        (Some(wanted), true) => {
            let values = values(&before(wanted, &change.fields));
            (Value::Object(values.shown), values.sensitive)
        }
        _ => (Value::Null, Map::new()),
    };
    let (after, after_unknown, after_sensitive) = match wanted {
        Some(wanted) if change.action.is_upsert() => {
            let values = values(wanted);
            (
                Value::Object(values.shown),
                values.unknown,
                values.sensitive,
            )
        }
        _ => (Value::Null, Map::new(), Map::new()),
    };
    let paths = |keep: fn(&FieldChange) -> bool| -> Vec<&str> {
        change
            .fields
            .iter()
            .filter(|f| keep(f))
            .map(|f| f.path.as_str())
            .collect()
    };
    json!({
        "address": change.address,
        "kind": change.identity.kind().name(),
        "identity": identity(&change.identity),
        "previous_identity": change.previous.as_ref().map(identity),
        "actions": actions(change.action),
        "reasons": change.reasons,
        "before": before,
        "after": after,
        "after_unknown": after_unknown,
        "before_sensitive": before_sensitive,
        "after_sensitive": after_sensitive,
        "replace_paths": paths(|f| f.forces_replacement),
        "irreversible_paths": paths(|f| f.irreversible),
        "in_progress": change.pending.is_some(),
        "after_changes": change.after,
    })
}

fn drift(drift: &Drift) -> Value {
    let side = |pick: fn(&FieldChange) -> &Option<Value>| -> Map<String, Value> {
        drift
            .fields
            .iter()
            .filter_map(|f| Some((f.path.clone(), pick(f).clone()?)))
            .filter(|(_, v)| {
                let mut secrets = Vec::new();
                deferred::secrets_in(v, &mut secrets);
                secrets.is_empty()
            })
            .collect()
    };
    json!({
        "address": drift.address,
        "kind": drift.identity.kind().name(),
        "identity": identity(&drift.identity),
        "gone": drift.gone,
        "before": side(|f| &f.before),
        "after": side(|f| &f.after),
    })
}
