//! `/containers/*` and `/exec/*`: create, start, stop, kill, restart, pause, rename,
//! wait, remove, prune, list, inspect, logs, attach and exec (hijacked streams).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::containers::{format_time, health, AttachStream, Container, LogsOptions, Record, Status, WaitCondition};
use berth_engine::{Engine, Filters};
use bollard_stubs::models::{ContainerConfig, ExecConfig, HostConfig};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ApiError, ApiResult};
use crate::params::Query;

type AppState = State<Arc<Engine>>;

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/attach/ws", get(crate::attach_ws::attach_ws))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/exec", post(exec_create))
        .route("/containers/{id}", axum::routing::delete(remove))
        .route("/exec/{id}/start", post(exec_start))
        .route("/exec/{id}/resize", post(exec_resize))
        .route("/exec/{id}/json", get(exec_inspect))
}

/// The create body: the container config with the host config beside it.
#[derive(Deserialize)]
struct CreateBody {
    #[serde(flatten)]
    config: ContainerConfig,
    #[serde(rename = "HostConfig", default)]
    host_config: Option<HostConfig>,
}

async fn create(State(engine): AppState, RawQuery(raw): RawQuery, body: axum::body::Bytes) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    let body: CreateBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    let name = query.get("name").map(str::to_string);
    let containers = engine.containers.clone();
    let created = tokio::task::spawn_blocking(move || {
        containers.create(name.as_deref(), body.config, body.host_config.unwrap_or_default())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((StatusCode::CREATED, Json(json!({ "Id": created.id, "Warnings": created.warnings }))).into_response())
}

async fn start(State(engine): AppState, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.containers.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn timeout_param(query: &Query) -> ApiResult<Option<i64>> {
    query
        .get("t")
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}"))))
        .transpose()
}

async fn stop(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let query = Query::parse(raw.as_deref());
    engine.containers.stop(&id, query.get("signal").filter(|s| !s.is_empty()), timeout_param(&query)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let query = Query::parse(raw.as_deref());
    engine.containers.restart(&id, timeout_param(&query)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let query = Query::parse(raw.as_deref());
    engine.containers.kill(&id, query.get("signal").filter(|s| !s.is_empty())).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(State(engine): AppState, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.containers.pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(engine): AppState, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.containers.unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let query = Query::parse(raw.as_deref());
    let name = query.get("name").unwrap_or("");
    engine.containers.rename(&id, name)?;
    Ok(StatusCode::NO_CONTENT)
}

fn size_params(query: &Query) -> ApiResult<(u16, u16)> {
    let dim = |k: &str| -> ApiResult<u16> {
        let v = query.get(k).unwrap_or("");
        v.parse().map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
    };
    Ok((dim("h")?, dim("w")?))
}

async fn resize(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let (h, w) = size_params(&Query::parse(raw.as_deref()))?;
    engine.containers.resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

/// The status line is sent at once and the body at the exit, as dockerd does: clients
/// start the container once the wait is in place.
async fn wait(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    let condition: WaitCondition = query.get("condition").unwrap_or("").parse()?;
    // Unknown containers are an error before the status line.
    engine.containers.wait_check(&id, condition)?;
    let containers = engine.containers.clone();
    let body = async_stream_once(async move {
        match containers.wait(&id, condition).await {
            Ok(code) => json!({ "StatusCode": code, "Error": null }),
            Err(e) => json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } }),
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A body of one JSON document produced later.
fn async_stream_once(value: impl std::future::Future<Output = Value> + Send + 'static) -> Body {
    let stream = futures_util::stream::once(async move {
        let mut bytes = serde_json::to_vec(&value.await).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes)
    });
    Body::from_stream(stream)
}

async fn remove(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let query = Query::parse(raw.as_deref());
    if query.flag("link") {
        return Err(ApiError::bad_request("links are not supported"));
    }
    engine.containers.remove(&id, query.flag("force"), query.flag("v")).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(engine): AppState, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    let filters = query.filters()?;
    for key in filters.keys() {
        if key != "until" && key != "label" && key != "label!" {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    let now = berth_engine::images::now_unix();
    let keep = move |r: &Record| {
        let created = (r.created / 1_000_000_000) as i64;
        let until_ok = filters.get("until").is_none_or(|vs| {
            vs.iter().all(|v| berth_engine::images::parse_time_filter(v).is_some_and(|t| created < t))
        });
        !until_ok || !labels_match(&filters, r) || created > now
    };
    let (deleted, freed) = engine.containers.prune(keep).await?;
    Ok(Json(json!({ "ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": freed })))
}

fn labels_match(filters: &Filters, r: &Record) -> bool {
    let labels = r.config.labels.clone().unwrap_or_default();
    let has = |spec: &str| match spec.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(spec),
    };
    filters.get("label").is_none_or(|vs| vs.iter().all(|s| has(s))) && filters.get("label!").is_none_or(|vs| vs.iter().all(|s| !has(s)))
}

/// `units.HumanDuration` (docker's "Up 3 minutes", "Exited (0) 2 hours ago").
fn human_duration(seconds: i64) -> String {
    match seconds {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        s => {
            let hours = (s as f64 / 3600.0 + 0.5) as i64;
            match hours {
                1 => "About an hour".into(),
                h if h < 48 => format!("{h} hours"),
                h if h < 24 * 7 * 2 => format!("{} days", h / 24),
                h if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
                h if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
                _ => format!("{} years", s / 3600 / 24 / 365),
            }
        }
    }
}

fn since(nanos: i128) -> i64 {
    ((berth_engine::containers::record::now_nanos() - nanos) / 1_000_000_000) as i64
}

/// The `Status` column of `docker ps`.
fn status_text(r: &Record) -> String {
    let s = &r.state;
    match s.status {
        Status::Running => format!("Up {}{}", human_duration(since(s.started_at)), health::status_suffix(s)),
        Status::Paused => format!("Up {} (Paused)", human_duration(since(s.started_at))),
        Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, human_duration(since(s.finished_at))),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Created => "Created".into(),
        Status::Exited => format!("Exited ({}) {} ago", s.exit_code, human_duration(since(s.finished_at))),
    }
}

fn command_text(r: &Record) -> String {
    std::iter::once(r.path.as_str()).chain(r.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
}

fn summary(engine: &Engine, c: &Container, r: &Record, size: bool) -> Value {
    let mut v = json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.config.image.clone().unwrap_or_default(),
        "ImageID": r.image,
        "Command": command_text(r),
        "Created": (r.created / 1_000_000_000) as i64,
        "Ports": [],
        "Labels": r.config.labels.clone().unwrap_or_default(),
        "State": r.state.status.as_str(),
        "Status": status_text(r),
        "HostConfig": { "NetworkMode": r.host_config.network_mode.clone().unwrap_or_else(|| "none".into()) },
        "NetworkSettings": { "Networks": {} },
        "Mounts": r.mounts,
    });
    if size {
        v["SizeRw"] = json!(engine.containers.size_rw(c));
        v["SizeRootFs"] = json!(engine.containers.size_root_fs(c));
    }
    v
}

/// docker's `ps` filters.
fn matches(engine: &Engine, filters: &Filters, r: &Record, all: &[Record]) -> ApiResult<bool> {
    for (key, values) in filters {
        let ok = match key.as_str() {
            "id" => values.iter().any(|v| r.id.starts_with(v.as_str())),
            "name" => values.iter().any(|v| {
                let v = v.strip_prefix('/').unwrap_or(v);
                regex::Regex::new(v).map(|re| re.is_match(&r.name)).unwrap_or(false)
            }),
            "status" => {
                for v in values {
                    if !["created", "restarting", "running", "removing", "paused", "exited", "dead"].contains(&v.as_str()) {
                        return Err(ApiError::bad_request(format!("Invalid filter 'status={v}'")));
                    }
                }
                values.iter().any(|v| v == r.state.status.as_str())
            }
            "exited" => {
                let mut any = false;
                for v in values {
                    let code: i32 = v.parse().map_err(|_| ApiError::bad_request(format!("invalid filter 'exited={v}'")))?;
                    any |= r.state.status == Status::Exited && r.state.exit_code == code;
                }
                any
            }
            "label" | "label!" => labels_match(&Filters::from([(key.clone(), values.clone())]), r),
            "ancestor" => values.iter().any(|v| {
                r.config.image.as_deref() == Some(v.as_str())
                    || engine.images.lookup(v).is_ok_and(|img| img.id == r.image)
                    || r.image.strip_prefix("sha256:").is_some_and(|h| h.starts_with(v.as_str()))
            }),
            "before" | "since" => {
                let mut ok = true;
                for v in values {
                    let other = all
                        .iter()
                        .find(|o| o.id.starts_with(v.as_str()) || o.name == v.strip_prefix('/').unwrap_or(v))
                        .ok_or_else(|| ApiError::not_found(format!("No such container: {v}")))?;
                    ok &= if key == "before" { r.created < other.created } else { r.created > other.created };
                }
                ok
            }
            "health" => {
                for v in values {
                    if ![health::STARTING, health::HEALTHY, health::UNHEALTHY, health::NONE].contains(&v.as_str()) {
                        return Err(ApiError::bad_request(format!("Unrecognised filter value for health: {v}")));
                    }
                }
                values.iter().any(|v| v == health::status_of(&r.state))
            }
            "isolation" | "network" | "volume" | "publish" | "expose" | "is-task" => true,
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list(State(engine): AppState, RawQuery(raw): RawQuery) -> ApiResult<Json<Vec<Value>>> {
    let query = Query::parse(raw.as_deref());
    let filters = query.filters()?;
    let all = query.flag("all");
    let size = query.flag("size");
    let limit: i64 = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(-1);
    let mut containers: Vec<(Arc<Container>, Record)> = engine.containers.all().into_iter().map(|c| {
        let r = c.record();
        (c, r)
    }).collect();
    containers.sort_by(|a, b| b.1.created.cmp(&a.1.created));
    let records: Vec<Record> = containers.iter().map(|(_, r)| r.clone()).collect();
    let mut out = vec![];
    for (c, r) in &containers {
        // `limit` (and `-n`, `-l`) counts every container, running or not.
        if !all && limit <= 0 && !r.state.status.is_live() && r.state.status != Status::Restarting && !filters.contains_key("status") {
            continue;
        }
        if !matches(&engine, &filters, r, &records)? {
            continue;
        }
        out.push(summary(&engine, c, r, size));
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    Ok(Json(out))
}

fn inspect_value(engine: &Engine, c: &Container, r: &Record, size: bool) -> Value {
    let s = &r.state;
    let dir = c.log_dir();
    let mut v = json!({
        "Id": r.id,
        "Created": format_time(r.created),
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": s.status.as_str(),
            "Running": s.status.is_live(),
            "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": format_time(s.started_at),
            "FinishedAt": format_time(s.finished_at),
        },
        "Image": r.image,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": dir.join(format!("{}-json.log", r.id)),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": if r.exec_ids.is_empty() { Value::Null } else { json!(r.exec_ids) },
        "HostConfig": with_defaults(host_config_defaults(), &r.host_config),
        "GraphDriver": {
            "Data": {
                "LowerDir": r.layers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
                "MergedDir": dir.join("rootfs"),
                "UpperDir": dir.join("rw/upper"),
                "WorkDir": dir.join("rw/work"),
            },
            "Name": "overlay2",
        },
        "Mounts": r.mounts,
        "Config": with_defaults(json!({
            "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
            "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": null,
            "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
            "OnBuild": null, "Labels": {},
        }), &r.config),
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "HairpinMode": false, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {},
        },
    });
    if let Some(health) = &s.health {
        v["State"]["Health"] = json!({
            "Status": health.status,
            "FailingStreak": health.failing_streak,
            "Log": health.log.iter().map(|l| json!({"Start": format_time(l.start), "End": format_time(l.end), "ExitCode": l.exit_code, "Output": l.output})).collect::<Vec<_>>(),
        });
    }
    if size {
        v["SizeRw"] = json!(engine.containers.size_rw(c));
        v["SizeRootFs"] = json!(engine.containers.size_root_fs(c));
    }
    v
}

/// `value` (a model whose unset fields serialize as absent) over docker's zero values, so
/// templates and clients find every field docker's inspect has.
fn with_defaults(mut defaults: Value, value: &impl serde::Serialize) -> Value {
    if let (Some(base), Ok(Value::Object(set))) = (defaults.as_object_mut(), serde_json::to_value(value)) {
        for (k, v) in set {
            base.insert(k, v);
        }
    }
    defaults
}

/// docker's zero values of a HostConfig.
const HOST_CONFIG_DEFAULTS: &str = r#"{
        "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "none", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null, "CapAdd": null, "CapDrop": null,
        "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null,
        "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "", "Privileged": false,
        "PublishAllPorts": false, "ReadonlyRootfs": false, "SecurityOpt": null, "UTSMode": "", "UsernsMode": "",
        "ShmSize": 67108864, "Runtime": "berth", "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0,
        "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": null, "BlkioDeviceWriteBps": null, "BlkioDeviceReadIOps": null,
        "BlkioDeviceWriteIOps": null, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
        "DeviceRequests": null, "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0,
        "MemorySwap": 0, "MemorySwappiness": null, "OomKillDisable": false, "PidsLimit": null, "Ulimits": null,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0
    }"#;

fn host_config_defaults() -> Value {
    serde_json::from_str(HOST_CONFIG_DEFAULTS).unwrap_or_else(|_| json!({}))
}

async fn inspect(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    let c = engine.containers.get(&id)?;
    let r = c.record();
    Ok(Json(inspect_value(&engine, &c, &r, query.flag("size"))))
}

fn parse_log_time(value: Option<&str>) -> ApiResult<Option<SystemTime>> {
    let Some(v) = value.filter(|v| !v.is_empty() && *v != "0") else { return Ok(None) };
    // Seconds with an optional fraction, as the docker CLI sends them.
    let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
    let secs: u64 = secs.parse().map_err(|_| ApiError::bad_request(format!("invalid time value {v:?}")))?;
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().map_err(|_| ApiError::bad_request(format!("invalid time value {v:?}")))?;
    Ok(Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)))
}

async fn logs(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    let options = LogsOptions {
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
        since: parse_log_time(query.get("since"))?,
        until: parse_log_time(query.get("until"))?,
        tail: match query.get("tail") {
            None | Some("") | Some("all") => None,
            Some(n) => Some(n.parse().map_err(|_| ApiError::bad_request(format!("invalid tail value {n:?}")))?),
        },
        follow: query.flag("follow"),
        timestamps: query.flag("timestamps"),
        details: query.flag("details"),
    };
    if !options.stdout && !options.stderr {
        return Err(ApiError::bad_request("Bad parameters: you must choose at least one stream"));
    }
    let (timestamps, details) = (options.timestamps, options.details);
    let (tty, rx) = engine.containers.logs(&id, options)?;
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        let line = rx.recv().await?;
        let bytes = match line {
            Ok(l) => {
                let mut payload = Vec::with_capacity(l.line.len() + 40);
                if timestamps {
                    let nanos = l.time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
                    payload.extend_from_slice(format_time(nanos).as_bytes());
                    payload.push(b' ');
                }
                if details {
                    let attrs: Vec<String> = l.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    payload.extend_from_slice(attrs.join(",").as_bytes());
                    payload.push(b' ');
                }
                payload.extend_from_slice(&l.line);
                if tty {
                    payload
                } else {
                    let mut framed = berth_shim_protocol::frame_header(l.stream, payload.len()).to_vec();
                    framed.extend_from_slice(&payload);
                    framed
                }
            }
            Err(e) => {
                tracing::warn!("reading logs: {e}");
                return None;
            }
        };
        Some((Ok::<_, std::convert::Infallible>(bytes), rx))
    });
    let content_type = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    Ok(([(header::CONTENT_TYPE, content_type)], Body::from_stream(stream)).into_response())
}

/// Answers 101 and hands the raw connection to `pipe` (docker's hijacked streams), with
/// the container's earlier output (`logs=1`) sent first; without a live stream
/// (`stream=0`) the connection ends after it.
fn hijack(upgrade: hyper::upgrade::OnUpgrade, past: Option<PastOutput>, live: Option<AttachStream>, tty: bool) -> Response {
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!("attach upgrade failed: {e}"),
        };
        let mut client = TokioIo::new(upgraded);
        if let Some(mut past) = past {
            while let Some(bytes) = past.next_framed().await {
                if client.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
        let Some(live) = live else {
            let _ = client.shutdown().await;
            return;
        };
        let exited = live.exited;
        match live.stream.await {
            Ok(Ok(shim)) => pipe(client, shim, exited).await,
            Ok(Err(e)) => tracing::debug!("attach: {e}"),
            Err(_) => tracing::debug!("attach: the container was removed before it started"),
        }
    });
    upgrade_response(tty)
}

/// `logs=1` of an attach: what the container wrote before, sent ahead of the live
/// stream, in the streams asked for.
pub(crate) struct PastOutput {
    lines: tokio::sync::mpsc::Receiver<berth_engine::Result<berth_engine::containers::LogLine>>,
    tty: bool,
}

impl PastOutput {
    /// The next message as the container wrote it.
    pub(crate) async fn next_raw(&mut self) -> Option<Vec<u8>> {
        match self.lines.recv().await? {
            Ok(line) => Some(line.line),
            Err(e) => {
                tracing::debug!("attach: reading the log: {e}");
                None
            }
        }
    }

    /// The next message as a hijacked stream carries it: framed unless on a terminal.
    async fn next_framed(&mut self) -> Option<Vec<u8>> {
        match self.lines.recv().await? {
            Ok(line) if self.tty => Some(line.line),
            Ok(line) => {
                let mut framed = berth_shim_protocol::frame_header(line.stream, line.line.len()).to_vec();
                framed.extend_from_slice(&line.line);
                Some(framed)
            }
            Err(e) => {
                tracing::debug!("attach: reading the log: {e}");
                None
            }
        }
    }
}

/// The parts of an attach request (either kind): the earlier output when `logs` is set,
/// and the live stream when `stream` is set (docker's flags; both off by default).
pub(crate) async fn attach_request(engine: &Engine, id: &str, query: &Query) -> ApiResult<(Option<PastOutput>, Option<AttachStream>)> {
    let streams = berth_shim_protocol::Streams {
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
        detach_keys: berth_engine::containers::detach_keys(query.get("detachKeys"))?,
    };
    let past = if query.flag("logs") && (streams.stdout || streams.stderr) {
        let options = LogsOptions {
            stdout: streams.stdout,
            stderr: streams.stderr,
            since: None,
            until: None,
            tail: None,
            follow: false,
            timestamps: false,
            details: false,
        };
        let (tty, lines) = engine.containers.logs(id, options)?;
        Some(PastOutput { lines, tty })
    } else {
        None
    };
    let live = match query.flag("stream") {
        true => Some(engine.containers.attach(id, streams).await?),
        false => {
            // Still an error for a container that is not there.
            engine.containers.get(id)?;
            None
        }
    };
    Ok((past, live))
}

fn upgrade_response(tty: bool) -> Response {
    let content_type = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Copies both ways. The client ending its input half-closes toward the shim (which may
/// close the process's stdin); the process's output ending closes everything.
async fn pipe<C>(client: C, shim: tokio::net::UnixStream, exited: Option<tokio::sync::oneshot::Receiver<()>>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut shim_read, mut shim_write) = shim.into_split();
    let output = async {
        let _ = tokio::io::copy(&mut shim_read, &mut client_write).await;
        if let Some(exited) = exited {
            // The client asks for the exit code as soon as the stream ends.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), exited).await;
        }
        let _ = client_write.shutdown().await;
    };
    let input = async {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if shim_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = shim_write.shutdown().await;
        // Keep the output flowing until the process is done.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = output => {}
        _ = input => {}
    }
}

fn wants_upgrade(request: &Request) -> bool {
    request.headers().get(header::UPGRADE).is_some()
}

async fn attach(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery, mut request: Request) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    if !wants_upgrade(&request) {
        return Err(ApiError::bad_request("attach needs an upgraded connection (Upgrade: tcp)"));
    }
    let (past, live) = attach_request(&engine, &id, &query).await?;
    let tty = match &live {
        Some(live) => live.tty,
        None => engine.containers.get(&id)?.record().config.tty.unwrap_or(false),
    };
    Ok(hijack(hyper::upgrade::on(&mut request), past, live, tty))
}

async fn exec_create(State(engine): AppState, Path(id): Path<String>, body: axum::body::Bytes) -> ApiResult<Response> {
    let config: ExecConfig = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid exec config: {e}")))?;
    let exec_id = engine.containers.exec_create(&id, config)?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

#[derive(Deserialize, Default)]
struct ExecStartBody {
    #[serde(rename = "Detach", default)]
    detach: bool,
}

async fn exec_start(State(engine): AppState, Path(id): Path<String>, request: Request) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let start: ExecStartBody = if bytes.is_empty() { ExecStartBody::default() } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid exec start config: {e}")))?
    };
    let mut request = Request::from_parts(parts, Body::empty());
    let tty = engine.containers.exec_inspect(&id)?.config.tty.unwrap_or(false);
    if start.detach || !wants_upgrade(&request) {
        engine.containers.exec_start(&id, true).await?;
        return Ok(StatusCode::OK.into_response());
    }
    // Like dockerd: the connection is taken over first, and a failure to start the
    // process is written into the stream (the client then reads the exit code, 126).
    let upgrade = hyper::upgrade::on(&mut request);
    let containers = engine.containers.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut client = TokioIo::new(upgraded);
        match containers.exec_start(&id, false).await {
            Ok(Some(stream)) => {
                let exited = stream.exited;
                match stream.stream.await {
                    Ok(Ok(shim)) => pipe(client, shim, exited).await,
                    _ => tracing::debug!("exec stream ended before it started"),
                }
            }
            Ok(None) => {}
            Err(e) => {
                let message = format!("{e}\r\n");
                let mut bytes = if tty { vec![] } else { berth_shim_protocol::frame_header(1, message.len()).to_vec() };
                bytes.extend_from_slice(message.as_bytes());
                let _ = client.write_all(&bytes).await;
                let _ = client.shutdown().await;
            }
        }
    });
    Ok(upgrade_response(tty))
}

async fn exec_resize(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let (h, w) = size_params(&Query::parse(raw.as_deref()))?;
    engine.containers.exec_resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

async fn exec_inspect(State(engine): AppState, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let v = engine.containers.exec_inspect(&id)?;
    let cmd = v.config.cmd.clone().unwrap_or_default();
    Ok(Json(json!({
        "ID": v.id,
        "Running": v.running,
        "ExitCode": v.exit_code,
        "ProcessConfig": {
            "tty": v.config.tty.unwrap_or(false),
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.get(1..).unwrap_or_default(),
            "privileged": v.config.privileged.unwrap_or(false),
            "user": v.config.user.clone().unwrap_or_default(),
        },
        "OpenStdin": v.config.attach_stdin.unwrap_or(false),
        "OpenStderr": v.config.attach_stderr.unwrap_or(false),
        "OpenStdout": v.config.attach_stdout.unwrap_or(false),
        "CanRemove": false,
        "ContainerID": v.container_id,
        "DetachKeys": v.config.detach_keys.clone().unwrap_or_default(),
        "Pid": v.pid,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_config_defaults_parse() {
        let v: Value = serde_json::from_str(HOST_CONFIG_DEFAULTS).unwrap();
        assert_eq!(v["ShmSize"], 67108864);
    }

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
