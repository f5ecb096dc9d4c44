//! Thin glue per subcommand over the layers: read config, connect, observe, plan, render,
//! execute. Also the process edge: logging, colour, error rendering and exit codes.

mod apply;
mod models;
mod models_status;
mod output;
mod plan;
mod session;
mod state;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, Global};
use crate::ui::{Style, render_error};

/// The first hint any error in the chain offers: each error type of comfyplat knows what
/// to say about itself.
pub fn hint_for(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<crate::config::ConfigError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<crate::adapters::ApiError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<crate::state::StateError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<crate::state::lock::LockError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<crate::state::plan_file::PlanFileError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<crate::model::ModelError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<CommandError>() {
            return e.hint();
        }
        if let Some(e) = cause.downcast_ref::<models::ModelsError>() {
            return e.hint();
        }
        None
    })
}

pub use session::Session;

/// Exit code for an interrupted apply or destroy.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Failures of a command as a whole (not of one resource).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "refusing to run: platform.yaml names account {expected}, but the credentials belong to account {actual} ({arn})"
    )]
    WrongAccount {
        expected: String,
        actual: String,
        arn: String,
    },
    #[error(
        "refusing to run: the state of platform `{platform}` was made in account {state_account}, but the credentials belong to account {actual}"
    )]
    StateAccountMismatch {
        platform: String,
        state_account: String,
        actual: String,
    },
    #[error("{command} needs confirmation, and there is no terminal to ask on")]
    NeedsConfirmation { command: &'static str },
    /// A command-line option names something unusable (e.g. a `--kubeconfig` that is not
    /// there).
    #[error("{message}")]
    BadOption { message: String, hint: String },
    #[error("cancelled: nothing was changed")]
    Declined,
    #[error(
        "refusing to apply: {count} problem(s) above must be resolved first; nothing was changed"
    )]
    Blocked { count: usize },
    #[error("the saved plan is stale: {why}")]
    StalePlan { why: String },
    #[error("{failed} change(s) failed")]
    ApplyFailed { failed: usize },
    #[error(
        "destroy finished, but {count} resource(s) comfyplat owns are still there (listed above)"
    )]
    Leftovers { count: usize },
    #[error("EKS cluster `{cluster}` does not exist in account {account}, region {region}")]
    ClusterNotFound {
        cluster: String,
        account: String,
        region: String,
        existing: Vec<String>,
    },
    #[error(transparent)]
    Kubeconfig(#[from] crate::adapters::kube::KubeconfigError),
    #[error("cluster `{cluster}` is missing what the platform needs:\n  - {}", problems.join("\n  - "))]
    KubernetesPreflight {
        cluster: String,
        problems: Vec<String>,
    },
    #[error("EKS cluster `{cluster}` is {status}, not ACTIVE; nothing was changed")]
    ClusterNotReady { cluster: String, status: String },
    #[error("no resource `{address}` in state")]
    NoSuchAddress { address: String, known: Vec<String> },
    #[error("{} CloudFront distributions claim platform `{platform}` (comment and ownership tag): {}", ids.len(), ids.join(", "))]
    TwinDistributions { platform: String, ids: Vec<String> },
}

impl CommandError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CommandError::WrongAccount { .. } => Some("use credentials of the account named in platform.yaml (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...), or fix `account`".to_string()),
            CommandError::StateAccountMismatch { .. } => Some("use credentials of the state's account, or a different `--state-dir` for a platform in another account".to_string()),
            CommandError::NeedsConfirmation { command: "destroy" } => Some("review what would be deleted (`comfyplat plan --destroy`), then run `comfyplat destroy --yes`".to_string()),
            CommandError::NeedsConfirmation { .. } => Some("review the plan, then pass `--yes` (or apply a saved plan: `comfyplat plan --out FILE` then `comfyplat apply FILE`)".to_string()),
            CommandError::BadOption { hint, .. } => Some(hint.clone()),
            CommandError::ClusterNotFound { existing, .. } => Some(if existing.is_empty() {
                "there is no EKS cluster in this account and region: check `region` and `cluster.name` in platform.yaml, and the credentials' account".to_string()
            } else {
                format!("clusters there: {}; check `cluster.name` and `region` in platform.yaml", existing.join(", "))
            }),
            CommandError::Kubeconfig(crate::adapters::kube::KubeconfigError::OtherCluster { .. }) => Some("point `--context`/`kubernetes.context` at the cluster named in platform.yaml, or set `kubernetes.allow_other_endpoint: true` if the endpoint is a proxy in front of it; nothing was changed".to_string()),
            CommandError::Kubeconfig(_) => Some("check the kubeconfig path and context, or leave `kubeconfig` out to let comfyplat connect with the AWS credentials".to_string()),
            CommandError::KubernetesPreflight { .. } => Some("install what is missing, then run comfyplat again; nothing was changed".to_string()),
            CommandError::ClusterNotReady { .. } => Some("wait until the cluster is ACTIVE (`aws eks describe-cluster --name ...`), then run comfyplat again".to_string()),
            CommandError::TwinDistributions { ids, .. } => Some(format!("a platform has one distribution; keep the one its users know (its URL is in `aws cloudfront get-distribution --id {}`), disable and delete the other with the AWS CLI, then run comfyplat again", ids.first().map(String::as_str).unwrap_or("ID"))),
            CommandError::StalePlan { .. } => Some("run `comfyplat plan --out FILE` again and apply the new plan".to_string()),
            CommandError::Leftovers { .. } => Some("run `comfyplat destroy` again; the report above says, for each, why it may still be there and how to delete it".to_string()),
            CommandError::ApplyFailed { .. } => Some("fix the cause shown above and run the same command again; everything that completed is recorded in state".to_string()),
            CommandError::NoSuchAddress { address, known } => Some(if known.is_empty() {
                "the state is empty".to_string()
            } else if let Some(near) = crate::config::did_you_mean(address, known.iter().map(String::as_str)) {
                format!("did you mean `{near}`?")
            } else {
                format!("the addresses in state are: {}", known.join(", "))
            }),
            _ => None,
        }
    }
}

/// What a command asks the process to exit with.
pub type Exit = u8;

/// Checks the files and folders platform.yaml names (at their `file:line:column`) and a
/// `--kubeconfig` given on the command line, before anything connects anywhere.
fn check_paths(
    global: &Global,
    platform: &crate::config::Platform,
    bytes: &[u8],
) -> anyhow::Result<()> {
    use crate::config::{self, PathKind};
    // `--kubeconfig` overrides the file's: that one is not used, and not checked.
    let skip: &[&str] = if global.kubeconfig.is_some() {
        &["kubernetes.kubeconfig"]
    } else {
        &[]
    };
    config::check_paths(platform, bytes, skip, probe)?;
    if let Some(path) = &global.kubeconfig
        && let Some((message, hint)) =
            config::path_problem("--kubeconfig", path, PathKind::File, probe(path))
    {
        return Err(CommandError::BadOption { message, hint }.into());
    }
    Ok(())
}

/// What a path on disk is, and whether it can be read.
fn probe(path: &std::path::Path) -> crate::config::Probed {
    use crate::config::Probed;
    match std::fs::metadata(path) {
        Err(error) => Probed::Unreadable(error.to_string()),
        Ok(metadata) if metadata.is_dir() => match std::fs::read_dir(path) {
            Ok(_) => Probed::Directory,
            Err(error) => Probed::Unreadable(error.to_string()),
        },
        Ok(_) => match std::fs::File::open(path) {
            Ok(_) => Probed::File,
            Err(error) => Probed::Unreadable(error.to_string()),
        },
    }
}

/// The state holds secrets: say so when its directory lets other users read it.
fn warn_if_state_is_readable(session: &Session, style: Style) {
    if crate::state::readable_by_others(&session.state_dir) {
        eprintln!(
            "{} the state directory `{}` is readable by other users, and the state holds secrets; `chmod 700 {}`",
            style.yellow("warning:"),
            session.state_dir.display(),
            session.state_dir.display()
        );
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let style = Style {
        color: !cli.global.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stderr().is_terminal(),
    };
    init_logging(&cli.global);
    let verbose = cli.global.verbose > 0;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let error = anyhow::Error::new(error).context("failed to start the async runtime");
            eprintln!("{}", render_error(&error, hint_for(&error), style, verbose));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli, style)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("{}", render_error(&error, hint_for(&error), style, verbose));
            ExitCode::from(1)
        }
    }
}

/// `--help` and `--version` print and exit 0; a usage error prints and exits 1, like any
/// other error: clap's own 2 is what `plan --detailed-exitcode` says for "changes", and a
/// script running `plan --detailed-exitcode --typo` must not read that.
fn usage_error(error: &clap::Error) -> ExitCode {
    let _ = error.print();
    ExitCode::from(usage_exit_code(error))
}

fn usage_exit_code(error: &clap::Error) -> u8 {
    if error.use_stderr() { 1 } else { 0 }
}

async fn dispatch(cli: Cli, style: Style) -> anyhow::Result<Exit> {
    let global = cli.global;
    match cli.command {
        Command::Validate => validate::run(&global),
        Command::Plan(args) => plan::run(&global, &args, style).await,
        Command::Apply(args) => apply::run_apply(&global, &args, style).await,
        Command::Destroy(args) => apply::run_destroy(&global, &args, style).await,
        Command::Output(args) => output::run(&global, &args, style).await,
        Command::State(command) => state::run(&global, &command),
        Command::Models(command) => models::run(&global, &command, style).await,
    }
}

fn init_logging(global: &Global) {
    let filter = match global.verbose {
        0 => "warn",
        1 => "comfyplat=debug,warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COMFYPLAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!global.no_color && std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn exit_code(args: &[&str]) -> u8 {
        match Cli::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(error) => usage_exit_code(&error),
        }
    }

    #[test]
    fn usage_errors_exit_1_not_the_changes_code() {
        assert_eq!(
            exit_code(&["comfyplat", "plan", "--detailed-exitcode", "--typo"]),
            1
        );
        assert_eq!(exit_code(&["comfyplat", "nope"]), 1);
        assert_eq!(exit_code(&["comfyplat"]), 1);
        assert_eq!(exit_code(&["comfyplat", "--help"]), 0);
        assert_eq!(exit_code(&["comfyplat", "plan", "--help"]), 0);
        assert_eq!(exit_code(&["comfyplat", "--version"]), 0);
    }

    #[test]
    fn plan_help_documents_the_exit_codes() {
        let mut command = Cli::command();
        let plan = command
            .find_subcommand_mut("plan")
            .expect("a plan subcommand");
        let help = plan.render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("usage error"), "{help}");
        assert!(
            help.contains("2    `plan --detailed-exitcode` only"),
            "{help}"
        );
    }

    #[test]
    fn destroy_without_a_terminal_says_destroy() {
        let error = CommandError::NeedsConfirmation { command: "destroy" };
        assert_eq!(
            error.to_string(),
            "destroy needs confirmation, and there is no terminal to ask on"
        );
        assert!(error.hint().unwrap_or_default().contains("destroy --yes"));
    }
}
