//! The sandbox's state directory and files: created fresh at every start (only when it
//! is the sandbox's own), private files written atomically, the operator's log to a file.

use std::path::{Path, PathBuf};

use crate::CliError;

/// Marks a state directory as the sandbox's own, so a later run may empty it.
pub(super) const MARKER: &str = ".vaultkeeper-sandbox";

/// Writes a file only its owner can read, replacing it atomically.
pub(super) fn write_private(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed =
        |e: std::io::Error| CliError::Internal(format!("cannot write {}: {e}", path.display()));
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(failed)?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

/// Creates the state directory, or empties one a previous sandbox left; refuses a
/// directory that holds anything else, so a typo never deletes someone's files.
pub(super) fn prepare_state_dir(dir: &Path) -> Result<PathBuf, CliError> {
    let io = |e: std::io::Error| CliError::Input(format!("--state-dir {}: {e}", dir.display()));
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io)?.peekable();
        let empty = entries.peek().is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                return Err(CliError::Input(format!(
                    "--state-dir {} is not empty and was not made by a sandbox: choose \
                     another directory (it is emptied at every start)",
                    dir.display()
                )));
            }
            for entry in entries {
                let path = entry.map_err(io)?.path();
                if path.is_dir() && !path.is_symlink() {
                    remove_tree(&path).map_err(io)?;
                } else {
                    std::fs::remove_file(&path).map_err(io)?;
                }
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(
        dir.join(MARKER),
        "This directory belongs to `vaultkeeper sandbox`, which empties it at every start.\n",
    )
    .map_err(io)?;
    dir.canonicalize().map_err(io)
}

/// Removes a directory tree. A pod's root may hold read-only bind mounts left by a
/// crash; those are unmounted lazily first so removal never reaches into the host.
pub(super) fn remove_tree(path: &Path) -> std::io::Result<()> {
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        let prefix = path.canonicalize()?;
        let mut points: Vec<PathBuf> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|p| PathBuf::from(p.replace("\\040", " ")))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in points {
            let status = std::process::Command::new("umount")
                .arg("-l")
                .arg(&point)
                .status();
            if !status.is_ok_and(|s| s.success()) {
                return Err(std::io::Error::other(format!(
                    "{} is still mounted; unmount it first",
                    point.display()
                )));
            }
        }
    }
    std::fs::remove_dir_all(path)
}

/// Sends the operator's log (JSON lines) to a file, so the terminal shows progress only.
pub(super) fn init_file_logging(path: &Path, level: &str) -> Result<(), CliError> {
    let file = std::fs::File::create(path)
        .map_err(|e| CliError::Internal(format!("cannot create {}: {e}", path.display())))?;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| CliError::Input(format!("--log-level {level:?}: {e}")))?;
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
