//! comfyplat: plan, apply and destroy a ComfyUI platform on Amazon EKS from one declarative
//! `platform.yaml`.
//!
//! # Architecture
//!
//! ```text
//! platform.yaml ──> config ──> model (kinds/*: desired resources) ─┐
//! templates/ ──> commands read overrides ──┘                        ├─> planner (pure) ─> Plan ─> ui
//! AWS + Kubernetes ──> adapters (kinds/*) ──> observe ──────────────┤                     │
//! state/<platform>.json ──> state (serial, lineage, lock) ──────────┘                     v
//!                                     executor (graph walk) ─> adapters ─> AWS + Kubernetes
//!                                          │ events ─> ui::ProgressReporter
//! ```
//!
//! - [`kinds`]: the table of resource kinds. A kind is one model file
//!   (`model/kinds/<kind>.rs`), one adapter file (`adapters/kinds/<kind>.rs`) and one line
//!   there; everything that lists kinds is generated from it or iterates it.
//! - [`config`]: the schema of platform.yaml, validation with `file:line:column`, defaults
//!   and derived names. No network.
//! - [`model`]: addresses, identities, managed fields, the desired resources (built by each
//!   kind) and what was observed. Pure data and pure functions.
//! - [`planner`]: `plan(desired, state, observed) -> Plan`, every decision. Pure.
//! - [`adapters`]: the only code that calls AWS and Kubernetes; maps API errors to typed
//!   outcomes; owns the retries of each call.
//! - [`observe`]: reads every identity concurrently.
//! - [`executor`]: carries out a plan in dependency order, persisting state after each step.
//! - [`state`]: the state file (atomic, private writes), its lock and saved plans.
//! - [`templates`]: rendering the Kubernetes templates (pure); reading overrides.
//! - [`ui`]: plan rendering (text and the documented JSON format), progress, error
//!   rendering.
//! - [`commands`] and [`cli`]: the command line.
//! - [`workflow`]: ComfyUI workflows (API format, edits, the check against a server's node
//!   definitions, websocket events, a job's progress, its outputs). Pure; for `comfyplat
//!   run`, whose command is not written yet.
//! - [`errors`]: an error and its causes as one line.
//!
//! Layering: `config`, `model` and `planner` never use tokio, the AWS SDK, indicatif or
//! clap, read no file and draw no random number; adapters and the executor never print and
//! never call `ui`; `ui` never calls `commands`.
//!
//! # Files comfyplat reads and writes
//!
//! - reads `platform.yaml` (or `-f FILE`);
//! - reads and writes `state/<platform>.json` next to it (or `--state-dir`), and takes
//!   `state/<platform>.lock` while applying or destroying;
//! - writes the plan file named by `plan --out FILE`, reads it in `apply FILE`;
//! - reads the templates in platform.yaml's `templates_dir`, if it names one;
//! - `models push DIR` reads the files under DIR (and writes nothing there); no other
//!   `models` command touches a local file but platform.yaml.
//!
//! State, lock and plan files are created readable by their owner only (0600): the state
//! holds secrets.

pub mod adapters;
pub mod cli;
pub mod commands;
pub mod config;
pub mod errors;
pub mod executor;
pub mod kinds;
pub mod model;
pub mod observe;
pub mod planner;
pub mod state;
pub mod templates;
pub mod ui;
pub mod workflow;
