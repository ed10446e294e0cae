//! Buffers kept from request heads that a connection has finished with, so that parsing the
//! next head refills them in place instead of allocating. The parser takes them, and
//! [`RequestDecoder::recycle`](super::RequestDecoder::recycle) gives them back. This module
//! decides how much is kept while a connection waits, and it parses nothing itself.

use super::request::{Header, RequestHead};

/// Maximum bytes kept for reuse: the capacity of the method, the target and every header name
/// and value, plus per header entry its two list slots and an estimate of the allocator's
/// overhead. The 12-field browser head of `benches/http_parse.rs`, with session cookies, needs
/// about 2 KiB counted this way, so 4 KiB leaves room for larger cookies. 4 KiB is also the
/// buffer capacity a connection may keep while idle, so a keep-alive connection that once
/// received a large head does not go on holding it. A buffer that does not fit is freed.
pub const MAX_RECYCLED_HEAD_BYTES: usize = 4 * 1024;

/// List slots a recycled list may have beyond twice its kept entries before it is shrunk.
const SPARE_SLOTS: usize = 4;

/// Estimated bytes the allocator adds to each heap block (glibc's chunk header, rounded up).
const ALLOCATION_OVERHEAD_BYTES: usize = 16;

/// Bytes one kept header entry costs beyond its capacity: a slot in each of the two lists and
/// the allocator's overhead for its name and value.
const ENTRY_COST_BYTES: usize = 2 * std::mem::size_of::<Header>() + 2 * ALLOCATION_OVERHEAD_BYTES;

/// Empty buffers with capacity, ready for the next request head.
///
/// Every string and vector in here is empty. The parser appends to them and moves them into the
/// [`RequestHead`] it returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadBuffers {
    pub(super) method: String,
    pub(super) target: String,
    /// The list that becomes [`RequestHead::headers`].
    pub(super) headers: Vec<Header>,
    /// Header entries whose name and value are empty, in the order the next head uses them. The
    /// first entry receives the first header field.
    pub(super) entries: Vec<Header>,
}

impl HeadBuffers {
    /// Takes back the buffers of `head`, keeping at most `max_headers` header entries and at
    /// most [`MAX_RECYCLED_HEAD_BYTES`], counted as that constant describes.
    ///
    /// Entries are kept in the order the head received them, so the next head of the same shape
    /// finds each name and value buffer already large enough. Each kept entry counts its two list
    /// slots against the budget, and a list with more than twice the slots it needs (plus a few)
    /// is shrunk, so a head of many fields is not kept whole.
    pub(crate) fn recycle(&mut self, head: RequestHead, max_headers: usize) {
        let RequestHead {
            mut method,
            mut target,
            headers: mut entries,
            ..
        } = head;
        let mut budget = MAX_RECYCLED_HEAD_BYTES;

        method.clear();
        if !take_budget(&mut budget, method.capacity()) {
            method = String::new();
        }
        target.clear();
        if !take_budget(&mut budget, target.capacity()) {
            target = String::new();
        }

        // Entries the last head did not use go after the ones it did, so the order of use stays
        // the order of the fields in the most recent head.
        self.entries.splice(0..0, entries.drain(..));
        let mut kept_entries = 0usize;
        self.entries.retain_mut(|entry| {
            entry.name.clear();
            entry.value.clear();
            let bytes = entry.name.capacity().saturating_add(entry.value.capacity()).saturating_add(ENTRY_COST_BYTES);
            let keep = kept_entries < max_headers && take_budget(&mut budget, bytes);
            if keep {
                kept_entries += 1;
            }
            keep
        });
        // Steady traffic grows a list to at most twice what a head needs, so this shrinks only
        // after an unusually wide head.
        let slot_limit = kept_entries.saturating_mul(2).saturating_add(SPARE_SLOTS);
        if self.entries.capacity() > slot_limit {
            self.entries.shrink_to(kept_entries);
        }
        if entries.capacity() > slot_limit {
            entries.shrink_to(kept_entries);
        }

        self.method = method;
        self.target = target;
        self.headers = entries;
    }
}

/// Subtracts `bytes` from `budget` and returns true if they fit.
fn take_budget(budget: &mut usize, bytes: usize) -> bool {
    match budget.checked_sub(bytes) {
        Some(rest) => {
            *budget = rest;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{BodyFraming, Version};

    fn head(target: &str, fields: &[Field]) -> RequestHead {
        RequestHead {
            method: "GET".to_owned(),
            target: target.to_owned(),
            version: Version::Http11,
            headers: fields
                .iter()
                .map(|&(name, value_bytes)| Header {
                    name: name.to_owned(),
                    value: vec![b'v'; value_bytes],
                })
                .collect(),
            framing: BodyFraming::Empty,
            keep_alive: true,
            expect_continue: false,
        }
    }

    #[test]
    fn recycle_empties_buffers() {
        let mut buffers = HeadBuffers::default();
        buffers.recycle(head("/a", &[("Host", 5), ("Accept", 3)]), 100);
        assert!(buffers.method.is_empty());
        assert!(buffers.target.is_empty());
        assert!(buffers.headers.is_empty());
        assert_eq!(buffers.entries.len(), 2);
        assert!(buffers.entries.iter().all(|entry| entry.name.is_empty()));
        assert!(buffers.entries.iter().all(|entry| entry.value.is_empty()));
    }

    #[test]
    fn recycle_keeps_capacity() {
        let mut buffers = HeadBuffers::default();
        buffers.recycle(head("/index.html", &[("Host", 11)]), 100);
        assert!(buffers.method.capacity() >= 3);
        assert!(buffers.target.capacity() >= 11);
        assert!(buffers.headers.capacity() >= 1);
        assert!(buffers.entries.first().is_some_and(|entry| entry.value.capacity() >= 11));
    }

    #[test]
    fn recycle_keeps_order_of_use() {
        let mut buffers = HeadBuffers::default();
        buffers.recycle(head("/", &[("A", 10), ("B", 20), ("C", 30)]), 100);
        let capacities: Vec<usize> = buffers
            .entries
            .iter()
            .map(|entry| entry.value.capacity())
            .collect();
        assert_eq!(capacities, vec![10, 20, 30]);
    }

    #[test]
    fn recycle_puts_leftovers_last() {
        let mut buffers = HeadBuffers::default();
        buffers.recycle(head("/", &[("A", 10), ("B", 20), ("C", 30)]), 100);
        // A head with one field used the first entry, the other two are left over.
        let leftovers: Vec<Header> = buffers.entries.drain(1..).collect();
        buffers.entries = leftovers;
        buffers.recycle(head("/", &[("D", 40)]), 100);
        let capacities: Vec<usize> = buffers
            .entries
            .iter()
            .map(|entry| entry.value.capacity())
            .collect();
        assert_eq!(capacities, vec![40, 20, 30]);
    }

    /// A head of many short fields, like the 99-field heads a client may send, keeps neither all
    /// its entries nor list slots for all of them.
    #[test]
    fn recycle_wide_head_bound() {
        let fields = [("X-Field", 35); 99];
        let mut buffers = HeadBuffers::default();
        buffers.recycle(head("/", &fields), 100);
        let kept_entries = buffers.entries.len();
        assert!(kept_entries < fields.len(), "{kept_entries} entries kept");
        assert!(buffers.entries.capacity() <= 2 * kept_entries + SPARE_SLOTS, "{} slots", buffers.entries.capacity());
        assert!(buffers.headers.capacity() <= 2 * kept_entries + SPARE_SLOTS, "{} slots", buffers.headers.capacity());
        let slot_bytes = (buffers.entries.capacity() + buffers.headers.capacity()) * std::mem::size_of::<Header>();
        let text_bytes: usize = buffers.entries.iter().map(|entry| entry.name.capacity() + entry.value.capacity()).sum();
        assert!(slot_bytes + text_bytes <= 2 * MAX_RECYCLED_HEAD_BYTES, "{slot_bytes} + {text_bytes} bytes");
    }

    #[test]
    fn recycle_entry_count_bound() {
        let mut buffers = HeadBuffers::default();
        let fields = [("A", 1); 10];
        buffers.recycle(head("/", &fields), 4);
        assert_eq!(buffers.entries.len(), 4);
    }

    /// A header field as its name and the length of its value.
    type Field = (&'static str, usize);

    #[test]
    fn recycle_byte_bound() {
        let cases: &[(&str, &[Field], usize)] = &[
            // A value larger than the whole budget is freed, and the fields after it are kept.
            ("/", &[("Cookie", MAX_RECYCLED_HEAD_BYTES + 1), ("Host", 9)], 1),
            // Fields are kept in order until the budget runs out.
            ("/", &[("A", 1500), ("B", 1500), ("C", 1500)], 2),
            // A target larger than the budget is freed, and the fields are kept.
            (&"/x".repeat(MAX_RECYCLED_HEAD_BYTES), &[("Host", 9)], 1),
        ];
        for (target, fields, expected) in cases {
            let mut buffers = HeadBuffers::default();
            buffers.recycle(head(target, fields), 100);
            assert_eq!(buffers.entries.len(), *expected, "{fields:?}");
            let bytes: usize = buffers.method.capacity()
                + buffers.target.capacity()
                + buffers
                    .entries
                    .iter()
                    .map(|entry| entry.name.capacity() + entry.value.capacity() + ENTRY_COST_BYTES)
                    .sum::<usize>();
            assert!(bytes <= MAX_RECYCLED_HEAD_BYTES, "{fields:?}: {bytes} bytes kept");
        }
    }
}
