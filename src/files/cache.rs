//! The small-file cache: hot small files kept in memory with their headers encoded. With a
//! [`Watcher`], entries are dropped when the kernel reports a change and a hit costs no
//! syscall; without one (or where a watch could not be added) an entry is checked with one
//! `stat` of its resolved path at most once per revalidation period.
//!
//! Each entry holds every representation of its file ([`Variants`]): copies compressed on
//! demand are charged to the entry and, all together, kept within [`MAX_COMPRESSED`].

use super::representation::Representation;
use super::resolve::FileIdentity;
use super::variants::{Variants, original_of};
use super::watch::Watcher;
use crate::http::coding::Coding;
use slab::Slab;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Largest file the cache holds in memory.
pub const MAX_FILE: u64 = 64 * 1024;
/// Most bytes the cache holds in all, bookkeeping and compressed copies included.
pub const MAX_TOTAL: usize = 16 * 1024 * 1024;
/// Most bytes of copies compressed on demand, a quarter of [`MAX_TOTAL`]: past it, copies of
/// other files are dropped (to be made again when asked for) to make room.
pub const MAX_COMPRESSED: usize = MAX_TOTAL / 4;
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

/// What every worker's cache counts, shared with the server's metrics.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that had to go to the file system.
    pub misses: AtomicU64,
    /// Copies compressed on demand, by coding in [`Coding::ENCODED`] order.
    pub compressions: [AtomicU64; 3],
    /// Bytes of compressed copies held now, over every worker.
    pub compressed_bytes: AtomicI64,
}

/// Small files by decoded request path.
#[derive(Debug)]
pub struct FileCache {
    index: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    entries: Slab<Entry>,
    used: usize,
    /// Bytes of copies compressed here, included in `used`.
    compressed: usize,
    revalidate_after: Duration,
    watcher: Option<Watcher>,
    counters: Arc<CacheCounters>,
}

#[derive(Debug)]
struct Entry {
    key: String,
    /// The real path the key resolved to when stored.
    path: PathBuf,
    /// Whether every directory it was reached through is watched: no `stat` needed.
    watched: bool,
    variants: Variants,
    identity: FileIdentity,
    /// The sidecars found beside it, checked with it when it is not watched.
    sidecars: Vec<(PathBuf, FileIdentity)>,
    checked: Instant,
    cost: usize,
}

impl FileCache {
    /// An empty cache that checks each entry again after `revalidate_after`.
    pub fn new(revalidate_after: Duration) -> FileCache {
        FileCache::with_counters(revalidate_after, Arc::default())
    }

    /// An empty cache that counts into `counters`.
    pub fn with_counters(revalidate_after: Duration, counters: Arc<CacheCounters>) -> FileCache {
        FileCache {
            index: HashMap::default(),
            entries: Slab::new(),
            used: 0,
            compressed: 0,
            revalidate_after,
            watcher: None,
            counters,
        }
    }

    /// The counters this cache adds to.
    pub fn counters(&self) -> &Arc<CacheCounters> {
        &self.counters
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
        // A sidecar edited in place makes its original's entry stale too.
        let touched: HashSet<PathBuf> = changes
            .files
            .iter()
            .flat_map(|file| [Some(file.clone()), original_of(file)])
            .flatten()
            .collect();
        let stale: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, entry)| touched.contains(&entry.path))
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
        self.forget_compressed(self.compressed);
    }

    fn forget_compressed(&mut self, bytes: usize) {
        self.compressed -= bytes;
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.counters.compressed_bytes.fetch_sub(bytes, Relaxed);
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

    /// The cached file for `key`, if any and still current; counted as a hit or a miss.
    ///
    /// When the entry is due for a check, `current` gives the identity of the file now at
    /// the stored real path (`None` if it is no longer a regular file), and of each sidecar
    /// found with it; an entry whose identities changed is dropped and `None` returned. The
    /// identity holds device and inode, so a path that now leads elsewhere (a swapped symlink
    /// or directory) never matches.
    /// `now` is asked only when the entry is not watched and may be due for a check: a
    /// clock read per request is worth saving.
    pub fn lookup(
        &mut self,
        key: &str,
        now: impl FnOnce() -> Instant,
        current: impl Fn(&Path) -> Option<FileIdentity>,
    ) -> Option<usize> {
        let found = self.find(key, now, current);
        let counter = match found {
            Some(_) => &self.counters.hits,
            None => &self.counters.misses,
        };
        counter.fetch_add(1, Relaxed);
        found
    }

    /// The representations held in `slot` (from [`FileCache::lookup`] or
    /// [`FileCache::insert`]).
    pub fn variants(&self, slot: usize) -> Option<&Variants> {
        self.entries.get(slot).map(|entry| &entry.variants)
    }

    fn find(
        &mut self,
        key: &str,
        now: impl FnOnce() -> Instant,
        current: impl Fn(&Path) -> Option<FileIdentity>,
    ) -> Option<usize> {
        let slot = *self.index.get(key)?;
        let entry = self.entries.get_mut(slot)?;
        if entry.watched {
            return Some(slot);
        }
        let now = now();
        if now.saturating_duration_since(entry.checked) >= self.revalidate_after {
            let same = current(&entry.path) == Some(entry.identity)
                && entry
                    .sidecars
                    .iter()
                    .all(|(path, identity)| current(path) == Some(*identity));
            if !same {
                self.remove(slot);
                return None;
            }
            entry.checked = now;
        }
        Some(slot)
    }

    /// The representation of entry `slot` in `coding`, compressing it now if it is made on
    /// demand and not made yet. A copy is kept if the budget has room for it (other files'
    /// copies are dropped to make some); otherwise it is served this once. `None` if the
    /// entry is gone, or the coding cannot be had (the caller then serves identity).
    pub fn representation(
        &mut self,
        slot: usize,
        coding: Coding,
    ) -> Option<Cow<'_, Representation>> {
        let variants = &mut self.entries.get_mut(slot)?.variants;
        if variants.ready(coding).is_none() {
            let copy = variants.compress(coding)?;
            if let Some(i) = coding.index() {
                self.counters.compressions[i].fetch_add(1, Relaxed);
            }
            let bytes = copy.memory_len();
            if !self.make_room(slot, bytes) {
                return Some(Cow::Owned(copy));
            }
            let entry = &mut self.entries[slot];
            entry.variants.keep(copy);
            entry.cost += bytes;
            self.used += bytes;
            self.compressed += bytes;
            let gauge = i64::try_from(bytes).unwrap_or(i64::MAX);
            self.counters.compressed_bytes.fetch_add(gauge, Relaxed);
        }
        self.entries[slot].variants.ready(coding).map(Cow::Borrowed)
    }

    /// Frees room for `bytes` more of compressed copies for entry `slot`, dropping other
    /// entries' copies (past [`MAX_COMPRESSED`]) and then other entries (past
    /// [`MAX_TOTAL`]). False if it cannot.
    fn make_room(&mut self, slot: usize, bytes: usize) -> bool {
        while self.compressed + bytes > MAX_COMPRESSED {
            let victim = self
                .entries
                .iter()
                .find(|(s, entry)| *s != slot && entry.variants.compressed_bytes() > 0)
                .map(|(s, _)| s);
            let Some(victim) = victim else {
                return false;
            };
            let entry = &mut self.entries[victim];
            let freed = entry.variants.drop_compressed();
            entry.cost -= freed;
            self.used -= freed;
            self.forget_compressed(freed);
        }
        while self.used + bytes > MAX_TOTAL {
            let victim = self.entries.iter().map(|(s, _)| s).find(|s| *s != slot);
            let Some(victim) = victim else {
                return false;
            };
            self.remove(victim);
        }
        true
    }

    /// Stores `variants` (read when the file had `identity`, with `sidecars` beside it)
    /// under `key`, evicting entries to stay within [`MAX_TOTAL`], and returns its slot.
    /// `watched` says whether [`FileCache::watch`] covered it before it was read.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        key: &str,
        path: PathBuf,
        watched: bool,
        identity: FileIdentity,
        sidecars: Vec<(PathBuf, FileIdentity)>,
        variants: Variants,
        now: Instant,
    ) -> usize {
        if let Some(slot) = self.index.get(key).copied() {
            self.remove(slot);
        }
        let held = variants.held_bytes() + variants.open_files() * OPEN_FILE_COST;
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
            variants,
            identity,
            sidecars,
            checked: now,
            cost,
        });
        self.index.insert(key.to_string(), slot);
        slot
    }

    fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.entries.try_remove(slot) {
            self.index.remove(&entry.key);
            self.used -= entry.cost;
            self.forget_compressed(entry.variants.compressed_bytes());
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
    use crate::files::test_variants;
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
                Vec::new(),
                test_variants(b"hello"),
                start,
            );
            let called = Cell::new(false);
            let got = cache
                .lookup(
                    "/a",
                    || start + *elapsed,
                    |_| {
                        called.set(true);
                        *now_identity
                    },
                )
                .is_some();
            assert_eq!(
                (got, called.get()),
                (*hit, *checked),
                "{elapsed:?} {now_identity:?}"
            );
            // A dropped entry is gone; a kept one stays.
            assert_eq!(cache.lookup("/a", || start, |_| None).is_some(), *hit);
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
            Vec::new(),
            test_variants(b"1"),
            now,
        );
        let first = cache.used();
        cache.insert(
            "/a",
            PathBuf::from("/a"),
            false,
            identity(2, 1),
            Vec::new(),
            test_variants(b"22"),
            now,
        );
        assert_eq!(cache.used(), first + 1, "replaced, not added");
        for i in 0..400 {
            cache.insert(
                &format!("/big{i}"),
                PathBuf::from(format!("/big{i}")),
                false,
                identity(MAX_FILE, i),
                Vec::new(),
                test_variants(&big),
                now,
            );
            assert!(cache.used() <= MAX_TOTAL);
        }
        assert!(
            cache.used() > MAX_TOTAL - 2 * MAX_FILE as usize,
            "budget is used"
        );
        assert!(
            cache.lookup("/big399", || now, |_| None).is_some(),
            "newest entry kept"
        );
        assert!(cache.accepts(MAX_FILE));
        assert!(!cache.accepts(MAX_FILE + 1));
    }

    /// Letters drawn by xorshift: text that compresses to a bit over half its size.
    fn letters(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'a' + (state % 26) as u8
            })
            .collect()
    }

    #[test]
    fn compressed_copies_are_made_once_and_kept_within_their_budget() {
        let mut cache = FileCache::new(Duration::from_secs(1));
        let now = Instant::now();
        let files = 120;
        for i in 0..files {
            let key = format!("/f{i}.txt");
            let slot = cache.insert(
                &key,
                PathBuf::from(&key),
                true,
                identity(MAX_FILE, i),
                Vec::new(),
                test_variants(&letters(MAX_FILE as usize, i)),
                now,
            );
            let rep = cache.representation(slot, Coding::Gzip).expect("gzip copy");
            assert_eq!(rep.coding, Coding::Gzip);
            assert!(rep.len() < MAX_FILE * 3 / 4, "{} bytes", rep.len());
            assert!(cache.compressed <= MAX_COMPRESSED, "{}", cache.compressed);
            assert!(cache.used() <= MAX_TOTAL);
            // A second request is served the kept copy: nothing is compressed again.
            let again = cache.representation(slot, Coding::Gzip).expect("kept");
            assert!(matches!(again, Cow::Borrowed(_)));
        }
        let counters = cache.counters().clone();
        assert_eq!(counters.compressions[2].load(Relaxed), files);
        assert!(
            cache.compressed > MAX_COMPRESSED / 2,
            "the budget is used: {}",
            cache.compressed
        );
        assert_eq!(
            counters.compressed_bytes.load(Relaxed),
            cache.compressed as i64
        );
        // The newest file kept its copy; the oldest lost theirs to make room.
        let newest = cache.lookup(&format!("/f{}.txt", files - 1), || now, |_| None);
        let newest = cache.variants(newest.expect("cached")).expect("entry");
        assert!(newest.ready(Coding::Gzip).is_some());
        let oldest = cache.lookup("/f0.txt", || now, |_| None).expect("cached");
        assert!(
            cache
                .variants(oldest)
                .unwrap()
                .ready(Coding::Gzip)
                .is_none()
        );
        // Dropping everything gives every byte back.
        cache.clear();
        assert_eq!(counters.compressed_bytes.load(Relaxed), 0);
        assert_eq!(cache.compressed, 0);
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
