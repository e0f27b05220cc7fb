//! Human-readable quantities: counts in K/M/G and bytes in KiB/MiB/GiB.

/// 1234567 -> "1.23 M"; below 1000 the plain number.
pub fn si(count: u64) -> String {
    let c = count as f64;
    match count {
        0..1_000 => count.to_string(),
        1_000..1_000_000 => format!("{:.2} K", c / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} M", c / 1e6),
        _ => format!("{:.2} G", c / 1e9),
    }
}

/// 1536 -> "1.50 KiB".
pub fn bytes(count: u64) -> String {
    let c = count as f64;
    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;
    match count {
        0..K => format!("{count} B"),
        K..M => format!("{:.2} KiB", c / K as f64),
        M..G => format!("{:.2} MiB", c / M as f64),
        _ => format!("{:.2} GiB", c / G as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_as_expected() {
        assert_eq!(si(999), "999");
        assert_eq!(si(2_078_504), "2.08 M");
        assert_eq!(si(274_136_576), "274.14 M");
        assert_eq!(si(2_979_222_528), "2.98 G");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(4_816_896), "4.59 MiB");
    }
}
