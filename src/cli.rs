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
    /// Upload, list and delete the models in the platform's models bucket (AWS credentials
    /// and platform.yaml only, no cluster access), and see the GPU nodes' copies (`status`)
    #[command(subcommand)]
    Models(ModelsCommand),
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

const MODELS_EXIT_CODES: &str = "\
Exit codes:
  0    success (nothing to do is success too)
  1    bad input (refused before any AWS call), the models bucket does not exist yet, or a
       file or key failed (each is named)
  130  interrupted (Ctrl-C): multipart uploads in flight are aborted";

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Upload a ComfyUI `models/` folder to the models bucket: only what changed, in
    /// parallel, each object with a CRC64NVME checksum of its whole content
    #[command(after_help = MODELS_EXIT_CODES)]
    Push(ModelsPushArgs),
    /// List the models in the bucket as a tree, with the size of every folder and the total
    #[command(after_help = MODELS_EXIT_CODES)]
    Ls(ModelsLsArgs),
    /// Delete models from the bucket: objects, or whole folders
    #[command(after_help = MODELS_EXIT_CODES)]
    Rm(ModelsRmArgs),
    /// One line per GPU node: its model agent ready or not, the generation it has, its lag
    /// behind the bucket, files, bytes, free space and last error (needs the cluster's
    /// Kubernetes API, reached as `plan` does)
    Status(ModelsStatusArgs),
}

#[derive(Debug, Args)]
pub struct ModelsStatusArgs {
    /// Print the nodes as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ModelsPushArgs {
    /// The folder to upload: a ComfyUI `models/` folder (checkpoints/, loras/, vae/, ...),
    /// whose layout is kept in the bucket; hidden files and folders are skipped, and a
    /// symbolic link out of DIR is refused
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Upload under this key prefix instead of the bucket's top, e.g. `--to loras` for a
    /// folder of LoRAs or `--to loras/styles`; `--delete` then only touches keys under it
    #[arg(long = "to", value_name = "PREFIX")]
    pub to: Option<String>,
    /// Also delete the objects under the target prefix (the whole bucket without `--to`)
    /// that DIR does not have; comfyplat's own `.comfyplat/` keys are never deleted
    #[arg(long)]
    pub delete: bool,
    /// Print what would be uploaded and deleted, and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How many uploads (whole files or parts of large ones) may run at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64), value_name = "N")]
    pub concurrency: u16,
    /// Files of at least this size are uploaded in parts (e.g. `64MiB`)
    #[arg(long, hide = true, env = "COMFYPLAT_MULTIPART_THRESHOLD", default_value = "64MiB", value_parser = parse_size)]
    pub multipart_threshold: u64,
    /// The size of the parts (at least `5MiB`, S3's minimum; grown for files that would
    /// need more than 10,000 parts)
    #[arg(long, hide = true, env = "COMFYPLAT_PART_SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub part_size: u64,
}

#[derive(Debug, Args)]
pub struct ModelsLsArgs {
    /// Only the keys that start with this, e.g. `loras/`
    #[arg(value_name = "PREFIX")]
    pub prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct ModelsRmArgs {
    /// What to delete: a key (`loras/ink.safetensors`), or a folder (`loras/styles/`, or
    /// without the `/` when no object has that very name) with every key under it. Nothing
    /// is deleted when any PATH matches nothing
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<String>,
    /// Print what would be deleted, and delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// A size in bytes: a number, optionally with `B`, `KiB`, `MiB` or `GiB` (`64MiB`).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write e.g. `64MiB` or `67108864`"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit `{other}`: use B, KiB, MiB or GiB")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}
