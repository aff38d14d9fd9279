//! A container's files over the API: `/containers/{id}/archive` (GET a tar of a path,
//! HEAD its stat, PUT a tar into a directory: `docker cp`), `/containers/{id}/export`,
//! `/containers/{id}/changes` (`docker diff`) and `/commit`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use berth_engine::containers::commit::CommitOptions;
use berth_engine::containers::files::{ExtractOptions, FileChange, PathStat, TarStream};
use berth_engine::Engine;
use bollard_stubs::models::ContainerConfig;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::params::Query;

type AppState = State<Arc<Engine>>;

/// The header that carries a path's stat, base64 JSON.
const PATH_STAT_HEADER: &str = "x-docker-container-path-stat";

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/containers/{id}/archive", get(archive).head(stat).put(extract))
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
        .route("/commit", post(commit))
}

fn path_param(query: &Query) -> ApiResult<String> {
    match query.get("path") {
        Some(path) if !path.is_empty() => Ok(path.to_string()),
        _ => Err(ApiError::bad_request("bad parameter: path cannot be empty")),
    }
}

fn stat_header(stat: &PathStat) -> ApiResult<HeaderValue> {
    let json = serde_json::to_vec(stat).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("encode path stat: {e}")))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&encoded).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("path stat header: {e}")))
}

fn tar_response(stream: TarStream, stat: Option<&PathStat>) -> ApiResult<Response> {
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(stream));
    let mut response = ([(header::CONTENT_TYPE, "application/x-tar")], body).into_response();
    if let Some(stat) = stat {
        response.headers_mut().insert(PATH_STAT_HEADER, stat_header(stat)?);
    }
    Ok(response)
}

/// `HEAD /containers/{id}/archive?path=`: the stat only.
async fn stat(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let path = path_param(&Query::parse(raw.as_deref()))?;
    let stat = engine.containers.stat_path(&id, &path).await?;
    let mut response = StatusCode::OK.into_response();
    response.headers_mut().insert(PATH_STAT_HEADER, stat_header(&stat)?);
    Ok(response)
}

/// `GET /containers/{id}/archive?path=`: a tar of the path, its stat in a header.
async fn archive(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let path = path_param(&Query::parse(raw.as_deref()))?;
    let (stat, stream) = engine.containers.archive_path(&id, &path).await?;
    tar_response(stream, Some(&stat))
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`: the tar in the
/// body is extracted into the directory `path`.
async fn extract(State(engine): AppState, Path(id): Path<String>, RawQuery(raw): RawQuery, body: Body) -> ApiResult<StatusCode> {
    let query = Query::parse(raw.as_deref());
    let path = path_param(&query)?;
    let options = ExtractOptions { no_overwrite_dir_non_dir: query.flag("noOverwriteDirNonDir"), copy_uid_gid: query.flag("copyUIDGID") };
    let (reader, rest) = body_reader(body);
    let extracted = engine.containers.extract_archive(&id, &path, options, reader).await;
    // Refused (or done) before the whole body was read: take the rest, so the client
    // reads the answer instead of failing to send (a broken pipe).
    let _ = rest.await;
    extracted?;
    Ok(StatusCode::OK)
}

/// A request body as a blocking reader, for engine work on a blocking thread; the task
/// returned reads (and drops) whatever the reader leaves.
fn body_reader(body: Body) -> (impl std::io::Read + Send + 'static, tokio::task::JoinHandle<()>) {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let rest = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut forwarding = true;
        while let Some(chunk) = stream.next().await {
            if forwarding && tx.send(chunk.map_err(std::io::Error::other)).await.is_err() {
                forwarding = false;
            }
        }
    });
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(tokio_stream::wrappers::ReceiverStream::new(rx)));
    (reader, rest)
}

/// `GET /containers/{id}/export`: the whole filesystem as a tar.
async fn export(State(engine): AppState, Path(id): Path<String>) -> ApiResult<Response> {
    let stream = engine.containers.export(&id).await?;
    tar_response(stream, None)
}

/// `GET /containers/{id}/changes`.
async fn changes(State(engine): AppState, Path(id): Path<String>) -> ApiResult<Json<Vec<FileChange>>> {
    Ok(Json(engine.containers.changes(&id).await?))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`, with an optional
/// container config in the body.
async fn commit(State(engine): AppState, RawQuery(raw): RawQuery, body: axum::body::Bytes) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref());
    let container = query.get("container").unwrap_or("").to_string();
    if container.is_empty() {
        return Err(ApiError::bad_request("bad parameter: container cannot be empty"));
    }
    let config: Option<ContainerConfig> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?
    };
    // docker pauses unless told not to.
    let pause = query.get("pause").is_none_or(str::is_empty) || query.flag("pause");
    let text = |key: &str| query.get(key).unwrap_or("").to_string();
    let options = CommitOptions {
        repo: text("repo"),
        tag: text("tag"),
        comment: text("comment"),
        author: text("author"),
        pause,
        changes: query.all("changes"),
        config,
    };
    let id = engine.containers.commit(&container, options).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}
