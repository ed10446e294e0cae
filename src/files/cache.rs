//! The per-worker cache of loaded paths with least-recently-used eviction.
//!
//! Entries live in a slab and are threaded on one of two intrusive doubly-linked lists, so a hit,
//! an insert and an eviction are O(1). Entries that keep a file open are on their own list, so
//! the open-file limit evicts only them. Every other entry (bodies in memory, redirects, errors)
//! is on the memory list. Every entry counts against the byte budget.

use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use hashbrown::HashTable;
use slab::Slab;

use super::load::{CacheKey, FileEntry, IdentityBody, LoadError};
use super::path::NormalizedPath;

/// Estimated bytes of bookkeeping per entry beyond its bodies, prebuilt response fields and
/// key: the slab node, the map slot, the validator strings and the path buffer. An estimate, so
/// that error entries, which have no body, still count against the budget.
const ENTRY_OVERHEAD_BYTES: usize = 512;

/// A cached result for one path.
#[derive(Debug)]
pub(crate) struct CacheEntry {
    pub kind: EntryKind,
    /// When the entry was last found fresh. None until the first request after insertion uses
    /// it, so that request never revalidates and never returns a second load job.
    pub checked_at: Option<Instant>,
}

#[derive(Debug)]
pub(crate) enum EntryKind {
    File(Box<FileEntry>),
    /// 301 to the same path with `/` appended.
    Redirect,
    Failed(LoadError),
}

impl EntryKind {
    fn holds_open_file(&self) -> bool {
        match self {
            EntryKind::File(file) => matches!(file.identity.body, IdentityBody::File { .. }),
            EntryKind::Redirect | EntryKind::Failed(_) => false,
        }
    }

    /// Returns the bytes the entry holds for bodies and prebuilt response fields.
    fn held_bytes(&self) -> usize {
        match self {
            EntryKind::File(file) => file.body_bytes().saturating_add(file.head_bytes()),
            EntryKind::Redirect | EntryKind::Failed(_) => 0,
        }
    }
}

/// A cache key borrowed from a request, so that a lookup builds no owned [`CacheKey`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub route: usize,
    pub path: &'a NormalizedPath<'a>,
}

impl KeyRef<'_> {
    pub(crate) fn matches(self, key: &CacheKey) -> bool {
        key.route == self.route
            && key.path.trailing_slash() == self.path.trailing_slash()
            && key.path.as_bytes() == self.path.as_bytes()
    }
}

impl<'a> From<&'a CacheKey> for KeyRef<'a> {
    fn from(key: &'a CacheKey) -> Self {
        KeyRef {
            route: key.route,
            path: &key.path,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListId {
    Memory,
    OpenFiles,
}

struct Node {
    key: CacheKey,
    entry: CacheEntry,
    cost: usize,
    list: ListId,
    /// Neighbour towards the most recently used end.
    newer: Option<usize>,
    /// Neighbour towards the least recently used end.
    older: Option<usize>,
}

/// The two ends of one LRU list.
#[derive(Debug, Default, Clone, Copy)]
struct Ends {
    newest: Option<usize>,
    oldest: Option<usize>,
    len: usize,
}

pub(crate) struct Cache {
    /// Slab slots, found by the hash of the key stored in the node.
    index: HashTable<usize>,
    /// The seeded hasher of `index`. Failed loads are cached too, so clients choose keys, and
    /// with a predictable hash they could fill one probe sequence and make lookups linear.
    /// foldhash is not a keyed PRF, but its seed mixes 64 bits from the OS random source into
    /// foldhash's per-process seed (address layout and clock). No hash or table order reaches
    /// a response, so collisions would have to be found blind, and the byte budget bounds the
    /// number of entries.
    hasher: SeedableRandomState,
    nodes: Slab<Node>,
    memory: Ends,
    open_files: Ends,
    used_bytes: usize,
    budget_bytes: usize,
    max_open_files: usize,
}

impl Cache {
    pub fn new(budget_bytes: usize, max_open_files: usize) -> Self {
        Cache {
            index: HashTable::new(),
            hasher: SeedableRandomState::with_seed(os_random_seed(), SharedSeed::global_random()),
            nodes: Slab::new(),
            memory: Ends::default(),
            open_files: Ends::default(),
            used_bytes: 0,
            budget_bytes,
            max_open_files,
        }
    }

    /// Returns the entry for `key` and marks it most recently used.
    pub fn get_mut(&mut self, key: KeyRef<'_>) -> Option<&mut CacheEntry> {
        let slot = self.find(key)?;
        self.unlink(slot);
        self.push_newest(slot);
        self.nodes.get_mut(slot).map(|node| &mut node.entry)
    }

    /// Stores `entry` under `key`, replacing any previous one, then evicts the least recently used
    /// other entries until the budget and the open-file limit hold. The new entry itself is never
    /// evicted here, even when it alone exceeds the budget.
    pub fn insert(&mut self, key: CacheKey, entry: CacheEntry) {
        self.remove(KeyRef::from(&key));

        let list = if entry.kind.holds_open_file() {
            ListId::OpenFiles
        } else {
            ListId::Memory
        };
        let cost = entry
            .kind
            .held_bytes()
            .saturating_add(key.path.as_bytes().len())
            .saturating_add(ENTRY_OVERHEAD_BYTES);
        let hash = self.hash(KeyRef::from(&key));
        let slot = self.nodes.insert(Node {
            key,
            entry,
            cost,
            list,
            newer: None,
            older: None,
        });
        let nodes = &self.nodes;
        let hasher = &self.hasher;
        self.index.insert_unique(hash, slot, |&slot| {
            nodes
                .get(slot)
                .map_or(0, |node| hash_key(hasher, KeyRef::from(&node.key)))
        });
        self.used_bytes = self.used_bytes.saturating_add(cost);
        self.push_newest(slot);

        self.evict(slot);
    }

    pub fn remove(&mut self, key: KeyRef<'_>) {
        if let Some(slot) = self.find(key) {
            self.remove_slot(slot);
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Evicts least recently used entries other than `keep` until both limits hold or only
    /// `keep` is left.
    fn evict(&mut self, keep: usize) {
        while self.open_files.len > self.max_open_files {
            let Some(victim) = self.oldest_except(ListId::OpenFiles, keep) else {
                break;
            };
            self.remove_slot(victim);
        }
        while self.used_bytes > self.budget_bytes {
            let victim = self
                .oldest_except(ListId::Memory, keep)
                .or_else(|| self.oldest_except(ListId::OpenFiles, keep));
            let Some(victim) = victim else {
                break;
            };
            self.remove_slot(victim);
        }
    }

    fn find(&self, key: KeyRef<'_>) -> Option<usize> {
        let nodes = &self.nodes;
        let found = self.index.find(self.hash(key), |&slot| {
            nodes.get(slot).is_some_and(|node| key.matches(&node.key))
        });
        found.copied()
    }

    fn hash(&self, key: KeyRef<'_>) -> u64 {
        hash_key(&self.hasher, key)
    }

    /// Removes the node in `slot` from the index, its list and the slab.
    fn remove_slot(&mut self, slot: usize) {
        let Some(hash) = self
            .nodes
            .get(slot)
            .map(|node| self.hash(KeyRef::from(&node.key)))
        else {
            return;
        };
        if let Ok(found) = self.index.find_entry(hash, |&indexed| indexed == slot) {
            found.remove();
        }
        self.unlink(slot);
        if let Some(node) = self.nodes.try_remove(slot) {
            self.used_bytes = self.used_bytes.saturating_sub(node.cost);
        }
    }

    /// Returns the least recently used slot of `list`, or the one after it when that is `keep`.
    fn oldest_except(&self, list: ListId, keep: usize) -> Option<usize> {
        let oldest = self.ends(list).oldest?;
        if oldest != keep {
            return Some(oldest);
        }
        self.nodes.get(oldest)?.newer
    }

    fn ends(&self, list: ListId) -> &Ends {
        match list {
            ListId::Memory => &self.memory,
            ListId::OpenFiles => &self.open_files,
        }
    }

    fn ends_mut(&mut self, list: ListId) -> &mut Ends {
        match list {
            ListId::Memory => &mut self.memory,
            ListId::OpenFiles => &mut self.open_files,
        }
    }

    /// Puts a slot that is on no list at the newest end of its list.
    fn push_newest(&mut self, slot: usize) {
        let Some(list) = self.nodes.get(slot).map(|node| node.list) else {
            return;
        };
        let previous_newest = self.ends(list).newest;
        if let Some(node) = self.nodes.get_mut(slot) {
            node.newer = None;
            node.older = previous_newest;
        }
        if let Some(newest) = previous_newest.and_then(|newest| self.nodes.get_mut(newest)) {
            newest.newer = Some(slot);
        }

        let ends = self.ends_mut(list);
        ends.newest = Some(slot);
        if ends.oldest.is_none() {
            ends.oldest = Some(slot);
        }
        ends.len = ends.len.saturating_add(1);
    }

    /// Takes a slot off its list, joining its neighbours.
    fn unlink(&mut self, slot: usize) {
        let Some((list, newer, older)) = self
            .nodes
            .get(slot)
            .map(|node| (node.list, node.newer, node.older))
        else {
            return;
        };

        match newer.and_then(|newer| self.nodes.get_mut(newer)) {
            Some(node) => node.older = older,
            None => self.ends_mut(list).newest = older,
        }
        match older.and_then(|older| self.nodes.get_mut(older)) {
            Some(node) => node.newer = newer,
            None => self.ends_mut(list).oldest = newer,
        }
        if let Some(node) = self.nodes.get_mut(slot) {
            node.newer = None;
            node.older = None;
        }
        let ends = self.ends_mut(list);
        ends.len = ends.len.saturating_sub(1);
    }

    /// Returns the keys of one list from newest to oldest, for tests of the linking.
    #[cfg(test)]
    fn keys_newest_first(&self, list: ListId) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = self.ends(list).newest;
        while let Some(node) = cursor.and_then(|slot| self.nodes.get(slot)) {
            keys.push(String::from_utf8_lossy(node.key.path.as_bytes()).into_owned());
            cursor = node.older;
            assert!(keys.len() <= self.nodes.len(), "cycle in LRU list");
        }
        keys
    }
}

fn hash_key(hasher: &SeedableRandomState, key: KeyRef<'_>) -> u64 {
    hasher.hash_one((key.route, key.path.as_bytes(), key.path.trailing_slash()))
}

/// Returns 64 unpredictable bits: a constant hashed with a new std `RandomState`, whose SipHash
/// keys come from the OS random source.
fn os_random_seed() -> u64 {
    RandomState::new().hash_one(0u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::path::normalize_path;

    fn key(name: &str) -> CacheKey {
        CacheKey {
            route: 0,
            path: normalize_path(name, false)
                .unwrap_or_else(|error| panic!("{name}: {error:?}"))
                .into_owned(),
        }
    }

    fn failed() -> CacheEntry {
        CacheEntry {
            kind: EntryKind::Failed(LoadError::NotFound),
            checked_at: None,
        }
    }

    fn cost(name: &str) -> usize {
        name.len() + ENTRY_OVERHEAD_BYTES
    }

    #[test]
    fn insert_orders_newest_first() {
        let mut cache = Cache::new(usize::MAX, 4);
        for name in ["a", "b", "c"] {
            cache.insert(key(name), failed());
        }
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["c", "b", "a"]);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.used_bytes(), 3 * cost("a"));
    }

    #[test]
    fn get_moves_to_newest() {
        let mut cache = Cache::new(usize::MAX, 4);
        for name in ["a", "b", "c"] {
            cache.insert(key(name), failed());
        }
        assert!(cache.get_mut(KeyRef::from(&key("a"))).is_some());
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["a", "c", "b"]);
        assert!(cache.get_mut(KeyRef::from(&key("b"))).is_some());
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["b", "a", "c"]);
        assert!(cache.get_mut(KeyRef::from(&key("missing"))).is_none());
    }

    #[test]
    fn remove_relinks_neighbours() {
        let mut cache = Cache::new(usize::MAX, 4);
        for name in ["a", "b", "c", "d"] {
            cache.insert(key(name), failed());
        }
        cache.remove(KeyRef::from(&key("b")));
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["d", "c", "a"]);
        cache.remove(KeyRef::from(&key("d")));
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["c", "a"]);
        cache.remove(KeyRef::from(&key("a")));
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["c"]);
        cache.remove(KeyRef::from(&key("c")));
        assert!(cache.keys_newest_first(ListId::Memory).is_empty());
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn replace_keeps_one_entry() {
        let mut cache = Cache::new(usize::MAX, 4);
        cache.insert(key("a"), failed());
        cache.insert(key("a"), failed());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.used_bytes(), cost("a"));
    }

    #[test]
    fn budget_evicts_oldest() {
        let mut cache = Cache::new(3 * cost("a"), 4);
        for name in ["a", "b", "c"] {
            cache.insert(key(name), failed());
        }
        assert!(cache.get_mut(KeyRef::from(&key("a"))).is_some());
        cache.insert(key("d"), failed());
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["d", "a", "c"]);
        assert!(cache.used_bytes() <= 3 * cost("a"));
    }

    #[test]
    fn budget_keeps_new_entry() {
        let mut cache = Cache::new(1, 4);
        cache.insert(key("a"), failed());
        cache.insert(key("b"), failed());
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["b"]);
    }
}
