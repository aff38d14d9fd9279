//! Logging driver configuration: docker's `--log-driver` and `--log-opt`, validated up front,
//! and the attributes (`labels`, `env`, `tag`, ...) those options take from a container.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Size of one log file before it is rotated when the user sets no `max-size` (20 MiB,
/// docker's default for its `local` driver).
pub const DEFAULT_MAX_SIZE: u64 = 20 * 1024 * 1024;
/// Number of files kept (the current one included) when the user sets no `max-file`.
pub const DEFAULT_MAX_FILE: u32 = 5;

/// Where container output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Driver {
    /// Docker's `json-file` format, byte for byte.
    JsonFile,
    /// berth's compact binary format (see docs/logs.md).
    Local,
    /// Nothing is written; reading fails.
    None,
}

impl Driver {
    /// The name `--log-driver` takes.
    pub fn name(self) -> &'static str {
        match self {
            Driver::JsonFile => "json-file",
            Driver::Local => "local",
            Driver::None => "none",
        }
    }
}

/// A validated logging configuration. Serializable so the daemon can hand it to the shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    pub driver: Driver,
    /// Largest size of one file in bytes; `None` (`max-size=-1`) never rotates.
    pub max_size: Option<u64>,
    /// Files kept, the current one included (at least 1).
    pub max_file: u32,
    /// Gzip rotated files (`<name>.1.gz`, ...).
    pub compress: bool,
    /// Container labels copied into each message's attributes (`labels=a,b`).
    pub labels: Vec<String>,
    pub labels_regex: Option<String>,
    /// Container environment variables copied into the attributes (`env=A,B`).
    pub env: Vec<String>,
    pub env_regex: Option<String>,
    /// `tag` template (`{{.Name}}/{{.ID}}`), stored in the `tag` attribute.
    pub tag: Option<String>,
}

impl Default for LogConfig {
    /// `json-file` with berth's default rotation.
    fn default() -> Self {
        LogConfig {
            driver: Driver::JsonFile,
            max_size: Some(DEFAULT_MAX_SIZE),
            max_file: DEFAULT_MAX_FILE,
            compress: false,
            labels: Vec::new(),
            labels_regex: None,
            env: Vec::new(),
            env_regex: None,
            tag: None,
        }
    }
}

/// What the attribute options read from a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Container name, with or without the leading `/`.
    pub name: String,
    /// Image id (`sha256:...`).
    pub image_id: String,
    /// Image name as the user gave it.
    pub image_name: String,
    /// Entrypoint followed by the arguments.
    pub command: Vec<String>,
    pub labels: HashMap<String, String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    pub daemon_name: String,
}

const OPTIONS: &[&str] = &[
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

impl LogConfig {
    /// Validates `--log-driver` and its `--log-opt`s. An empty driver means `json-file`.
    /// Options of the `none` driver are ignored, as docker does, so daemon-wide defaults
    /// never make a `--log-driver none` container fail.
    pub fn parse(driver: &str, opts: &HashMap<String, String>) -> Result<LogConfig> {
        let driver = match driver {
            "" | "json-file" => Driver::JsonFile,
            "local" => Driver::Local,
            "none" => {
                return Ok(LogConfig {
                    driver: Driver::None,
                    ..LogConfig::default()
                });
            }
            other => {
                return Err(Error::UnknownDriver {
                    driver: other.to_string(),
                })
            }
        };
        // Sorted, so that with several bad options the error is always about the same one.
        let mut keys: Vec<&String> = opts.keys().collect();
        keys.sort();
        if let Some(unknown) = keys.iter().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(Error::UnknownOption {
                driver: driver.name(),
                option: unknown.to_string(),
            });
        }
        let get = |key: &str| opts.get(key).map(String::as_str);

        let max_size = match get("max-size") {
            Some(value) => parse_max_size(value)?,
            None => Some(DEFAULT_MAX_SIZE),
        };
        let max_file = match get("max-file") {
            Some(value) => parse_max_file(value)?,
            // docker: a size limit alone keeps one file; berth adds rotation when neither is set.
            None if driver == Driver::JsonFile && get("max-size").is_some() => 1,
            None => DEFAULT_MAX_FILE,
        };
        let compress = match get("compress") {
            Some(value) => {
                let on = parse_bool(value)
                    .ok_or_else(|| Error::invalid("compress", value, "not a boolean"))?;
                if on && (max_file < 2 || max_size.is_none()) {
                    return Err(Error::invalid(
                        "compress",
                        value,
                        "compression needs rotation: max-file of at least 2 and a max-size",
                    ));
                }
                on
            }
            // docker's local driver compresses by default.
            None => driver == Driver::Local && max_file > 1 && max_size.is_some(),
        };
        let list = |key: &str| -> Vec<String> {
            get(key)
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let regex = |key: &str| -> Result<Option<String>> {
            match get(key) {
                None | Some("") => Ok(None),
                Some(value) => {
                    regex::Regex::new(value)
                        .map_err(|e| Error::invalid(key, value, e.to_string()))?;
                    Ok(Some(value.to_string()))
                }
            }
        };
        let tag = match get("tag") {
            None | Some("") => None,
            Some(value) => {
                parse_template(value).map_err(|reason| Error::invalid("tag", value, reason))?;
                Some(value.to_string())
            }
        };
        Ok(LogConfig {
            driver,
            max_size,
            max_file,
            compress,
            labels: list("labels"),
            labels_regex: regex("labels-regex")?,
            env: list("env"),
            env_regex: regex("env-regex")?,
            tag,
        })
    }

    /// The attributes docker's `labels`, `labels-regex`, `env`, `env-regex` and `tag`
    /// options take from `container`; give them to [`crate::Writer::open`].
    pub fn attributes(&self, container: &ContainerInfo) -> Result<BTreeMap<String, String>> {
        let mut attrs = BTreeMap::new();
        for key in &self.labels {
            if let Some(value) = container.labels.get(key) {
                attrs.insert(key.clone(), value.clone());
            }
        }
        if let Some(pattern) = &self.labels_regex {
            let re = regex::Regex::new(pattern)
                .map_err(|e| Error::invalid("labels-regex", pattern, e.to_string()))?;
            for (key, value) in &container.labels {
                if re.is_match(key) {
                    attrs.insert(key.clone(), value.clone());
                }
            }
        }
        let env: HashMap<&str, &str> = container
            .env
            .iter()
            .filter_map(|e| e.split_once('='))
            .collect();
        for key in &self.env {
            if let Some(value) = env.get(key.as_str()) {
                attrs.insert(key.clone(), value.to_string());
            }
        }
        if let Some(pattern) = &self.env_regex {
            let re = regex::Regex::new(pattern)
                .map_err(|e| Error::invalid("env-regex", pattern, e.to_string()))?;
            for (key, value) in &env {
                if re.is_match(key) {
                    attrs.insert(key.to_string(), value.to_string());
                }
            }
        }
        if let Some(template) = &self.tag {
            let tag = render_template(template, container)
                .map_err(|reason| Error::invalid("tag", template, reason))?;
            if !tag.is_empty() {
                attrs.insert("tag".to_string(), tag);
            }
        }
        Ok(attrs)
    }

    /// The current log file of container `id` in `dir`; `None` for the `none` driver.
    pub fn log_path(&self, dir: &Path, id: &str) -> Option<PathBuf> {
        let suffix = match self.driver {
            Driver::JsonFile => "-json.log",
            Driver::Local => "-local.log",
            Driver::None => return None,
        };
        Some(dir.join(format!("{id}{suffix}")))
    }
}

/// Docker's sizes (`go-units` `FromHumanSize`): a decimal number, an optional space, an
/// optional `k`/`m`/`g`/`t`/`p` (powers of 1000), optional `i` and `b`, any case.
/// `-1` means no limit (berth's way to opt out of rotation).
pub fn parse_max_size(value: &str) -> Result<Option<u64>> {
    if value == "-1" {
        return Ok(None);
    }
    let bad = |reason: &str| Error::invalid("max-size", value, reason);
    let lower = value.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, mut unit) = lower.split_at(digits_end);
    if number.is_empty()
        || number.starts_with('.')
        || number.ends_with('.')
        || number.matches('.').count() > 1
    {
        return Err(bad("expected a size such as 10k, 20m or 1g"));
    }
    unit = unit.strip_prefix(' ').unwrap_or(unit);
    let (multiplier, rest) = match unit.chars().next() {
        Some('k') => (1e3, &unit[1..]),
        Some('m') => (1e6, &unit[1..]),
        Some('g') => (1e9, &unit[1..]),
        Some('t') => (1e12, &unit[1..]),
        Some('p') => (1e15, &unit[1..]),
        _ => (1.0, unit),
    };
    let rest = rest.strip_prefix('i').unwrap_or(rest);
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return Err(bad("expected a size such as 10k, 20m or 1g"));
    }
    let number: f64 = number
        .parse()
        .map_err(|_| bad("expected a size such as 10k, 20m or 1g"))?;
    let bytes = number * multiplier;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad(
            "must be a positive number of bytes (or -1 for no limit)",
        ));
    }
    Ok(Some(bytes as u64))
}

fn parse_max_file(value: &str) -> Result<u32> {
    match value.parse::<i64>() {
        Ok(n) if n >= 1 => {
            u32::try_from(n).map_err(|_| Error::invalid("max-file", value, "too large"))
        }
        Ok(_) => Err(Error::invalid("max-file", value, "must be at least 1")),
        Err(_) => Err(Error::invalid("max-file", value, "not a number")),
    }
}

/// Go's `strconv.ParseBool`, which docker uses for `compress`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// One piece of a `tag` template.
enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

const FIELDS: &[&str] = &[
    "ID",
    "FullID",
    "Name",
    "Command",
    "ImageID",
    "ImageFullID",
    "ImageName",
    "Hostname",
    "DaemonName",
];

/// The subset of Go templates docker documents for `tag`: literal text and `{{.Field}}`.
fn parse_template(template: &str) -> std::result::Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("unclosed {{")?;
        let action = after[..close].trim();
        let field = action
            .strip_prefix('.')
            .filter(|f| FIELDS.contains(f))
            .ok_or_else(|| {
                format!(
                    "unsupported template action {{{{{action}}}}} (fields: .{})",
                    FIELDS.join(", .")
                )
            })?;
        pieces.push(Piece::Field(field));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Docker's short ids: the part after `sha256:`, 12 characters.
fn short_id(id: &str) -> &str {
    let id = id.rsplit_once(':').map_or(id, |(_, hex)| hex);
    id.get(..12).unwrap_or(id)
}

fn render_template(template: &str, c: &ContainerInfo) -> std::result::Result<String, String> {
    let mut out = String::new();
    for piece in parse_template(template)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Field(field) => match field {
                "ID" => out.push_str(short_id(&c.id)),
                "FullID" => out.push_str(&c.id),
                "Name" => out.push_str(c.name.trim_start_matches('/')),
                "Command" => out.push_str(&c.command.join(" ")),
                "ImageID" => out.push_str(short_id(&c.image_id)),
                "ImageFullID" => out.push_str(&c.image_id),
                "ImageName" => out.push_str(&c.image_name),
                "Hostname" => out.push_str(&rustix::system::uname().nodename().to_string_lossy()),
                _ => out.push_str(&c.daemon_name),
            },
        }
    }
    Ok(out)
}
