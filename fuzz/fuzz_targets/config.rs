//! Checks arbitrary text as a configuration file. Parsing must never panic, and an error that
//! names a line must name one inside the text (or the line just past its end, where an
//! unterminated table or string is reported).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ringfront::config::Config;

/// Path prefixes skipped because reading a file under them can block or never end (for example
/// an error page at `/dev/zero` or `/dev/stdin`). Such a path is the operator's choice, and it
/// exercises the file system rather than the parser.
const UNBOUNDED_FILE_PREFIXES: [&str; 2] = ["/dev/", "/proc/"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if UNBOUNDED_FILE_PREFIXES
        .iter()
        .any(|prefix| text.contains(prefix))
    {
        return;
    }

    let Err(error) = Config::parse(&text, Path::new("fuzz.toml"), Path::new("/nonexistent"))
    else {
        return;
    };
    if let Some(line) = error.line {
        let line_count = text.lines().count();
        assert!(line >= 1, "line {line} is not 1-based");
        assert!(
            line <= line_count + 1,
            "line {line} is past the text's {line_count} lines"
        );
    }
    assert_eq!(error.file, Path::new("fuzz.toml"));
    assert!(!error.message.is_empty(), "error without a message");
});
