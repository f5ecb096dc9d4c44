//! The exclusive lock on a platform's state: `state/<platform>.lock`.
//!
//! An OS file lock (`flock`) on the lock file, so that a killed process never leaves a stale
//! lock behind. The holder writes who it is (operation, pid, user@host, since) into the file
//! (readable by its owner only, like the state), and a second comfyplat that finds the lock
//! taken stops at once and names the holder.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub operation: String,
    pub pid: u32,
    pub who: String,
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`comfyplat {}` (pid {}, {}) since {}",
            self.operation, self.pid, self.who, self.since
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the state is locked by {holder}")]
    Held { path: PathBuf, holder: String },
    #[error("failed to lock the state at `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    pub fn hint(&self) -> Option<String> {
        match self {
            LockError::Held { .. } => Some(
                "wait for it to finish; the lock is released when that process exits, even if it is killed".to_string(),
            ),
            LockError::Io { .. } => None,
        }
    }
}

/// Held while the value lives; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock for `operation` or fails at once, naming the holder.
    pub fn acquire(path: &Path, operation: &str) -> Result<StateLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::create_private_dir(directory).map_err(io)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<Holder>(&text)
                    .map(|holder| holder.to_string())
                    .unwrap_or_else(|_| "another comfyplat process".to_string());
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let holder = Holder {
            operation: operation.to_string(),
            pid: std::process::id(),
            who: whoami(),
            since: super::now(),
        };
        let text = serde_json::to_string(&holder).map_err(|e| io(std::io::Error::other(e)))?;
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(StateLock {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn whoami() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_and_names_the_holder_until_the_first_is_dropped() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("studio.lock");
        let first = StateLock::acquire(&path, "apply").expect("first lock");
        match StateLock::acquire(&path, "destroy") {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.contains("comfyplat apply"), "{holder}");
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        drop(first);
        StateLock::acquire(&path, "destroy").expect("lock after release");
    }
}
