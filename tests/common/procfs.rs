//! Resource figures of a running process read from Linux's `/proc`: resident memory and open
//! file descriptors, for tests that check a server gives back what slow clients took.

use std::path::PathBuf;

/// Returns the resident set size of process `pid` in KiB, the `VmRSS` line of
/// `/proc/PID/status`.
///
/// # Panics
/// Panics if the file cannot be read or has no parsable `VmRSS` line (the process exited, or
/// this is not Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => panic!("failed to read {}: {error}", path.display()),
    };
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|number| number.trim().parse::<u64>().ok());
    match value {
        Some(kib) => kib,
        None => panic!("no VmRSS line in {}:\n{status}", path.display()),
    }
}

/// Returns the number of open file descriptors of process `pid`, the entries of
/// `/proc/PID/fd`.
///
/// # Panics
/// Panics if the directory cannot be listed (the process exited, or permission is missing).
pub fn open_fd_count(pid: u32) -> usize {
    let path = PathBuf::from(format!("/proc/{pid}/fd"));
    match std::fs::read_dir(&path) {
        Ok(entries) => entries.count(),
        Err(error) => panic!("failed to list {}: {error}", path.display()),
    }
}

/// Returns what each open file descriptor of process `pid` points to, such as `socket:[1234]`
/// or a file path, for failure messages. Descriptors closed while listing are left out.
pub fn open_fd_targets(pid: u32) -> Vec<String> {
    let path = PathBuf::from(format!("/proc/{pid}/fd"));
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut targets: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.path()).ok()?;
            Some(format!(
                "{} -> {}",
                entry.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    targets.sort();
    targets
}

/// Returns the signals that process `pid` has handlers for, the `SigCgt` mask of
/// `/proc/PID/status`: bit N-1 is set when signal N is caught.
///
/// # Panics
/// Panics if the file cannot be read or has no parsable `SigCgt` line.
pub fn caught_signals(pid: u32) -> u64 {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => panic!("failed to read {}: {error}", path.display()),
    };
    let mask = status.lines().find_map(|line| line.strip_prefix("SigCgt:"));
    match mask.map(|mask| u64::from_str_radix(mask.trim(), 16)) {
        Some(Ok(mask)) => mask,
        _ => panic!("no SigCgt line in {}", path.display()),
    }
}
