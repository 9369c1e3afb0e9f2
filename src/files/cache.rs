//! The small-file cache: hot small files kept in memory with their headers encoded. With a
//! [`Watcher`], entries are dropped when the kernel reports a change and a hit costs no
//! syscall; without one (or where a watch could not be added) an entry is checked with one
//! `stat` of its resolved path at most once per revalidation period.

use super::representation::{Representation, Source};
use super::resolve::FileIdentity;
use super::watch::Watcher;
use slab::Slab;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest file the cache holds in memory.
pub const MAX_FILE: u64 = 64 * 1024;
/// Most bytes the cache holds in all, bookkeeping included.
pub const MAX_TOTAL: usize = 16 * 1024 * 1024;
/// What an entry holding an open large file (sent with `sendfile`) is charged, which bounds
/// how many descriptors the cache keeps open: a hit then skips resolving and opening.
const OPEN_FILE_COST: usize = 64 * 1024;
/// Bytes charged per entry on top of its body and key, for its encoded headers and
/// bookkeeping, so that many empty files still fill the budget.
const ENTRY_OVERHEAD: usize = 512;

/// FNV-1a: the index is looked up once per request with a short path, where SipHash's
/// flooding resistance buys nothing (only files that exist are ever inserted).
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Small files by decoded request path.
#[derive(Debug)]
pub struct FileCache {
    index: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    entries: Slab<Entry>,
    used: usize,
    revalidate_after: Duration,
    watcher: Option<Watcher>,
}

#[derive(Debug)]
struct Entry {
    key: String,
    /// The real path the key resolved to when stored.
    path: PathBuf,
    /// Whether every directory it was reached through is watched: no `stat` needed.
    watched: bool,
    rep: Representation,
    identity: FileIdentity,
    checked: Instant,
    cost: usize,
}

impl FileCache {
    /// An empty cache that checks each entry again after `revalidate_after`.
    pub fn new(revalidate_after: Duration) -> FileCache {
        FileCache {
            index: HashMap::default(),
            entries: Slab::new(),
            used: 0,
            revalidate_after,
            watcher: None,
        }
    }

    /// Starts watching for changes; returns the descriptor to poll. Existing entries are
    /// dropped, since nothing watched them being read.
    pub fn watch_changes(&mut self) -> std::io::Result<std::os::fd::RawFd> {
        let watcher = Watcher::new()?;
        let fd = watcher.fd();
        self.watcher = Some(watcher);
        self.clear();
        Ok(fd)
    }

    /// Whether a watcher reports changes.
    pub fn is_watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Watches the directories a file about to be read is reached through. Call before
    /// opening it, so any change after the read is reported. Returns whether all are watched.
    pub fn watch(&mut self, dirs: &[&Path]) -> bool {
        let Some(watcher) = &mut self.watcher else {
            return false;
        };
        dirs.iter().all(|dir| watcher.watch(dir))
    }

    /// Drops the entries that reported changes invalidate.
    pub fn apply_changes(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let changes = watcher.changes();
        if changes.everything {
            return self.clear();
        }
        let stale: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, entry)| changes.files.contains(&entry.path))
            .map(|(slot, _)| slot)
            .collect();
        for slot in stale {
            self.remove(slot);
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.used = 0;
    }

    /// How long an entry is trusted without looking at the file system.
    pub fn revalidate_after(&self) -> Duration {
        self.revalidate_after
    }

    /// Whether a file of `len` bytes is kept in memory; larger ones are kept as open files.
    pub fn accepts(&self, len: u64) -> bool {
        len <= MAX_FILE
    }

    /// Bytes charged to the entries held now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }

    /// The cached file for `key`, if any and still current.
    #[cfg(test)]
    ///
    /// When the entry is due for a check, `current` gives the identity of the file now at
    /// the stored real path (`None` if it is no longer a regular file); an entry whose
    /// identity changed is dropped and `None` returned. The identity holds device and inode,
    /// so a path that now leads elsewhere (a swapped symlink or directory) never matches.
    pub fn lookup(
        &mut self,
        key: &str,
        now: Instant,
        current: impl FnOnce(&Path) -> Option<FileIdentity>,
    ) -> Option<&Representation> {
        let slot = self.lookup_slot(key, now, current)?;
        Some(self.get(slot))
    }

    /// [`FileCache::lookup`], giving the entry's slot for [`FileCache::get`]: a caller that
    /// inserts on a miss can hold no borrow across the lookup.
    pub fn lookup_slot(
        &mut self,
        key: &str,
        now: Instant,
        current: impl FnOnce(&Path) -> Option<FileIdentity>,
    ) -> Option<usize> {
        let slot = *self.index.get(key)?;
        let entry = self.entries.get_mut(slot)?;
        if !entry.watched && now.saturating_duration_since(entry.checked) >= self.revalidate_after {
            if current(&entry.path) != Some(entry.identity) {
                self.remove(slot);
                return None;
            }
            entry.checked = now;
        }
        Some(slot)
    }

    /// The representation in `slot`, as [`FileCache::lookup_slot`] found it.
    pub fn get(&self, slot: usize) -> &Representation {
        &self.entries[slot].rep
    }

    /// Stores `rep` (read when the file had `identity`) under `key`, evicting entries to stay
    /// within [`MAX_TOTAL`], and returns the stored copy. `watched` says whether
    /// [`FileCache::watch`] covered it before it was read.
    pub fn insert(
        &mut self,
        key: &str,
        path: PathBuf,
        watched: bool,
        identity: FileIdentity,
        rep: Representation,
        now: Instant,
    ) -> &Representation {
        if let Some(slot) = self.index.get(key).copied() {
            self.remove(slot);
        }
        let held = match &rep.source {
            Source::Memory(bytes) => bytes.len(),
            Source::File(_) => OPEN_FILE_COST,
        };
        let cost = held.saturating_add(2 * key.len() + ENTRY_OVERHEAD);
        while self.used + cost > MAX_TOTAL {
            // Any entry will do: the cache is a speed-up, not a promise.
            let Some(victim) = self.entries.iter().next().map(|(slot, _)| slot) else {
                break;
            };
            self.remove(victim);
        }
        self.used += cost;
        let slot = self.entries.insert(Entry {
            key: key.to_string(),
            path,
            watched,
            rep,
            identity,
            checked: now,
            cost,
        });
        self.index.insert(key.to_string(), slot);
        &self.entries[slot].rep
    }

    fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.entries.try_remove(slot) {
            self.index.remove(&entry.key);
            self.used -= entry.cost;
        }
    }
}

/// Reads a whole small file, or `None` if it does not have exactly `len` bytes now (it is
/// being written): such a file is served from disk rather than cached half-written.
pub fn read_whole(file: &File, len: u64) -> Option<Arc<[u8]>> {
    let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?);
    file.take(len.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 == len).then(|| Arc::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_memory;
    use std::cell::Cell;

    fn identity(len: u64, inode: u64) -> FileIdentity {
        FileIdentity {
            len,
            modified_secs: 1,
            modified_nanos: 0,
            changed_nanos: 0,
            device: 1,
            inode,
        }
    }

    #[test]
    fn lookups_revalidate_once_per_period() {
        let same = identity(5, 1);
        let period = Duration::from_secs(1);
        // (time since stored or last check, what the file system says now, hit, checked)
        let rows: &[(Duration, Option<FileIdentity>, bool, bool)] = &[
            (Duration::from_millis(500), None, true, false),
            (
                Duration::from_millis(999),
                Some(identity(6, 1)),
                true,
                false,
            ),
            (period, Some(same), true, true),
            (Duration::from_secs(5), Some(same), true, true),
            (period, Some(identity(6, 1)), false, true),
            (period, Some(identity(5, 2)), false, true),
            (period, None, false, true),
        ];
        for (elapsed, now_identity, hit, checked) in rows {
            let mut cache = FileCache::new(period);
            let start = Instant::now();
            cache.insert(
                "/a",
                PathBuf::from("/a"),
                false,
                same,
                test_memory(b"hello"),
                start,
            );
            let called = Cell::new(false);
            let got = cache
                .lookup("/a", start + *elapsed, |_| {
                    called.set(true);
                    *now_identity
                })
                .is_some();
            assert_eq!(
                (got, called.get()),
                (*hit, *checked),
                "{elapsed:?} {now_identity:?}"
            );
            // A dropped entry is gone; a kept one stays.
            assert_eq!(cache.lookup("/a", start, |_| None).is_some(), *hit);
            assert_eq!(cache.used() > 0, *hit);
        }
    }

    #[test]
    fn replacing_and_evicting_keep_within_budget() {
        let mut cache = FileCache::new(Duration::from_secs(1));
        let now = Instant::now();
        let big = vec![b'x'; MAX_FILE as usize];
        cache.insert(
            "/a",
            PathBuf::from("/a"),
            false,
            identity(1, 1),
            test_memory(b"1"),
            now,
        );
        let first = cache.used();
        cache.insert(
            "/a",
            PathBuf::from("/a"),
            false,
            identity(2, 1),
            test_memory(b"22"),
            now,
        );
        assert_eq!(cache.used(), first + 1, "replaced, not added");
        for i in 0..400 {
            cache.insert(
                &format!("/big{i}"),
                PathBuf::from(format!("/big{i}")),
                false,
                identity(MAX_FILE, i),
                test_memory(&big),
                now,
            );
            assert!(cache.used() <= MAX_TOTAL);
        }
        assert!(
            cache.used() > MAX_TOTAL - 2 * MAX_FILE as usize,
            "budget is used"
        );
        assert!(
            cache.lookup("/big399", now, |_| None).is_some(),
            "newest entry kept"
        );
        assert!(cache.accepts(MAX_FILE));
        assert!(!cache.accepts(MAX_FILE + 1));
    }

    #[test]
    fn whole_reads_need_the_expected_length() {
        let mut file = tempfile::tempfile().expect("temp file");
        std::io::Write::write_all(&mut file, b"abc").expect("write");
        // (expected length, read result)
        let rows: &[(u64, Option<&[u8]>)] = &[(3, Some(b"abc")), (2, None), (4, None)];
        for (len, expected) in rows {
            std::io::Seek::rewind(&mut file).expect("rewind");
            assert_eq!(read_whole(&file, *len).as_deref(), *expected, "len {len}");
        }
    }
}
