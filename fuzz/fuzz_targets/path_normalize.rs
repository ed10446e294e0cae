//! Normalizes arbitrary request paths. A result must be relative, made of plain segments (none
//! empty, `.`, `..`, or containing NUL or `\`), free of `.`-prefixed segments when dotfiles
//! are off, and so stay under any root it is joined to. The same holds for a whole request
//! path normalized for routing and stripped of a route prefix.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use ringfront::files::path::{NormalizedPath, normalize_path, normalize_request_path};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let serve_dotfiles = flags & 1 == 1;

    if let Ok(path) = normalize_path(raw, serve_dotfiles) {
        check(&path, serve_dotfiles);
    }

    let prefix = normalize_request_path("/static/").expect("prefix normalizes");
    if let Ok(whole) = normalize_request_path(raw) {
        check(&whole, true);
        if let Some(below) = whole.strip_prefix(&prefix) {
            check(&below, true);
        }
    }
});

fn check(path: &NormalizedPath, serve_dotfiles: bool) {
    let bytes = path.as_bytes();
    if !bytes.is_empty() {
        for segment in bytes.split(|&byte| byte == b'/') {
            assert!(!segment.is_empty(), "empty segment in {bytes:?}");
            assert_ne!(segment, b".", "dot segment in {bytes:?}");
            assert_ne!(segment, b"..", "dot-dot segment in {bytes:?}");
            assert!(!segment.contains(&0), "NUL in {bytes:?}");
            assert!(!segment.contains(&b'\\'), "backslash in {bytes:?}");
            if !serve_dotfiles {
                assert_ne!(segment.first(), Some(&b'.'), "dotfile in {bytes:?}");
            }
        }
    }

    let root = Path::new("/srv/root");
    let joined = root.join(path.as_path());
    assert!(joined.starts_with(root), "{joined:?} escapes the root");
    let below: Vec<Component<'_>> = joined.strip_prefix(root).unwrap().components().collect();
    assert!(
        below
            .iter()
            .all(|part| matches!(part, Component::Normal(_))),
        "{joined:?} has a non-plain component"
    );
}
