//! `stats`: one collector per container reading the daemon's stats stream, and a table
//! redrawn every half second (or printed once with `--no-stream`), as docker does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use http_body_util::BodyExt;

use super::filters_json;
use super::images::print_out;
use super::stream::Background;
use crate::cli::Cli;
use crate::client::{empty, escape_path, read_body, Client, Query};
use crate::error::{Error, Result};
use crate::flags::Parsed;
use crate::format::json::Json;
use crate::format::template::Data;
use crate::format::units::{bytes_size, human_size_with_precision};
use crate::format::{render_rows, truncate_id, TABLE};

const DEFAULT_STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
const WINDOWS_STATS_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.NetIO}}\t{{.BlockIO}}";

/// The figures of one container (docker's `StatsEntry`).
#[derive(Debug, Clone, Default)]
struct Entry {
    container: String,
    name: String,
    id: String,
    cpu: f64,
    memory: f64,
    memory_limit: f64,
    memory_percent: f64,
    net_rx: f64,
    net_tx: f64,
    block_read: f64,
    block_write: f64,
    pids: u64,
    invalid: bool,
    error: Option<String>,
    first_seen: bool,
    windows: bool,
}

type Shared = Arc<Mutex<Vec<Entry>>>;

fn number(doc: &Json, path: &[&str]) -> f64 {
    match doc.path(path) {
        Some(Json::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// docker's calculations for Linux daemons: CPU against the system delta, memory without
/// the inactive page cache, block I/O by operation, network summed over interfaces.
fn figures(doc: &Json, entry: &mut Entry) {
    let cpu_delta = number(doc, &["cpu_stats", "cpu_usage", "total_usage"])
        - number(doc, &["precpu_stats", "cpu_usage", "total_usage"]);
    let system_delta = number(doc, &["cpu_stats", "system_cpu_usage"])
        - number(doc, &["precpu_stats", "system_cpu_usage"]);
    let mut online = number(doc, &["cpu_stats", "online_cpus"]);
    if online == 0.0 {
        online = doc
            .path(&["cpu_stats", "cpu_usage", "percpu_usage"])
            .map_or(0, |p| p.items().len()) as f64;
    }
    entry.cpu = if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    };
    let (mut read, mut write) = (0.0, 0.0);
    for io in doc
        .path(&["blkio_stats", "io_service_bytes_recursive"])
        .map(Json::items)
        .unwrap_or(&[])
    {
        let value = number(io, &["value"]);
        match io.get("op").map(Json::str).and_then(|op| op.chars().next()) {
            Some('r' | 'R') => read += value,
            Some('w' | 'W') => write += value,
            _ => {}
        }
    }
    entry.block_read = read;
    entry.block_write = write;
    let usage = number(doc, &["memory_stats", "usage"]);
    let cache = match doc.path(&["memory_stats", "stats", "total_inactive_file"]) {
        Some(Json::Number(n)) if n.as_f64().unwrap_or(0.0) < usage => n.as_f64().unwrap_or(0.0),
        _ => {
            let inactive = number(doc, &["memory_stats", "stats", "inactive_file"]);
            if inactive < usage {
                inactive
            } else {
                0.0
            }
        }
    };
    entry.memory = usage - cache;
    entry.memory_limit = number(doc, &["memory_stats", "limit"]);
    entry.memory_percent = if entry.memory_limit != 0.0 {
        entry.memory / entry.memory_limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for (_, net) in doc.get("networks").map(Json::fields).unwrap_or(&[]) {
        rx += number(net, &["rx_bytes"]);
        tx += number(net, &["tx_bytes"]);
    }
    entry.net_rx = rx;
    entry.net_tx = tx;
    entry.pids = number(doc, &["pids_stats", "current"]) as u64;
    entry.name = doc.get("name").map(Json::str).unwrap_or("").to_string();
    entry.id = doc.get("id").map(Json::str).unwrap_or("").to_string();
}

fn update(shared: &Shared, container: &str, change: impl FnOnce(&mut Entry)) {
    if let Ok(mut entries) = shared.lock() {
        if let Some(entry) = entries.iter_mut().find(|e| e.container == container) {
            change(entry);
        }
    }
}

/// docker's `collect`: reads the stats of one container into the shared table; the
/// first result (or error, or two seconds without one) marks it seen.
async fn collect(mut client: Client, shared: Shared, container: String, stream: bool) {
    let query = Query::new().add("stream", if stream { "1" } else { "0" });
    let path = format!("/containers/{}/stats", escape_path(&container));
    let response = match client
        .request(Method::GET, &path, &query, &[], empty())
        .await
    {
        Ok(response) => response,
        Err(e) => {
            update(&shared, &container, |entry| {
                entry.error = Some(e.to_string());
                entry.invalid = true;
                entry.first_seen = true;
            });
            return;
        }
    };
    let windows = response
        .headers()
        .get("Server")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s.contains("(windows)"));
    let mut body = response.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(2), body.frame()).await {
            Err(_) => {
                update(&shared, &container, |entry| {
                    let container = entry.container.clone();
                    *entry = Entry {
                        container,
                        invalid: true,
                        error: Some("timeout waiting for stats".to_string()),
                        first_seen: true,
                        ..Entry::default()
                    };
                });
                continue;
            }
            Ok(frame) => frame,
        };
        let Some(Ok(frame)) = frame else {
            update(&shared, &container, |entry| {
                entry.invalid = true;
                entry.first_seen = true;
            });
            return;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        let mut stream_de = serde_json::Deserializer::from_slice(&buffer).into_iter::<Json>();
        let mut consumed = 0;
        let mut latest = None;
        for value in stream_de.by_ref() {
            match value {
                Ok(doc) => {
                    latest = Some(doc);
                }
                Err(e) if e.is_eof() => break,
                Err(_) => {
                    consumed = buffer.len();
                    break;
                }
            }
        }
        if consumed == 0 {
            consumed = stream_de.byte_offset();
        }
        buffer.drain(..consumed.min(buffer.len()));
        if let Some(doc) = latest {
            update(&shared, &container, |entry| {
                figures(&doc, entry);
                entry.windows = windows;
                entry.invalid = false;
                entry.error = None;
                entry.first_seen = true;
            });
            if !stream {
                return;
            }
        }
    }
}

fn stats_header(windows: bool) -> Data {
    Data::header(&[
        ("Container", "CONTAINER"),
        ("Name", "NAME"),
        ("ID", "CONTAINER ID"),
        ("CPUPerc", "CPU %"),
        (
            "MemUsage",
            if windows {
                "PRIV WORKING SET"
            } else {
                "MEM USAGE / LIMIT"
            },
        ),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ])
}

/// One row (docker's `statsContext`).
fn stats_row(e: &Entry, trunc: bool) -> Data {
    let dashes = || "--".to_string();
    let percent = |v: f64| format!("{v:.2}%");
    let name = if e.name.chars().count() > 1 {
        e.name.chars().skip(1).collect()
    } else {
        dashes()
    };
    let id = if trunc {
        truncate_id(&e.id)
    } else {
        e.id.clone()
    };
    let (cpu, mem, mem_percent, net, block, pids) = if e.invalid {
        (
            dashes(),
            "-- / --".to_string(),
            dashes(),
            dashes(),
            dashes(),
            dashes(),
        )
    } else {
        let pair = |a: f64, b: f64| {
            format!(
                "{} / {}",
                human_size_with_precision(a, 3),
                human_size_with_precision(b, 3)
            )
        };
        (
            percent(e.cpu),
            if e.windows {
                bytes_size(e.memory)
            } else {
                format!("{} / {}", bytes_size(e.memory), bytes_size(e.memory_limit))
            },
            if e.windows {
                dashes()
            } else {
                percent(e.memory_percent)
            },
            pair(e.net_rx, e.net_tx),
            pair(e.block_read, e.block_write),
            if e.windows {
                dashes()
            } else {
                e.pids.to_string()
            },
        )
    };
    Data::from_fields(&[
        ("BlockIO", block),
        ("CPUPerc", cpu),
        ("Container", e.container.clone()),
        ("ID", id),
        ("MemPerc", mem_percent),
        ("MemUsage", mem),
        ("Name", name),
        ("NetIO", net),
        ("PIDs", pids),
    ])
}

/// Adds a container to the table and starts its collector; false when it is there.
async fn add(
    cli: &mut Cli,
    shared: &Shared,
    collectors: &mut Vec<Background>,
    container: String,
    stream: bool,
) -> Result<bool> {
    {
        let mut entries = shared
            .lock()
            .map_err(|_| Error::InvalidArgument("stats table poisoned".to_string()))?;
        if entries.iter().any(|e| e.container == container) {
            return Ok(false);
        }
        entries.push(Entry {
            container: container.clone(),
            ..Entry::default()
        });
    }
    let client = cli.client().fork().await?;
    collectors.push(Background::spawn(collect(
        client,
        shared.clone(),
        container,
        stream,
    )));
    Ok(true)
}

/// Waits until every container has a first result.
async fn wait_first(shared: &Shared) {
    loop {
        let done = shared
            .lock()
            .map(|entries| entries.iter().all(|e| e.first_seen))
            .unwrap_or(true);
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Container events for `stats` without names: new containers join the table, dead
/// ones leave it (unless `--all`).
async fn watch_events(
    mut client: Client,
    all: bool,
    filters: Vec<String>,
    tx: tokio::sync::mpsc::UnboundedSender<(String, String)>,
) {
    let mut filters = filters;
    filters.push("type=container".to_string());
    let mut query = Query::new();
    if let Some(f) = filters_json(&filters) {
        query = query.add("filters", f);
    }
    let Ok(response) = client
        .request(Method::GET, "/events", &query, &[], empty())
        .await
    else {
        return;
    };
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = Json::parse(&line) else {
                continue;
            };
            let action = event.get("Action").map(Json::str).unwrap_or("");
            let id = event.path(&["Actor", "ID"]).map(Json::str).unwrap_or("");
            let short: String = id.chars().take(12).collect();
            let wanted =
                action == "start" || (all && action == "create") || (!all && action == "die");
            if wanted && tx.send((action.to_string(), short)).is_err() {
                return;
            }
        }
    }
}

/// `stats`.
pub async fn stats(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let no_stream = p.bool("no-stream");
    let all = p.bool("all");
    let trunc = !p.bool("no-trunc");
    let shared: Shared = Arc::new(Mutex::new(Vec::new()));
    let mut collectors: Vec<Background> = Vec::new();
    let show_all = p.args.is_empty();
    let mut events = None;
    let mut _watcher = None;
    if show_all {
        if !no_stream {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            _watcher = Some(Background::spawn(watch_events(
                cli.client().fork().await?,
                all,
                Vec::new(),
                tx,
            )));
            events = Some(rx);
        }
        let mut query = Query::new();
        if all {
            query = query.add("all", "1");
        }
        let response = cli
            .client()
            .request(Method::GET, "/containers/json", &query, &[], empty())
            .await?;
        let list = Json::parse(&read_body(response).await?).map_err(|source| Error::Decode {
            operation: "container list",
            source,
        })?;
        for c in list.items() {
            let id: String = c
                .get("Id")
                .map(Json::str)
                .unwrap_or("")
                .chars()
                .take(12)
                .collect();
            add(cli, &shared, &mut collectors, id, !no_stream).await?;
        }
        wait_first(&shared).await;
    } else {
        for name in &p.args {
            add(cli, &shared, &mut collectors, name.clone(), !no_stream).await?;
        }
        wait_first(&shared).await;
        let errors: Vec<Error> = shared
            .lock()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.error.clone())
                    .map(Error::InvalidArgument)
                    .collect()
            })
            .unwrap_or_default();
        match errors.len() {
            0 => {}
            1 => return Err(errors.into_iter().next().unwrap_or(Error::Cancelled)),
            _ => return Err(Error::Multiple(errors)),
        }
    }
    let mut format = p.string("format");
    if format.is_empty() {
        format = cli
            .configs()?
            .berth
            .setting("statsFormat")
            .unwrap_or(TABLE)
            .to_string();
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Some(rx) = events.as_mut() {
            while let Ok((action, id)) = rx.try_recv() {
                if action == "die" {
                    if let Ok(mut entries) = shared.lock() {
                        entries.retain(|e| e.container != id);
                    }
                } else {
                    add(cli, &shared, &mut collectors, id, true).await?;
                }
            }
        }
        let entries: Vec<Entry> = shared.lock().map(|e| e.clone()).unwrap_or_default();
        let windows = entries.first().is_some_and(|e| e.windows);
        let source = match format.as_str() {
            TABLE if windows => WINDOWS_STATS_TABLE,
            TABLE => DEFAULT_STATS_TABLE,
            other => other,
        };
        let rows: Vec<Data> = entries.iter().map(|e| stats_row(e, trunc)).collect();
        let table = render_rows(source, &stats_header(windows), &rows)?;
        let text = if no_stream {
            table
        } else {
            // docker's redraw: home, the table, every line again with erase-to-end,
            // erase below.
            let mut text = format!("\x1b[H{table}");
            let snapshot = text.clone();
            for line in snapshot.split('\n') {
                text.push_str(line);
                text.push_str(" \x1b[K\n");
            }
            text.push_str("\x1b[J");
            text
        };
        print_out(&text)?;
        if (entries.is_empty() && !show_all) || no_stream {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_docker() {
        let doc = Json::parse(br#"{"name":"/s1","id":"622260f6ae4c1234","cpu_stats":{"cpu_usage":{"total_usage":400},"system_cpu_usage":2000,"online_cpus":2},"precpu_stats":{"cpu_usage":{"total_usage":200},"system_cpu_usage":1000},"memory_stats":{"usage":2000000,"limit":4000000,"stats":{"inactive_file":1000000}},"blkio_stats":{"io_service_bytes_recursive":[{"op":"read","value":1000},{"op":"write","value":2000}]},"networks":{"eth0":{"rx_bytes":10,"tx_bytes":20}},"pids_stats":{"current":3}}"#).unwrap();
        let mut entry = Entry::default();
        figures(&doc, &mut entry);
        assert!((entry.cpu - 40.0).abs() < 1e-9);
        assert_eq!(entry.memory, 1_000_000.0);
        assert!((entry.memory_percent - 25.0).abs() < 1e-9);
        let text = render_rows(
            DEFAULT_STATS_TABLE,
            &stats_header(false),
            &[stats_row(&entry, true)],
        )
        .unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("622260f6ae4c   s1        40.00%    976.6KiB / 3.815MiB   25.00%    10B / 20B   1kB / 2kB   3"), "{row}");
        entry.invalid = true;
        let json = render_rows("json", &stats_header(false), &[stats_row(&entry, true)]).unwrap();
        assert_eq!(json, "{\"BlockIO\":\"--\",\"CPUPerc\":\"--\",\"Container\":\"\",\"ID\":\"622260f6ae4c\",\"MemPerc\":\"--\",\"MemUsage\":\"-- / --\",\"Name\":\"s1\",\"NetIO\":\"--\",\"PIDs\":\"--\"}\n");
    }
}
