//! The Prometheus client conventions' process metrics (CPU seconds,
//! resident memory, open and maximum file descriptors, start time), read
//! from /proc on Linux at scrape time; absent on other systems.

/// Ticks per second of /proc's CPU times: USER_HZ, 100 on every Linux ABI
/// (the Go client's procfs assumes the same).
const USER_HZ: f64 = 100.0;

/// One reading of this process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub open_fds: u64,
    /// The soft limit; None when unlimited.
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// This process now, or None where /proc is not there to read.
pub(crate) fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (cpu_seconds, start_ticks) = parse_stat(&stat)?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| parse_boot_time(&s))?;
    Some(ProcessStats {
        cpu_seconds,
        resident_memory_bytes: parse_resident_bytes(&status)?,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
        max_fds: parse_max_fds(&limits),
        start_time_seconds: boot as f64 + start_ticks as f64 / USER_HZ,
    })
}

/// (user + system CPU seconds, start time in ticks after boot) from
/// `/proc/self/stat`. The command name may hold spaces and parentheses,
/// so fields are counted after its last `)`: utime and stime are fields
/// 14 and 15, starttime 22.
fn parse_stat(stat: &str) -> Option<(f64, u64)> {
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(((field(14)? + field(15)?) as f64 / USER_HZ, field(22)?))
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    Some(kib * 1024)
}

/// The soft `Max open files` of `/proc/self/limits`; None when unlimited.
fn parse_max_fds(limits: &str) -> Option<u64> {
    limits.lines().find_map(|l| l.strip_prefix("Max open files")?.split_whitespace().next()?.parse().ok())
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 123456 1000 10";
        assert_eq!(parse_stat(stat), Some((3.0, 123_456)));
    }

    #[test]
    fn resident_memory_is_read_in_kib() {
        assert_eq!(
            parse_resident_bytes("Name:\tfloodgate\nVmRSS:\t    2048 kB\nVmSwap: 0 kB\n"),
            Some(2 * 1024 * 1024)
        );
    }

    #[test]
    fn max_fds_is_the_soft_limit_and_unlimited_is_none() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(parse_max_fds("Max open files            unlimited            unlimited            files"), None);
    }

    #[test]
    fn boot_time_is_btime() {
        assert_eq!(parse_boot_time("cpu  1 2 3\nbtime 1796117845\nprocesses 9\n"), Some(1_796_117_845));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_as_alive() {
        let stats = read().expect("/proc is readable on Linux");
        assert!(stats.resident_memory_bytes > 0);
        assert!(stats.open_fds > 0);
        assert!(stats.start_time_seconds > 1.0e9, "{}", stats.start_time_seconds);
    }
}
