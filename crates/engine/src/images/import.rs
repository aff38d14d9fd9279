//! `import`: an image of one layer from a root filesystem tarball, like `docker import`.
//! The tarball is read once: decompressed, hashed (the diff id), gzipped into the blob that
//! push sends, and unpacked, all in the same pass. `--change` instructions in Dockerfile
//! syntax edit the image config.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;

use berth_distribution::manifest::Platform;
use berth_distribution::reference::Reference;
use berth_store::digest::Hasher;
use berth_store::{Digest, ImageRecord, LayerBlob, LayerRecord};
use serde_json::{json, Map, Value};

use super::archive::{NewBlob, Touched, MEDIA_LAYER_GZIP};
use super::{hex_of, now_nanos, now_unix, parse_reference, Images};
use crate::error::{Error, ErrorKind, Result};

/// The instructions `--change` accepts (docker's list for import and commit).
const CHANGE_INSTRUCTIONS: &[&str] =
    &["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"];
/// Dockerfile instructions that exist but cannot be a change.
const OTHER_INSTRUCTIONS: &[&str] = &["ADD", "ARG", "COPY", "FROM", "MAINTAINER", "RUN", "SHELL"];

/// The platform an imported image is for: the host's, or `os[/arch[/variant]]` (linux only).
fn import_platform(platform: Option<&str>) -> Result<Platform> {
    let Some(text) = platform.map(str::trim).filter(|p| !p.is_empty()) else { return Ok(Platform::host()) };
    let parsed = Platform::parse(text).map_err(|e| Error::InvalidArgument(format!("invalid platform: {e}")))?;
    if parsed.os != "linux" {
        return Err(Error::InvalidArgument(format!("operating system {:?} is not supported", parsed.os)));
    }
    Ok(parsed)
}

/// docker's container config of an image with nothing set.
pub fn empty_container_config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null
    })
}

fn change_error(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

/// Applies `--change` instructions (Dockerfile syntax, one instruction each) to a container
/// config object: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER,
/// VOLUME, WORKDIR, with JSON array and shell forms and `$VAR` expansion where docker does it.
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    let Some(config) = config.as_object_mut() else {
        return Err(Error::Internal("container config is not an object".to_string()));
    };
    let mut cmd_set = false;
    let lines = changes.iter().flat_map(|c| join_continuations(c));
    for (number, line) in lines.enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let instruction = keyword.to_ascii_uppercase();
        if !CHANGE_INSTRUCTIONS.contains(&instruction.as_str()) {
            if OTHER_INSTRUCTIONS.contains(&instruction.as_str()) {
                return Err(change_error(format!("{} is not a valid change command", keyword.to_ascii_lowercase())));
            }
            return Err(change_error(format!("dockerfile parse error line {}: unknown instruction: {instruction}", number + 1)));
        }
        apply_instruction(config, &instruction, rest, &mut cmd_set)?;
    }
    Ok(())
}

/// Splits a change into lines, joining those that end in a backslash, as a Dockerfile does.
fn join_continuations(change: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in change.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn apply_instruction(config: &mut Map<String, Value>, instruction: &str, rest: &str, cmd_set: &mut bool) -> Result<()> {
    let env = string_list(config.get("Env"));
    let need_one = || change_error(format!("{instruction} requires at least one argument"));
    let need_exactly_one = || change_error(format!("{instruction} requires exactly one argument"));
    match instruction {
        "CMD" => {
            if rest.is_empty() {
                return Err(need_one());
            }
            config.insert("Cmd".into(), json!(command_form(rest)));
            *cmd_set = true;
        }
        "ENTRYPOINT" => {
            let entrypoint = if rest.is_empty() { vec![String::new()] } else { command_form(rest) };
            config.insert("Entrypoint".into(), json!(entrypoint));
            // A new entrypoint drops an inherited command, unless this change set gave one.
            if !*cmd_set {
                config.insert("Cmd".into(), Value::Null);
            }
        }
        "ENV" => {
            let pairs = name_values(instruction, rest, &env)?;
            let mut env = env;
            for (key, value) in pairs {
                let entry = format!("{key}={value}");
                match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
                    Some(existing) => *existing = entry,
                    None => env.push(entry),
                }
            }
            config.insert("Env".into(), json!(env));
        }
        "LABEL" => {
            let pairs = name_values(instruction, rest, &env)?;
            let labels = object_entry(config, "Labels");
            for (key, value) in pairs {
                labels.insert(key, Value::String(value));
            }
        }
        "EXPOSE" => {
            let ports = shell_words(rest, &env)?;
            if ports.is_empty() {
                return Err(need_one());
            }
            let mut specs = Vec::new();
            for port in &ports {
                specs.extend(port_specs(port)?);
            }
            let exposed = object_entry(config, "ExposedPorts");
            for spec in specs {
                exposed.insert(spec, json!({}));
            }
        }
        "VOLUME" => {
            let volumes = match json_array(rest) {
                Some(list) => list,
                None => shell_words(rest, &env)?,
            };
            if volumes.is_empty() {
                return Err(need_one());
            }
            let map = object_entry(config, "Volumes");
            for volume in volumes {
                let volume = volume.trim().to_string();
                if volume.is_empty() {
                    return Err(change_error("VOLUME specified can not be an empty string"));
                }
                map.insert(volume, json!({}));
            }
        }
        "USER" | "STOPSIGNAL" | "WORKDIR" => {
            let words = if instruction == "WORKDIR" { vec![expand_word(rest, &env)?] } else { shell_words(rest, &env)? };
            let [value] = words.as_slice() else { return Err(need_exactly_one()) };
            if value.is_empty() {
                return Err(need_exactly_one());
            }
            match instruction {
                "USER" => {
                    config.insert("User".into(), json!(value));
                }
                "STOPSIGNAL" => {
                    check_signal(value)?;
                    config.insert("StopSignal".into(), json!(value));
                }
                _ => {
                    let current = config.get("WorkingDir").and_then(Value::as_str).filter(|w| !w.is_empty()).unwrap_or("/");
                    let joined = if value.starts_with('/') { value.clone() } else { format!("{}/{value}", current.trim_end_matches('/')) };
                    config.insert("WorkingDir".into(), json!(clean_path(&joined)));
                }
            }
        }
        "ONBUILD" => {
            let (trigger, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if trigger.is_empty() {
                return Err(need_one());
            }
            let trigger = trigger.to_ascii_uppercase();
            if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(change_error(format!("{trigger} isn't allowed as an ONBUILD trigger")));
            }
            let mut onbuild = string_list(config.get("OnBuild"));
            onbuild.push(format!("{trigger} {}", args.trim()).trim_end().to_string());
            config.insert("OnBuild".into(), json!(onbuild));
        }
        "HEALTHCHECK" => {
            config.insert("Healthcheck".into(), healthcheck(rest)?);
        }
        _ => return Err(Error::Internal(format!("unhandled change instruction {instruction}"))),
    }
    Ok(())
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// The object at `key`, created when absent or null.
fn object_entry<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = config.entry(key.to_string()).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// A JSON array of strings, the exec form; `None` for anything else (then it is shell form).
fn json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest).ok()
}

/// Exec form as given, shell form wrapped in `/bin/sh -c`.
fn command_form(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()])
}

/// `key=value ...` pairs, or the old `key value` form.
fn name_values(instruction: &str, rest: &str, env: &[String]) -> Result<Vec<(String, String)>> {
    let raw = raw_words(rest);
    if raw.is_empty() {
        return Err(change_error(format!("{instruction} requires at least one argument")));
    }
    if !raw[0].contains('=') {
        // The old form: the first word is the name, the rest of the line the value.
        let value = rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..].trim();
        if value.is_empty() && instruction == "ENV" {
            return Err(change_error(format!("{instruction} must have two arguments")));
        }
        return Ok(vec![(expand_word(&raw[0], env)?, expand_word(value, env)?)]);
    }
    let mut pairs = Vec::new();
    for word in raw {
        let Some((key, value)) = word.split_once('=') else {
            return Err(change_error(format!("Syntax error - can't find = in {word:?}. Must be of the form: name=value")));
        };
        let key = expand_word(key, env)?;
        if key.is_empty() {
            return Err(change_error(format!("{instruction} names can not be blank")));
        }
        pairs.push((key, expand_word(value, env)?));
    }
    Ok(pairs)
}

/// Splits on unquoted whitespace, keeping quotes and escapes for [`expand_word`].
fn raw_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', q) if q != Some('\'') => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                word.push(c);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                word.push(c);
            }
            (c, None) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (c, _) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn shell_words(text: &str, env: &[String]) -> Result<Vec<String>> {
    raw_words(text).iter().map(|w| expand_word(w, env)).collect()
}

/// Removes quotes and escapes and expands `$VAR`, `${VAR}`, `${VAR:-default}` and
/// `${VAR:+alternative}` from `env`, as the Dockerfile shell lexer does.
fn expand_word(word: &str, env: &[String]) -> Result<String> {
    let lookup = |name: &str| env.iter().rev().find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix('='))).map(str::to_string);
    let mut out = String::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match (c, quote) {
            ('\'', None) | ('"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('\\', Some('\'')) => out.push(c),
            ('\\', Some('"')) => {
                // In double quotes a backslash escapes only these.
                match chars.get(i + 1) {
                    Some(&next) if matches!(next, '"' | '\\' | '$') => {
                        out.push(next);
                        i += 1;
                    }
                    _ => out.push('\\'),
                }
            }
            ('\\', None) => {
                if let Some(&next) = chars.get(i + 1) {
                    out.push(next);
                    i += 1;
                }
            }
            ('$', q) if q != Some('\'') => {
                let (value, used) = expand_variable(&chars[i + 1..], &lookup, word)?;
                out.push_str(&value);
                i += used;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    if quote.is_some() {
        return Err(change_error(format!("unexpected end of statement while looking for matching quote in {word:?}")));
    }
    Ok(out)
}

/// Expands the variable after a `$`; returns the value and how many characters it took.
fn expand_variable(after: &[char], lookup: &dyn Fn(&str) -> Option<String>, word: &str) -> Result<(String, usize)> {
    let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    if after.first() == Some(&'{') {
        let Some(end) = after.iter().position(|c| *c == '}') else {
            return Err(change_error(format!("missing '}}' in {word:?}")));
        };
        let inner: String = after[1..end].iter().collect();
        let value = match inner.split_once(':') {
            Some((name, op)) => {
                let current = lookup(name).filter(|v| !v.is_empty());
                if let Some(default) = op.strip_prefix('-') {
                    current.unwrap_or_else(|| default.to_string())
                } else if let Some(alternative) = op.strip_prefix('+') {
                    current.map(|_| alternative.to_string()).unwrap_or_default()
                } else {
                    return Err(change_error(format!("unsupported modifier ({op}) in substitution {word:?}")));
                }
            }
            None => lookup(&inner).unwrap_or_default(),
        };
        return Ok((value, end + 1));
    }
    let name: String = after.iter().take_while(|c| is_name(c)).collect();
    if name.is_empty() {
        return Ok(("$".to_string(), 0));
    }
    Ok((lookup(&name).unwrap_or_default(), name.chars().count()))
}

/// `80`, `80/udp`, `8000-8002/tcp` as docker's `port/proto` keys.
fn port_specs(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(change_error(format!("invalid proto: {proto}")));
    }
    let parse = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| change_error(format!("invalid containerPort: {ports}")));
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(change_error(format!("invalid range specified for containerPort: {ports}")));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL", "PROF", "PWR",
    "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH",
    "XCPU", "XFSZ",
];

/// A signal as docker accepts it: a number, `KILL`, `SIGKILL`, `RTMIN+3`.
fn check_signal(signal: &str) -> Result<()> {
    let invalid = || change_error(format!("Invalid signal: {signal}"));
    if let Ok(n) = signal.parse::<u32>() {
        return if (1..=64).contains(&n) { Ok(()) } else { Err(invalid()) };
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = |base: &str| name.strip_prefix(base).is_some_and(|n| n.is_empty() || n.parse::<u32>().is_ok_and(|n| n <= 15));
    if SIGNALS.contains(&name) || realtime("RTMIN+") || realtime("RTMAX-") || name == "RTMIN" || name == "RTMAX" {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
/// [--start-interval=D] [--retries=N] CMD command`.
fn healthcheck(rest: &str) -> Result<Value> {
    let mut rest = rest.trim();
    if rest.eq_ignore_ascii_case("none") {
        return Ok(json!({ "Test": ["NONE"] }));
    }
    let mut check = Map::new();
    while let Some(flag) = rest.strip_prefix("--") {
        let (option, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (name, value) = option.split_once('=').ok_or_else(|| change_error(format!("HEALTHCHECK flag --{option} needs a value")))?;
        let key = match name {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            _ => return Err(change_error(format!("Unknown flag: {name}"))),
        };
        let parsed = if key == "Retries" {
            value.parse::<u64>().map_err(|_| change_error(format!("invalid value for --retries: {value}")))?
        } else {
            go_duration_nanos(value).ok_or_else(|| change_error(format!("invalid value for --{name}: {value}")))?
        };
        check.insert(key.to_string(), json!(parsed));
        rest = tail.trim_start();
    }
    let (keyword, command) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !keyword.eq_ignore_ascii_case("cmd") {
        return Err(change_error(format!("Unknown type {:?} in HEALTHCHECK (try CMD)", keyword.to_ascii_uppercase())));
    }
    let command = command.trim();
    if command.is_empty() {
        return Err(change_error("Missing command after HEALTHCHECK CMD"));
    }
    let test = match json_array(command) {
        Some(exec) => std::iter::once("CMD".to_string()).chain(exec).collect(),
        None => vec!["CMD-SHELL".to_string(), command.to_string()],
    };
    check.insert("Test".to_string(), json!(test));
    Ok(Value::Object(check))
}

/// Go's duration syntax (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn go_duration_nanos(text: &str) -> Option<u64> {
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(total as u64)
}

/// Lexically cleans an absolute path (`/a/./b/../c` -> `/a/c`).
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Reads through, hashing what passes and copying it to a second writer.
struct Tee<'a, R, W> {
    inner: R,
    hasher: Hasher,
    copy: &'a mut W,
    error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let message = format!("write compressed layer: {e}");
            self.error = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

fn import_error(e: Error) -> Error {
    let message = format!("import: {e}");
    match e.kind() {
        ErrorKind::InvalidArgument => Error::InvalidArgument(message),
        _ => Error::Internal(message),
    }
}

impl Images {
    /// Makes an image from a root filesystem tarball (plain, gzip or zstd), as `docker
    /// import` does; tags it `repo_tag` when given; the message (docker's default "Imported
    /// from -" when none) becomes the comment. Returns the image id. A tarball that tries to
    /// write outside its root is refused and leaves nothing.
    pub async fn import(
        self: &Arc<Self>,
        source: impl Read + Send + 'static,
        repo_tag: Option<&str>,
        changes: &[String],
        message: Option<&str>,
        platform: Option<&str>,
    ) -> Result<String> {
        let reference = match repo_tag.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(tag) => {
                let reference = parse_reference(tag)?;
                if reference.digest().is_some() {
                    return Err(Error::InvalidArgument(format!("import: cannot tag with a digest reference {tag:?}")));
                }
                Some(reference)
            }
        };
        let mut container = empty_container_config();
        apply_changes(&mut container, changes)?;
        let platform = import_platform(platform)?;
        // docker's default comment for a tarball sent with the request.
        let message = message.filter(|m| !m.is_empty()).unwrap_or("Imported from -").to_string();
        let images = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut touched = Touched::new(&images);
            let result = images.import_blocking(source, reference.as_ref(), container, &message, &platform, &mut touched);
            touched.finish();
            result
        })
        .await
        .map_err(|e| Error::Internal(format!("import task: {e}")))?
    }

    fn import_blocking(
        &self,
        source: impl Read,
        reference: Option<&Reference>,
        container: Value,
        message: &str,
        platform: &Platform,
        touched: &mut Touched<'_>,
    ) -> Result<String> {
        // One pass: decompress -> hash -> gzip into a new blob, while unpacking.
        let tmp = self.tmp_dir()?;
        let mut blob = NewBlob::create(&self.tmp_root)?;
        let (diff_id, size) = {
            let mut gzip = berth_snapshot::gzip_writer(&mut blob);
            let plain = berth_snapshot::decompress(BufReader::with_capacity(1 << 20, source)).map_err(|e| import_error(e.into()))?;
            let mut tee = Tee { inner: plain, hasher: Hasher::sha256(), copy: &mut gzip, error: None };
            let applied = berth_snapshot::apply_layer(tmp.path(), &mut tee);
            if let Some(e) = tee.error.take() {
                return Err(Error::io("write compressed layer", tmp.path())(e));
            }
            let stats = applied.map_err(|e| import_error(e.into()))?;
            // What follows the tar's end marker is part of the layer's bytes too.
            io::copy(&mut tee, &mut io::sink()).map_err(|e| import_error(Error::io("read", "tarball")(e)))?;
            let diff_id = tee.hasher.finish();
            gzip.finish().map_err(Error::io("write compressed layer", tmp.path()))?;
            (diff_id, stats.size)
        };
        let (blob_digest, blob_size) = blob.commit(touched)?;

        let chain = diff_id.to_string();
        let config = import_config(&chain, container, message, platform)?;
        let image_id = touched.put(&config)?.to_string();
        let _lease = self.lease(vec![chain.clone()]);

        // Durable before visible: sync, rename, then one transaction.
        {
            let lock = self.layer_lock(&chain);
            let _guard = lock.blocking_lock();
            let dest = self.layers_root.join(hex_of(&chain));
            if self.meta.read()?.layer(&chain)?.is_none() && !dest.exists() {
                berth_snapshot::sync_filesystem(tmp.path())?;
                let path = tmp.keep();
                std::fs::rename(&path, &dest).map_err(Error::io("rename into", &dest))?;
                std::fs::File::open(&self.layers_root)
                    .and_then(|d| d.sync_all())
                    .map_err(Error::io("fsync", &self.layers_root))?;
            }
        }
        let tx = self.meta.write()?;
        let existing = tx.image(&image_id)?;
        let mut layer = tx.layer(&chain)?.unwrap_or_else(|| LayerRecord {
            chain_id: chain.clone(),
            diff_id: chain.clone(),
            parent: None,
            dir: hex_of(&chain).to_string(),
            size,
            blobs: Vec::new(),
            refs: 0,
        });
        if !layer.blobs.iter().any(|b| b.digest == blob_digest.as_str()) {
            layer.blobs.push(LayerBlob { digest: blob_digest.to_string(), size: blob_size, media_type: MEDIA_LAYER_GZIP.to_string(), sources: Vec::new() });
        }
        if existing.is_none() {
            layer.refs += 1;
        }
        tx.put_layer(&layer)?;
        let mut record = existing.unwrap_or(ImageRecord {
            id: image_id.clone(),
            layers: vec![chain.clone()],
            size: layer.size,
            added: now_unix(),
            last_tag_time: None,
            manifests: Default::default(),
        });
        if let Some(reference) = reference {
            tx.set_tag(&reference.to_string(), &image_id)?;
            record.last_tag_time = Some(now_nanos());
        }
        tx.put_image(&record)?;
        tx.commit()?;

        if let Some(reference) = reference {
            self.events.publish("image", "tag", &image_id, BTreeMap::from([("name".to_string(), reference.familiar_string())]));
        }
        self.events.publish("image", "import", &image_id, BTreeMap::from([("name".to_string(), image_id.clone())]));
        Ok(image_id)
    }
}

/// The diff id of a layer without changes: an empty tar (two zero blocks).
pub const EMPTY_LAYER_DIFF_ID: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

impl Images {
    /// Makes an image from `parent` plus one layer, as `docker commit` does: `layer` is a plain
    /// layer tar (read once: hashed for the diff id, gzipped into the blob push sends, and
    /// unpacked); `make_config(diff_id, empty)` returns the new image's config, where `empty`
    /// says the layer changes nothing (then no layer is added, as docker does). The image is
    /// tagged `reference` in the same transaction. Returns the image id. Blocking.
    pub fn create_child_image(
        &self,
        parent: &ImageRecord,
        layer: impl Read,
        make_config: impl FnOnce(&str, bool) -> Result<Vec<u8>>,
        reference: Option<&Reference>,
    ) -> Result<String> {
        let mut touched = Touched::new(self);
        let result = self.create_child_blocking(parent, layer, make_config, reference, &mut touched);
        touched.finish();
        result
    }

    fn create_child_blocking(
        &self,
        parent: &ImageRecord,
        layer: impl Read,
        make_config: impl FnOnce(&str, bool) -> Result<Vec<u8>>,
        reference: Option<&Reference>,
        touched: &mut Touched<'_>,
    ) -> Result<String> {
        let tmp = self.tmp_dir()?;
        let mut blob = NewBlob::create(&self.tmp_root)?;
        let (diff_id, size) = {
            let mut gzip = berth_snapshot::gzip_writer(&mut blob);
            let mut tee = Tee { inner: layer, hasher: Hasher::sha256(), copy: &mut gzip, error: None };
            let applied = berth_snapshot::apply_layer(tmp.path(), &mut tee);
            if let Some(e) = tee.error.take() {
                return Err(Error::io("write compressed layer", tmp.path())(e));
            }
            let stats = applied?;
            io::copy(&mut tee, &mut io::sink()).map_err(Error::io("read", "layer"))?;
            let diff_id = tee.hasher.finish();
            gzip.finish().map_err(Error::io("write compressed layer", tmp.path()))?;
            (diff_id.to_string(), stats.size)
        };
        let empty = diff_id == EMPTY_LAYER_DIFF_ID;
        let config = make_config(&diff_id, empty)?;
        let image_id = touched.put(&config)?.to_string();
        let mut chains = parent.layers.clone();
        let mut new_layer = None;
        if !empty {
            let (blob_digest, blob_size) = blob.commit(touched)?;
            let chain = match chains.last() {
                None => diff_id.clone(),
                Some(top) => Digest::sha256_of(format!("{top} {diff_id}").as_bytes()).to_string(),
            };
            chains.push(chain.clone());
            new_layer = Some((chain, blob_digest, blob_size));
        }
        let _lease = self.lease(chains.clone());
        if let Some((chain, _, _)) = &new_layer {
            // Durable before visible: sync, rename, then one transaction.
            let lock = self.layer_lock(chain);
            let _guard = lock.blocking_lock();
            let dest = self.layers_root.join(hex_of(chain));
            if self.meta.read()?.layer(chain)?.is_none() && !dest.exists() {
                berth_snapshot::sync_filesystem(tmp.path())?;
                let path = tmp.keep();
                std::fs::rename(&path, &dest).map_err(Error::io("rename into", &dest))?;
                std::fs::File::open(&self.layers_root)
                    .and_then(|d| d.sync_all())
                    .map_err(Error::io("fsync", &self.layers_root))?;
            }
        }
        let tx = self.meta.write()?;
        let existing = tx.image(&image_id)?;
        let mut total = 0;
        for (i, chain) in chains.iter().enumerate() {
            let mut record = match (tx.layer(chain)?, &new_layer) {
                (Some(record), _) => record,
                (None, Some((new_chain, _, _))) if new_chain == chain => LayerRecord {
                    chain_id: chain.clone(),
                    diff_id: diff_id.clone(),
                    parent: (i > 0).then(|| chains[i - 1].clone()),
                    dir: hex_of(chain).to_string(),
                    size,
                    blobs: Vec::new(),
                    refs: 0,
                },
                (None, _) => return Err(Error::Internal(format!("image {} lacks layer {chain}", parent.id))),
            };
            if let Some((new_chain, digest, blob_size)) = &new_layer {
                if new_chain == chain && !record.blobs.iter().any(|b| b.digest == digest.as_str()) {
                    record.blobs.push(LayerBlob { digest: digest.to_string(), size: *blob_size, media_type: MEDIA_LAYER_GZIP.to_string(), sources: Vec::new() });
                }
            }
            if existing.is_none() {
                record.refs += 1;
            }
            total += record.size;
            tx.put_layer(&record)?;
        }
        let mut record = existing.unwrap_or(ImageRecord {
            id: image_id.clone(),
            layers: chains,
            size: total,
            added: now_unix(),
            last_tag_time: None,
            manifests: Default::default(),
        });
        if let Some(reference) = reference {
            tx.set_tag(&reference.to_string(), &image_id)?;
            record.last_tag_time = Some(now_nanos());
        }
        tx.put_image(&record)?;
        tx.commit()?;
        if let Some(reference) = reference {
            self.events.publish("image", "tag", &image_id, BTreeMap::from([("name".to_string(), reference.familiar_string())]));
        }
        Ok(image_id)
    }
}

/// The config of an imported image: host (or given) platform, created now, one history
/// entry carrying the message.
fn import_config(diff_id: &str, container: Value, message: &str, platform: &Platform) -> Result<Vec<u8>> {
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::Internal(format!("format time: {e}")))?;
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "comment": message,
        "config": container,
        "created": created,
        "history": [{ "created": created, "created_by": "", "comment": message }],
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    if !platform.variant.is_empty() {
        config["variant"] = json!(platform.variant);
    }
    serde_json::to_vec(&config).map_err(|e| Error::Internal(format!("encode image config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(changes: &[&str]) -> Result<Value> {
        let mut config = empty_container_config();
        apply_changes(&mut config, &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        Ok(config)
    }

    #[test]
    fn exec_and_shell_forms() {
        let c = changed(&[r#"CMD ["sh", "-c", "echo hi"]"#]).unwrap();
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        let c = changed(&["cmd echo $HOME"]).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo $HOME"]));
        let c = changed(&["ENTRYPOINT /bin/init"]).unwrap();
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/init"]));
        assert_eq!(c["Cmd"], Value::Null);
        let c = changed(&[r#"CMD ["x"]"#, r#"ENTRYPOINT ["/e"]"#]).unwrap();
        assert_eq!(c["Cmd"], json!(["x"]));
    }

    #[test]
    fn env_and_labels() {
        let c = changed(&["ENV A=1 B=\"two words\"", "ENV C $A-x", "ENV A=3", r"LABEL a.b=c d='e f' g=${C}"]).unwrap();
        assert_eq!(c["Env"], json!(["A=3", "B=two words", "C=1-x"]));
        assert_eq!(c["Labels"], json!({"a.b": "c", "d": "e f", "g": "1-x"}));
        assert!(changed(&["ENV"]).is_err());
        assert!(changed(&["LABEL =x"]).is_err());
    }

    #[test]
    fn ports_volumes_and_paths() {
        let c = changed(&["EXPOSE 80 53/udp 8000-8001", r#"VOLUME ["/data", "/logs"]"#, "VOLUME /x /y", "WORKDIR /app", "WORKDIR sub/../lib", "USER 1000:1000", "STOPSIGNAL SIGINT"]).unwrap();
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}, "/x": {}, "/y": {}}));
        assert_eq!(c["WorkingDir"], json!("/app/lib"));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert!(changed(&["EXPOSE abc"]).is_err());
        assert!(changed(&["STOPSIGNAL NOPE"]).is_err());
        assert!(changed(&["USER a b"]).is_err());
    }

    #[test]
    fn onbuild_and_healthcheck() {
        let c = changed(&["ONBUILD run echo hi", "HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/"]).unwrap();
        assert_eq!(c["OnBuild"], json!(["RUN echo hi"]));
        assert_eq!(c["Healthcheck"], json!({"Interval": 30_000_000_000u64, "Retries": 3, "Test": ["CMD-SHELL", "curl -f http://localhost/"]}));
        let c = changed(&["HEALTHCHECK NONE"]).unwrap();
        assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
        assert!(changed(&["ONBUILD FROM x"]).is_err());
    }

    #[test]
    fn invalid_instructions_are_named() {
        let e = changed(&["FOO bar"]).unwrap_err().to_string();
        assert_eq!(e, "dockerfile parse error line 1: unknown instruction: FOO");
        let e = changed(&["RUN make"]).unwrap_err().to_string();
        assert_eq!(e, "run is not a valid change command");
    }

    #[test]
    fn platforms() {
        assert_eq!(import_platform(Some("linux/arm/v6")).unwrap().variant, "v6");
        assert_eq!(import_platform(Some("linux/x86_64")).unwrap().architecture, "amd64");
        assert_eq!(import_platform(None).unwrap(), Platform::host());
        assert!(import_platform(Some("windows/amd64")).is_err());
        assert!(import_platform(Some("linux//")).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration_nanos("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_nanos("500ms"), Some(500_000_000));
        assert_eq!(go_duration_nanos("5x"), None);
    }
}
