//! Saved plans (`plan --out FILE`, `apply FILE`): an internal format, tied to the comfyplat
//! version that wrote it. Another version refuses the file with a message instead of
//! guessing at fields it may not know. The public, documented plan format is the one of
//! `plan --json` (`ui::plan_json`).
//!
//! A saved plan names every resource it would change and is proof of approval, so it is
//! written atomically and readable by its owner only (0600), like the state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::planner::Plan;

/// What the file says it is.
const FORMAT: &str = "comfyplat saved plan";

#[derive(Serialize, Deserialize)]
struct SavedPlan {
    format: String,
    comfyplat_version: String,
    plan: Plan,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("failed to write the plan to `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the saved plan `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a plan saved by comfyplat", path.display())]
    NotAPlan {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the plan `{}` was saved by comfyplat {found}; this is comfyplat {}",
        path.display(),
        env!("CARGO_PKG_VERSION")
    )]
    OtherVersion { path: PathBuf, found: String },
}

impl PlanFileError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PlanFileError::OtherVersion { .. } => Some("a saved plan is applied by the comfyplat that made it; plan again with this one (`comfyplat plan --out FILE`)".to_string()),
            PlanFileError::NotAPlan { .. } => Some("`comfyplat plan --out FILE` writes a plan file; `plan --json` output is for reading, not for `apply`".to_string()),
            _ => None,
        }
    }
}

pub fn write(path: &Path, plan: &Plan) -> Result<(), PlanFileError> {
    let saved = SavedPlan {
        format: FORMAT.to_string(),
        comfyplat_version: env!("CARGO_PKG_VERSION").to_string(),
        plan: plan.clone(),
    };
    let error = |source| PlanFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut text =
        serde_json::to_string_pretty(&saved).map_err(|e| error(std::io::Error::other(e)))?;
    text.push('\n');
    super::write_private(path, text.as_bytes()).map_err(error)
}

pub fn read(path: &Path) -> Result<Plan, PlanFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    #[derive(Deserialize)]
    struct Header {
        format: String,
        comfyplat_version: String,
    }
    let not_a_plan = |source| PlanFileError::NotAPlan {
        path: path.to_path_buf(),
        source,
    };
    let header: Header = serde_json::from_str(&text).map_err(not_a_plan)?;
    if header.format != FORMAT {
        let source = serde::de::Error::custom(format!("its format is `{}`", header.format));
        return Err(not_a_plan(source));
    }
    if header.comfyplat_version != env!("CARGO_PKG_VERSION") {
        return Err(PlanFileError::OtherVersion {
            path: path.to_path_buf(),
            found: header.comfyplat_version,
        });
    }
    let saved: SavedPlan = serde_json::from_str(&text).map_err(not_a_plan)?;
    Ok(saved.plan)
}
