//! The command line: clap definitions only. Behaviour lives in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str =
    "Plan, apply and destroy a ComfyUI platform on Amazon EKS from one declarative platform.yaml";

const LONG_ABOUT: &str = "\
comfyplat stands up and maintains a ComfyUI image-generation platform on an existing Amazon EKS \
cluster from one declarative file, platform.yaml.

  comfyplat plan      shows, field by field, what would change; writes nothing
  comfyplat apply     makes it so, in dependency order, idempotently
  comfyplat destroy   removes everything comfyplat owns, and nothing else

AWS credentials and region come from the standard chain (environment, profiles, SSO, IMDS); \
AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> point comfyplat at other endpoints.";

const EXIT_CODES: &str = "\
Exit codes:
  0    success (for `plan --detailed-exitcode`: no changes)
  1    error: bad input (platform.yaml or a command-line usage error), a failed or
       refused change, a stale plan
  2    `plan --detailed-exitcode` only: success, and there are changes
  130  interrupted (Ctrl-C); state records everything that completed";

#[derive(Debug, Parser)]
#[command(name = "comfyplat", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The platform file
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "platform.yaml",
        env = "COMFYPLAT_FILE",
        value_name = "FILE"
    )]
    pub file: PathBuf,
    /// Where state is kept [default: `state/` next to the platform file]
    #[arg(long, global = true, env = "COMFYPLAT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// No colours (also when NO_COLOR is set or output is not a terminal)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print only the plan, errors and the final summary
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log more (-v: comfyplat's steps, -vv: every API call)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Reach Kubernetes through this kubeconfig instead of connecting on its own (overrides
    /// `kubernetes.kubeconfig`); its server must be the cluster's EKS endpoint
    #[arg(long, global = true, env = "COMFYPLAT_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: its current context]
    #[arg(long, global = true, value_name = "NAME", requires = "kubeconfig")]
    pub context: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check platform.yaml without any network call
    Validate,
    /// Show what apply would change; writes nothing
    #[command(after_help = EXIT_CODES)]
    Plan(PlanArgs),
    /// Apply platform.yaml (or a plan saved with `plan --out`)
    #[command(after_help = EXIT_CODES)]
    Apply(ApplyArgs),
    /// Delete everything comfyplat owns for this platform
    #[command(after_help = EXIT_CODES)]
    Destroy(DestroyArgs),
    /// Print the platform's URLs (CloudFront, load balancer) and bucket names
    Output(OutputArgs),
    /// Inspect the state file
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print the outputs as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Print the plan as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Save the plan to FILE for `comfyplat apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan the deletion of buckets that still hold objects (with their objects)
    #[arg(long)]
    pub delete_data: bool,
    /// Show what `comfyplat destroy` would do
    #[arg(long)]
    pub destroy: bool,
    /// Take over the platform's resources although another state recorded them (the
    /// state was lost, or is kept in another state dir); without it that is refused
    #[arg(long)]
    pub adopt: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `comfyplat plan --out`; applied exactly, refused if stale
    #[arg(value_name = "PLANFILE")]
    pub plan_file: Option<PathBuf>,
    /// Return once CloudFront accepted a change instead of waiting for it to deploy
    /// (minutes); the next plan shows it in progress until it is deployed
    #[arg(long)]
    pub no_wait: bool,
    /// Take over the platform's resources although another state recorded them (the
    /// state was lost, or is kept in another state dir); without it that is refused
    #[arg(long)]
    pub adopt: bool,
    #[command(flatten)]
    pub execute: ExecuteArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub execute: ExecuteArgs,
}

/// What `apply` and `destroy` share.
#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Allow deleting buckets that hold objects, with their objects (otherwise apply refuses
    /// and destroy keeps them)
    #[arg(long)]
    pub delete_data: bool,
    /// How many changes may run at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// Take over Kubernetes fields that other field managers set, in every server-side
    /// apply (drift shown by the plan is always taken back)
    #[arg(long)]
    pub force_conflicts: bool,
    /// Longest any wait may take (an add-on becoming ACTIVE, the cluster's authentication
    /// mode update, a Kubernetes object becoming ready or going away, CloudFront deploying),
    /// e.g. `90s`, `15m`; a wait that runs out fails once, and what is still under way is
    /// waited for by the next run
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub wait_timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the resources in state
    List,
    /// Show one resource's state entry as JSON
    Show {
        /// Its address, e.g. `s3.bucket.models`
        address: String,
    },
}
