//! Conditional request evaluation (RFC 9110 §13): pure functions over header values and the
//! validators of the selected representation. Nothing here reads files or the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::RequestHead;

/// The validators of the representation a response would carry.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// A strong entity tag including its quotes, such as `"3f2a9c0d11b4e870"`.
    pub etag: &'a str,
    /// Modification time; compared at whole-second resolution as HTTP dates carry no fraction.
    pub last_modified: SystemTime,
}

/// The precondition header fields of a request, one slice per field line received.
/// An empty vector means the field is absent.
#[derive(Debug, Clone, Default)]
pub struct Conditions<'a> {
    pub if_match: Vec<&'a [u8]>,
    pub if_none_match: Vec<&'a [u8]>,
    pub if_modified_since: Vec<&'a [u8]>,
    pub if_unmodified_since: Vec<&'a [u8]>,
}

impl<'a> Conditions<'a> {
    /// Collects the precondition fields of `head`, in one pass over its fields: a cache hit
    /// runs this for every request, and most requests have none of them.
    pub fn from_head(head: &'a RequestHead) -> Self {
        let mut conditions = Conditions::default();
        for header in &head.headers {
            // All four names start with "if-"; the other fields are passed over with one compare.
            let Some(rest) = header.name.get(..3).filter(|prefix| prefix.eq_ignore_ascii_case("if-")).and(header.name.get(3..)) else {
                continue;
            };
            let list = if rest.eq_ignore_ascii_case("match") {
                &mut conditions.if_match
            } else if rest.eq_ignore_ascii_case("none-match") {
                &mut conditions.if_none_match
            } else if rest.eq_ignore_ascii_case("modified-since") {
                &mut conditions.if_modified_since
            } else if rest.eq_ignore_ascii_case("unmodified-since") {
                &mut conditions.if_unmodified_since
            } else {
                continue;
            };
            list.push(header.value.as_slice());
        }
        conditions
    }
}

/// The result of evaluating preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the representation (Range handling comes next).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates preconditions in the order of RFC 9110 §13.2.2.
///
/// `safe_method` is true for GET and HEAD, the only methods for which a matching If-None-Match
/// gives 304 and for which If-Modified-Since is considered. A field that fails to parse is
/// treated as one that matches nothing, and an unparseable date is ignored (RFC 9110 §13.1.3,
/// §13.1.4).
pub fn evaluate(
    conditions: &Conditions<'_>,
    validators: &Validators<'_>,
    safe_method: bool,
) -> Precondition {
    let last_modified = unix_seconds(validators.last_modified);

    // Steps 1 and 2: If-Match, else If-Unmodified-Since.
    if !conditions.if_match.is_empty() {
        if !list_matches(&conditions.if_match, validators.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = single_date(&conditions.if_unmodified_since)
        && last_modified > date
    {
        return Precondition::Failed;
    }

    // Steps 3 and 4: If-None-Match, else If-Modified-Since for GET and HEAD.
    if !conditions.if_none_match.is_empty() {
        if list_matches(&conditions.if_none_match, validators.etag, Comparison::Weak) {
            return if safe_method {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe_method
        && let Some(date) = single_date(&conditions.if_modified_since)
        && last_modified <= date
    {
        return Precondition::NotModified;
    }

    Precondition::Proceed
}

/// Entity-tag comparison functions of RFC 9110 §8.8.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Both tags are strong and their opaque parts are equal.
    Strong,
    /// The opaque parts are equal, either tag may be weak.
    Weak,
}

/// Checks whether any field line is `*` or lists a tag equal to `current` (a strong tag with
/// quotes).
fn list_matches(lines: &[&[u8]], current: &str, comparison: Comparison) -> bool {
    lines.iter().any(|line| {
        let line = line.trim_ascii();
        line == b"*" || EntityTags::new(line).any(|tag| tag.matches(current, comparison))
    })
}

/// One entity tag as sent by a client (RFC 9110 §8.8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    /// The opaque tag including its quotes.
    pub opaque: &'a [u8],
}

impl EntityTag<'_> {
    /// Parses a field value made of exactly one entity tag, as in If-Range.
    pub fn parse_single(value: &[u8]) -> Option<EntityTag<'_>> {
        let mut tags = EntityTags::new(value.trim_ascii());
        let tag = tags.next()?;
        if tags.rest.is_empty() {
            Some(tag)
        } else {
            None
        }
    }

    /// Compares with our own tag `current`, which is always strong.
    pub fn matches(&self, current: &str, comparison: Comparison) -> bool {
        if comparison == Comparison::Strong && self.weak {
            return false;
        }
        self.opaque == current.as_bytes()
    }
}

/// An iterator over a comma-separated entity-tag list. It stops at the first syntax error, so a
/// malformed member and everything after it match nothing.
struct EntityTags<'a> {
    rest: &'a [u8],
}

impl<'a> EntityTags<'a> {
    fn new(list: &'a [u8]) -> Self {
        EntityTags { rest: list }
    }
}

impl<'a> Iterator for EntityTags<'a> {
    type Item = EntityTag<'a>;

    fn next(&mut self) -> Option<EntityTag<'a>> {
        // RFC 9110 §5.6.1: empty list elements and OWS around commas are allowed.
        let start = self
            .rest
            .iter()
            .position(|&byte| !matches!(byte, b',' | b' ' | b'\t'))?;
        let rest = self.rest.get(start..)?;

        let (weak, quoted) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let body = quoted.strip_prefix(b"\"")?;
        let close = body.iter().position(|&byte| byte == b'"')?;
        let opaque_chars = body.get(..close)?;
        if !opaque_chars.iter().all(|&byte| is_etagc(byte)) {
            self.rest = &[];
            return None;
        }
        let opaque = quoted.get(..close + 2)?;
        self.rest = quoted.get(close + 2..)?;
        Some(EntityTag { weak, opaque })
    }
}

/// RFC 9110 §8.8.3: `etagc = %x21 / %x23-7E / obs-text`.
fn is_etagc(byte: u8) -> bool {
    byte == 0x21 || (0x23..=0x7e).contains(&byte) || byte >= 0x80
}

/// Parses a date field received on exactly one line; anything else is ignored.
fn single_date(lines: &[&[u8]]) -> Option<u64> {
    match lines {
        [line] => parse_date(line),
        _ => None,
    }
}

/// Parses an HTTP-date (RFC 9110 §5.6.7) into whole seconds since the Unix epoch.
pub fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value.trim_ascii()).ok()?;
    httpdate::parse_http_date(text).ok().map(unix_seconds)
}

/// Returns whole seconds since the Unix epoch, with earlier times as 0.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TAG: &str = "\"abc\"";
    /// Sun, 06 Nov 1994 08:49:37 GMT.
    const MODIFIED: u64 = 784_111_777;
    const AT: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    use Precondition::{Failed, NotModified, Proceed};

    /// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, safe method, expected.
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        bool,
        Precondition,
    );

    const CASES: &[Case] = &[
        // No preconditions.
        (&[], &[], &[], &[], true, Proceed),
        (&[], &[], &[], &[], false, Proceed),
        // If-Match: strong comparison, `*`, lists.
        (&["\"abc\""], &[], &[], &[], true, Proceed),
        (&["*"], &[], &[], &[], true, Proceed),
        (&[" * "], &[], &[], &[], true, Proceed),
        (&["\"x\", \"abc\""], &[], &[], &[], true, Proceed),
        (&["\"x\"", "\"abc\""], &[], &[], &[], true, Proceed),
        (&["\"x\""], &[], &[], &[], true, Failed),
        (&["W/\"abc\""], &[], &[], &[], true, Failed),
        (&["abc"], &[], &[], &[], true, Failed),
        (&["\"abc"], &[], &[], &[], true, Failed),
        (&[""], &[], &[], &[], true, Failed),
        // If-Unmodified-Since, only without If-Match.
        (&[], &[], &[], &[AT], true, Proceed),
        (&[], &[], &[], &[AFTER], true, Proceed),
        (&[], &[], &[], &[BEFORE], true, Failed),
        (&["\"abc\""], &[], &[], &[BEFORE], true, Proceed),
        (&[], &[], &[], &["not a date"], true, Proceed),
        (&[], &[], &[], &[BEFORE, BEFORE], true, Proceed),
        // If-None-Match: weak comparison, `*`, lists; 304 for GET/HEAD, 412 otherwise.
        (&[], &["\"abc\""], &[], &[], true, NotModified),
        (&[], &["W/\"abc\""], &[], &[], true, NotModified),
        (&[], &["*"], &[], &[], true, NotModified),
        (&[], &["\"x\",W/\"abc\""], &[], &[], true, NotModified),
        (&[], &[" , \"x\" ,, \"abc\" "], &[], &[], true, NotModified),
        (&[], &["\"x\"", "\"abc\""], &[], &[], true, NotModified),
        (&[], &["\"x\""], &[], &[], true, Proceed),
        (&[], &["\"ABC\""], &[], &[], true, Proceed),
        (&[], &["\"abc\""], &[], &[], false, Failed),
        (&[], &["\"x\""], &[], &[], false, Proceed),
        // A syntax error ends the list, so later members never match.
        (&[], &["bad, \"abc\""], &[], &[], true, Proceed),
        (&[], &["\"a b\", \"abc\""], &[], &[], true, Proceed),
        // If-Modified-Since, only without If-None-Match and only for GET/HEAD.
        (&[], &[], &[AT], &[], true, NotModified),
        (&[], &[], &[AFTER], &[], true, NotModified),
        (&[], &[], &[BEFORE], &[], true, Proceed),
        (&[], &[], &[AT], &[], false, Proceed),
        (&[], &["\"x\""], &[AT], &[], true, Proceed),
        (
            &[],
            &[],
            &["Sunday, 06-Nov-94 08:49:37 GMT"],
            &[],
            true,
            NotModified,
        ),
        (
            &[],
            &[],
            &["Sun Nov  6 08:49:37 1994"],
            &[],
            true,
            NotModified,
        ),
        (&[], &[], &["yesterday"], &[], true, Proceed),
        (&[], &[], &[AT, AT], &[], true, Proceed),
        // Order: a failed If-Match wins over a matching If-None-Match.
        (&["\"x\""], &["\"abc\""], &[], &[], true, Failed),
        (&["\"abc\""], &["\"abc\""], &[], &[], true, NotModified),
        (&[], &["\"abc\""], &[], &[BEFORE], true, Failed),
    ];

    #[test]
    fn evaluate_case_table() {
        let validators = Validators {
            etag: TAG,
            last_modified: UNIX_EPOCH + Duration::from_millis(MODIFIED * 1000 + 999),
        };
        let lines = |values: &'static [&'static str]| -> Vec<&'static [u8]> {
            values.iter().map(|value| value.as_bytes()).collect()
        };
        for (index, &(if_match, if_none_match, ims, ius, safe, expected)) in
            CASES.iter().enumerate()
        {
            let conditions = Conditions {
                if_match: lines(if_match),
                if_none_match: lines(if_none_match),
                if_modified_since: lines(ims),
                if_unmodified_since: lines(ius),
            };
            let actual = evaluate(&conditions, &validators, safe);
            assert_eq!(actual, expected, "case {index}: {:?}", CASES.get(index));
        }
    }

    #[test]
    fn single_tag_table() {
        let cases: &[(&str, Option<(bool, &str)>)] = &[
            ("\"abc\"", Some((false, "\"abc\""))),
            (" W/\"abc\" ", Some((true, "\"abc\""))),
            ("\"\"", Some((false, "\"\""))),
            ("\"abc\", \"x\"", None),
            ("abc", None),
            ("w/\"abc\"", None),
            ("", None),
        ];
        for &(value, expected) in cases {
            let actual = EntityTag::parse_single(value.as_bytes());
            let expected = expected.map(|(weak, opaque)| EntityTag {
                weak,
                opaque: opaque.as_bytes(),
            });
            assert_eq!(actual, expected, "value {value:?}");
        }
    }

    #[test]
    fn tag_comparison_table() {
        let cases = [
            (false, "\"abc\"", Comparison::Strong, true),
            (true, "\"abc\"", Comparison::Strong, false),
            (false, "\"abc\"", Comparison::Weak, true),
            (true, "\"abc\"", Comparison::Weak, true),
            (false, "\"abd\"", Comparison::Weak, false),
        ];
        for (weak, opaque, comparison, expected) in cases {
            let tag = EntityTag {
                weak,
                opaque: opaque.as_bytes(),
            };
            assert_eq!(
                tag.matches(TAG, comparison),
                expected,
                "{tag:?} {comparison:?}"
            );
        }
    }

    #[test]
    fn from_head_sorts_fields() {
        use crate::http::{BodyFraming, Header, Version};

        let fields = [
            ("If-None-Match", "\"a\""),
            ("IF-MATCH", "*"),
            ("if-modified-since", AT),
            ("Host", "example.org"),
            ("If-Range", "\"r\""),
            ("If", "x"),
            ("Iff-Match", "y"),
            ("If-Unmodified-Since", BEFORE),
            ("if-none-match", "\"b\""),
        ];
        let head = RequestHead {
            method: "GET".to_owned(),
            target: "/".to_owned(),
            version: Version::Http11,
            headers: fields.iter().map(|(name, value)| Header { name: (*name).to_owned(), value: value.as_bytes().to_vec() }).collect(),
            framing: BodyFraming::Empty,
            keep_alive: true,
            expect_continue: false,
        };

        let conditions = Conditions::from_head(&head);

        assert_eq!(conditions.if_match, [b"*".as_slice()]);
        assert_eq!(conditions.if_none_match, [b"\"a\"".as_slice(), b"\"b\"".as_slice()]);
        assert_eq!(conditions.if_modified_since, [AT.as_bytes()]);
        assert_eq!(conditions.if_unmodified_since, [BEFORE.as_bytes()]);
    }

    #[test]
    fn unix_seconds_before_epoch_is_zero() {
        let before = UNIX_EPOCH.checked_sub(Duration::from_secs(5));
        assert_eq!(before.map(unix_seconds), Some(0));
    }
}
