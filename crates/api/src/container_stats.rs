//! `/containers/{id}/stats`, `/top` and `/update`: resource usage in docker's stats JSON
//! (streamed once a second, or one document), the processes `ps` shows, and live changes
//! of limits and restart policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::containers::stats::{self, Sample};
use berth_engine::containers::{format_time, Container};
use berth_engine::Engine;
use bollard_stubs::models::{Resources, RestartPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::params::Query;

type AppState = State<Arc<Engine>>;

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/update", post(update))
}

/// How often a stats stream sends, and how far apart the two samples of a single one are.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// docker's stats document (Linux fields).
#[derive(Debug, Clone, Serialize)]
struct StatsJson {
    read: String,
    preread: String,
    pids_stats: PidsStats,
    blkio_stats: BlkioStats,
    num_procs: u32,
    storage_stats: StorageStats,
    cpu_stats: CpuStats,
    precpu_stats: CpuStats,
    memory_stats: MemoryStats,
    name: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    networks: Option<BTreeMap<String, NetworkStats>>,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, Default, Serialize)]
struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    limit: u64,
}

/// As dockerd sends them: every list `null` without a sample, else a list (maybe empty).
#[derive(Debug, Clone, Default, Serialize)]
struct BlkioStats {
    io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
    io_serviced_recursive: Option<Vec<BlkioEntry>>,
    io_queue_recursive: Option<Vec<BlkioEntry>>,
    io_service_time_recursive: Option<Vec<BlkioEntry>>,
    io_wait_time_recursive: Option<Vec<BlkioEntry>>,
    io_merged_recursive: Option<Vec<BlkioEntry>>,
    io_time_recursive: Option<Vec<BlkioEntry>>,
    sectors_recursive: Option<Vec<BlkioEntry>>,
}

#[derive(Debug, Clone, Serialize)]
struct BlkioEntry {
    major: u64,
    minor: u64,
    op: String,
    value: u64,
}

/// Windows-only counters; always `{}` on Linux.
#[derive(Debug, Clone, Default, Serialize)]
struct StorageStats {}

#[derive(Debug, Clone, Default, Serialize)]
struct CpuStats {
    cpu_usage: CpuUsage,
    #[serde(skip_serializing_if = "is_zero")]
    system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    online_cpus: u32,
    throttling_data: ThrottlingData,
}

#[derive(Debug, Clone, Default, Serialize)]
struct CpuUsage {
    total_usage: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_usage: Vec<u64>,
    usage_in_kernelmode: u64,
    usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct ThrottlingData {
    periods: u64,
    throttled_periods: u64,
    throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    max_usage: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    failcnt: u64,
    #[serde(skip_serializing_if = "is_zero")]
    limit: u64,
}

#[derive(Debug, Clone, Serialize)]
struct NetworkStats {
    rx_bytes: u64,
    rx_packets: u64,
    rx_errors: u64,
    rx_dropped: u64,
    tx_bytes: u64,
    tx_packets: u64,
    tx_errors: u64,
    tx_dropped: u64,
}

fn cpu_stats(s: &Sample) -> CpuStats {
    let cpu = &s.cgroup.cpu;
    CpuStats {
        cpu_usage: CpuUsage {
            total_usage: cpu.usage.total,
            percpu_usage: cpu.usage.percpu.clone(),
            usage_in_kernelmode: cpu.usage.kernel,
            usage_in_usermode: cpu.usage.user,
        },
        system_cpu_usage: s.system_cpu_usage,
        online_cpus: s.online_cpus,
        throttling_data: ThrottlingData {
            periods: cpu.throttling.periods,
            throttled_periods: cpu.throttling.throttled_periods,
            throttled_time: cpu.throttling.throttled_time,
        },
    }
}

fn blkio_list(entries: &[stats::BlkioEntry], v1: bool) -> Option<Vec<BlkioEntry>> {
    let list = entries
        .iter()
        .map(|e| BlkioEntry {
            major: e.major,
            minor: e.minor,
            // v2 counters are lowercase in docker's output, v1's keep the kernel's names.
            op: if v1 { e.op.clone() } else { e.op.to_lowercase() },
            value: e.value,
        })
        .collect();
    Some(list)
}

/// One stats document: `sample` now, `previous` for the precpu fields and preread.
fn document(name: &str, id: &str, sample: Option<&Sample>, previous: Option<&Sample>) -> StatsJson {
    let mut doc = StatsJson {
        read: format_time(0),
        preread: format_time(previous.map_or(0, |p| p.read)),
        pids_stats: PidsStats::default(),
        blkio_stats: BlkioStats::default(),
        num_procs: 0,
        storage_stats: StorageStats {},
        cpu_stats: CpuStats::default(),
        precpu_stats: previous.map(cpu_stats).unwrap_or_default(),
        memory_stats: MemoryStats::default(),
        name: format!("/{name}"),
        id: id.to_string(),
        networks: None,
    };
    let Some(s) = sample else { return doc };
    let c = &s.cgroup;
    doc.read = format_time(s.read);
    doc.pids_stats = PidsStats { current: c.pids.current, limit: c.pids.limit };
    let b = &c.blkio;
    doc.blkio_stats = BlkioStats {
        io_service_bytes_recursive: blkio_list(&b.io_service_bytes_recursive, s.blkio_v1),
        io_serviced_recursive: blkio_list(&b.io_serviced_recursive, s.blkio_v1),
        io_queue_recursive: blkio_list(&b.io_queued_recursive, s.blkio_v1),
        io_service_time_recursive: blkio_list(&b.io_service_time_recursive, s.blkio_v1),
        io_wait_time_recursive: blkio_list(&b.io_wait_time_recursive, s.blkio_v1),
        io_merged_recursive: blkio_list(&b.io_merged_recursive, s.blkio_v1),
        io_time_recursive: blkio_list(&b.io_time_recursive, s.blkio_v1),
        sectors_recursive: blkio_list(&b.sectors_recursive, s.blkio_v1),
    };
    doc.cpu_stats = cpu_stats(s);
    let m = &c.memory;
    doc.memory_stats = MemoryStats {
        usage: m.usage.usage,
        // Peak and failure count exist on v1 only (v2's peak is not docker's max_usage).
        max_usage: if s.memory_v1 { m.usage.max } else { 0 },
        stats: m.raw.clone(),
        failcnt: if s.memory_v1 { m.usage.failcnt } else { 0 },
        limit: s.memory_limit,
    };
    doc.networks = s.networks.as_ref().map(|list| {
        list.iter()
            .map(|(name, n)| {
                let stats = NetworkStats {
                    rx_bytes: n.rx_bytes,
                    rx_packets: n.rx_packets,
                    rx_errors: n.rx_errors,
                    rx_dropped: n.rx_dropped,
                    tx_bytes: n.tx_bytes,
                    tx_packets: n.tx_packets,
                    tx_errors: n.tx_errors,
                    tx_dropped: n.tx_dropped,
                };
                (name.clone(), stats)
            })
            .collect()
    });
    doc
}

fn line(doc: &StatsJson) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// docker's boolean with a default: absent gives `default`; "", "0", "no", "false" and
/// "none" are false.
fn bool_or(query: &Query, key: &str, default: bool) -> bool {
    match query.get(key) {
        None => default,
        Some(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "no" | "false" | "none"),
    }
}

async fn sample(engine: &Engine, c: &Arc<Container>) -> Option<Sample> {
    match engine.containers.stats_sample(c).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("stats of {}: {e}", c.id);
            None
        }
    }
}

async fn stats(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    let stream = bool_or(&query, "stream", true);
    let one_shot = bool_or(&query, "one-shot", false);
    if stream && one_shot {
        return Err(ApiError::bad_request("cannot have stream=true and one-shot=true"));
    }
    let c = engine.containers.get(&id)?;
    let name = c.record().name;
    if !stream {
        let first = sample(&engine, &c).await;
        let doc = match first {
            // docker's single document has its precpu filled: a second sample a moment later.
            Some(first) if !one_shot => {
                tokio::time::sleep(STATS_INTERVAL).await;
                let second = sample(&engine, &c).await;
                document(&name, &c.id, second.as_ref(), second.as_ref().map(|_| &first))
            }
            first => document(&name, &c.id, first.as_ref(), None),
        };
        return Ok(([(header::CONTENT_TYPE, "application/json")], line(&doc)).into_response());
    }
    // A document a second until the client goes away or the container is removed.
    let state = (engine, c, name, None::<Sample>, true);
    let body = futures_util::stream::unfold(state, |(engine, c, name, previous, first)| async move {
        if !first {
            tokio::time::sleep(STATS_INTERVAL).await;
        }
        engine.containers.get(&c.id).ok()?;
        let now = sample(&engine, &c).await;
        let doc = document(&name, &c.id, now.as_ref(), previous.as_ref().filter(|_| now.is_some()));
        Some((Ok::<_, std::convert::Infallible>(line(&doc)), (engine, c, name, now, false)))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}

async fn top(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    let top = engine.containers.top(&id, query.get("ps_args").unwrap_or("")).await?;
    Ok(Json(json!({ "Titles": top.titles, "Processes": top.processes })))
}

/// The update body: resources with the restart policy beside them.
#[derive(Deserialize)]
struct UpdateBody {
    #[serde(flatten)]
    resources: Resources,
    #[serde(rename = "RestartPolicy", default)]
    restart_policy: Option<RestartPolicy>,
}

async fn update(State(engine): AppState, Path(id): Path<String>, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let body: UpdateBody = if body.is_empty() {
        UpdateBody { resources: Resources::default(), restart_policy: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid update config: {e}")))?
    };
    let warnings = engine.containers.update(&id, &body.resources, body.restart_policy.as_ref()).await?;
    Ok(Json(json!({ "Warnings": warnings })))
}
