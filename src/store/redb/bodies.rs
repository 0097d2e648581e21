//! The refused bodies' bytes: a file each, `rejected/<id>` in the store's directory.
//!
//! redb grows its file by doubling and reuses a dropped value's pages only after later
//! commits, so refused bodies kept in it took up to three times their cap on disk. A file of
//! its own gives a dropped body's space back to the file system as soon as it is deleted.
//!
//! The order keeps a header from ever pointing at nothing, whatever fails:
//! 1. the body is written to `rejected/incoming-<n>.tmp` and fsynced ([`Folder::stage`]);
//! 2. the writer renames it `rejected/<id>` ([`Staged::place`]), fsyncs the folder
//!    ([`Folder::sync`]), inserts the header and commits;
//! 3. the files of the bodies a transaction dropped are deleted once it has committed.
//!
//! A crash (or a failed commit) leaves at worst a file without a header, or a `.tmp`:
//! [`Folder::sweep`] deletes them at open, and at the reopen after a failed commit. A failed
//! commit deletes nothing itself: it may have reached the disk all the same.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{RecordId, StoreError, StoreErrorKind};

fn unavailable(err: impl Into<crate::BoxError>) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, err)
}

/// The `rejected/` folder.
pub(super) struct Folder {
    path: PathBuf,
    /// The folder itself, opened once at each (re)open and fsynced through: opened at every
    /// commit, a process out of file handles (a flood of refusals) failed every commit.
    handle: std::sync::Mutex<Option<std::fs::File>>,
    /// Names the temporary files: unique within the process, and the sweep at open deletes
    /// those of an earlier one.
    next_tmp: AtomicU64,
}

impl Folder {
    /// The folder `rejected/` in the store's directory `dir` (not created here).
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("rejected"),
            handle: std::sync::Mutex::new(None),
            next_tmp: AtomicU64::new(0),
        }
    }

    /// Opens the folder (it exists) for [`sync`](Self::sync), at open and at each reopen.
    pub(super) fn open(&self) -> Result<(), StoreError> {
        // Elsewhere a folder cannot be opened to be fsynced; a rename there is durable or not.
        #[cfg(unix)]
        {
            let dir = std::fs::File::open(&self.path).map_err(unavailable)?;
            *self
                .handle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir);
        }
        Ok(())
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, id: RecordId) -> PathBuf {
        self.path.join(id.to_string())
    }

    /// Writes `body` to a temporary file of its own and fsyncs it; dropped unplaced, the
    /// returned file is deleted.
    pub(super) fn stage(&self, body: &[u8]) -> Result<Staged, StoreError> {
        use std::io::Write;
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.path.join(format!("incoming-{n}.tmp"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(unavailable)?;
        // Ours from here: a failed write or fsync deletes it (a full disk keeps no half body).
        let guard = Unsettled(Some(path));
        file.write_all(body).map_err(unavailable)?;
        file.sync_all().map_err(unavailable)?;
        Ok(Staged {
            file: guard,
            len: body.len() as u64,
            crc: crc32fast::hash(body),
        })
    }

    /// Body `id`, whole; `None` when its file is not there.
    pub(super) fn read(&self, id: RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(self.file(id)) {
            Ok(body) => Ok(Some(body)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// The length of body `id`'s file, 0 when it is not there.
    pub(super) fn len(&self, id: RecordId) -> u64 {
        std::fs::metadata(self.file(id)).map_or(0, |found| found.len())
    }

    /// Closes the handle [`open`](Self::open) took, with the database, so that a failed file
    /// system can be detached and mounted again before the reopen.
    pub(super) fn close(&self) {
        drop(
            self.handle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
    }

    /// Makes the renames into the folder durable, before the headers that name them commit.
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*handle {
            Some(dir) => dir.sync_all().map_err(unavailable),
            // Closed for a reopen: no rename may count as durable.
            None if cfg!(unix) => Err(unavailable("the refused bodies' folder is closed")),
            // Elsewhere never opened: nothing to fsync.
            None => Ok(()),
        }
    }

    /// Deletes the files of bodies whose headers are gone (committed). One that cannot be
    /// deleted is logged and left to the sweep at the next open.
    pub(super) fn delete(&self, ids: &[RecordId]) {
        for &id in ids {
            match std::fs::remove_file(self.file(id)) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(rejected = id, error = %err, "could not delete a dropped refused body's file: it goes at the next open");
                }
            }
        }
    }

    /// Deletes the files that `has_header` disowns, and the `.tmp` files when `tmp_too`; logs
    /// how many at INFO.
    pub(super) fn sweep(
        &self,
        mut has_header: impl FnMut(RecordId) -> Result<bool, StoreError>,
        tmp_too: bool,
    ) -> Result<(), StoreError> {
        let mut swept = 0u64;
        for entry in std::fs::read_dir(&self.path).map_err(unavailable)? {
            let entry = entry.map_err(unavailable)?;
            let name = entry.file_name();
            // A name the store never writes is not its to delete.
            let Some(name) = name.to_str() else { continue };
            let orphan = if name.ends_with(".tmp") {
                tmp_too
            } else if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                match name.parse::<RecordId>() {
                    Ok(id) => !has_header(id)?,
                    Err(_) => false,
                }
            } else {
                false
            };
            if orphan {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => swept += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(unavailable(err)),
                }
            }
        }
        if swept > 0 {
            tracing::info!(
                count = swept,
                "deleted refused bodies' files that a crash left without a header"
            );
        }
        Ok(())
    }
}

/// A body written and fsynced under a temporary name, not yet given an id.
pub(super) struct Staged {
    file: Unsettled,
    pub(super) len: u64,
    pub(super) crc: u32,
}

impl Staged {
    /// Renames the file `rejected/<id>`; it stays unsettled (deleted when dropped) until the
    /// transaction that holds its header commits.
    pub(super) fn place(mut self, folder: &Folder, id: RecordId) -> Result<Unsettled, StoreError> {
        let to = folder.file(id);
        if let Some(from) = &self.file.0 {
            // On failure `self` drops, and the temporary file with it.
            std::fs::rename(from, &to).map_err(unavailable)?;
        }
        self.file.0 = None;
        Ok(Unsettled(Some(to)))
    }
}

/// A file no committed header names yet: deleted when dropped (its transaction never reached
/// a commit), unless settled.
pub(super) struct Unsettled(Option<PathBuf>);

impl Unsettled {
    /// Its header is committed: the file is kept.
    pub(super) fn settle(mut self) {
        self.0 = None;
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: what stays is swept at the next open.
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_opened_once_and_fsynced_through_that_handle() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("rejected")).unwrap();
        let folder = Folder::new(dir);
        folder.open().unwrap();
        // Its path gone (as good as a process out of file handles): the handle still syncs.
        std::fs::remove_dir(folder.path()).unwrap();
        folder.sync().unwrap();
    }
}
