//! Log times: Go's `time.RFC3339Nano` in UTC (what docker writes), and unix nanoseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Seconds and nanoseconds since the epoch; seconds are negative before 1970.
fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_digits(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut v = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Appends `t` as Go's `RFC3339Nano` in UTC: `2026-11-22T10:00:00.123456789Z`, trailing
/// zeros of the fraction dropped (no fraction at all on a whole second), as docker's
/// json-file does. `None` outside the years 0..=9999, which Go refuses to marshal.
pub(crate) fn push_rfc3339(out: &mut Vec<u8>, t: SystemTime) -> Option<()> {
    let (secs, nanos) = split(t);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&year) {
        return None;
    }
    let second_of_day = secs.rem_euclid(86_400) as u64;
    push_digits(out, year as u64, 4);
    out.push(b'-');
    push_digits(out, u64::from(month), 2);
    out.push(b'-');
    push_digits(out, u64::from(day), 2);
    out.push(b'T');
    push_digits(out, second_of_day / 3600, 2);
    out.push(b':');
    push_digits(out, second_of_day / 60 % 60, 2);
    out.push(b':');
    push_digits(out, second_of_day % 60, 2);
    if nanos != 0 {
        let mut fraction = nanos;
        let mut width = 9;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        out.push(b'.');
        push_digits(out, u64::from(fraction), width);
    }
    out.push(b'Z');
    Some(())
}

/// Parses an RFC 3339 time with any offset and 0 to 9 fractional digits.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// Nanoseconds since the epoch, the `local` format's time; `None` outside 1677..2262.
pub(crate) fn to_unix_nanos(t: SystemTime) -> Option<i64> {
    let (secs, nanos) = split(t);
    secs.checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))
}

pub(crate) fn from_unix_nanos(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(t: SystemTime) -> String {
        let mut out = Vec::new();
        push_rfc3339(&mut out, t).expect("in range");
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn formats_like_go_rfc3339nano() {
        // 2026-11-22T10:00:00Z
        let base = UNIX_EPOCH + Duration::from_secs(1_795_341_600);
        assert_eq!(fmt(base), "2026-11-22T10:00:00Z");
        assert_eq!(
            fmt(base + Duration::from_nanos(123_456_789)),
            "2026-11-22T10:00:00.123456789Z"
        );
        assert_eq!(
            fmt(base + Duration::from_nanos(392_036_780)),
            "2026-11-22T10:00:00.39203678Z"
        );
        assert_eq!(
            fmt(base + Duration::from_nanos(500_000_000)),
            "2026-11-22T10:00:00.5Z"
        );
        assert_eq!(
            fmt(base + Duration::from_nanos(1)),
            "2026-11-22T10:00:00.000000001Z"
        );
        assert_eq!(fmt(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            fmt(UNIX_EPOCH - Duration::from_nanos(1)),
            "1969-12-31T23:59:59.999999999Z"
        );
        // Leap day and the last second of a year.
        assert_eq!(
            fmt(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            fmt(UNIX_EPOCH + Duration::from_secs(253_402_300_799)),
            "9999-12-31T23:59:59Z"
        );
        assert!(push_rfc3339(
            &mut Vec::new(),
            UNIX_EPOCH + Duration::from_secs(253_402_300_800)
        )
        .is_none());
    }

    #[test]
    fn format_and_parse_agree() {
        let mut t = UNIX_EPOCH - Duration::from_secs(86_400 * 365 * 50);
        for _ in 0..2000 {
            let s = fmt(t);
            assert_eq!(parse_rfc3339(&s), Some(t), "{s}");
            assert_eq!(from_unix_nanos(to_unix_nanos(t).expect("range")), t);
            t += Duration::from_nanos(1_234_567_891_234_567);
        }
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00.5+02:00"),
            Some(UNIX_EPOCH + Duration::from_millis(1_795_341_600_500))
        );
        assert_eq!(parse_rfc3339("2026-11-22 10:00:00"), None);
    }
}
