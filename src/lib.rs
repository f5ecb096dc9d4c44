//! comfyplat: plan, apply and destroy a ComfyUI platform on Amazon EKS from one declarative
//! `platform.yaml`.
//!
//! # Architecture
//!
//! ```text
//! platform.yaml ──> config ──> model::desired ───────────────┐
//! AWS ──> adapters (one module per service) ──> observe ─────┼─> planner (pure) ─> Plan ─> ui
//! state/<platform>.json ──> state (serial, lineage, lock) ───┘                      │
//!                                     executor (graph walk, retries) ─> adapters ─> AWS
//!                                          │ events ─> ui::ProgressReporter
//! ```
//!
//! - [`config`]: the schema of platform.yaml, validation with `file:line:column`, defaults
//!   and derived names. No network.
//! - [`model`]: addresses, identities, managed fields, the desired resources and what was
//!   observed. Pure data.
//! - [`planner`]: `plan(desired, state, observed) -> Plan`, every decision. Pure.
//! - [`adapters`]: the only code that calls AWS; maps API errors to typed outcomes.
//! - [`observe`]: reads every identity concurrently, bounded.
//! - [`executor`]: carries out a plan in dependency order, persisting state after each step.
//! - [`state`]: the state file (atomic writes) and its lock.
//! - [`ui`]: plan rendering, progress, error rendering.
//! - [`commands`] and [`cli`]: the command line.
//!
//! Layering: `config`, `model` and `planner` never use tokio, the AWS SDK, indicatif or clap;
//! adapters never print.
//!
//! # Files comfyplat reads and writes
//!
//! - reads `platform.yaml` (or `-f FILE`);
//! - reads and writes `state/<platform>.json` next to it (or `--state-dir`), and takes
//!   `state/<platform>.lock` while applying or destroying;
//! - writes the plan file named by `plan --out FILE`, reads it in `apply FILE`.

pub mod adapters;
pub mod cli;
pub mod commands;
pub mod config;
pub mod executor;
pub mod model;
pub mod observe;
pub mod planner;
pub mod state;
pub mod templates;
pub mod ui;
