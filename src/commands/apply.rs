//! `comfyplat apply [PLANFILE]` and `comfyplat destroy`: plan (or load a saved plan and check
//! it is not stale), show it, ask, execute with progress, summarise.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::plan::stdout_style;
use super::session::{Connected, KubeOptions};
use super::{CommandError, EXIT_INTERRUPTED, Exit, Session, output};
use crate::adapters::ApiError;
use crate::cli::{ApplyArgs, DestroyArgs, ExecuteArgs, Global};
use crate::executor::{ChangeResult, Event, Executor, Reporter};
use crate::model::{Identity, Observation};
use crate::observe::OBSERVE_CONCURRENCY;
use crate::planner::{self, Mode, Options, Plan};
use crate::state::lock::StateLock;
use crate::state::{State, plan_file};
use crate::ui::{
    ProgressReporter, Style, render_blockers, render_destroy_report, render_outcome,
    render_outputs, render_plan,
};

pub async fn run_apply(global: &Global, args: &ApplyArgs, style: Style) -> anyhow::Result<Exit> {
    let mut run = Locked::start(global, "apply", Mode::Apply, kube_options(&args.execute)).await?;
    let (plan, confirm) = match &args.plan_file {
        Some(path) => (
            load_saved_plan(path, &run.session, &run.connected, &mut run.state).await?,
            false,
        ),
        None => (
            run.plan(Mode::Apply, args.execute.delete_data, args.adopt)
                .await?,
            !args.execute.yes,
        ),
    };
    run.execute(
        global,
        &plan,
        confirm,
        args.execute.parallelism,
        args.no_wait,
        style,
    )
    .await
}

pub async fn run_destroy(
    global: &Global,
    args: &DestroyArgs,
    style: Style,
) -> anyhow::Result<Exit> {
    let mut run = Locked::start(
        global,
        "destroy",
        Mode::Destroy,
        kube_options(&args.execute),
    )
    .await?;
    let plan = run
        .plan(Mode::Destroy, args.execute.delete_data, false)
        .await?;
    run.execute(
        global,
        &plan,
        !args.execute.yes,
        args.execute.parallelism,
        false,
        style,
    )
    .await
}

fn kube_options(args: &ExecuteArgs) -> KubeOptions {
    KubeOptions {
        wait_timeout: args.wait_timeout,
        force_conflicts: args.force_conflicts,
    }
}

/// A session holding the state lock, with the state loaded and the account checked.
struct Locked {
    session: Session,
    _lock: StateLock,
    state: State,
    connected: Connected,
}

impl Locked {
    async fn start(
        global: &Global,
        operation: &str,
        mode: Mode,
        kube: KubeOptions,
    ) -> anyhow::Result<Locked> {
        let session = Session::open(global)?;
        let lock = session.lock(operation)?;
        super::warn_if_state_is_readable(&session, Style::PLAIN);
        let state = session.load_state()?;
        let connected = session.connect(&state, mode, kube).await?;
        Ok(Locked {
            session,
            _lock: lock,
            state,
            connected,
        })
    }

    async fn plan(&mut self, mode: Mode, delete_data: bool, adopt: bool) -> anyhow::Result<Plan> {
        let options = Options {
            mode,
            delete_data,
            adopt,
        };
        Ok(self
            .session
            .plan(&self.connected, &mut self.state, options)
            .await?
            .2)
    }

    async fn execute(
        &mut self,
        global: &Global,
        plan: &Plan,
        confirm: bool,
        parallelism: u16,
        no_wait: bool,
        style: Style,
    ) -> anyhow::Result<Exit> {
        print!("{}", render_plan(plan, stdout_style(style)));
        eprint!("{}", render_blockers(plan, style));
        if !plan.blockers.is_empty() {
            return Err(CommandError::Blocked {
                count: plan.blockers.len(),
            }
            .into());
        }
        if !plan.has_changes() {
            for change in &plan.changes {
                eprintln!(
                    "kept: {}: it holds objects; pass --delete-data to delete it with its objects",
                    change.address
                );
            }
            return Ok(0);
        }
        if confirm {
            ask(plan.mode)?;
        }
        if self.state.account.is_none() {
            self.state.account = Some(self.connected.environment.account.clone());
        }

        let stop = Arc::new(AtomicBool::new(false));
        let reporter = Arc::new(Tally::new(ProgressReporter::new(
            plan.changes.len(),
            style,
            global.quiet,
        )));
        let watcher = tokio::spawn(watch_interrupts(Arc::clone(&stop), Arc::clone(&reporter)));
        let state_path = self.session.state_path();
        let executor = Executor {
            apis: &self.connected.apis,
            state: Mutex::new(&mut self.state),
            state_path: &state_path,
            reporter: &*reporter,
            parallelism: usize::from(parallelism),
            stop: &stop,
            no_wait,
        };
        let outcome = executor.run(plan).await;
        watcher.abort();
        reporter.progress.finish();
        let outcome = outcome?;
        eprint!("{}", render_outcome(&outcome, style));
        if outcome.interrupted {
            return Ok(EXIT_INTERRUPTED);
        }
        let failed = outcome.count(|r| matches!(r, ChangeResult::Failed(_)));
        let apis = &self.connected.apis;
        match plan.mode {
            Mode::Apply if failed == 0 && outcome.succeeded() => {
                match output::gather(apis, &self.state).await {
                    Ok(outputs) if !outputs.is_empty() => {
                        println!("\nOutputs:");
                        print!("{}", render_outputs(&outputs, stdout_style(style)));
                    }
                    Ok(_) => {}
                    // Applied all the same; `comfyplat output` tries again.
                    Err(error) => eprintln!(
                        "{} could not read the outputs: {}",
                        style.yellow("warning:"),
                        crate::errors::chain(&error)
                    ),
                }
            }
            Mode::Apply => {}
            Mode::Destroy => {
                let report = output::destroy_report(apis, plan, &outcome)
                    .await
                    .context("destroy finished, but reading back what is left failed")?;
                eprint!("{}", render_destroy_report(&report, style));
                if failed == 0 && !report.still_owned.is_empty() {
                    return Err(CommandError::Leftovers {
                        count: report.still_owned.len(),
                    }
                    .into());
                }
            }
        }
        if failed > 0 || !outcome.succeeded() {
            return Err(CommandError::ApplyFailed {
                failed: failed.max(1),
            }
            .into());
        }
        Ok(0)
    }
}

/// The progress display, and a count of the changes that ended, for the line a second
/// Ctrl-C prints before exiting.
struct Tally {
    progress: ProgressReporter,
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    skipped: AtomicUsize,
}

impl Tally {
    fn new(progress: ProgressReporter) -> Tally {
        Tally {
            total: progress.total(),
            progress,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
        }
    }

    /// `N done, N failed, N not finished`, as far as the events went.
    fn summary(&self) -> String {
        let done = self.done.load(Ordering::SeqCst);
        let failed = self.failed.load(Ordering::SeqCst);
        let skipped = self.skipped.load(Ordering::SeqCst);
        let left = self.total.saturating_sub(done + failed + skipped);
        let mut line = format!("{done} done");
        for (count, label) in [
            (failed, "failed"),
            (skipped, "skipped"),
            (left, "not finished"),
        ] {
            if count > 0 {
                line.push_str(&format!(", {count} {label}"));
            }
        }
        line
    }
}

impl Reporter for Tally {
    fn event(&self, event: Event) {
        let counter = match &event {
            Event::Finished { .. } | Event::Kept { .. } => Some(&self.done),
            Event::Failed { .. } => Some(&self.failed),
            Event::Skipped { .. } => Some(&self.skipped),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        self.progress.event(event);
    }
}

/// On the first Ctrl-C, asks the executor to start no new changes; on the second, says what
/// was done and what was left, and exits at once (state already records every completed
/// step and every create in flight).
async fn watch_interrupts(stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        stop.store(true, Ordering::SeqCst);
        eprintln!(
            "\nInterrupted: finishing the changes in progress, starting no new ones (Ctrl-C again to exit now)."
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            tally.progress.finish();
            eprintln!("{}", second_interrupt_line(&tally.summary()));
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    }
}

fn second_interrupt_line(summary: &str) -> String {
    format!(
        "Interrupted again: exiting now. {summary}. State is saved: it records everything that completed and every create in flight; run the same command again to finish."
    )
}

fn ask(mode: Mode) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let command = match mode {
            Mode::Apply => "apply",
            Mode::Destroy => "destroy",
        };
        return Err(CommandError::NeedsConfirmation { command }.into());
    }
    let question = match mode {
        Mode::Apply => "Do you want to perform these actions?",
        Mode::Destroy => {
            "Do you really want to destroy everything comfyplat owns for this platform?"
        }
    };
    eprint!("\n{question}\n  Only 'yes' will be accepted to confirm.\n\n  Enter a value: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        eprintln!();
        Ok(())
    } else {
        Err(CommandError::Declined.into())
    }
}

/// Loads a plan saved with `plan --out` and refuses it if it does not fit or is stale: the
/// state moved on, or any resource it observed looks different now.
async fn load_saved_plan(
    path: &Path,
    session: &Session,
    connected: &Connected,
    state: &mut State,
) -> anyhow::Result<Plan> {
    let plan = plan_file::read(path)?;
    // The cluster must still run what the plan's objects need.
    session.preflight(connected).await?;
    let stale =
        |why: String| -> anyhow::Result<Plan> { Err(CommandError::StalePlan { why }.into()) };
    if plan.platform != session.platform.name
        || plan.region != session.platform.region
        || plan.account != connected.environment.account
    {
        return stale(format!(
            "it is for platform `{}` in account {}, {}; this is platform `{}` in account {}, {}",
            plan.platform,
            plan.account,
            plan.region,
            session.platform.name,
            connected.environment.account,
            session.platform.region
        ));
    }
    if plan.state_serial != state.serial
        || (state.serial > 0 && plan.state_lineage != state.lineage)
    {
        return stale(format!(
            "the state changed since the plan was made (serial {} then, {} now)",
            plan.state_serial, state.serial
        ));
    }
    let observations: BTreeMap<Identity, Observation> = stream::iter(&plan.fingerprints)
        .map(|(identity, _)| async move {
            let observation = connected.apis.observe(identity).await?;
            Ok::<_, ApiError>((identity.clone(), observation))
        })
        .buffered(OBSERVE_CONCURRENCY)
        .try_collect()
        .await?;
    let moved: Vec<String> = plan
        .fingerprints
        .iter()
        .filter(|(identity, fingerprint)| {
            observations
                .get(identity)
                .is_none_or(|observation| &planner::fingerprint(observation) != fingerprint)
        })
        .map(|(identity, _)| format!("{} `{identity}`", identity.kind().noun()))
        .collect();
    // A new state takes the lineage the plan was made with (it took the platform over
    // with --adopt); secrets a lost state no longer holds are read back as a fresh plan
    // would.
    if state.serial == 0 {
        state.lineage = plan.state_lineage.clone();
    }
    let desired = session.desired(&connected.environment)?;
    let recovered =
        crate::model::deferred::recovered_secrets(&desired, &observations, &state.secrets);
    state.secrets.extend(recovered);
    if !moved.is_empty() {
        return stale(format!(
            "changed since the plan was made: {}",
            moved.join(", ")
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use crate::planner::Action;

    #[test]
    fn a_second_interrupt_says_what_was_done_and_that_state_is_saved() {
        let tally = Tally::new(ProgressReporter::new(4, Style::PLAIN, true));
        let address = Address::new("s3.bucket.models");
        tally.event(Event::Finished {
            address: address.clone(),
            action: Action::Create,
            elapsed: std::time::Duration::from_secs(1),
        });
        tally.event(Event::Failed {
            address,
            action: Action::Create,
            error: "no".to_string(),
        });
        let line = second_interrupt_line(&tally.summary());
        assert!(line.contains("1 done, 1 failed, 2 not finished"), "{line}");
        assert!(line.contains("State is saved"), "{line}");
        assert!(line.contains("run the same command again"), "{line}");
    }
}
