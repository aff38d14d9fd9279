//! The flags of `run` and `create` and their translation into the API's create request,
//! following docker's `containerOptions` and `parse`: the same validation, the same
//! messages, the same JSON.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::flags::{Flag, Kind, Parsed};

/// Values checked while flags are parsed. Each returns the normalized value or pflag's
/// reason, as docker's `opts` validators do.
pub mod check {
    use super::*;

    /// `opts.ValidateEnv`: a name is required; `NAME` alone takes the value from the
    /// environment when it is set there.
    pub fn env(value: &str) -> Result<String, String> {
        let (key, has_value) = match value.split_once('=') {
            Some((k, _)) => (k, true),
            None => (value, false),
        };
        if key.is_empty() {
            return Err(format!("invalid environment variable: {value}"));
        }
        if has_value {
            return Ok(value.to_string());
        }
        match std::env::var(key) {
            Ok(v) => Ok(format!("{key}={v}")),
            Err(_) => Ok(value.to_string()),
        }
    }

    /// `opts.ValidateLabel`.
    pub fn label(value: &str) -> Result<String, String> {
        let key = value.split_once('=').map_or(value, |(k, _)| k);
        let key = key.trim_start_matches([' ', '\t']);
        if key.is_empty() {
            return Err(format!("invalid label '{value}': empty name"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("label '{key}' contains whitespaces"));
        }
        Ok(value.to_string())
    }

    /// `opts.MemBytes`: a size with binary units, stored as bytes.
    pub fn bytes(value: &str) -> Result<String, String> {
        ram_in_bytes(value).map(|n| n.to_string())
    }

    /// `opts.MemSwapBytes`: like `bytes`, and `-1` for unlimited.
    pub fn swap_bytes(value: &str) -> Result<String, String> {
        if value == "-1" {
            return Ok("-1".to_string());
        }
        bytes(value)
    }

    /// `opts.NanoCPUs`: a decimal number of CPUs, stored as nano CPUs.
    pub fn cpus(value: &str) -> Result<String, String> {
        parse_cpus(value).map(|n| n.to_string())
    }

    /// Go's `time.ParseDuration`, stored as nanoseconds.
    pub fn duration(value: &str) -> Result<String, String> {
        parse_duration(value).map(|n| n.to_string())
    }

    /// `units.ParseUlimit`, stored as `name=soft:hard`.
    pub fn ulimit(value: &str) -> Result<String, String> {
        parse_ulimit(value).map(|(name, soft, hard)| format!("{name}={soft}:{hard}"))
    }

    /// `opts.ValidateSysctl`.
    pub fn sysctl(value: &str) -> Result<String, String> {
        const NAMES: [&str; 8] = [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
        ];
        let not_allowed = || format!("sysctl '{value}' is not allowed");
        let Some((key, _)) = value.split_once('=') else {
            return Err(not_allowed());
        };
        if key.is_empty() {
            return Err(not_allowed());
        }
        if NAMES.contains(&key) || key.starts_with("net.") || key.starts_with("fs.mqueue.") {
            Ok(value.to_string())
        } else {
            Err(not_allowed())
        }
    }

    /// `opts.ValidateExtraHost`, stored as `host:ip`.
    pub fn extra_host(value: &str) -> Result<String, String> {
        let split = value.split_once('=').or_else(|| value.split_once(':'));
        let Some((host, ip)) = split.filter(|(k, _)| !k.is_empty() && !k.contains(':')) else {
            return Err(format!("bad format for add-host: {}", go_quote(value)));
        };
        if ip != "host-gateway" {
            let bare = if ip.len() > 2 && ip.starts_with('[') && ip.ends_with(']') {
                &ip[1..ip.len() - 1]
            } else {
                ip
            };
            if bare.trim().parse::<IpAddr>().is_err() {
                return Err(format!(
                    "invalid IP address in add-host: {}",
                    go_quote(bare)
                ));
            }
            return Ok(format!("{host}:{bare}"));
        }
        Ok(format!("{host}:{ip}"))
    }

    /// `opts.ValidateIPAddress`, stored in canonical form.
    pub fn ip(value: &str) -> Result<String, String> {
        match value.trim().parse::<IpAddr>() {
            Ok(ip) => Ok(ip.to_string()),
            Err(_) => Err(format!("IP address is not correctly formatted: {value}")),
        }
    }

    /// `opts.ValidateDNSSearch`.
    pub fn dns_search(value: &str) -> Result<String, String> {
        let value = value.trim_matches(' ');
        if value == "." {
            return Ok(value.to_string());
        }
        let invalid = || format!("{value} is not a valid domain");
        if !value.chars().any(|c| c.is_ascii_alphabetic()) {
            return Err(invalid());
        }
        let name = value.trim_end_matches(char::is_whitespace);
        let name = name.strip_suffix('.').unwrap_or(name);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.split('.').all(label_ok) && name.len() < 255 {
            Ok(name.to_string())
        } else {
            Err(invalid())
        }
    }

    /// `opts.MountOpt.Set`: checked now, parsed again when the request is built.
    pub fn mount(value: &str) -> Result<String, String> {
        parse_mount(value).map(|_| value.to_string())
    }

    /// `validateAttach`.
    pub fn attach(value: &str) -> Result<String, String> {
        let lower = value.to_lowercase();
        if ["stdin", "stdout", "stderr"].contains(&lower.as_str()) {
            Ok(lower)
        } else {
            Err("valid streams are STDIN, STDOUT and STDERR".to_string())
        }
    }

    /// pflag's `uint16`.
    pub fn uint16(value: &str) -> Result<String, String> {
        match value.parse::<u64>() {
            Ok(n) if n <= u64::from(u16::MAX) => Ok(n.to_string()),
            Ok(_) => Err(format!(
                "strconv.ParseUint: parsing {}: value out of range",
                go_quote(value)
            )),
            Err(_) => Err(format!(
                "strconv.ParseUint: parsing {}: invalid syntax",
                go_quote(value)
            )),
        }
    }

    /// `validateDeviceCgroupRule`: `type major:minor mode`.
    pub fn device_cgroup_rule(value: &str) -> Result<String, String> {
        let invalid = || format!("invalid device cgroup format '{value}'");
        let parts: Vec<&str> = value.split(' ').collect();
        let [kind, numbers, mode] = parts.as_slice() else {
            return Err(invalid());
        };
        let number = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        let numbers_ok = numbers
            .split_once(':')
            .is_some_and(|(a, b)| number(a) && number(b));
        let mode_ok = (1..=3).contains(&mode.len()) && mode.chars().all(|c| "rwm".contains(c));
        if ["a", "b", "c"].contains(kind) && numbers_ok && mode_ok {
            Ok(value.to_string())
        } else {
            Err(invalid())
        }
    }

    /// `opts.ValidateLink`.
    pub fn link(value: &str) -> Result<String, String> {
        if value.is_empty() {
            return Err("empty string specified for links".to_string());
        }
        if value.split(':').count() > 2 {
            return Err(format!("bad format for links: {value}"));
        }
        Ok(value.to_string())
    }

    /// `opts.MapOpts` without a validator: any value.
    pub fn any(value: &str) -> Result<String, String> {
        Ok(value.to_string())
    }
}

/// Go's `strconv.Quote` for the ASCII and UTF-8 text that flags carry.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// go-units `RAMInBytes`: "64m", "1.5GiB", "100" (bytes).
pub fn ram_in_bytes(value: &str) -> Result<i64, String> {
    let Some(sep) = value.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(format!("invalid size: '{value}'"));
    };
    let (number, suffix) = if value.as_bytes()[sep] == b' ' {
        (&value[..sep], &value[sep + 1..])
    } else {
        (&value[..sep + 1], &value[sep + 1..])
    };
    let size: f64 = number.parse().map_err(|_| {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(number)
        )
    })?;
    if size < 0.0 {
        return Err(format!("invalid size: '{value}'"));
    }
    if suffix.is_empty() {
        return Ok(size as i64);
    }
    let bad = || format!("invalid suffix: '{suffix}'");
    if suffix.len() > 3 {
        return Err(bad());
    }
    let lower = suffix.to_lowercase();
    let bytes = lower.as_bytes();
    if bytes[0] == b'b' {
        return if bytes.len() > 1 {
            Err(bad())
        } else {
            Ok(size as i64)
        };
    }
    let multiplier: i64 = match bytes[0] {
        b'k' => 1 << 10,
        b'm' => 1 << 20,
        b'g' => 1 << 30,
        b't' => 1 << 40,
        b'p' => 1 << 50,
        _ => return Err(bad()),
    };
    match bytes.len() {
        2 if bytes[1] != b'b' => return Err(bad()),
        3 if &lower[1..] != "ib" => return Err(bad()),
        _ => {}
    }
    Ok((size * multiplier as f64) as i64)
}

/// docker's `ParseCPUs`: a rational number of CPUs ("1.5", "3/2") in nano CPUs.
pub fn parse_cpus(value: &str) -> Result<i64, String> {
    let invalid = || format!("failed to parse {value} as a rational number");
    let (numerator, denominator) = match value.split_once('/') {
        Some((n, d)) => {
            let n: i128 = n.parse().map_err(|_| invalid())?;
            let d: i128 = d.parse().map_err(|_| invalid())?;
            if d == 0 {
                return Err(invalid());
            }
            (n, d)
        }
        None => decimal_fraction(value).ok_or_else(invalid)?,
    };
    let nanos = numerator.checked_mul(1_000_000_000).ok_or_else(invalid)?;
    if nanos % denominator != 0 {
        return Err("value is too precise".to_string());
    }
    i64::try_from(nanos / denominator).map_err(|_| invalid())
}

/// A decimal number ("-1.25e2") as an exact fraction.
fn decimal_fraction(value: &str) -> Option<(i128, i128)> {
    let (mantissa, exponent) = match value.find(['e', 'E']) {
        Some(i) => (&value[..i], value[i + 1..].parse::<i32>().ok()?),
        None => (value, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mut numerator: i128 = digits.parse().ok()?;
    let scale = i32::try_from(fraction.len()).ok()? - exponent;
    let mut denominator: i128 = 1;
    if scale >= 0 {
        denominator = 10i128.checked_pow(u32::try_from(scale).ok()?)?;
    } else {
        numerator = numerator.checked_mul(10i128.checked_pow(u32::try_from(-scale).ok()?)?)?;
    }
    Some((if negative { -numerator } else { numerator }, denominator))
}

/// Go's `time.ParseDuration`, in nanoseconds, with Go's messages.
pub fn parse_duration(value: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(value));
    let (negative, mut rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let amount: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!(
                "time: missing unit in duration {}",
                go_quote(value)
            ));
        }
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(value)
                ))
            }
        };
        total += amount * scale;
        rest = &rest[unit_len..];
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

/// go-units `ParseUlimit`: `name=soft[:hard]`.
pub fn parse_ulimit(value: &str) -> Result<(String, i64, i64), String> {
    const NAMES: [&str; 15] = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    let Some((name, limits)) = value.split_once('=') else {
        return Err(format!("invalid ulimit argument: {value}"));
    };
    if !NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parse = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let soft = parse(soft)?;
            (soft, soft)
        }
        [soft, hard] => {
            let hard = parse(hard)?;
            (parse(soft)?, hard)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok((name.to_string(), soft, hard))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Splits one CSV record as Go's `encoding/csv` does for the simple cases flags use:
/// commas separate fields, double quotes group.
fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = value.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            c => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err(
            "parse error on line 1, column 1: extraneous or missing \" in quoted-field".to_string(),
        );
    }
    fields.push(field);
    Ok(fields)
}

/// `opts.MountOpt.Set`: a `--mount` value as the API's `Mount` object.
pub fn parse_mount(value: &str) -> Result<Value, String> {
    let fields = csv_fields(value)?;
    let mut kind = "volume".to_string();
    let mut source = String::new();
    let mut target = String::new();
    let mut read_only = false;
    let mut consistency = String::new();
    let mut bind: Option<Map<String, Value>> = None;
    let mut volume: Option<Map<String, Value>> = None;
    let mut tmpfs: Option<Map<String, Value>> = None;
    let mut image: Option<Map<String, Value>> = None;
    let volume_options = |v: &mut Option<Map<String, Value>>| -> Map<String, Value> {
        v.take().unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("Labels".into(), json!({}));
            m.insert("DriverConfig".into(), json!({}));
            m
        })
    };
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v.to_string())),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => read_only = true,
                "volume-nocopy" => {
                    let mut v = volume_options(&mut volume);
                    v.insert("NoCopy".into(), json!(true));
                    volume = Some(v);
                }
                "bind-nonrecursive" => {
                    bind.get_or_insert_with(Map::new)
                        .insert("NonRecursive".into(), json!(true));
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let bad = || format!("invalid value for {key}: {val}");
        match key.as_str() {
            "type" => kind = val.to_lowercase(),
            "source" | "src" => {
                source = val.clone();
                if !val.starts_with('/') && val.starts_with('.') {
                    if let Ok(cwd) = std::env::current_dir() {
                        source = clean_path(&cwd.join(&val).to_string_lossy());
                    }
                }
            }
            "target" | "dst" | "destination" => target = val.clone(),
            "readonly" | "ro" => read_only = parse_go_bool(&val).ok_or_else(bad)?,
            "consistency" => consistency = val.to_lowercase(),
            "bind-propagation" => {
                bind.get_or_insert_with(Map::new)
                    .insert("Propagation".into(), json!(val.to_lowercase()));
            }
            "bind-nonrecursive" => {
                let b = parse_go_bool(&val).ok_or_else(bad)?;
                bind.get_or_insert_with(Map::new)
                    .insert("NonRecursive".into(), json!(b));
            }
            "bind-recursive" => {
                let b = bind.get_or_insert_with(Map::new);
                match val.as_str() {
                    "enabled" => {}
                    "disabled" => {
                        b.insert("NonRecursive".into(), json!(true));
                    }
                    "writable" => {
                        b.insert("ReadOnlyNonRecursive".into(), json!(true));
                    }
                    "readonly" => {
                        b.insert("ReadOnlyForceRecursive".into(), json!(true));
                    }
                    _ => {
                        return Err(format!(
                            "invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                        ))
                    }
                }
            }
            "volume-subpath" | "volume-nocopy" | "volume-label" | "volume-driver"
            | "volume-opt" => {
                let mut v = volume_options(&mut volume);
                match key.as_str() {
                    "volume-subpath" => {
                        v.insert("Subpath".into(), json!(val));
                    }
                    "volume-nocopy" => {
                        let b = parse_go_bool(&val)
                            .ok_or_else(|| format!("invalid value for volume-nocopy: {val}"))?;
                        v.insert("NoCopy".into(), json!(b));
                    }
                    "volume-label" => {
                        if let Some((k, lv)) = val.split_once('=').or(Some((val.as_str(), ""))) {
                            if !k.is_empty() {
                                if let Some(Value::Object(labels)) = v.get_mut("Labels") {
                                    labels.insert(k.into(), json!(lv));
                                }
                            }
                        }
                    }
                    "volume-driver" => {
                        if let Some(Value::Object(d)) = v.get_mut("DriverConfig") {
                            d.insert("Name".into(), json!(val));
                        }
                    }
                    _ => {
                        if let Some(Value::Object(d)) = v.get_mut("DriverConfig") {
                            let options = d.entry("Options").or_insert_with(|| json!({}));
                            let (k, ov) = val.split_once('=').unwrap_or((val.as_str(), ""));
                            if !k.is_empty() {
                                if let Value::Object(o) = options {
                                    o.insert(k.into(), json!(ov));
                                }
                            }
                        }
                    }
                }
                volume = Some(v);
            }
            "image-subpath" => {
                image
                    .get_or_insert_with(Map::new)
                    .insert("Subpath".into(), json!(val));
            }
            "tmpfs-size" => {
                let size = ram_in_bytes(&val).map_err(|_| bad())?;
                tmpfs
                    .get_or_insert_with(Map::new)
                    .insert("SizeBytes".into(), json!(size));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(&val, 8).map_err(|_| bad())?;
                tmpfs
                    .get_or_insert_with(Map::new)
                    .insert("Mode".into(), json!(mode));
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if kind.is_empty() {
        return Err("type is required".to_string());
    }
    if target.is_empty() {
        return Err("target is required".to_string());
    }
    for (present, option, wanted) in [
        (volume.is_some(), "volume", "volume"),
        (image.is_some(), "image", "image"),
        (bind.is_some(), "bind", "bind"),
        (tmpfs.is_some(), "tmpfs", "tmpfs"),
    ] {
        if present && kind != wanted {
            return Err(format!(
                "cannot mix '{option}-*' options with mount type '{kind}'"
            ));
        }
    }
    if let Some(b) = &bind {
        if b.contains_key("ReadOnlyNonRecursive") && !read_only {
            return Err("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction".to_string());
        }
        if b.contains_key("ReadOnlyForceRecursive") {
            if !read_only {
                return Err("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".to_string());
            }
            if b.get("Propagation").and_then(Value::as_str) != Some("rprivate") {
                return Err("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".to_string());
            }
        }
    }
    let mut mount = Map::new();
    mount.insert("Type".into(), json!(kind));
    if !source.is_empty() {
        mount.insert("Source".into(), json!(source));
    }
    mount.insert("Target".into(), json!(target));
    if read_only {
        mount.insert("ReadOnly".into(), json!(true));
    }
    if !consistency.is_empty() {
        mount.insert("Consistency".into(), json!(consistency));
    }
    for (name, options) in [
        ("BindOptions", bind),
        ("VolumeOptions", volume),
        ("ImageOptions", image),
        ("TmpfsOptions", tmpfs),
    ] {
        if let Some(o) = options {
            mount.insert(name.into(), Value::Object(o));
        }
    }
    Ok(Value::Object(mount))
}

/// Go's `path.Clean` for absolute paths.
pub fn clean_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Flags shared by `run` and `create` (docker's `addFlags`), after the command's own.
macro_rules! with_container_flags {
    ($($own:expr),* $(,)?) => {
        &[
            $($own,)*
            Flag::new("attach", Some('a'), Kind::List, "Attach to STDIN, STDOUT or STDERR").checked(check::attach),
            Flag::new("device-cgroup-rule", None, Kind::List, "Add a rule to the cgroup allowed devices list").checked(check::device_cgroup_rule),
            Flag::new("device", None, Kind::List, "Add a host device to the container"),
            Flag::typed("gpus", None, "gpu-request", "GPU devices to add to the container ('all' to pass all GPUs)", check::any),
            Flag::new("env", Some('e'), Kind::List, "Set environment variables").checked(check::env),
            Flag::new("env-file", None, Kind::List, "Read in a file of environment variables"),
            Flag::new("entrypoint", None, Kind::String, "Overwrite the default ENTRYPOINT of the image"),
            Flag::new("group-add", None, Kind::List, "Add additional groups to join"),
            Flag::new("hostname", Some('h'), Kind::String, "Container host name"),
            Flag::new("domainname", None, Kind::String, "Container NIS domain name"),
            Flag::new("interactive", Some('i'), Kind::Bool, "Keep STDIN open even if not attached"),
            Flag::new("label", Some('l'), Kind::List, "Set meta data on a container").checked(check::label),
            Flag::new("label-file", None, Kind::List, "Read in a line delimited file of labels"),
            Flag::new("read-only", None, Kind::Bool, "Mount the container's root filesystem as read only"),
            Flag::new("restart", None, Kind::String, "Restart policy to apply when a container exits (default \"no\")"),
            Flag::new("stop-signal", None, Kind::String, "Signal to stop the container"),
            Flag::new("stop-timeout", None, Kind::Int, "Timeout (in seconds) to stop a container"),
            Flag::typed("sysctl", None, "map", "Sysctl options (default map[])", check::sysctl),
            Flag::new("tty", Some('t'), Kind::Bool, "Allocate a pseudo-TTY"),
            Flag::typed("ulimit", None, "ulimit", "Ulimit options (default [])", check::ulimit),
            Flag::new("user", Some('u'), Kind::String, "Username or UID (format: <name|uid>[:<group|gid>])"),
            Flag::new("workdir", Some('w'), Kind::String, "Working directory inside the container"),
            Flag::new("rm", None, Kind::Bool, "Automatically remove the container and its associated anonymous volumes when it exits"),
            Flag::new("cap-add", None, Kind::List, "Add Linux capabilities"),
            Flag::new("cap-drop", None, Kind::List, "Drop Linux capabilities"),
            Flag::new("privileged", None, Kind::Bool, "Give extended privileges to this container"),
            Flag::new("security-opt", None, Kind::List, "Security Options"),
            Flag::new("userns", None, Kind::String, "User namespace to use"),
            Flag::new("cgroupns", None, Kind::String, "Cgroup namespace to use (host|private)"),
            Flag::new("add-host", None, Kind::List, "Add a custom host-to-IP mapping (host:ip)").checked(check::extra_host),
            Flag::new("dns", None, Kind::List, "Set custom DNS servers").checked(check::ip),
            Flag::new("dns-opt", None, Kind::List, "Set DNS options").hidden().store_as("dns-option"),
            Flag::new("dns-option", None, Kind::List, "Set DNS options"),
            Flag::new("dns-search", None, Kind::List, "Set custom DNS search domains").checked(check::dns_search),
            Flag::new("expose", None, Kind::List, "Expose a port or a range of ports"),
            Flag::new("ip", None, Kind::String, "IPv4 address (e.g., 172.30.100.104)"),
            Flag::new("ip6", None, Kind::String, "IPv6 address (e.g., 2001:db8::33)"),
            Flag::new("link", None, Kind::List, "Add link to another container").checked(check::link),
            Flag::new("link-local-ip", None, Kind::List, "Container IPv4/IPv6 link-local addresses"),
            Flag::new("mac-address", None, Kind::String, "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
            Flag::new("publish", Some('p'), Kind::List, "Publish a container's port(s) to the host"),
            Flag::new("publish-all", Some('P'), Kind::Bool, "Publish all exposed ports to random ports"),
            Flag::typed("net", None, "network", "Connect a container to a network", check::any).hidden().store_as("network"),
            Flag::typed("network", None, "network", "Connect a container to a network", check::any),
            Flag::new("net-alias", None, Kind::List, "Add network-scoped alias for the container").hidden().store_as("network-alias"),
            Flag::new("network-alias", None, Kind::List, "Add network-scoped alias for the container"),
            Flag::new("log-driver", None, Kind::String, "Logging driver for the container"),
            Flag::new("volume-driver", None, Kind::String, "Optional volume driver for the container"),
            Flag::new("log-opt", None, Kind::List, "Log driver options"),
            Flag::new("storage-opt", None, Kind::List, "Storage driver options for the container"),
            Flag::new("tmpfs", None, Kind::List, "Mount a tmpfs directory"),
            Flag::new("volumes-from", None, Kind::List, "Mount volumes from the specified container(s)"),
            Flag::new("volume", Some('v'), Kind::List, "Bind mount a volume"),
            Flag::typed("mount", None, "mount", "Attach a filesystem mount to the container", check::mount),
            Flag::new("health-cmd", None, Kind::String, "Command to run to check health"),
            Flag::typed("health-interval", None, "duration", "Time between running the check (ms|s|m|h) (default 0s)", check::duration),
            Flag::new("health-retries", None, Kind::Int, "Consecutive failures needed to report unhealthy"),
            Flag::typed("health-timeout", None, "duration", "Maximum time to allow one check to run (ms|s|m|h) (default 0s)", check::duration),
            Flag::typed("health-start-period", None, "duration", "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)", check::duration),
            Flag::typed("health-start-interval", None, "duration", "Time between running the check during the start period (ms|s|m|h) (default 0s)", check::duration),
            Flag::new("no-healthcheck", None, Kind::Bool, "Disable any container-specified HEALTHCHECK"),
            Flag::typed("blkio-weight", None, "uint16", "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)", check::uint16),
            Flag::new("blkio-weight-device", None, Kind::List, "Block IO weight (relative device weight) (default [])"),
            Flag::new("cidfile", None, Kind::String, "Write the container ID to the file"),
            Flag::new("cpuset-cpus", None, Kind::String, "CPUs in which to allow execution (0-3, 0,1)"),
            Flag::new("cpuset-mems", None, Kind::String, "MEMs in which to allow execution (0-3, 0,1)"),
            Flag::new("cpu-period", None, Kind::Int, "Limit CPU CFS (Completely Fair Scheduler) period"),
            Flag::new("cpu-quota", None, Kind::Int, "Limit CPU CFS (Completely Fair Scheduler) quota"),
            Flag::new("cpu-rt-period", None, Kind::Int, "Limit CPU real-time period in microseconds"),
            Flag::new("cpu-rt-runtime", None, Kind::Int, "Limit CPU real-time runtime in microseconds"),
            Flag::new("cpu-shares", Some('c'), Kind::Int, "CPU shares (relative weight)"),
            Flag::typed("cpus", None, "decimal", "Number of CPUs", check::cpus),
            Flag::new("device-read-bps", None, Kind::List, "Limit read rate (bytes per second) from a device (default [])"),
            Flag::new("device-read-iops", None, Kind::List, "Limit read rate (IO per second) from a device (default [])"),
            Flag::new("device-write-bps", None, Kind::List, "Limit write rate (bytes per second) to a device (default [])"),
            Flag::new("device-write-iops", None, Kind::List, "Limit write rate (IO per second) to a device (default [])"),
            Flag::typed("kernel-memory", None, "bytes", "Kernel memory limit", check::bytes),
            Flag::typed("memory", Some('m'), "bytes", "Memory limit", check::bytes),
            Flag::typed("memory-reservation", None, "bytes", "Memory soft limit", check::bytes),
            Flag::typed("memory-swap", None, "bytes", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap", check::swap_bytes),
            Flag::new("memory-swappiness", None, Kind::Int, "Tune container memory swappiness (0 to 100) (default -1)"),
            Flag::new("oom-kill-disable", None, Kind::Bool, "Disable OOM Killer"),
            Flag::new("oom-score-adj", None, Kind::Int, "Tune host's OOM preferences (-1000 to 1000)"),
            Flag::new("pids-limit", None, Kind::Int, "Tune container pids limit (set -1 for unlimited)"),
            Flag::new("cgroup-parent", None, Kind::String, "Optional parent cgroup for the container"),
            Flag::new("ipc", None, Kind::String, "IPC mode to use"),
            Flag::new("isolation", None, Kind::String, "Container isolation technology"),
            Flag::new("pid", None, Kind::String, "PID namespace to use"),
            Flag::typed("shm-size", None, "bytes", "Size of /dev/shm", check::bytes),
            Flag::new("uts", None, Kind::String, "UTS namespace to use"),
            Flag::new("runtime", None, Kind::String, "Runtime to use for this container"),
            Flag::new("init", None, Kind::Bool, "Run an init inside the container that forwards signals and reaps processes"),
            Flag::typed("annotation", None, "map", "Add an annotation to the container (passed through to the OCI runtime) (default map[])", check::any),
            Flag::new("help", None, Kind::Bool, "Print usage"),
            Flag::new("platform", None, Kind::String, "Set platform if server is multi-platform capable"),
            Flag::new("disable-content-trust", None, Kind::Bool, "Skip image verification (default true)"),
        ]
    };
}

/// `run`'s flags.
pub const RUN_FLAGS: &[Flag] = with_container_flags![
    Flag::new(
        "detach",
        Some('d'),
        Kind::Bool,
        "Run container in background and print container ID"
    ),
    Flag::new(
        "sig-proxy",
        None,
        Kind::Bool,
        "Proxy received signals to the process (default true)"
    ),
    Flag::new("name", None, Kind::String, "Assign a name to the container"),
    Flag::new(
        "detach-keys",
        None,
        Kind::String,
        "Override the key sequence for detaching a container"
    ),
    Flag::new(
        "pull",
        None,
        Kind::String,
        "Pull image before running (\"always\", \"missing\", \"never\") (default \"missing\")"
    ),
    Flag::new("quiet", Some('q'), Kind::Bool, "Suppress the pull output"),
];

/// `create`'s flags.
pub const CREATE_FLAGS: &[Flag] = with_container_flags![
    Flag::new("name", None, Kind::String, "Assign a name to the container"),
    Flag::new(
        "pull",
        None,
        Kind::String,
        "Pull image before creating (\"always\", \"|missing\", \"never\") (default \"missing\")"
    ),
    Flag::new("quiet", Some('q'), Kind::Bool, "Suppress the pull output"),
];

/// A create request ready to send: the JSON body and what travels beside it.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub body: Value,
    pub image: String,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub auto_remove: bool,
    pub cidfile: String,
    pub dns: Vec<String>,
}

impl CreateRequest {
    /// Drops the stream attachments (`run -d`).
    pub fn detach(&mut self) {
        self.attach_stdin = false;
        self.attach_stdout = false;
        self.attach_stderr = false;
        for key in ["AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"] {
            self.body[key] = json!(false);
        }
    }
}

/// `KEY=VALUE` lines of env and label files (docker's `kvfile.Parse`); with `lookup`,
/// a bare `KEY` takes its value from the environment and is dropped when unset there.
pub fn read_kv_file(path: &str, lookup: bool) -> Result<Vec<String>, String> {
    let data = std::fs::read(path)
        .map_err(|e| format!("open {path}: {}", crate::error::go_io_error(&e)))?;
    let invalid = |detail: String| format!("invalid env file ({path}): {detail}");
    let mut lines = Vec::new();
    for (index, raw) in data.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(invalid(format!(
                "invalid utf8 bytes at line {}: {:?}",
                index + 1,
                raw
            )));
        };
        let text = if index == 0 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let line = text.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(invalid(format!("no variable name on line '{line}'")));
        }
        if key.contains([' ', '\t']) {
            return Err(invalid(format!("variable '{key}' contains whitespaces")));
        }
        if has_value {
            lines.push(line.to_string());
        } else if lookup {
            if let Ok(value) = std::env::var(line) {
                lines.push(format!("{key}={value}"));
            }
        }
    }
    Ok(lines)
}

/// A `--volume` spec as compose's `ParseVolume` reads it: (source, target).
fn parse_volume_spec(spec: &str) -> Result<(String, String), String> {
    match spec.chars().count() {
        0 => return Err("invalid empty volume spec".to_string()),
        1 | 2 => return Ok((String::new(), spec.to_string())),
        _ => {}
    }
    let mut source = String::new();
    let mut target = String::new();
    let mut buffer = String::new();
    let fail = |e: &str| format!("invalid spec: {spec}: {e}");
    let chars: Vec<char> = spec.chars().chain(std::iter::once('\0')).collect();
    for c in chars {
        let windows_drive =
            c == ':' && buffer.chars().count() == 1 && buffer.chars().all(char::is_alphabetic);
        if windows_drive {
            buffer.push(c);
            continue;
        }
        if c == ':' || c == '\0' {
            if buffer.is_empty() {
                return Err(fail("empty section between colons"));
            }
            if source.is_empty() && c == '\0' {
                target = std::mem::take(&mut buffer);
            } else if source.is_empty() {
                source = std::mem::take(&mut buffer);
            } else if target.is_empty() {
                target = std::mem::take(&mut buffer);
            } else if c == ':' {
                return Err(fail("too many colons"));
            } else {
                buffer.clear();
            }
            continue;
        }
        buffer.push(c);
    }
    Ok((source, target))
}

fn is_file_path(source: &str) -> bool {
    matches!(source.chars().next(), Some('.' | '/' | '~'))
}

/// nat's `ParsePortRange`.
fn parse_port_range(ports: &str) -> Result<(u64, u64), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".to_string());
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map(u64::from)
            .map_err(|_| format!("strconv.ParseUint: parsing {}: invalid syntax", go_quote(s)))
    };
    match ports.split_once('-') {
        None => {
            let n = parse(ports)?;
            Ok((n, n))
        }
        Some((start, rest)) => {
            let end = rest.split('-').next().unwrap_or(rest);
            let (start, end) = (parse(start)?, parse(end)?);
            if end < start {
                return Err(format!("invalid range specified for port: {ports}"));
            }
            Ok((start, end))
        }
    }
}

/// nat's `SplitProtoPort`.
fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp".to_string(), parts[0].to_string());
    }
    (parts[1].to_string(), parts[0].to_string())
}

/// Exposed ports and bindings from `-p` values (nat's `ParsePortSpecs`).
type PortSpecs = (
    BTreeMap<String, ()>,
    BTreeMap<String, Vec<(String, String)>>,
);

fn parse_port_specs(specs: &[String]) -> Result<PortSpecs, String> {
    let mut exposed = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for raw in specs {
        let parts: Vec<&str> = raw.split(':').collect();
        let n = parts.len();
        let (mut ip, host_port, container_port) = match n {
            1 => (String::new(), String::new(), parts[0].to_string()),
            2 => (String::new(), parts[0].to_string(), parts[1].to_string()),
            3 => (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].to_string(),
            ),
            _ => (
                parts[..n - 2].join(":"),
                parts[n - 2].to_string(),
                parts[n - 1].to_string(),
            ),
        };
        let (proto, container_port) = split_proto_port(&container_port);
        if ip.starts_with('[') {
            ip = match ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(inner) => inner.to_string(),
                None => {
                    return Err(format!(
                        "invalid IP address {ip}: address {ip}: missing ']' in address"
                    ))
                }
            };
        }
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            return Err(format!("invalid IP address: {ip}"));
        }
        if container_port.is_empty() {
            return Err(format!("no port specified: {raw}<empty>"));
        }
        let (start, end) = parse_port_range(&container_port)
            .map_err(|_| format!("invalid containerPort: {container_port}"))?;
        let (host_start, host_end) = if host_port.is_empty() {
            (0, 0)
        } else {
            parse_port_range(&host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?
        };
        if !host_port.is_empty() && end - start != host_end - host_start && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            ));
        }
        let proto = proto.to_lowercase();
        if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
            return Err(format!("invalid proto: {proto}"));
        }
        for i in 0..=(end - start) {
            let mut host = if host_port.is_empty() {
                String::new()
            } else {
                (host_start + i).to_string()
            };
            if start == end && host_start != host_end {
                host = format!("{host}-{host_end}");
            }
            let port = format!("{}/{proto}", start + i);
            exposed.insert(port.clone(), ());
            bindings.entry(port).or_default().push((ip.clone(), host));
        }
    }
    Ok((exposed, bindings))
}

/// docker's `convertToStandardNotation`: `published=8080,target=80` becomes `8080:80/tcp`.
fn standard_port_notation(specs: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for spec in specs {
        if !spec.contains('=') {
            out.push(spec.clone());
            continue;
        }
        let mut params: BTreeMap<&str, &str> = BTreeMap::new();
        params.insert("protocol", "tcp");
        for param in spec.split(',') {
            match param.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    params.insert(k, v);
                }
                _ => {
                    return Err(format!(
                        "invalid publish opts format (should be name=value but got '{param}')"
                    ))
                }
            }
        }
        let get = |k: &str| params.get(k).copied().unwrap_or("");
        out.push(format!(
            "{}:{}/{}",
            get("published"),
            get("target"),
            get("protocol")
        ));
    }
    Ok(out)
}

/// `validDeviceMode`: a combination of r, w and m, each at most once.
fn valid_device_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return false;
    }
    let mut seen = String::new();
    for c in mode.chars() {
        if !"rwm".contains(c) || seen.contains(c) {
            return false;
        }
        seen.push(c);
    }
    true
}

/// `validateLinuxPath` and `parseLinuxDevice`: a `--device` value as a device mapping.
fn parse_device(value: &str) -> Result<Value, String> {
    if value.matches(':').count() > 2 {
        return Err(format!("bad format for path: {value}"));
    }
    let split: Vec<&str> = value.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(format!("bad format for path: {value}"));
    }
    let (validated, container_path) = match split.as_slice() {
        [path] => (clean_path(path), path.to_string()),
        [host, second] if valid_device_mode(second) => {
            (format!("{}:{second}", clean_path(host)), host.to_string())
        }
        [host, path] => (format!("{host}:{}", clean_path(path)), path.to_string()),
        [host, path, mode] => {
            if !valid_device_mode(mode) {
                return Err(format!("bad mode specified: {mode}"));
            }
            (format!("{host}:{path}:{mode}"), path.to_string())
        }
        _ => return Err(format!("bad format for path: {value}")),
    };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    let parts: Vec<&str> = validated.splitn(4, ':').collect();
    let (src, mut dst, mut permissions) = (parts[0], String::new(), "rwm".to_string());
    match parts.as_slice() {
        [_] => {}
        [_, second] => {
            if valid_device_mode(second) {
                permissions = second.to_string();
            } else {
                dst = second.to_string();
            }
        }
        [_, second, third] => {
            permissions = third.to_string();
            if valid_device_mode(second) {
                permissions = second.to_string();
            } else {
                dst = second.to_string();
            }
        }
        _ => return Err(format!("invalid device specification: {value}")),
    }
    if dst.is_empty() {
        dst = src.to_string();
    }
    Ok(json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": permissions}))
}

/// `--security-opt` values as docker sends them: `seccomp=FILE` carries the profile's
/// compacted JSON, `systempaths=unconfined` becomes empty masked and read-only paths.
fn parse_security_opts(options: &[String]) -> Result<(Vec<String>, bool), String> {
    let mut out = Vec::new();
    let mut unconfined_paths = false;
    for option in options {
        let (key, value, ok) = match option.split_once('=') {
            Some((k, v)) => (k, v, true),
            None if option != "no-new-privileges" => match option.split_once(':') {
                Some((k, v)) => (k, v, true),
                None => (option.as_str(), "", false),
            },
            None => (option.as_str(), "", false),
        };
        if (!ok || value.is_empty()) && key != "no-new-privileges" {
            return Err(format!("Invalid --security-opt: {}", go_quote(option)));
        }
        if option == "systempaths=unconfined" {
            unconfined_paths = true;
            continue;
        }
        if key == "seccomp" && value != "builtin" && value != "unconfined" {
            let data = std::fs::read(value).map_err(|e| {
                format!(
                    "opening seccomp profile ({value}) failed: open {value}: {}",
                    crate::error::go_io_error(&e)
                )
            })?;
            serde_json::from_slice::<Value>(&data).map_err(|e| {
                format!("compacting json for seccomp profile ({value}) failed: {e}")
            })?;
            // Compacted in place: the daemon gets the profile's own key order.
            out.push(format!("seccomp={}", crate::format::json::compact(&data)));
            continue;
        }
        out.push(option.clone());
    }
    Ok((out, unconfined_paths))
}

/// docker's `normalizeCapabilities`: upper case, `CAP_` prefixed, unique, sorted.
fn normalize_caps(caps: &[String]) -> Value {
    let mut out: Vec<String> = caps
        .iter()
        .map(|c| {
            let c = c.to_uppercase();
            if c == "ALL" || c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            }
        })
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        Value::Null
    } else {
        json!(out)
    }
}

/// `ParseRestartPolicy`.
pub fn parse_restart_policy(policy: &str) -> Result<Value, String> {
    if policy.is_empty() {
        return Ok(json!({"Name": "", "MaximumRetryCount": 0}));
    }
    let (name, count) = policy.split_once(':').unwrap_or((policy, ""));
    if policy.contains(':') && name.is_empty() {
        return Err("invalid restart policy format: no policy provided before colon".to_string());
    }
    let count: i64 = if count.is_empty() {
        0
    } else {
        count.parse().map_err(|_| {
            "invalid restart policy format: maximum retry count must be an integer".to_string()
        })?
    };
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// `KEY=VALUE` strings as a map (later keys win).
fn kv_map(values: &[String]) -> Map<String, Value> {
    values
        .iter()
        .map(|v| {
            let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
            (k.to_string(), json!(val))
        })
        .collect()
}

/// Whether a network mode names a user-defined network.
fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

/// One `--network` value (docker's `NetworkOpt`): a name or `name=..,alias=..` options.
#[derive(Debug, Default, Clone)]
struct NetworkAttachment {
    target: String,
    aliases: Vec<String>,
    ipv4: String,
    ipv6: String,
    mac: String,
    link_local: Vec<String>,
    driver_opts: BTreeMap<String, String>,
    links: Vec<String>,
}

fn parse_network_value(value: &str) -> Result<NetworkAttachment, String> {
    let mut n = NetworkAttachment::default();
    if !value.contains('=') {
        n.target = value.to_string();
        return Ok(n);
    }
    for field in csv_fields(value)? {
        let Some((key, val)) = field.split_once('=') else {
            return Err(format!("invalid field '{field}' must be a key=value pair"));
        };
        match key.to_lowercase().as_str() {
            "name" => n.target = val.to_string(),
            "alias" => n.aliases.push(val.to_string()),
            "ip" => n.ipv4 = val.to_string(),
            "ip6" => n.ipv6 = val.to_string(),
            "mac-address" => n.mac = val.to_string(),
            "link-local-ip" => n.link_local.push(val.to_string()),
            "driver-opt" => {
                let (k, v) = val.split_once('=').unwrap_or((val, ""));
                n.driver_opts.insert(k.to_string(), v.to_string());
            }
            _ => return Err(format!("invalid field key {key}")),
        }
    }
    Ok(n)
}

fn endpoint_settings(n: &NetworkAttachment) -> Result<Value, String> {
    if n.target.trim().is_empty() {
        return Err("no name set for network".to_string());
    }
    if !is_user_defined(&n.target) {
        if !n.aliases.is_empty() {
            return Err(
                "network-scoped aliases are only supported for user-defined networks".to_string(),
            );
        }
        if !n.links.is_empty() {
            return Err("links are only supported for user-defined networks".to_string());
        }
    }
    let list = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
    let ipam = if !n.ipv4.is_empty() || !n.ipv6.is_empty() || !n.link_local.is_empty() {
        json!({"IPv4Address": n.ipv4, "IPv6Address": n.ipv6, "LinkLocalIPs": list(&n.link_local)})
    } else {
        Value::Null
    };
    if !n.mac.is_empty() && !valid_mac(&n.mac) {
        return Err(format!("{} is not a valid mac address", n.mac));
    }
    let driver_opts = if n.driver_opts.is_empty() {
        Value::Null
    } else {
        json!(n.driver_opts)
    };
    Ok(json!({
        "IPAMConfig": ipam,
        "Links": list(&n.links),
        "Aliases": list(&n.aliases),
        "MacAddress": n.mac,
        "DriverOpts": driver_opts,
        "GwPriority": 0,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": null,
    }))
}

/// Go's `net.ParseMAC` for the colon and dash forms.
fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split([':', '-']).collect();
    matches!(parts.len(), 6 | 8 | 20)
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The endpoints of `NetworkingConfig` (docker's `parseNetworkOpts`), and the network
/// mode of the first network.
fn network_endpoints(p: &Parsed) -> Result<(Map<String, Value>, String), String> {
    let mut attachments = Vec::new();
    for value in p.list("network") {
        attachments.push(parse_network_value(&value)?);
    }
    let aliases = p.list("network-alias");
    let links = p.list("link");
    let ipv4 = p.string("ip");
    let ipv6 = p.string("ip6");
    let mac = p.string("mac-address");
    let link_local = p.list("link-local-ip");
    let apply = |n: &mut NetworkAttachment| -> Result<(), String> {
        let conflict = |what: &str| Err(format!("conflicting options: cannot specify both {what}"));
        if !n.aliases.is_empty() && !aliases.is_empty() {
            return conflict("--network-alias and per-network alias");
        }
        if !n.ipv4.is_empty() && !ipv4.is_empty() {
            return conflict("--ip and per-network IPv4 address");
        }
        if !n.ipv6.is_empty() && !ipv6.is_empty() {
            return conflict("--ip6 and per-network IPv6 address");
        }
        if !n.mac.is_empty() && !mac.is_empty() {
            return conflict("--mac-address and per-network MAC address");
        }
        if !n.link_local.is_empty() && !link_local.is_empty() {
            return conflict("--link-local-ip and per-network link-local IP addresses");
        }
        if !aliases.is_empty() {
            n.aliases = aliases.clone();
        }
        if is_user_defined(&n.target) && !links.is_empty() {
            n.links = links.clone();
        }
        if !ipv4.is_empty() {
            n.ipv4 = ipv4.clone();
        }
        if !ipv6.is_empty() {
            n.ipv6 = ipv6.clone();
        }
        if !mac.is_empty() {
            n.mac = mac.clone();
        }
        if !link_local.is_empty() {
            n.link_local = link_local.clone();
        }
        Ok(())
    };
    let mut endpoints = Map::new();
    if attachments.is_empty() {
        let mut n = NetworkAttachment {
            target: "default".to_string(),
            ..NetworkAttachment::default()
        };
        apply(&mut n)?;
        endpoints.insert("default".to_string(), endpoint_settings(&n)?);
        return Ok((endpoints, "default".to_string()));
    }
    let mode = attachments[0].target.clone();
    let single = attachments.len() == 1;
    let (mut user_defined, mut builtin) = (false, false);
    for (i, mut n) in attachments.into_iter().enumerate() {
        if is_user_defined(&n.target) {
            user_defined = true;
        } else {
            builtin = true;
        }
        if i == 0 {
            apply(&mut n)?;
        }
        let settings = endpoint_settings(&n)?;
        if endpoints.contains_key(&n.target) {
            return Err(format!(
                "network {} is specified multiple times",
                go_quote(&n.target)
            ));
        }
        let empty = n.aliases.is_empty()
            && n.links.is_empty()
            && n.ipv4.is_empty()
            && n.ipv6.is_empty()
            && n.link_local.is_empty()
            && n.mac.is_empty()
            && n.driver_opts.is_empty();
        if i == 0 && single && empty {
            continue;
        }
        endpoints.insert(n.target.clone(), settings);
    }
    if user_defined && builtin {
        return Err("conflicting options: cannot attach both user-defined and non-user-defined network-modes".to_string());
    }
    Ok((endpoints, mode))
}

/// `--gpus`: `all`, a count, or `count=..,device=..,driver=..,capabilities=..`.
fn parse_gpus(value: &str) -> Result<Value, String> {
    let mut count: i64 = 0;
    let mut devices: Vec<String> = Vec::new();
    let mut driver = String::new();
    let mut capabilities: Vec<String> = vec!["gpu".to_string()];
    let parse_count = |v: &str| -> Result<i64, String> {
        if v == "all" {
            Ok(-1)
        } else {
            v.parse().map_err(|_| {
                format!("invalid count ({v}): value must be either \"all\" or an integer")
            })
        }
    };
    if !value.contains('=') {
        count = parse_count(value)?;
    } else {
        for field in csv_fields(value)? {
            let (key, val) = field.split_once('=').unwrap_or((field.as_str(), ""));
            match key {
                "count" => count = parse_count(val)?,
                "device" => devices = val.split(',').map(str::to_string).collect(),
                "driver" => driver = val.to_string(),
                "capabilities" => {
                    capabilities = val.split(',').map(str::to_string).collect();
                    if !capabilities.iter().any(|c| c == "gpu") {
                        capabilities.push("gpu".to_string());
                    }
                }
                "options" => {}
                _ => return Err(format!("unexpected key '{key}' in '{field}'")),
            }
        }
    }
    if count != 0 && !devices.is_empty() {
        return Err("cannot set both Count and DeviceIDs on device request".to_string());
    }
    let devices = if devices.is_empty() {
        Value::Null
    } else {
        json!(devices)
    };
    Ok(
        json!({"Driver": driver, "Count": count, "DeviceIDs": devices, "Capabilities": [capabilities], "Options": null}),
    )
}

/// Throttle and weight device lists (`/dev/sda:10mb`).
fn parse_device_limits(values: &[String], rate_key: &str, bytes: bool) -> Result<Value, String> {
    let mut out = Vec::new();
    for value in values {
        let Some((path, rate)) = value.split_once(':') else {
            return Err(format!("bad format: {value}"));
        };
        if !path.starts_with("/dev/") {
            return Err(format!("bad format for device path: {value}"));
        }
        let amount: i64 = if bytes {
            ram_in_bytes(rate).map_err(|_| format!("invalid rate for device: {value}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"))?
        } else {
            rate.parse().map_err(|_| format!("invalid rate for device: {value}. The correct format is <device-path>:<number>. Number must be a positive integer"))?
        };
        out.push(json!({"Path": path, rate_key: amount}));
    }
    Ok(json!(out))
}

/// docker's `parse`: the create request for `run`/`create` from parsed flags, the image
/// and the command. Errors carry docker's message (shown as `docker: MESSAGE`).
pub fn build_create_request(
    p: &Parsed,
    image: &str,
    args: &[String],
    api_version: &str,
    console_size: (u16, u16),
) -> Result<CreateRequest, String> {
    let attach = p.list("attach");
    let mut attach_stdin = attach.iter().any(|a| a == "stdin");
    let mut attach_stdout = attach.iter().any(|a| a == "stdout");
    let mut attach_stderr = attach.iter().any(|a| a == "stderr");
    let mac = p.string("mac-address");
    if !mac.is_empty() && !valid_mac(&mac) {
        return Err(format!("{mac} is not a valid mac address"));
    }
    let open_stdin = p.bool("interactive");
    if open_stdin {
        attach_stdin = true;
    }
    if attach.is_empty() {
        attach_stdout = true;
        attach_stderr = true;
    }
    let swappiness = if p.changed("memory-swappiness") {
        p.int("memory-swappiness")
    } else {
        -1
    };
    if swappiness != -1 && !(0..=100).contains(&swappiness) {
        return Err(format!(
            "invalid value: {swappiness}. Valid memory swappiness range is 0-100"
        ));
    }

    // Volumes: specs with a source are binds; the rest are anonymous volumes.
    let mut binds: Vec<String> = Vec::new();
    let mut volumes = Map::new();
    let mut seen = std::collections::BTreeSet::new();
    for spec in p.list("volume") {
        if !seen.insert(spec.clone()) {
            continue;
        }
        let (source, _) = parse_volume_spec(&spec)?;
        if source.is_empty() {
            volumes.insert(spec.clone(), json!({}));
            continue;
        }
        let mut bind = spec.clone();
        if is_file_path(&source) {
            if let Some((host, rest)) = spec.split_once(':') {
                let mut host = host.to_string();
                if !host.starts_with('/') && host.starts_with('.') {
                    if let Ok(cwd) = std::env::current_dir() {
                        host = clean_path(&cwd.join(&host).to_string_lossy());
                    }
                }
                bind = format!("{host}:{rest}");
            }
        }
        binds.push(bind);
    }

    let mut tmpfs = Map::new();
    for t in p.list("tmpfs") {
        let (k, v) = t.split_once(':').unwrap_or((t.as_str(), ""));
        tmpfs.insert(k.to_string(), json!(v));
    }

    let entrypoint = if !p.string("entrypoint").is_empty() {
        json!([p.string("entrypoint")])
    } else if p.changed("entrypoint") {
        json!([""])
    } else {
        Value::Null
    };
    let cmd = if args.is_empty() {
        Value::Null
    } else {
        json!(args)
    };

    let published = standard_port_notation(&p.list("publish"))?;
    let (mut exposed, bindings) = parse_port_specs(&published)?;
    for e in p.list("expose") {
        if e.contains(':') {
            return Err(format!("invalid port format for --expose: {e}"));
        }
        let (proto, port) = split_proto_port(&e);
        let (start, end) = parse_port_range(&port)
            .map_err(|err| format!("invalid range format for --expose: {e}, error: {err}"))?;
        for i in start..=end {
            exposed.entry(format!("{i}/{proto}")).or_insert(());
        }
    }

    let mut devices = Vec::new();
    let mut cdi_devices = Vec::new();
    for device in p.list("device") {
        // CDI names are vendor/class=name.
        if device.contains('=') && device.contains('/') && !device.starts_with('/') {
            cdi_devices.push(device);
            continue;
        }
        devices.push(parse_device(&device)?);
    }

    // Environment: env files first, then -e (one entry per name, last value wins).
    let mut env: Vec<String> = Vec::new();
    for file in p.list("env-file") {
        env.extend(read_kv_file(&file, true)?);
    }
    let mut flag_env: Vec<String> = Vec::new();
    for e in p.list("env") {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string();
        match flag_env
            .iter_mut()
            .find(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) == key)
        {
            Some(existing) => *existing = e,
            None => flag_env.push(e),
        }
    }
    env.extend(flag_env);

    let mut labels: Vec<String> = Vec::new();
    for file in p.list("label-file") {
        labels.extend(read_kv_file(&file, false)?);
    }
    labels.extend(p.list("label"));

    let pid = p.string("pid");
    let pid_ok = pid.is_empty()
        || pid == "host"
        || pid
            .strip_prefix("container:")
            .is_some_and(|c| !c.is_empty());
    if !pid_ok {
        return Err("--pid: invalid PID mode".to_string());
    }
    let uts = p.string("uts");
    if !uts.is_empty() && uts != "host" {
        return Err("--uts: invalid UTS mode".to_string());
    }
    let userns = p.string("userns");
    if !userns.is_empty() && userns != "host" && userns != "private" {
        return Err("--userns: invalid USER mode".to_string());
    }
    let cgroupns = p.string("cgroupns");
    if !cgroupns.is_empty() && cgroupns != "host" && cgroupns != "private" {
        return Err("--cgroupns: invalid CGROUP mode".to_string());
    }
    let restart = if p.changed("restart") {
        p.string("restart")
    } else {
        "no".to_string()
    };
    let restart_policy = parse_restart_policy(&restart)?;

    let log_driver = p.string("log-driver");
    let log_opts = p.list("log-opt");
    if log_driver == "none" && !log_opts.is_empty() {
        return Err(format!("invalid logging opts for driver {log_driver}"));
    }
    let (security_opts, unconfined_paths) = parse_security_opts(&p.list("security-opt"))?;
    let mut storage_opts = Map::new();
    for option in p.list("storage-opt") {
        let Some((k, v)) = option.split_once('=') else {
            return Err("invalid storage option".to_string());
        };
        storage_opts.insert(k.to_string(), json!(v));
    }

    // Healthcheck.
    let duration = |name: &str| p.string(name).parse::<i64>().unwrap_or(0);
    let health_cmd = p.string("health-cmd");
    let (interval, timeout, start_period, start_interval) = (
        duration("health-interval"),
        duration("health-timeout"),
        duration("health-start-period"),
        duration("health-start-interval"),
    );
    let retries = p.int("health-retries");
    let have_health = !health_cmd.is_empty()
        || interval != 0
        || timeout != 0
        || start_period != 0
        || retries != 0
        || start_interval != 0;
    let healthcheck = if p.bool("no-healthcheck") {
        if have_health {
            return Err("--no-healthcheck conflicts with --health-* options".to_string());
        }
        Some(json!({"Test": ["NONE"]}))
    } else if have_health {
        for (value, name) in [
            (interval, "--health-interval"),
            (timeout, "--health-timeout"),
            (retries, "--health-retries"),
            (start_period, "--health-start-period"),
            (start_interval, "--health-start-interval"),
        ] {
            if value < 0 {
                return Err(format!("{name} cannot be negative"));
            }
        }
        let mut h = Map::new();
        if !health_cmd.is_empty() {
            h.insert("Test".into(), json!(["CMD-SHELL", health_cmd]));
        }
        for (key, value) in [
            ("Interval", interval),
            ("Timeout", timeout),
            ("StartPeriod", start_period),
            ("StartInterval", start_interval),
            ("Retries", retries),
        ] {
            if value != 0 {
                h.insert(key.into(), json!(value));
            }
        }
        Some(Value::Object(h))
    } else {
        None
    };

    let mut device_requests: Vec<Value> = Vec::new();
    if p.changed("gpus") {
        device_requests.push(parse_gpus(&p.string("gpus"))?);
    }
    if !cdi_devices.is_empty() {
        device_requests.push(json!({"Driver": "cdi", "Count": 0, "DeviceIDs": cdi_devices, "Capabilities": null, "Options": null}));
    }
    let number = |name: &str| p.string(name).parse::<i64>().unwrap_or(0);
    let mut ulimits: Vec<(String, i64, i64)> = Vec::new();
    for u in p.list("ulimit") {
        if let Ok((name, soft, hard)) = parse_ulimit(&u) {
            ulimits.retain(|(n, _, _)| *n != name);
            ulimits.push((name, soft, hard));
        }
    }
    ulimits.sort_by(|a, b| a.0.cmp(&b.0));
    let ulimits: Vec<Value> = ulimits
        .into_iter()
        .map(|(name, soft, hard)| json!({"Name": name, "Hard": hard, "Soft": soft}))
        .collect();
    let weight_devices = {
        let mut out = Vec::new();
        for value in p.list("blkio-weight-device") {
            let Some((path, weight)) = value.split_once(':') else {
                return Err(format!("bad format: {value}"));
            };
            if !path.starts_with("/dev/") {
                return Err(format!("bad format for device path: {value}"));
            }
            let weight: u16 = weight
                .parse()
                .ok()
                .filter(|w| *w == 0 || (10..=1000).contains(w))
                .ok_or_else(|| format!("invalid weight for device: {value}"))?;
            out.push(json!({"Path": path, "Weight": weight}));
        }
        json!(out)
    };
    let device_cgroup_rules = p.list("device-cgroup-rule");
    let list_or_null = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
    let list_or_empty = |v: Vec<String>| json!(v);

    let mut config = Map::new();
    config.insert("Hostname".into(), json!(p.string("hostname")));
    config.insert("Domainname".into(), json!(p.string("domainname")));
    config.insert("User".into(), json!(p.string("user")));
    config.insert("AttachStdin".into(), json!(attach_stdin));
    config.insert("AttachStdout".into(), json!(attach_stdout));
    config.insert("AttachStderr".into(), json!(attach_stderr));
    if !exposed.is_empty() {
        let ports: Map<String, Value> = exposed.keys().map(|k| (k.clone(), json!({}))).collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    let tty = p.bool("tty");
    config.insert("Tty".into(), json!(tty));
    config.insert("OpenStdin".into(), json!(open_stdin));
    config.insert("StdinOnce".into(), json!(open_stdin && attach_stdin));
    config.insert("Env".into(), list_or_null(env));
    config.insert("Cmd".into(), cmd);
    if let Some(h) = healthcheck {
        config.insert("Healthcheck".into(), h);
    }
    config.insert("Image".into(), json!(image));
    config.insert("Volumes".into(), Value::Object(volumes));
    config.insert("WorkingDir".into(), json!(p.string("workdir")));
    config.insert("Entrypoint".into(), entrypoint);
    config.insert("OnBuild".into(), Value::Null);
    config.insert("Labels".into(), Value::Object(kv_map(&labels)));
    let stop_signal = p.string("stop-signal");
    if !stop_signal.is_empty() {
        config.insert("StopSignal".into(), json!(stop_signal));
    }
    if p.changed("stop-timeout") {
        config.insert("StopTimeout".into(), json!(p.int("stop-timeout")));
    }

    let (endpoints, network_mode) = network_endpoints(p)?;
    if !crate::client::version_less(api_version, "1.44") {
        // Newer daemons take the MAC address per endpoint only.
    } else if let Some(m) = endpoints
        .get(&network_mode)
        .and_then(|e| e.get("MacAddress"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        config.insert("MacAddress".into(), json!(m));
    }

    let auto_remove = p.bool("rm");
    if auto_remove && !matches!(restart_policy["Name"].as_str(), Some("" | "no")) {
        return Err("conflicting options: cannot specify both --restart and --rm".to_string());
    }
    let mut host = Map::new();
    host.insert("Binds".into(), list_or_null(binds));
    host.insert("ContainerIDFile".into(), json!(p.string("cidfile")));
    host.insert(
        "LogConfig".into(),
        json!({"Type": log_driver, "Config": kv_map(&log_opts)}),
    );
    host.insert("NetworkMode".into(), json!(network_mode));
    let port_bindings: Map<String, Value> = bindings
        .into_iter()
        .map(|(port, list)| {
            let list: Vec<Value> = list
                .into_iter()
                .map(|(ip, hp)| json!({"HostIp": ip, "HostPort": hp}))
                .collect();
            (port, json!(list))
        })
        .collect();
    host.insert("PortBindings".into(), Value::Object(port_bindings));
    host.insert("RestartPolicy".into(), restart_policy);
    host.insert("AutoRemove".into(), json!(auto_remove));
    host.insert("VolumeDriver".into(), json!(p.string("volume-driver")));
    host.insert("VolumesFrom".into(), list_or_null(p.list("volumes-from")));
    host.insert(
        "ConsoleSize".into(),
        json!([console_size.0, console_size.1]),
    );
    let annotations = kv_map(&p.list("annotation"));
    if !annotations.is_empty() {
        host.insert("Annotations".into(), Value::Object(annotations));
    }
    host.insert("CapAdd".into(), normalize_caps(&p.list("cap-add")));
    host.insert("CapDrop".into(), normalize_caps(&p.list("cap-drop")));
    host.insert("CgroupnsMode".into(), json!(cgroupns));
    let dns = p.list("dns");
    host.insert("Dns".into(), list_or_empty(dns.clone()));
    host.insert("DnsOptions".into(), list_or_empty(p.list("dns-option")));
    host.insert("DnsSearch".into(), list_or_empty(p.list("dns-search")));
    host.insert("ExtraHosts".into(), list_or_null(p.list("add-host")));
    host.insert("GroupAdd".into(), list_or_null(p.list("group-add")));
    host.insert("IpcMode".into(), json!(p.string("ipc")));
    host.insert("Cgroup".into(), json!(""));
    host.insert(
        "Links".into(),
        list_or_null(links_for_host(p, &network_mode)),
    );
    host.insert("OomScoreAdj".into(), json!(p.int("oom-score-adj")));
    host.insert("PidMode".into(), json!(pid));
    host.insert("Privileged".into(), json!(p.bool("privileged")));
    host.insert("PublishAllPorts".into(), json!(p.bool("publish-all")));
    host.insert("ReadonlyRootfs".into(), json!(p.bool("read-only")));
    host.insert("SecurityOpt".into(), list_or_null(security_opts));
    if !storage_opts.is_empty() {
        host.insert("StorageOpt".into(), Value::Object(storage_opts));
    }
    if !tmpfs.is_empty() {
        host.insert("Tmpfs".into(), Value::Object(tmpfs));
    }
    host.insert("UTSMode".into(), json!(uts));
    host.insert("UsernsMode".into(), json!(userns));
    host.insert("ShmSize".into(), json!(number("shm-size")));
    let sysctls = kv_map(&p.list("sysctl"));
    if !sysctls.is_empty() {
        host.insert("Sysctls".into(), Value::Object(sysctls));
    }
    let runtime = p.string("runtime");
    if !runtime.is_empty() {
        host.insert("Runtime".into(), json!(runtime));
    }
    host.insert("Isolation".into(), json!(p.string("isolation")));
    // Resources.
    host.insert("CpuShares".into(), json!(p.int("cpu-shares")));
    host.insert("Memory".into(), json!(number("memory")));
    host.insert("NanoCpus".into(), json!(number("cpus")));
    host.insert("CgroupParent".into(), json!(p.string("cgroup-parent")));
    host.insert("BlkioWeight".into(), json!(number("blkio-weight")));
    host.insert("BlkioWeightDevice".into(), weight_devices);
    host.insert(
        "BlkioDeviceReadBps".into(),
        parse_device_limits(&p.list("device-read-bps"), "Rate", true)?,
    );
    host.insert(
        "BlkioDeviceWriteBps".into(),
        parse_device_limits(&p.list("device-write-bps"), "Rate", true)?,
    );
    host.insert(
        "BlkioDeviceReadIOps".into(),
        parse_device_limits(&p.list("device-read-iops"), "Rate", false)?,
    );
    host.insert(
        "BlkioDeviceWriteIOps".into(),
        parse_device_limits(&p.list("device-write-iops"), "Rate", false)?,
    );
    host.insert("CpuPeriod".into(), json!(p.int("cpu-period")));
    host.insert("CpuQuota".into(), json!(p.int("cpu-quota")));
    host.insert("CpuRealtimePeriod".into(), json!(p.int("cpu-rt-period")));
    host.insert("CpuRealtimeRuntime".into(), json!(p.int("cpu-rt-runtime")));
    host.insert("CpusetCpus".into(), json!(p.string("cpuset-cpus")));
    host.insert("CpusetMems".into(), json!(p.string("cpuset-mems")));
    host.insert("Devices".into(), json!(devices));
    host.insert(
        "DeviceCgroupRules".into(),
        list_or_null(device_cgroup_rules),
    );
    host.insert(
        "DeviceRequests".into(),
        if device_requests.is_empty() {
            Value::Null
        } else {
            json!(device_requests)
        },
    );
    let kernel_memory = number("kernel-memory");
    if kernel_memory != 0
        && !crate::client::version_less(api_version, "1.40")
        && crate::client::version_less(api_version, "1.42")
    {
        host.insert("KernelMemory".into(), json!(kernel_memory));
    }
    host.insert(
        "MemoryReservation".into(),
        json!(number("memory-reservation")),
    );
    host.insert("MemorySwap".into(), json!(number("memory-swap")));
    host.insert("MemorySwappiness".into(), json!(swappiness));
    host.insert("OomKillDisable".into(), json!(p.bool("oom-kill-disable")));
    host.insert("PidsLimit".into(), json!(p.int("pids-limit")));
    host.insert("Ulimits".into(), json!(ulimits));
    host.insert("CpuCount".into(), json!(0));
    host.insert("CpuPercent".into(), json!(0));
    host.insert("IOMaximumIOps".into(), json!(0));
    host.insert("IOMaximumBandwidth".into(), json!(0));
    let mut mounts = Vec::new();
    for m in p.list("mount") {
        mounts.push(parse_mount(&m)?);
    }
    if !mounts.is_empty() {
        host.insert("Mounts".into(), json!(mounts));
    }
    let empty_paths = if unconfined_paths {
        json!([])
    } else {
        Value::Null
    };
    host.insert("MaskedPaths".into(), empty_paths.clone());
    host.insert("ReadonlyPaths".into(), empty_paths);
    if p.changed("init") {
        host.insert("Init".into(), json!(p.bool("init")));
    }

    let mut body = config;
    body.insert("HostConfig".into(), Value::Object(host));
    body.insert(
        "NetworkingConfig".into(),
        json!({"EndpointsConfig": Value::Object(endpoints)}),
    );
    Ok(CreateRequest {
        body: Value::Object(body),
        image: image.to_string(),
        tty,
        attach_stdin,
        attach_stdout,
        attach_stderr,
        auto_remove,
        cidfile: p.string("cidfile"),
        dns,
    })
}

/// `--link` is a legacy link on the default bridge and an endpoint option elsewhere.
fn links_for_host(p: &Parsed, network_mode: &str) -> Vec<String> {
    if is_user_defined(network_mode) {
        Vec::new()
    } else {
        p.list("link")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{parse, Args, Command, Outcome};

    fn parsed(words: &str) -> Result<Parsed, String> {
        let cmd = Command {
            path: "run".into(),
            usage: "[OPTIONS] IMAGE [COMMAND] [ARG...]",
            short: "",
            aliases: Vec::new(),
            flags: RUN_FLAGS,
            args: Args::Min(1),
            interspersed: false,
        };
        let argv: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        match parse(&cmd, &argv).map_err(|e| e.to_string())? {
            Outcome::Run(p) => Ok(p),
            Outcome::Help => Err("help".into()),
        }
    }

    fn body(words: &str) -> Value {
        let p = parsed(words).unwrap();
        build_create_request(&p, &p.args[0], &p.args[1..], "1.45", (0, 0))
            .unwrap()
            .body
    }

    #[test]
    fn sizes_cpus_durations_like_go() {
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("abc"), Err("invalid size: 'abc'".into()));
        assert_eq!(ram_in_bytes("1x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert_eq!(
            parse_cpus("abc"),
            Err("failed to parse abc as a rational number".into())
        );
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(
            parse_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        assert_eq!(
            parse_ulimit("nofile=100:200"),
            Ok(("nofile".into(), 100, 200))
        );
        assert_eq!(
            parse_ulimit("foo=1"),
            Err("invalid ulimit type: foo".into())
        );
    }

    #[test]
    fn flag_values_are_checked_while_parsing() {
        let e = parsed("--memory abc busybox").unwrap_err();
        assert!(e.starts_with("invalid argument \"abc\" for \"-m, --memory\" flag: invalid size: 'abc'\n\nUsage:  berth run"), "{e}");
        let e = parsed("-e =x busybox").unwrap_err();
        assert!(
            e.starts_with(
                "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x"
            ),
            "{e}"
        );
        let e = parsed("--add-host bad busybox").unwrap_err();
        assert!(e.contains("bad format for add-host: \"bad\""), "{e}");
        // -h is the host name here, not help.
        let p = parsed("-h myhost busybox").unwrap();
        assert_eq!(p.string("hostname"), "myhost");
        let p = parsed("--net none busybox").unwrap();
        assert_eq!(p.list("network"), vec!["none"]);
    }

    #[test]
    fn body_matches_docker_for_a_plain_run() {
        let b = body("busybox echo hi");
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Env"], Value::Null);
        assert_eq!(b["AttachStdout"], json!(true));
        assert_eq!(b["Volumes"], json!({}));
        assert_eq!(b["HostConfig"]["NetworkMode"], json!("default"));
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "no", "MaximumRetryCount": 0})
        );
        assert_eq!(b["HostConfig"]["MemorySwappiness"], json!(-1));
        assert_eq!(b["HostConfig"]["Dns"], json!([]));
        assert_eq!(b["HostConfig"]["CapAdd"], Value::Null);
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["default"].is_object());
    }

    #[test]
    fn body_carries_every_option() {
        let b = body("-it -e A=1 -w /tmp -u 1000 -l a=b --memory 64m --cpus 1.5 --restart on-failure:3 --ulimit nofile=100:200 -p 8080:80 --expose 90 --add-host h=1.2.3.4 --dns 8.8.8.8 --tmpfs /run:size=1m -v /tmp:/hostTmp:ro -v vol1:/data -v /anon --health-cmd true --stop-timeout 5 --init --pids-limit 10 --cap-add net_admin busybox sh");
        assert_eq!(b["StdinOnce"], json!(true));
        assert_eq!(b["Tty"], json!(true));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}, "90/tcp": {}}));
        assert_eq!(b["Healthcheck"], json!({"Test": ["CMD-SHELL", "true"]}));
        assert_eq!(b["StopTimeout"], json!(5));
        assert_eq!(b["Volumes"], json!({"/anon": {}}));
        let h = &b["HostConfig"];
        assert_eq!(h["Binds"], json!(["/tmp:/hostTmp:ro", "vol1:/data"]));
        assert_eq!(
            h["PortBindings"],
            json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(h["Memory"], json!(67_108_864));
        assert_eq!(h["NanoCpus"], json!(1_500_000_000));
        assert_eq!(
            h["Ulimits"],
            json!([{"Name": "nofile", "Hard": 200, "Soft": 100}])
        );
        assert_eq!(h["ExtraHosts"], json!(["h:1.2.3.4"]));
        assert_eq!(h["Tmpfs"], json!({"/run": "size=1m"}));
        assert_eq!(h["Init"], json!(true));
        assert_eq!(h["PidsLimit"], json!(10));
        assert_eq!(h["CapAdd"], json!(["CAP_NET_ADMIN"]));
    }

    #[test]
    fn parse_errors_use_docker_messages() {
        let err = |words: &str| {
            let p = parsed(words).unwrap();
            build_create_request(&p, &p.args[0], &p.args[1..], "1.45", (0, 0)).unwrap_err()
        };
        assert_eq!(err("-p 99999 busybox"), "invalid containerPort: 99999");
        assert_eq!(
            err("--rm --restart always busybox"),
            "conflicting options: cannot specify both --restart and --rm"
        );
        assert_eq!(
            err("--no-healthcheck --health-cmd x busybox"),
            "--no-healthcheck conflicts with --health-* options"
        );
        assert_eq!(
            err("--security-opt foo busybox"),
            "Invalid --security-opt: \"foo\""
        );
        assert_eq!(
            err("--device /dev/null:rel busybox"),
            "rel is not an absolute path"
        );
        assert_eq!(err("--pid bad busybox"), "--pid: invalid PID mode");
        assert_eq!(
            err("-v ::/x busybox"),
            "invalid spec: ::/x: empty section between colons"
        );
    }

    #[test]
    fn mounts_parse_like_docker() {
        assert_eq!(
            parse_mount("type=bind,src=/a,dst=/b,ro").unwrap(),
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert_eq!(parse_mount("type=bind").unwrap_err(), "target is required");
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1_048_576}})
        );
        assert_eq!(
            parse_mount("type=bind,dst=/x,volume-nocopy").unwrap_err(),
            "cannot mix 'volume-*' options with mount type 'bind'"
        );
    }

    #[test]
    fn security_opt_seccomp_sends_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("profile.json");
        std::fs::write(&file, "{ \"defaultAction\" : \"SCMP_ACT_ALLOW\" }").unwrap();
        let (opts, _) = parse_security_opts(&[format!("seccomp={}", file.display())]).unwrap();
        assert_eq!(opts, vec!["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]);
        assert!(parse_security_opts(&["seccomp=/nonexistent".into()])
            .unwrap_err()
            .starts_with("opening seccomp profile (/nonexistent) failed"));
    }
}
