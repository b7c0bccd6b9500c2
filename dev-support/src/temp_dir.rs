//! Scratch folders for the processes started here (Redis's data, nginx's prefix), removed
//! with all they hold when dropped.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::Result;

/// Tells apart folders one process makes within the clock's resolution.
static MADE: AtomicU64 = AtomicU64::new(0);

/// A fresh empty folder under the system's temp folder, removed when dropped; reads as its
/// path.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `label` starts the folder's name, so that one left behind by a killed run says whose
    /// it was.
    pub fn new(label: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{label}-{}-{made}-{nanos:x}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        // Not `create_dir_all`: an existing folder is someone else's.
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::TempDir;

    #[test]
    fn each_is_new_and_goes_with_what_it_holds() {
        let (a, b) = (
            TempDir::new("dev-support").unwrap(),
            TempDir::new("dev-support").unwrap(),
        );
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("file"), "x").unwrap();
        let path = a.path().to_owned();
        drop(a);
        assert!(!path.exists());
    }
}
