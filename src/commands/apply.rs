//! `comfyplat apply [PLANFILE]` and `comfyplat destroy`: plan (or load a saved plan and check
//! it is not stale), show it, ask, execute with progress, summarise.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::plan::stdout_style;
use super::session::{Connected, KubeOptions};
use super::{CommandError, EXIT_INTERRUPTED, Exit, Session, output};
use crate::adapters::ApiError;
use crate::cli::{ApplyArgs, DestroyArgs, ExecuteArgs, Global};
use crate::executor::{ChangeResult, Executor};
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
        let watcher = tokio::spawn(watch_interrupts(Arc::clone(&stop)));
        let reporter = ProgressReporter::new(plan.changes.len(), style, global.quiet);
        let state_path = self.session.state_path();
        let executor = Executor {
            apis: &self.connected.apis,
            state: Mutex::new(&mut self.state),
            state_path: &state_path,
            reporter: &reporter,
            parallelism: usize::from(parallelism),
            stop: &stop,
            no_wait,
        };
        let outcome = executor.run(plan).await;
        watcher.abort();
        reporter.finish();
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

/// On the first Ctrl-C, asks the executor to start no new changes; on the second, exits at
/// once (state already records every completed step and every create in flight).
async fn watch_interrupts(stop: Arc<AtomicBool>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        stop.store(true, Ordering::SeqCst);
        eprintln!(
            "\nInterrupted: finishing the changes in progress, starting no new ones (Ctrl-C again to exit now)."
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    }
}

fn ask(mode: Mode) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CommandError::NeedsConfirmation.into());
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
