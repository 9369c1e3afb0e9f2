//! Change notification for the small-file cache: inotify watches on the directories that
//! cached files are reached through, so a cache hit needs no `stat` and an edit, a rename
//! or a deletion is seen as soon as the event loop reads the notification: the kernel
//! queues it before the change's system call returns, and the loop reads the queue before
//! it serves requests that may have been sent after the change.

use inotify::{EventMask, Inotify, WatchMask};
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// What a batch of notifications invalidates.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Something changed the namespace (a name created, removed or renamed, a watched
    /// directory gone, or events lost): any cached resolution may be wrong.
    pub everything: bool,
    /// Files whose content or metadata changed in place.
    pub files: HashSet<PathBuf>,
}

/// Watches directories and turns their events into [`Changes`].
#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    watched: HashMap<PathBuf, i32>,
    dirs: HashMap<i32, PathBuf>,
}

impl Watcher {
    /// A watcher with its own inotify descriptor (non-blocking).
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            watched: HashMap::new(),
            dirs: HashMap::new(),
        })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
    }

    /// Watches `dir` (once). False when the kernel refuses, e.g. at the watch limit: the
    /// caller must then check files the slow way.
    pub fn watch(&mut self, dir: &Path) -> bool {
        if self.watched.contains_key(dir) {
            return true;
        }
        let mask = WatchMask::MODIFY
            | WatchMask::ATTRIB
            | WatchMask::CLOSE_WRITE
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF;
        match self.inotify.watches().add(dir, mask) {
            Ok(wd) => {
                let id = wd.get_watch_descriptor_id();
                self.watched.insert(dir.to_path_buf(), id);
                self.dirs.insert(id, dir.to_path_buf());
                true
            }
            Err(e) => {
                log::debug!("cannot watch {}: {e}", dir.display());
                false
            }
        }
    }

    /// Reads every pending notification.
    pub fn changes(&mut self) -> Changes {
        let mut changes = Changes::default();
        let mut buffer = [0u8; 4096];
        loop {
            let events = match self.inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return changes,
                Err(e) => {
                    log::warn!("file change notifications failed: {e}");
                    changes.everything = true;
                    return changes;
                }
            };
            let mut forgotten = Vec::new();
            for event in events {
                let id = event.wd.get_watch_descriptor_id();
                if event.mask.contains(EventMask::IGNORED) {
                    forgotten.push(id);
                }
                let in_place = EventMask::MODIFY | EventMask::ATTRIB | EventMask::CLOSE_WRITE;
                match (self.dirs.get(&id), event.name) {
                    (Some(dir), Some(name)) if in_place.contains(event.mask) => {
                        changes.files.insert(dir.join(name));
                    }
                    _ => changes.everything = true,
                }
            }
            for id in forgotten {
                if let Some(dir) = self.dirs.remove(&id) {
                    self.watched.remove(&dir);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_name_the_file_and_renames_invalidate_everything() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let file = root.join("a.txt");
        std::fs::write(&file, "one").unwrap();
        let mut watcher = Watcher::new().unwrap();
        assert!(watcher.watch(&root));
        assert_eq!(
            watcher.changes(),
            Changes::default(),
            "nothing happened yet"
        );

        std::fs::write(&file, "two").unwrap();
        let changes = watcher.changes();
        assert!(!changes.everything);
        assert!(changes.files.contains(&file), "{changes:?}");

        std::fs::rename(&file, root.join("b.txt")).unwrap();
        assert!(watcher.changes().everything);

        std::fs::write(root.join("c.txt"), "new").unwrap();
        assert!(
            watcher.changes().everything,
            "a new name may shadow nothing, but is namespace"
        );
    }
}
