//! Workflows in ComfyUI's API format, and everything `comfyplat run` knows about them without
//! a network:
//!
//! - [`graph`]: parsing (a UI-format file is refused with how to export the API format) and
//!   edits (`--set`, seeds, uploaded inputs);
//! - [`check`]: the check against a server's `/object_info` (unknown node types, missing
//!   required inputs, values not in a node's list, out of range, wrong types, broken links);
//! - [`events`]: the server's websocket messages, typed;
//! - [`progress`]: one job's progress as its events arrive (the state behind the display);
//! - [`outputs`]: the outputs of a history entry and where each lands on disk.
//!
//! Pure: no I/O and no randomness (a random seed is drawn by the command and passed in). The
//! protocol is ComfyUI's as a real server answers it; `adapters::comfyui` speaks it.

pub mod check;
pub mod events;
pub mod graph;
pub mod outputs;
pub mod progress;

pub use check::{Catalog, Problem, ProblemKind};
pub use events::Event;
pub use graph::{InputValue, Workflow, WorkflowError};
