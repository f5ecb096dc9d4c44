//! What comfyplat remembers between runs: `state/<platform>.json`.
//!
//! The file is versioned JSON with a `serial` (incremented on every write) and a `lineage`
//! (a UUID fixed when the state is first created; a saved plan from another lineage is
//! refused). It holds, per address, the identity of the resource, whether its creation is
//! still in flight (`creating`: written *before* the create call, so an interrupted apply
//! knows a half-made resource is its own), the fields last applied (to tell drift from
//! intended change) and the dependencies (to delete in the right order once the resource
//! has left platform.yaml).
//!
//! Invariants: writes are atomic (temp file, fsync, rename, fsync of the directory) and made
//! only while holding the exclusive lock of [`lock`]; readers never need the lock.

pub mod lock;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Address, Fields, Identity, Pending, Resource, Secrets};

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to read state file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file `{}` is not valid comfyplat state", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("state file `{}` has version {found}; this comfyplat reads version {STATE_VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("failed to write state file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file `{}` belongs to platform `{found}`, not `{expected}`", path.display())]
    WrongPlatform {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

impl StateError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Parse { .. } => Some("restore the file from a backup or version control; comfyplat never writes a partial state file".to_string()),
            StateError::Version { .. } => Some("use the comfyplat version that wrote this state".to_string()),
            StateError::WrongPlatform { .. } => Some("use `--state-dir` to point at this platform's state".to_string()),
            StateError::Write { .. } => Some("check that the state directory is writable and the disk is not full; the previous state file is intact".to_string()),
            StateError::Read { .. } => None,
        }
    }
}

/// Where a resource's lifecycle stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The create call may have been sent; the resource, if it exists, is ours.
    Creating,
    /// Created and last applied with `fields`.
    Applied,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub identity: Identity,
    pub status: Status,
    /// The managed fields as last applied (empty while creating).
    #[serde(default)]
    pub fields: Fields,
    #[serde(default)]
    pub depends_on: Vec<Address>,
    /// An operation started and not yet seen to finish (e.g. an add-on being created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub serial: u64,
    pub lineage: String,
    pub platform: String,
    /// The account the resources live in, fixed by the first apply.
    #[serde(default)]
    pub account: Option<String>,
    pub region: String,
    pub resources: BTreeMap<Address, Entry>,
    /// Secrets comfyplat generated (e.g. CloudFront's origin header value), by name. Only
    /// the requests that set them carry them; nothing comfyplat prints does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: Secrets,
}

impl State {
    pub fn new(platform: &str, region: &str) -> Self {
        State {
            version: STATE_VERSION,
            serial: 0,
            lineage: uuid::Uuid::new_v4().to_string(),
            platform: platform.to_string(),
            account: None,
            region: region.to_string(),
            resources: BTreeMap::new(),
            secrets: Secrets::new(),
        }
    }

    /// Reads the state at `path`; a missing file is a new, empty state.
    pub fn load(path: &Path, platform: &str, region: &str) -> Result<State, StateError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State::new(platform, region));
            }
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        if version.version != STATE_VERSION {
            return Err(StateError::Version {
                path: path.to_path_buf(),
                found: version.version,
            });
        }
        let state: State = serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if state.platform != platform {
            return Err(StateError::WrongPlatform {
                path: path.to_path_buf(),
                found: state.platform,
                expected: platform.to_string(),
            });
        }
        Ok(state)
    }

    /// Writes the state atomically with the next serial. Call only while holding the lock.
    pub fn save(&mut self, path: &Path) -> Result<(), StateError> {
        self.serial += 1;
        let error = |source| StateError::Write {
            path: path.to_path_buf(),
            source,
        };
        let directory = path.parent().unwrap_or_else(|| Path::new("."));
        fs::create_dir_all(directory).map_err(error)?;
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| error(std::io::Error::other(e)))?;
        text.push('\n');
        let temporary = path.with_extension(format!("json.tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, path)?;
            // Make the rename itself durable.
            fs::File::open(directory)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        result.map_err(error)
    }

    /// Records that `resource` is about to be created.
    pub fn mark_creating(&mut self, resource: &Resource) {
        self.insert(resource, Status::Creating, Fields::new());
    }

    /// Records that `resource` now exists with its fields applied.
    pub fn record_applied(&mut self, resource: &Resource) {
        self.insert(resource, Status::Applied, resource.fields.clone());
    }

    /// Records (or clears) the operation under way for `address`.
    pub fn set_pending(&mut self, address: &Address, pending: Option<Pending>) {
        if let Some(entry) = self.resources.get_mut(address) {
            entry.pending = pending;
            entry.updated_at = now();
        }
    }

    /// Records the operation under way for `resource`; a resource not in state yet is
    /// recorded as being created, so that the next apply knows it and waits.
    pub fn record_pending(&mut self, resource: &Resource, pending: Pending) {
        if !self.resources.contains_key(&resource.address) {
            self.mark_creating(resource);
        }
        self.set_pending(&resource.address, Some(pending));
    }

    fn insert(&mut self, resource: &Resource, status: Status, fields: Fields) {
        self.resources.insert(
            resource.address.clone(),
            Entry {
                identity: resource.identity.clone(),
                status,
                fields,
                depends_on: resource.depends_on.clone(),
                pending: None,
                updated_at: now(),
            },
        );
    }
}

/// The current time as RFC 3339, seconds precision.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_bumps_the_serial() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("studio.json");
        let mut state = State::new("studio", "us-west-2");
        state.mark_creating(&Resource {
            address: Address::new("s3.bucket.models"),
            identity: Identity::S3Bucket {
                name: "b".into(),
                region: "us-west-2".into(),
            },
            fields: Fields::new(),
            depends_on: Vec::new(),
            parameters: Fields::new(),
            yield_to_existing: false,
        });
        state.save(&path).expect("save");
        state.save(&path).expect("save again");
        let loaded = State::load(&path, "studio", "us-west-2").expect("load");
        assert_eq!(loaded.serial, 2);
        assert_eq!(loaded, state);
        let leftovers: Vec<_> = fs::read_dir(directory.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }

    #[test]
    fn a_missing_file_is_an_empty_state_and_a_foreign_one_is_refused() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("studio.json");
        let state = State::load(&path, "studio", "us-west-2").expect("load");
        assert_eq!(state.serial, 0);
        assert!(state.resources.is_empty());
        let mut other = State::new("other", "us-west-2");
        other.save(&path).expect("save");
        assert!(matches!(
            State::load(&path, "studio", "us-west-2"),
            Err(StateError::WrongPlatform { .. })
        ));
        fs::write(&path, "{\"version\": 9}").expect("write");
        assert!(matches!(
            State::load(&path, "studio", "us-west-2"),
            Err(StateError::Version { found: 9, .. })
        ));
        fs::write(&path, "{not json").expect("write");
        assert!(matches!(
            State::load(&path, "studio", "us-west-2"),
            Err(StateError::Parse { .. })
        ));
    }
}
