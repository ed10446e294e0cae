//! The per-worker cache of loaded paths with least-recently-used eviction.
//!
//! Entries live in a slab and are threaded on one of two intrusive doubly-linked lists, so a hit,
//! an insert and an eviction are O(1). Entries that keep a file open are on their own list, so
//! the open-file limit evicts only them. Every other entry (bodies in memory, redirects, errors)
//! is on the memory list. Every entry counts against the byte budget.

use std::collections::HashMap;
use std::time::Instant;

use slab::Slab;

use super::load::{CacheKey, FileEntry, IdentityBody, LoadError};

/// Estimated bytes of bookkeeping per entry beyond its bodies and key: the slab node, the map
/// slot, the header strings and the path buffer. An estimate, so that error entries, which have
/// no body, still count against the budget.
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

    fn body_bytes(&self) -> usize {
        match self {
            EntryKind::File(file) => file.body_bytes(),
            EntryKind::Redirect | EntryKind::Failed(_) => 0,
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
    index: HashMap<CacheKey, usize>,
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
            index: HashMap::new(),
            nodes: Slab::new(),
            memory: Ends::default(),
            open_files: Ends::default(),
            used_bytes: 0,
            budget_bytes,
            max_open_files,
        }
    }

    /// Returns the entry for `key` and marks it most recently used.
    pub fn get_mut(&mut self, key: &CacheKey) -> Option<&mut CacheEntry> {
        let slot = *self.index.get(key)?;
        self.unlink(slot);
        self.push_newest(slot);
        self.nodes.get_mut(slot).map(|node| &mut node.entry)
    }

    /// Stores `entry` under `key`, replacing any previous one, then evicts the least recently used
    /// other entries until the budget and the open-file limit hold. The new entry itself is never
    /// evicted here, even when it alone exceeds the budget.
    pub fn insert(&mut self, key: CacheKey, entry: CacheEntry) {
        self.remove(&key);

        let list = if entry.kind.holds_open_file() {
            ListId::OpenFiles
        } else {
            ListId::Memory
        };
        let cost = entry
            .kind
            .body_bytes()
            .saturating_add(key.path.as_bytes().len())
            .saturating_add(ENTRY_OVERHEAD_BYTES);
        let slot = self.nodes.insert(Node {
            key: key.clone(),
            entry,
            cost,
            list,
            newer: None,
            older: None,
        });
        self.index.insert(key, slot);
        self.used_bytes = self.used_bytes.saturating_add(cost);
        self.push_newest(slot);

        self.evict(slot);
    }

    pub fn remove(&mut self, key: &CacheKey) {
        if let Some(slot) = self.index.remove(key) {
            self.unlink(slot);
            if let Some(node) = self.nodes.try_remove(slot) {
                self.used_bytes = self.used_bytes.saturating_sub(node.cost);
            }
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
            self.evict_slot(victim);
        }
        while self.used_bytes > self.budget_bytes {
            let victim = self
                .oldest_except(ListId::Memory, keep)
                .or_else(|| self.oldest_except(ListId::OpenFiles, keep));
            let Some(victim) = victim else {
                break;
            };
            self.evict_slot(victim);
        }
    }

    fn evict_slot(&mut self, slot: usize) {
        if let Some(key) = self.nodes.get(slot).map(|node| node.key.clone()) {
            self.remove(&key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::path::normalize_path;

    fn key(name: &str) -> CacheKey {
        CacheKey {
            route: 0,
            path: normalize_path(name, false).unwrap_or_else(|error| panic!("{name}: {error:?}")),
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
        assert!(cache.get_mut(&key("a")).is_some());
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["a", "c", "b"]);
        assert!(cache.get_mut(&key("b")).is_some());
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["b", "a", "c"]);
        assert!(cache.get_mut(&key("missing")).is_none());
    }

    #[test]
    fn remove_relinks_neighbours() {
        let mut cache = Cache::new(usize::MAX, 4);
        for name in ["a", "b", "c", "d"] {
            cache.insert(key(name), failed());
        }
        cache.remove(&key("b"));
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["d", "c", "a"]);
        cache.remove(&key("d"));
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["c", "a"]);
        cache.remove(&key("a"));
        assert_eq!(cache.keys_newest_first(ListId::Memory), ["c"]);
        cache.remove(&key("c"));
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
        assert!(cache.get_mut(&key("a")).is_some());
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
