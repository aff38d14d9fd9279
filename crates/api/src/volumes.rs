//! `/volumes/*`: create, list, inspect, remove, prune.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::volumes::Volume;
use berth_engine::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::params::Query;

type AppState = State<Arc<Engine>>;

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

fn view(engine: &Engine, v: &Volume, usage: bool) -> Value {
    let mut out = json!({
        "CreatedAt": berth_engine::containers::format_time(v.created / 1_000_000_000 * 1_000_000_000),
        "Driver": v.driver,
        "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
        "Mountpoint": engine.volumes.data_path(&v.name),
        "Name": v.name,
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
        "Scope": "local",
    });
    if usage {
        out["UsageData"] = json!({ "Size": engine.volumes.size(&v.name), "RefCount": engine.containers.volume_users(&v.name).len() });
    }
    out
}

#[derive(Deserialize, Default)]
struct CreateBody {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Driver", default)]
    driver: Option<String>,
    #[serde(rename = "DriverOpts", default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

async fn create(State(engine): AppState, body: axum::body::Bytes) -> ApiResult<Response> {
    let body: CreateBody = if body.is_empty() { CreateBody::default() } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid volume config: {e}")))?
    };
    let v = engine.volumes.create(body.name.as_deref(), body.driver.as_deref(), body.driver_opts.unwrap_or_default(), body.labels.unwrap_or_default(), false)?;
    Ok((StatusCode::CREATED, Json(view(&engine, &v, false))).into_response())
}

fn label_match(v: &Volume, spec: &str) -> bool {
    match spec.split_once('=') {
        Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
        None => v.labels.contains_key(spec),
    }
}

fn matches(engine: &Engine, v: &Volume, filters: &berth_engine::Filters) -> ApiResult<bool> {
    for (key, values) in filters {
        let ok = match key.as_str() {
            "name" => values.iter().any(|n| v.name.contains(n.as_str())),
            "driver" => values.iter().any(|d| *d == v.driver),
            "label" => values.iter().all(|l| label_match(v, l)),
            "label!" => values.iter().all(|l| !label_match(v, l)),
            "dangling" => {
                let unused = engine.containers.volume_users(&v.name).is_empty();
                values.iter().any(|d| match d.as_str() {
                    "true" | "1" => unused,
                    "false" | "0" => !unused,
                    _ => false,
                })
            }
            "all" => true,
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list(State(engine): AppState, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let filters = Query::parse(raw.as_deref()).filters()?;
    let mut out = vec![];
    for v in engine.volumes.list()? {
        if matches(&engine, &v, &filters)? {
            out.push(view(&engine, &v, false));
        }
    }
    Ok(Json(json!({ "Volumes": out, "Warnings": null })))
}

async fn inspect(State(engine): AppState, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let v = engine.volumes.get(&name)?;
    Ok(Json(view(&engine, &v, false)))
}

async fn remove(State(engine): AppState, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<StatusCode> {
    let force = Query::parse(raw.as_deref()).flag("force");
    let users = engine.containers.volume_users(&name);
    match engine.volumes.remove(&name, &users) {
        Err(e) if force && e.kind() == berth_engine::ErrorKind::NotFound => Ok(StatusCode::NO_CONTENT),
        other => other.map(|()| StatusCode::NO_CONTENT).map_err(Into::into),
    }
}

/// Unused volumes: anonymous ones only, unless the `all` filter is set (API 1.42+).
async fn prune(State(engine): AppState, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let filters = Query::parse(raw.as_deref()).filters()?;
    let all = filters.get("all").is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    let mut deleted = vec![];
    let mut reclaimed = 0u64;
    for v in engine.volumes.list()? {
        if (!all && !v.anonymous) || !engine.containers.volume_users(&v.name).is_empty() || !matches(&engine, &v, &filters)? {
            continue;
        }
        let size = engine.volumes.size(&v.name);
        if engine.volumes.remove(&v.name, &[]).is_ok() {
            deleted.push(v.name.clone());
            reclaimed += size;
        }
    }
    engine.events.publish("volume", "prune", "", [("reclaimed".to_string(), reclaimed.to_string())].into());
    Ok(Json(json!({ "VolumesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed })))
}
