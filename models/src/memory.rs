//! How much memory this machine can still give: the check every reader of untrusted sizes
//! makes before allocating what a file or a scenario claims, so a claimed size that fits
//! `usize` but not the machine is an error, not an abort.

/// Memory the OS says is available now (Linux: `MemAvailable` of /proc/meminfo); None where
/// it cannot be read, and then no limit is applied beyond the checked arithmetic.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Ok when `bytes` fits in the available memory; else a message naming `what`, the need and
/// what is available.
pub fn check_fits(bytes: u64, what: &str) -> Result<(), String> {
    match available_bytes() {
        Some(available) if bytes > available => Err(format!(
            "{what} needs {} of memory, but only {} is available",
            human(bytes),
            human(available)
        )),
        _ => Ok(()),
    }
}

/// Bytes as a short human size (GiB, MiB, KiB).
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    UNITS
        .iter()
        .find(|(_, size)| bytes >= *size)
        .map(|(unit, size)| format!("{:.1} {unit}", bytes as f64 / *size as f64))
        .unwrap_or_else(|| format!("{bytes} B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_mem_available(text), Some(2048 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn a_claim_beyond_the_machine_is_refused_by_name() {
        if available_bytes().is_none() {
            return;
        }
        let e = check_fits(u64::MAX, "tensor `x`").unwrap_err();
        assert!(
            e.starts_with("tensor `x` needs 16777216.0 TiB of memory, but only ")
                && e.ends_with(" is available"),
            "{e}"
        );
        assert!(check_fits(1024, "a small thing").is_ok());
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human(512), "512 B");
    }
}
