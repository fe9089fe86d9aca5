//! Wall-clock times as the server stores them, and as the wire protocol writes them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `micros` (since the Unix epoch) as ISO 8601 in UTC, the way Python's `isoformat()` writes
/// an aware datetime: `2026-11-25T22:11:00.881936+00:00`.
pub(crate) fn iso(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of day `z` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A new 10-character id from `[A-Za-z0-9]`, as the reference's handler and run ids.
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bits = uuid::Uuid::new_v4().as_u128();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(bits % 62) as usize] as char;
            bits /= 62;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_python_writes_them() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000+00:00");
        // 2026-11-25T22:11:00.881936Z
        assert_eq!(
            iso(1_795_644_660_881_936),
            "2026-11-25T22:11:00.881936+00:00"
        );
        assert_eq!(iso(951_782_400_000_001), "2000-02-29T00:00:00.000001+00:00");
    }

    #[test]
    fn ids_are_ten_alphanumerics_and_differ() {
        let a = new_id();
        assert_eq!(a.len(), 10);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_id());
    }
}
