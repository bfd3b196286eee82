//! Process metrics read from `/proc` (Linux), without new dependencies.
//! Anything unreadable is `None` and its sample is omitted, never a panic.

use std::fs;

/// Clock ticks per second of `/proc/*/stat` times. The kernel reports these
/// in USER_HZ, which is 100 on every architecture we run on; Prometheus'
/// own `procfs` library makes the same assumption rather than calling
/// `sysconf`, which would need `libc` (and `unsafe`).
const USER_HZ: f64 = 100.0;

/// The process metrics Prometheus' client libraries conventionally export.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// `process_resident_memory_bytes` (`VmRSS` of `/proc/self/status`).
    pub resident_memory_bytes: Option<u64>,
    /// `process_cpu_seconds_total` (user + system time).
    pub cpu_seconds: Option<f64>,
    /// `process_open_fds` (entries of `/proc/self/fd`).
    pub open_fds: Option<u64>,
    /// `process_start_time_seconds` (Unix time).
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads the current values; on non-Linux systems every field is `None`.
    pub fn read() -> Self {
        let stat = fs::read_to_string("/proc/self/stat").ok();
        let stat = stat.as_deref().and_then(parse_stat);
        let boot_time = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_boot_time(&s));
        ProcessStats {
            resident_memory_bytes: fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| parse_vm_rss(&s)),
            cpu_seconds: stat.map(|s| s.cpu_ticks as f64 / USER_HZ),
            open_fds: fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / USER_HZ),
        }
    }
}

/// The fields of `/proc/self/stat` we use, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stat {
    /// utime + stime.
    cpu_ticks: u64,
    /// Start time after boot.
    start_ticks: u64,
}

/// Parses `/proc/self/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces or `)`, so fields are counted from the
/// last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        start_ticks: field(22)?,
    })
}

/// `VmRSS:    1234 kB` from `/proc/self/status`, in bytes.
fn parse_vm_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

/// `btime <unix seconds>` from `/proc/stat`.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "1234 (evil) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 4 0 9000 1000000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                cpu_ticks: 300,
                start_ticks: 9000
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_rss_and_boot_time() {
        let status = "Name:\tbetanet\nVmPeak:\t  9 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1 2 3\n"), None);
    }

    #[test]
    fn reading_never_panics_and_works_on_linux() {
        let stats = ProcessStats::read();
        if cfg!(target_os = "linux") {
            assert!(stats.resident_memory_bytes.is_some_and(|b| b > 0));
            assert!(stats.open_fds.is_some_and(|n| n >= 3));
            assert!(stats.cpu_seconds.is_some());
            assert!(stats.start_time_seconds.is_some_and(|t| t > 1e9));
        }
    }
}
