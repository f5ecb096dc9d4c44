//! `comfyplat output [--json]`: the platform's URLs and names, each contributed by the kind
//! of a resource in state (also printed after every apply); and the report that ends a
//! destroy, from every kind's discovery.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::session::KubeOptions;
use super::{Exit, Session};
use crate::adapters::{ApiError, Apis};
use crate::cli::{Global, OutputArgs};
use crate::executor::{ChangeResult, Outcome};
use crate::model::report::{DestroyReport, Finding, Outputs};
use crate::model::{Identity, Kind, Observation};
use crate::observe::OBSERVE_CONCURRENCY;
use crate::planner::{Action, Mode, Plan};
use crate::state::State;
use crate::ui::{Style, render_outputs};

pub async fn run(global: &Global, args: &OutputArgs, style: Style) -> anyhow::Result<Exit> {
    let session = Session::open(global)?;
    let state = session.load_state()?;
    // Read-only, and it must work while the cluster is being rebuilt: connect as destroy
    // does (no add-on resolution, no preflight, Kubernetes only if state has objects there).
    let connected = session
        .connect(&state, Mode::Destroy, KubeOptions::default())
        .await?;
    let outputs = gather(&connected.apis, &state).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outputs.to_json())?);
    } else if outputs.is_empty() {
        eprintln!(
            "Platform `{}` has no outputs: nothing is applied yet (`comfyplat apply`).",
            session.platform.name
        );
    } else {
        print!(
            "{}",
            render_outputs(&outputs, super::plan::stdout_style(style))
        );
    }
    Ok(0)
}

/// The outputs of what state records, kind by kind, with live reads where a kind needs them
/// (domain names the service assigned), read concurrently.
pub async fn gather(apis: &Apis, state: &State) -> Result<Outputs, ApiError> {
    let mut entries: Vec<_> = state.resources.iter().collect();
    entries.sort_by_key(|(address, entry)| {
        let kind = entry.identity.kind();
        (
            Kind::ALL.iter().position(|k| *k == kind),
            (*address).clone(),
        )
    });
    let values: Vec<Vec<crate::model::Output>> = stream::iter(entries)
        .map(|(address, entry)| async move {
            let live = if entry.identity.kind().outputs_need_live() {
                match apis.observe(&entry.identity).await? {
                    Observation::Present(live) => Some(live),
                    _ => None,
                }
            } else {
                None
            };
            Ok::<_, ApiError>(entry.identity.outputs(address, live.as_ref()))
        })
        .buffered(OBSERVE_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(Outputs::new(values.into_iter().flatten().collect()))
}

/// After a destroy: what comfyplat owned that is still there (each resource of the plan,
/// read again, and whatever every kind's discovery finds with the platform's tag or label),
/// what was kept for its data, and what the controllers made for what was deleted and left.
pub async fn destroy_report(
    apis: &Apis,
    plan: &Plan,
    outcome: &Outcome,
) -> Result<DestroyReport, ApiError> {
    let mut report = DestroyReport::default();
    let mut seen: BTreeSet<Identity> = BTreeSet::new();
    let finding = |identity: &Identity, advice: &str| Finding {
        what: identity.kind().noun().to_string(),
        id: identity.to_string(),
        advice: advice.to_string(),
    };
    // Everything the plan touched, read again (concurrently, as a plan observes).
    let present: Vec<(Action, Identity)> = stream::iter(
        plan.changes
            .iter()
            .filter(|c| !c.identity.kind().is_setting()),
    )
    .map(|change| async move {
        let observation = apis.observe(&change.identity).await?;
        Ok::<_, ApiError>(
            matches!(observation, Observation::Present(_))
                .then(|| (change.action, change.identity.clone())),
        )
    })
    .buffered(OBSERVE_CONCURRENCY)
    .try_filter_map(|found| async move { Ok(found) })
    .try_collect()
    .await?;
    for (action, identity) in present {
        if action == Action::Keep {
            let data = identity.data().unwrap_or("data");
            report.kept.push(finding(
                &identity,
                &format!("kept because it holds {data}; `comfyplat destroy --delete-data` deletes it with them"),
            ));
        } else {
            report.still_owned.push(finding(
                &identity,
                "comfyplat could not delete it (see the errors above); run `comfyplat destroy` again",
            ));
        }
        seen.insert(identity);
    }
    // The scans below are best-effort: the destroy itself is done; what could not be
    // checked is said, not turned into a failure.
    for kind in Kind::ALL {
        match apis.discover(*kind).await {
            Ok(Some(found)) => {
                for identity in found {
                    if seen.insert(identity.clone()) {
                        report.still_owned.push(finding(
                            &identity,
                            "it carries the platform's tag or label but is not in the plan (state lost?); run `comfyplat destroy` again, or delete it by hand",
                        ));
                    }
                }
            }
            Ok(None) => {}
            Err(error) => report.unchecked.push(crate::errors::chain(&error)),
        }
        let deleted: Vec<&Identity> = plan
            .changes
            .iter()
            .zip(&outcome.results)
            .filter(|(change, (_, _, result))| {
                change.identity.kind() == *kind
                    && change.action == Action::Delete
                    && *result == ChangeResult::Done
            })
            .map(|(change, _)| &change.identity)
            .collect();
        if deleted.is_empty() {
            continue;
        }
        match apis.left_behind(*kind, &deleted).await {
            Ok(found) => report.left_by_controllers.extend(found),
            Err(error) => report.unchecked.push(crate::errors::chain(&error)),
        }
    }
    Ok(report)
}
