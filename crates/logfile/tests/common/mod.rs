//! Helpers shared by the integration tests: fixed times, configs and reading everything.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_logfile::{read, Entry, LogConfig, ReadOptions, Stream, Writer};

/// 2026-11-22T10:00:00Z plus `nanos`.
pub fn at(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_341_600) + Duration::from_nanos(nanos)
}

pub fn config(driver: &str, opts: &[(&str, &str)]) -> LogConfig {
    let opts: HashMap<String, String> = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LogConfig::parse(driver, &opts).expect("valid log options")
}

pub fn writer(dir: &Path, config: &LogConfig) -> Writer {
    Writer::open(dir, "c1", config, BTreeMap::new()).expect("open writer")
}

/// Writes `line <i>` plus padding for i in `range`, each at time `at(i)`.
pub fn write_numbered(w: &mut Writer, range: std::ops::Range<usize>) {
    for i in range {
        let stream = stream_of(i);
        w.write(stream, numbered(i).as_bytes(), at(i as u64 * 1000))
            .expect("write");
    }
}

/// Every third numbered line goes to stderr.
pub fn stream_of(i: usize) -> Stream {
    match i % 3 {
        0 => Stream::Stderr,
        _ => Stream::Stdout,
    }
}

pub fn numbered(i: usize) -> String {
    format!("line {i:05} padding padding padding\n")
}

pub fn read_all(dir: &Path, config: &LogConfig, opts: &ReadOptions) -> Vec<Entry> {
    read(dir, "c1", config, opts, &|| true)
        .expect("open reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("read entries")
}

pub fn lines(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.line).into_owned())
        .collect()
}

/// The numbers of `line <n>` entries, to check order and completeness.
pub fn numbers(entries: &[Entry]) -> Vec<usize> {
    entries
        .iter()
        .map(|e| {
            let text = String::from_utf8_lossy(&e.line);
            text.get(5..10)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a numbered line: {text:?}"))
        })
        .collect()
}

/// Names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
