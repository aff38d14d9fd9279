//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`, `/auth`, and berth's own
//! `/system/check`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::system::{go_arch, HostInfo};
use berth_engine::{AuthConfig, Engine, Event};
use bollard_stubs::models;
use futures_util::StreamExt;

use crate::error::{ApiError, ApiResult};
use crate::params::Query;
use crate::version::{API_VERSION, MIN_API_VERSION};
use crate::ENGINE_VERSION;

type AppState = State<Arc<Engine>>;

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/df", get(disk_usage))
        .route("/system/check", post(check))
        .route("/events", get(events))
        .route("/auth", post(auth))
}

async fn ping() -> Response {
    (
        [(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"), (header::PRAGMA, "no-cache"), (header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "OK",
    )
        .into_response()
}

/// docker's version document (built as JSON: the generated model types `Details` wrongly).
async fn version() -> Json<serde_json::Value> {
    let host = HostInfo::read();
    let commit = option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown");
    Json(serde_json::json!({
        "Platform": { "Name": "berth" },
        "Components": [{
            "Name": "Engine",
            "Version": ENGINE_VERSION,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": commit,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": host.kernel_version,
                "Experimental": "false",
                "GoVersion": "",
                "BuildTime": "",
            },
        }],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": commit,
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": host.kernel_version,
        "BuildTime": "",
    }))
}

async fn info(State(engine): AppState) -> ApiResult<Json<models::SystemInfo>> {
    let host = HostInfo::read();
    let config = &engine.config;
    let images = engine.images.count()? as i64;
    let (total, running, paused, stopped) = engine.containers.count();
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut index_configs = std::collections::HashMap::new();
    index_configs.insert(
        "docker.io".to_string(),
        models::IndexInfo {
            name: Some("docker.io".to_string()),
            mirrors: Some(config.registry_mirrors.clone()),
            secure: Some(true),
            official: Some(true),
        },
    );
    for registry in &config.insecure_registries {
        index_configs.insert(
            registry.clone(),
            models::IndexInfo { name: Some(registry.clone()), mirrors: Some(Vec::new()), secure: Some(false), official: Some(false) },
        );
    }
    Ok(Json(models::SystemInfo {
        id: Some(engine_id(&engine)),
        containers: Some(total as i64),
        containers_running: Some(running as i64),
        containers_paused: Some(paused as i64),
        containers_stopped: Some(stopped as i64),
        images: Some(images),
        driver: Some("overlay2".to_string()),
        driver_status: Some(vec![vec!["Backing Filesystem".to_string(), backing_fs(&config.data_root)]]),
        docker_root_dir: Some(config.data_root.display().to_string()),
        memory_limit: Some(true),
        swap_limit: Some(true),
        cpu_cfs_period: Some(true),
        cpu_cfs_quota: Some(true),
        cpu_shares: Some(true),
        cpu_set: Some(true),
        pids_limit: Some(true),
        oom_kill_disable: Some(false),
        debug: Some(config.debug),
        nfd: Some(count_fds() as i64),
        n_goroutines: Some(0),
        system_time: Some(now),
        logging_driver: Some("json-file".to_string()),
        cgroup_driver: Some(models::SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(if host.cgroup_version == "2" { models::SystemInfoCgroupVersionEnum::_2 } else { models::SystemInfoCgroupVersionEnum::_1 }),
        n_events_listener: Some(0),
        kernel_version: Some(host.kernel_version),
        operating_system: Some(host.operating_system),
        os_version: Some(host.os_version),
        os_type: Some("linux".to_string()),
        architecture: Some(host.architecture),
        ncpu: Some(host.ncpu as i64),
        mem_total: Some(host.mem_total as i64),
        index_server_address: Some("https://index.docker.io/v1/".to_string()),
        registry_config: Some(models::RegistryServiceConfig {
            allow_nondistributable_artifacts_cidrs: None,
            allow_nondistributable_artifacts_hostnames: None,
            insecure_registry_cidrs: Some(vec!["127.0.0.0/8".to_string()]),
            index_configs: Some(index_configs),
            mirrors: Some(config.registry_mirrors.clone()),
        }),
        name: Some(host.hostname),
        labels: Some(Vec::new()),
        experimental_build: Some(false),
        server_version: Some(ENGINE_VERSION.to_string()),
        default_runtime: Some("berth".to_string()),
        // Containers always outlive berthd (their shims keep them).
        live_restore_enabled: Some(true),
        isolation: None,
        security_options: Some(vec!["name=seccomp,profile=builtin".to_string()]),
        warnings: Some(vec!["WARNING: bridge networking is not available yet; containers default to --network none".to_string()]),
        ..Default::default()
    }))
}

fn engine_id(engine: &Engine) -> String {
    let path = engine.config.data_root.join("engine-id");
    std::fs::read_to_string(&path).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn backing_fs(path: &std::path::Path) -> String {
    match rustix::fs::statfs(path).map(|s| s.f_type as u64) {
        Ok(0xEF53) => "extfs",
        Ok(0x5846_5342) => "xfs",
        Ok(0x9123_683E) => "btrfs",
        Ok(0x0102_1994) => "tmpfs",
        _ => "unknown",
    }
    .to_string()
}

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

async fn disk_usage(State(engine): AppState) -> ApiResult<Json<serde_json::Value>> {
    let usage = engine.images.disk_usage()?;
    let images: Vec<models::ImageSummary> = usage.images.iter().map(|v| crate::images::summary(v, true)).collect();
    Ok(Json(serde_json::json!({
        "LayersSize": usage.layers_size,
        "Images": images,
        "Containers": [],
        "Volumes": [],
        "BuildCache": [],
    })))
}

async fn check(State(engine): AppState, RawQuery(raw): RawQuery) -> ApiResult<Json<berth_engine::images::CheckReport>> {
    let repair = Query::parse(raw.as_deref()).flag("repair");
    let report = tokio::task::spawn_blocking(move || engine.images.check(repair))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(report))
}

async fn auth(State(engine): AppState, body: axum::body::Bytes) -> ApiResult<Json<models::SystemAuthResponse>> {
    let auth: AuthConfig = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid auth configuration: {e}")))?;
    let token = engine.images.login(&auth).await?;
    Ok(Json(models::SystemAuthResponse { status: "Login Succeeded".to_string(), identity_token: token }))
}

/// A time bound of `/events`: unix seconds with an optional `.nanoseconds` fraction.
fn parse_bound(value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
    let secs: i64 = secs.parse().map_err(|_| ApiError::bad_request(format!("invalid timestamp {v:?}")))?;
    let frac = format!("{frac:0<9}");
    let nanos: i64 = frac[..9].parse().map_err(|_| ApiError::bad_request(format!("invalid timestamp {v:?}")))?;
    Ok(Some(secs * 1_000_000_000 + nanos))
}

fn event_matches(event: &Event, filters: &berth_engine::Filters) -> bool {
    let any = |key: &str, value: &str| filters.get(key).is_none_or(|vs| vs.iter().any(|v| v == value));
    let name = event.actor.attributes.get("name").map(String::as_str).unwrap_or("");
    any("type", &event.kind)
        && (any("event", &event.action) && any("action", &event.action))
        && any("scope", &event.scope)
        && (event.kind != "image" || filters.get("image").is_none_or(|vs| vs.iter().any(|v| v == &event.actor.id || v == name)))
        && filters.get("label").is_none_or(|ls| {
            ls.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => event.actor.attributes.get(k).is_some_and(|x| x == v),
                None => event.actor.attributes.contains_key(l),
            })
        })
}

async fn events(State(engine): AppState, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    let filters = query.filters()?;
    for key in filters.keys() {
        if !matches!(key.as_str(), "type" | "event" | "action" | "scope" | "image" | "container" | "label" | "volume" | "network" | "daemon") {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    let since = parse_bound(query.get("since"))?;
    let until = parse_bound(query.get("until"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let (past, receiver) = engine.events.subscribe(since);
    let last_past = past.last().map_or(i64::MIN, |e| e.time_nano);
    let in_range = move |e: &Event| until.is_none_or(|u| e.time_nano <= u);
    let past_filters = filters.clone();
    let replay = futures_util::stream::iter(past.into_iter().filter(move |e| in_range(e) && event_matches(e, &past_filters)));
    // Live events, skipping any the replay already sent, until `until` passes.
    let live = tokio_stream::wrappers::BroadcastStream::new(receiver)
        .filter_map(|e| async move { e.ok() })
        .filter(move |e| {
            let keep = e.time_nano > last_past && event_matches(e, &filters);
            async move { keep }
        });
    let encode = |e: Event| {
        let mut line = serde_json::to_vec(&e).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(line))
    };
    let body = match until {
        // A bound in the past: only what happened, then the stream ends.
        Some(u) if u <= now => Body::from_stream(replay.map(encode)),
        Some(u) => {
            let deadline = tokio::time::sleep(Duration::from_nanos((u - now) as u64));
            Body::from_stream(replay.chain(live).map(encode).take_until(deadline))
        }
        None => Body::from_stream(replay.chain(live).map(encode)),
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
