//! Human-readable sizes, durations and timestamps, rendered exactly as docker's
//! `go-units` and Go's `time` package render them.

use std::ffi::CStr;

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Formats `x` like Go's `%.{precision}g`: at most `precision` significant digits, trailing
/// zeros removed, exponent form for very large or small magnitudes ("1e+03").
pub fn format_g(x: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if x == 0.0 {
        return "0".to_string();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".to_string()
        } else if x > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    // Rust rounds to the requested digits exactly (half to even), as Go's strconv does.
    let scientific = format!("{:.*e}", precision - 1, x);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let all_digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = match all_digits.trim_end_matches('0') {
        "" => "0",
        d => d,
    };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exponent < -4 || exponent >= precision as i32 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    } else if exponent >= 0 {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exponent - 1) as usize));
        out.push_str(digits);
    }
    out
}

fn scaled(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// `units.HumanSizeWithPrecision`: decimal units ("7.45MB" with precision 3).
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let (value, unit) = scaled(size, 1000.0, &DECIMAL_UNITS);
    format!("{}{}", format_g(value, precision), unit)
}

/// `units.HumanSize`: decimal units with 4 significant digits ("1.987MB").
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// `units.BytesSize`: binary units with 4 significant digits ("23.54GiB").
pub fn bytes_size(size: f64) -> String {
    let (value, unit) = scaled(size, 1024.0, &BINARY_UNITS);
    format!("{}{}", format_g(value, 4), unit)
}

/// `units.HumanDuration` of a duration in seconds ("About a minute", "3 weeks").
pub fn human_duration(seconds: f64) -> String {
    let whole_seconds = seconds as i64;
    if whole_seconds < 1 {
        return "Less than a second".to_string();
    }
    if whole_seconds == 1 {
        return "1 second".to_string();
    }
    if whole_seconds < 60 {
        return format!("{whole_seconds} seconds");
    }
    let minutes = (seconds / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (seconds / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".to_string();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (seconds / 3600.0) as i64 / 24 / 365)
}

/// Seconds since the Unix epoch, with a fractional part.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// "2 hours ago" for a Unix timestamp in seconds, relative to now.
pub fn human_since(unix_seconds: i64) -> String {
    format!("{} ago", human_duration(now_unix() - unix_seconds as f64))
}

/// Go's `time.Duration.String` for whole seconds ("1m30s", "2h0m5s", "0s").
pub fn go_duration_seconds(total: i64) -> String {
    if total == 0 {
        return "0s".to_string();
    }
    let sign = if total < 0 { "-" } else { "" };
    let total = total.unsigned_abs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// A broken-down time in the local time zone (TZ or /etc/localtime, as Go uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    pub weekday: u32,
    /// Offset east of UTC in seconds.
    pub offset: i64,
    pub zone: String,
}

impl LocalTime {
    /// Converts Unix seconds and nanoseconds to local time.
    pub fn from_unix(seconds: i64, nanos: u32) -> LocalTime {
        let t = seconds as libc::time_t;
        // SAFETY: `tm` is plain old data, so an all-zero value is valid.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the duration of the call; localtime_r is the
        // reentrant variant and writes only into `tm`.
        let converted = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
        if !converted {
            return LocalTime::utc(seconds, nanos);
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            // SAFETY: tm_zone points to a NUL-terminated string owned by libc's time zone
            // state, valid until the next tzset; it is copied at once.
            unsafe { CStr::from_ptr(tm.tm_zone) }
                .to_string_lossy()
                .into_owned()
        };
        LocalTime {
            year: i64::from(tm.tm_year) + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            nanos,
            weekday: tm.tm_wday as u32,
            offset: tm.tm_gmtoff,
            zone,
        }
    }

    /// The same instant in UTC.
    pub fn utc(seconds: i64, nanos: u32) -> LocalTime {
        let days = seconds.div_euclid(86_400);
        let rem = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        LocalTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: ((rem / 60) % 60) as u32,
            second: (rem % 60) as u32,
            nanos,
            weekday: (days + 4).rem_euclid(7) as u32,
            offset: 0,
            zone: "UTC".to_string(),
        }
    }

    fn date_time(&self, sep: char) -> String {
        format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    fn numeric_offset(&self, colon: bool) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let abs = self.offset.unsigned_abs();
        let (h, m) = (abs / 3600, (abs / 60) % 60);
        if colon {
            format!("{sign}{h:02}:{m:02}")
        } else {
            format!("{sign}{h:02}{m:02}")
        }
    }

    fn rfc3339_zone(&self) -> String {
        if self.offset == 0 {
            "Z".to_string()
        } else {
            self.numeric_offset(true)
        }
    }

    /// Go's `time.Time.String()`: "2006-01-02 15:04:05.999999999 -0700 MST".
    pub fn go_string(&self) -> String {
        let mut out = self.date_time(' ');
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        let zone = if self.zone.is_empty() {
            self.numeric_offset(false)
        } else {
            self.zone.clone()
        };
        format!("{out} {} {zone}", self.numeric_offset(false))
    }

    /// RFC 3339 with whole seconds: "2006-01-02T15:04:05Z07:00".
    pub fn rfc3339(&self) -> String {
        format!("{}{}", self.date_time('T'), self.rfc3339_zone())
    }

    /// RFC 3339 with nanoseconds always printed: "2006-01-02T15:04:05.000000000Z07:00".
    pub fn rfc3339_nano_fixed(&self) -> String {
        format!(
            "{}.{:09}{}",
            self.date_time('T'),
            self.nanos,
            self.rfc3339_zone()
        )
    }

    /// Go's `time.ANSIC`: "Mon Jan _2 15:04:05 2006".
    pub fn ansic(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {}",
            DAYS[(self.weekday % 7) as usize],
            MONTHS[((self.month + 11) % 12) as usize],
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
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

/// Reformats an RFC 3339 timestamp as Go's ANSIC in the timestamp's own offset, or returns
/// the input unchanged when it does not parse (as docker's `reformatDate` does).
pub fn reformat_date(value: &str) -> String {
    match time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        Ok(t) => {
            let local = LocalTime {
                year: i64::from(t.year()),
                month: u32::from(u8::from(t.month())),
                day: u32::from(t.day()),
                hour: u32::from(t.hour()),
                minute: u32::from(t.minute()),
                second: u32::from(t.second()),
                nanos: t.nanosecond(),
                weekday: u32::from(t.weekday().number_days_from_sunday()),
                offset: i64::from(t.offset().whole_seconds()),
                zone: String::new(),
            };
            local.ansic()
        }
        Err(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_g_matches_go() {
        assert_eq!(format_g(7.45, 3), "7.45");
        assert_eq!(format_g(1.986676, 3), "1.99");
        assert_eq!(format_g(1.986676, 4), "1.987");
        assert_eq!(format_g(4.0, 4), "4");
        assert_eq!(format_g(100.0, 3), "100");
        assert_eq!(format_g(999.5, 3), "1e+03");
        assert_eq!(format_g(999.95, 4), "1000");
        assert_eq!(format_g(9999.5, 4), "1e+04");
        assert_eq!(format_g(123.456, 4), "123.5");
        assert_eq!(format_g(0.5, 3), "0.5");
        assert_eq!(format_g(0.00001234, 3), "1.23e-05");
        assert_eq!(format_g(-2.5, 3), "-2.5");
        assert_eq!(format_g(0.0, 3), "0");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size_with_precision(1_986_676.0, 3), "1.99MB");
        assert_eq!(human_size(1_986_676.0), "1.987MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1000.0), "1kB");
        assert_eq!(human_size(1024.0), "1.024kB");
        assert_eq!(human_size_with_precision(7_450_000.0, 3), "7.45MB");
        assert_eq!(human_size_with_precision(999_999.0, 3), "1e+03kB");
        assert_eq!(human_size(12_345_678_901.0), "12.35GB");
        assert_eq!(bytes_size(25_276_502_016.0), "23.54GiB");
        assert_eq!(bytes_size(512.0), "512B");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(0.4), "Less than a second");
        assert_eq!(human_duration(-5.0), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(59.9), "59 seconds");
        assert_eq!(human_duration(60.0), "About a minute");
        assert_eq!(human_duration(119.0), "About a minute");
        assert_eq!(human_duration(120.0), "2 minutes");
        assert_eq!(human_duration(3599.0), "59 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5400.0), "2 hours");
        assert_eq!(human_duration(47.0 * 3600.0), "47 hours");
        assert_eq!(human_duration(48.0 * 3600.0), "2 days");
        assert_eq!(human_duration(14.0 * 86400.0), "2 weeks");
        assert_eq!(human_duration(60.0 * 86400.0), "2 months");
        assert_eq!(human_duration(800.0 * 86400.0), "2 years");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_seconds(0), "0s");
        assert_eq!(go_duration_seconds(5), "5s");
        assert_eq!(go_duration_seconds(90), "1m30s");
        assert_eq!(go_duration_seconds(3600), "1h0m0s");
        assert_eq!(go_duration_seconds(3725), "1h2m5s");
    }

    #[test]
    fn utc_formats() {
        let t = LocalTime::utc(1_795_377_843, 419_826_396);
        assert_eq!(t.rfc3339(), "2026-11-22T20:04:03Z");
        assert_eq!(t.rfc3339_nano_fixed(), "2026-11-22T20:04:03.419826396Z");
        assert_eq!(t.go_string(), "2026-11-22 20:04:03.419826396 +0000 UTC");
        assert_eq!(t.ansic(), "Sun Nov 22 20:04:03 2026");
        let epoch = LocalTime::utc(0, 0);
        assert_eq!(epoch.go_string(), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(epoch.ansic(), "Thu Jan  1 00:00:00 1970");
    }

    #[test]
    fn reformats_build_dates() {
        assert_eq!(
            reformat_date("2026-05-07T21:09:36.000000000+00:00"),
            "Thu May  7 21:09:36 2026"
        );
        assert_eq!(reformat_date("not a date"), "not a date");
    }
}
