//! `/images/*`: list, inspect, history, pull, push, tag, delete, prune, save, load, import,
//! search. Image names may contain slashes, so per-image routes are matched by suffix.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::images::{Deleted, HistoryEntry, ImageView};
use berth_engine::Engine;
use bollard_stubs::models;

use crate::error::{ApiError, ApiResult};
use crate::params::{registry_auth, Query};
use crate::stream;

type AppState = State<Arc<Engine>>;

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/search", get(search))
        .route("/images/{*rest}", get(per_image_get).post(per_image_post).delete(remove))
}

pub fn summary(view: &ImageView, shared: bool) -> models::ImageSummary {
    models::ImageSummary {
        id: view.record.id.clone(),
        parent_id: String::new(),
        repo_tags: view.repo_tags.clone(),
        repo_digests: view.repo_digests.clone(),
        created: view.parsed.created_unix(),
        size: view.record.size as i64,
        shared_size: if shared { view.shared_size as i64 } else { -1 },
        virtual_size: Some(view.record.size as i64),
        labels: view.parsed.labels().into_iter().collect(),
        containers: if shared { 0 } else { -1 },
        manifests: None,
    }
}

async fn list(
    State(engine): AppState,
    axum::Extension(version): axum::Extension<crate::version::RequestVersion>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<models::ImageSummary>>> {
    let query = Query::parse(raw.as_deref());
    let mut filters = query.filters()?;
    // The pre-1.25 `filter` parameter is a reference pattern.
    if let Some(pattern) = query.get("filter").filter(|p| !p.is_empty()) {
        filters.entry("reference".into()).or_default().push(pattern.to_string());
    }
    let shared = query.flag("shared-size");
    let views = engine.images.list(query.flag("all"), &filters)?;
    let mut list: Vec<models::ImageSummary> = views.iter().map(|v| summary(v, shared)).collect();
    // API 1.44 dropped VirtualSize.
    if version.0 >= (1, 44) {
        list.iter_mut().for_each(|s| s.virtual_size = None);
    }
    Ok(Json(list))
}

async fn per_image_get(State(engine): AppState, Path(rest): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let query = Query::parse(raw.as_deref());
    let result = if rest == "get" {
        save(engine, query.all("names")).await
    } else if let Some(name) = rest.strip_suffix("/json") {
        inspect(&engine, name).map(IntoResponse::into_response)
    } else if let Some(name) = rest.strip_suffix("/history") {
        history(&engine, name).map(IntoResponse::into_response)
    } else if let Some(name) = rest.strip_suffix("/get") {
        save(engine, vec![name.to_string()]).await
    } else {
        Err(ApiError::not_found(format!("page not found: /images/{rest}")))
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn per_image_post(
    State(engine): AppState,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let query = Query::parse(raw.as_deref());
    let result = if rest == "load" {
        load(engine, query.flag("quiet"), body).await
    } else if let Some(name) = rest.strip_suffix("/tag") {
        tag(&engine, name, &query)
    } else if let Some(name) = rest.strip_suffix("/push") {
        push(engine, name, &query, &headers).await
    } else {
        Err(ApiError::not_found(format!("page not found: /images/{rest}")))
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn inspect(engine: &Engine, name: &str) -> ApiResult<Json<serde_json::Value>> {
    let view = engine.images.inspect(name)?;
    Ok(Json(inspect_json(&view)))
}

/// docker's image inspect JSON: the stored config's fields plus names, sizes and layers.
pub fn inspect_json(view: &ImageView) -> serde_json::Value {
    let config = &view.config;
    let field = |k: &str| config.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let text = |k: &str| config.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let dirs: Vec<String> = view.layer_dirs.iter().rev().map(|p| p.display().to_string()).collect();
    let mut out = serde_json::json!({
        "Id": view.record.id,
        "RepoTags": view.repo_tags,
        "RepoDigests": view.repo_digests,
        "Parent": "",
        "Comment": text("comment"),
        "Created": text("created"),
        "DockerVersion": text("docker_version"),
        "Author": text("author"),
        "Config": field("config"),
        "Architecture": text("architecture"),
        "Os": text("os"),
        "Size": view.record.size,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": { "LowerDir": dirs.join(":") },
        },
        "RootFS": {
            "Type": "layers",
            "Layers": view.parsed.rootfs.diff_ids,
        },
        "Metadata": {
            "LastTagTime": view.record.last_tag_time.map(rfc3339_nanos).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string()),
        },
    });
    if let Some(map) = out.as_object_mut() {
        for (key, name) in [("variant", "Variant"), ("os.version", "OsVersion")] {
            if let Some(v) = config.get(key) {
                map.insert(name.to_string(), v.clone());
            }
        }
        if config.get("container_config").is_some() {
            map.insert("ContainerConfig".into(), field("container_config"));
            map.insert("Container".into(), serde_json::Value::String(text("container")));
        }
        map.insert("VirtualSize".into(), serde_json::json!(view.record.size));
    }
    out
}

pub fn rfc3339_nanos(nanos: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn history(engine: &Engine, name: &str) -> ApiResult<Json<Vec<models::HistoryResponseItem>>> {
    let entries = engine.images.history(name)?;
    Ok(Json(entries.into_iter().map(history_item).collect()))
}

fn history_item(e: HistoryEntry) -> models::HistoryResponseItem {
    models::HistoryResponseItem { id: e.id, created: e.created, created_by: e.created_by, tags: e.tags, size: e.size as i64, comment: e.comment }
}

fn tag(engine: &Engine, name: &str, query: &Query) -> ApiResult<Response> {
    let repo = query.get("repo").unwrap_or("");
    if repo.is_empty() {
        return Err(ApiError::bad_request("repository name (repo) is required"));
    }
    let target = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_string(),
    };
    engine.images.tag(name, &target)?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove(State(engine): AppState, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Json<Vec<models::ImageDeleteResponseItem>>> {
    let query = Query::parse(raw.as_deref());
    let deleted = engine.images.remove(&name, query.flag("force"), !query.flag("noprune"))?;
    Ok(Json(deleted.into_iter().map(delete_item).collect()))
}

fn delete_item(d: Deleted) -> models::ImageDeleteResponseItem {
    match d {
        Deleted::Untagged(n) => models::ImageDeleteResponseItem { untagged: Some(n), deleted: None },
        Deleted::Deleted(n) => models::ImageDeleteResponseItem { untagged: None, deleted: Some(n) },
    }
}

async fn prune(State(engine): AppState, RawQuery(raw): RawQuery) -> ApiResult<Json<models::ImagePruneResponse>> {
    let query = Query::parse(raw.as_deref());
    let filters = query.filters()?;
    let (deleted, reclaimed) = engine.images.prune(false, &filters)?;
    Ok(Json(models::ImagePruneResponse {
        images_deleted: Some(deleted.into_iter().map(delete_item).collect()),
        space_reclaimed: Some(reclaimed as i64),
    }))
}

/// `POST /images/create`: pull (`fromImage`) or import (`fromSrc`).
async fn create(State(engine): AppState, RawQuery(raw): RawQuery, headers: HeaderMap, body: Body) -> Response {
    let query = Query::parse(raw.as_deref());
    let auth = match registry_auth(&headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let platform = query.get("platform").unwrap_or("").to_string();
    let tag = query.get("tag").unwrap_or("").to_string();
    if let Some(image) = query.get("fromImage").filter(|s| !s.is_empty()) {
        // An empty tag on a name without one pulls every tag, as the API documents.
        let has_tag = image.rsplit('/').next().is_some_and(|last| last.contains(':') || last.contains('@'));
        let all_tags = tag.is_empty() && !has_tag;
        let reference = if tag.is_empty() {
            image.to_string()
        } else if tag.contains(':') {
            format!("{image}@{tag}")
        } else {
            format!("{image}:{tag}")
        };
        return stream::progress(move |progress| async move {
            engine.images.pull(&reference, Some(&platform), all_tags, auth, &progress).await
        })
        .await;
    }
    if let Some(source) = query.get("fromSrc").filter(|s| !s.is_empty()) {
        return import(engine, source, &query, body).await.unwrap_or_else(IntoResponse::into_response);
    }
    ApiError::bad_request("fromImage or fromSrc is required").into_response()
}

async fn search(State(engine): AppState, RawQuery(raw): RawQuery, headers: HeaderMap) -> ApiResult<Json<Vec<models::ImageSearchResponseItem>>> {
    let query = Query::parse(raw.as_deref());
    let term = query.get("term").unwrap_or("");
    if term.is_empty() {
        return Err(ApiError::bad_request("search term is required"));
    }
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => l.parse::<u32>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 25,
    };
    let filters = query.filters()?;
    for key in filters.keys() {
        if !matches!(key.as_str(), "stars" | "is-official" | "is-automated") {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    let auth = registry_auth(&headers)?;
    let results = engine.images.search(term, limit, auth.as_ref()).await?;
    let min_stars: u64 = filters.get("stars").and_then(|v| v.first()).and_then(|s| s.parse().ok()).unwrap_or(0);
    let want = |key: &str| filters.get(key).and_then(|v| v.first()).map(|v| v == "true" || v == "1");
    Ok(Json(
        results
            .into_iter()
            .filter(|r| r.star_count >= min_stars)
            .filter(|r| want("is-official").is_none_or(|w| w == r.is_official))
            .filter(|r| want("is-automated").is_none_or(|w| w == r.is_automated))
            .map(|r| models::ImageSearchResponseItem {
                description: Some(r.description),
                is_official: Some(r.is_official),
                is_automated: Some(r.is_automated),
                name: Some(r.name),
                star_count: Some(r.star_count as i64),
            })
            .collect(),
    ))
}

/// A request body as a blocking reader, for engine work that runs on a blocking thread.
fn body_reader(body: Body) -> impl std::io::Read + Send + 'static {
    use futures_util::TryStreamExt;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

/// `GET /images/get` and `/images/{name}/get`: the archive streams as it is written.
async fn save(engine: Arc<Engine>, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given to save"));
    }
    let chunks = engine.images.save_stream(&names).await?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(chunks);
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-tar")], Body::from_stream(stream)).into_response())
}

/// `POST /images/load`: the archive is read as it arrives; the result lines are docker's.
async fn load(engine: Arc<Engine>, quiet: bool, body: Body) -> ApiResult<Response> {
    let input = body_reader(body);
    Ok(stream::progress(move |progress| async move {
        let lines = engine.images.load(input, quiet, &progress).await?;
        for line in lines {
            progress.send(berth_engine::ProgressMessage { stream: Some(format!("{line}\n")), ..Default::default() });
        }
        Ok(())
    })
    .await)
}

/// `POST /images/create?fromSrc=-`: a root filesystem tarball in the body becomes an image.
async fn import(engine: Arc<Engine>, source: &str, query: &Query, body: Body) -> ApiResult<Response> {
    if source != "-" {
        return Err(ApiError::bad_request(format!("importing from {source:?} is not supported: send the tarball in the request body (fromSrc=-)")));
    }
    let repo = query.get("repo").unwrap_or("").to_string();
    let tag = query.get("tag").unwrap_or("").to_string();
    let repo_tag = match (repo.is_empty(), tag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(repo),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let changes = query.all("changes");
    let message = query.get("message").map(str::to_string);
    let platform = query.get("platform").map(str::to_string);
    let input = body_reader(body);
    Ok(stream::progress(move |progress| async move {
        let id = engine.images.import(input, repo_tag.as_deref(), &changes, message.as_deref(), platform.as_deref()).await?;
        progress.status(None, id);
        Ok(())
    })
    .await)
}

/// `POST /images/{name}/push`: progress as docker streams it; credentials from X-Registry-Auth.
async fn push(engine: Arc<Engine>, name: &str, query: &Query, headers: &HeaderMap) -> ApiResult<Response> {
    let auth = registry_auth(headers)?;
    let name = name.to_string();
    let tag = query.get("tag").filter(|t| !t.is_empty()).map(str::to_string);
    Ok(stream::progress(move |progress| async move { engine.images.push(&name, tag.as_deref(), auth, &progress).await }).await)
}
