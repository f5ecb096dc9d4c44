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
//! only while holding the exclusive lock of [`lock`]; readers never need the lock. The
//! file holds secrets (`secrets`), so it is created readable by its owner only (0600), as
//! are the lock and saved plans ([`write_private`]).
//!
//! Version 2 keeps operations under way in one shape for every kind (a goal and the
//! service's handle, see [`crate::model::Pending`]); a version 1 file is read and
//! converted (and written as version 2 by the next change).

pub mod lock;
pub mod plan_file;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Address, Fields, Identity, Pending, Resource, Secrets};

/// A new secret: 64 hex digits from two v4 UUIDs (244 random bits from the OS generator).
pub fn generate_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub const STATE_VERSION: u32 = 2;

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
        let parse = |source| StateError::Parse {
            path: path.to_path_buf(),
            source,
        };
        let mut document: serde_json::Value = serde_json::from_slice(&bytes).map_err(parse)?;
        match document.get("version").and_then(serde_json::Value::as_u64) {
            Some(1) => upgrade_from_1(&mut document),
            Some(version) if version == u64::from(STATE_VERSION) => {}
            found => {
                return Err(StateError::Version {
                    path: path.to_path_buf(),
                    found: found.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                });
            }
        }
        let state: State = serde_json::from_value(document).map_err(parse)?;
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
        create_private_dir(directory).map_err(error)?;
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| error(std::io::Error::other(e)))?;
        text.push('\n');
        write_private(path, text.as_bytes()).map_err(error)?;
        remove_stale_temporaries(path);
        Ok(())
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

/// Writes `bytes` to `path` atomically (a temporary file beside it, fsync, rename, fsync of
/// the directory), readable and writable by the owner only: 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = directory.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = create_private(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        fs::File::open(directory)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Removes the temporary files of [`write_private`] for `path` that a killed process left
/// (another process's id in the name). Only while holding the state lock: nobody else is
/// writing this file then. Best effort: a file that cannot be removed stays.
fn remove_stale_temporaries(path: &Path) {
    let (Some(directory), Some(file_name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let directory = if directory.as_os_str().is_empty() {
        Path::new(".")
    } else {
        directory
    };
    let prefix = format!(".{}.tmp-", file_name.to_string_lossy());
    let ours = format!("{prefix}{}", std::process::id());
    let Ok(entries) = fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name != ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `directory` (and its parents) if needed; what is created is for its owner only
/// (0700), what exists keeps its mode.
pub fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(directory)
}

/// Opens a new file (truncating one that exists) that only its owner may read and write.
pub fn create_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // A file that existed keeps its mode on open: set it.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

/// Whether other users may read what is in `directory` (its mode lets group or others
/// read it): the state there holds secrets.
pub fn readable_by_others(directory: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(directory).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        false
    }
}

/// Converts a version 1 state document: operations under way became `{goal, operation}`,
/// and the CloudFront kind is named `cloudfront_distribution`.
fn upgrade_from_1(document: &mut serde_json::Value) {
    use serde_json::{Value, json};
    document["version"] = json!(STATE_VERSION);
    let Some(resources) = document.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    for entry in resources.values_mut() {
        if let Some(kind) = entry.pointer_mut("/identity/kind")
            && kind == "cloud_front_distribution"
        {
            *kind = json!("cloudfront_distribution");
        }
        let Some(pending) = entry.get_mut("pending").filter(|p| p.is_object()) else {
            continue;
        };
        let text = |key: &str| pending.get(key).and_then(Value::as_str).map(str::to_string);
        let goal = match text("goal").as_deref() {
            Some("deleted") => "deleted",
            _ => "ready",
        };
        let operation = text("update_id").or_else(|| text("id"));
        *pending = match operation {
            Some(operation) => json!({"goal": goal, "operation": operation}),
            None => json!({"goal": goal}),
        };
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
    fn temporary_files_a_killed_process_left_are_removed_by_the_next_save() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("studio.json");
        let stale = directory.path().join(".studio.json.tmp-999999");
        let other = directory.path().join(".other.json.tmp-999999");
        fs::write(&stale, "{").expect("a leftover of a SIGKILL");
        fs::write(&other, "{").expect("another platform's");
        State::new("studio", "us-west-2").save(&path).expect("save");
        assert!(!stale.exists(), "the leftover is removed");
        assert!(other.exists(), "another file's temporaries are not touched");
        assert!(path.exists());
    }

    #[test]
    fn save_then_load_round_trips_and_bumps_the_serial() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("studio.json");
        let mut state = State::new("studio", "us-west-2");
        state.mark_creating(&Resource::new(
            Address::new("s3.bucket.models"),
            crate::model::kinds::s3_bucket::Id {
                name: "b".into(),
                region: "us-west-2".into(),
            },
            Fields::new(),
        ));
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

    #[test]
    fn state_files_are_private_and_their_directory_too_when_comfyplat_makes_it() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().expect("temporary directory");
        let state_dir = directory.path().join("state");
        let path = state_dir.join("studio.json");
        State::new("studio", "us-west-2").save(&path).expect("save");
        let mode = |p: &Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&state_dir), 0o700);
        assert!(!readable_by_others(&state_dir));
        fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(readable_by_others(&state_dir));
        // An existing file written by something else becomes private on the next save.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut state = State::load(&path, "studio", "us-west-2").expect("load");
        state.save(&path).expect("save");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_version_1_state_is_read_with_its_operations_under_way() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("studio.json");
        let v1 = serde_json::json!({
            "version": 1, "serial": 7, "lineage": "l-1", "platform": "studio", "region": "us-west-2",
            "resources": {
                "eks.access_config": {
                    "identity": {"kind": "eks_access_config", "cluster": "c"},
                    "status": "applied", "updated_at": "2026-01-01T00:00:00Z",
                    "pending": {"kind": "cluster_update", "cluster": "c", "update_id": "u-1"}
                },
                "cloudfront.distribution.comfyui": {
                    "identity": {"kind": "cloud_front_distribution", "caller_reference": "r-1"},
                    "status": "applied", "updated_at": "2026-01-01T00:00:00Z",
                    "pending": {"kind": "distribution", "id": "E1", "goal": "deleted"}
                }
            }
        });
        fs::write(&path, v1.to_string()).expect("write");
        let state = State::load(&path, "studio", "us-west-2").expect("a version 1 state loads");
        assert_eq!(state.version, STATE_VERSION);
        assert_eq!(state.serial, 7);
        let config = &state.resources[&Address::new("eks.access_config")];
        assert_eq!(config.pending, Some(Pending::ready().with_operation("u-1")));
        let distribution = &state.resources[&Address::new("cloudfront.distribution.comfyui")];
        assert_eq!(
            distribution.identity.kind(),
            crate::model::Kind::CloudfrontDistribution
        );
        assert_eq!(
            distribution.pending,
            Some(Pending::deleted().with_operation("E1"))
        );
    }
}
