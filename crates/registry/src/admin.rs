//! The admin socket: a running registry listens on the unix socket `<root>/admin.sock`
//! (mode 0600: whoever may touch the storage root may use it) for requests that must run
//! inside the process owning the root. `berth-registry gc` uses it to sweep a running
//! registry under the same locks as its own background sweeps.
//!
//! `POST /gc?grace=<duration>&dry_run=<bool>` answers the sweep's [`Report`] as JSON.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use http::{header, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::{UnixListener, UnixStream};

use crate::config::parse_duration_or_zero;
use crate::error::{Error, Result};
use crate::gc::Report;
use crate::registry::Registry;

/// The socket's file name in the storage root.
pub const SOCKET: &str = "admin.sock";

/// Where the admin socket of the registry serving `root` is.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join(SOCKET)
}

#[derive(Deserialize)]
struct GcQuery {
    grace: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Clone)]
struct Admin {
    registry: Arc<Registry>,
    default_grace: Duration,
}

fn json(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn gc(State(admin): State<Admin>, Query(q): Query<GcQuery>) -> Response {
    let grace = match q.grace.as_deref().map(parse_duration_or_zero).transpose() {
        Ok(g) => g.unwrap_or(admin.default_grace),
        Err(e) => return json(StatusCode::BAD_REQUEST, serde_json::json!({ "error": e.to_string() }).to_string()),
    };
    match admin.registry.collect_garbage(grace, q.dry_run).await {
        Ok(report) => json(StatusCode::OK, serde_json::to_string(&report).unwrap_or_default()),
        Err(e) => json(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({ "error": e.to_string() }).to_string()),
    }
}

/// Binds the admin socket of the registry's root, replacing a stale one (the caller holds
/// the root's lock, so no other process serves it).
pub fn bind(root: &Path) -> Result<UnixListener> {
    let path = socket_path(root);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &path)(e)),
    }
    let listener = UnixListener::bind(&path).map_err(Error::io("listen on", &path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(Error::io("chmod", &path))?;
    Ok(listener)
}

/// Serves admin requests on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, registry: Arc<Registry>, default_grace: Duration) {
    let router = Router::new().route("/gc", post(gc)).with_state(Admin { registry, default_grace });
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!(error = %e, "admin socket stopped");
    }
}

/// Asks the registry serving `root` for a sweep. `Ok(None)` when no registry answers on
/// the socket (none is running).
pub async fn request_gc(root: &Path, grace: Duration, dry_run: bool) -> Result<Option<Report>> {
    let path = socket_path(root);
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => return Ok(None),
        Err(e) => return Err(Error::io("connect to", &path)(e)),
    };
    let failed = |what: &str, e: &dyn std::fmt::Display| Error::Internal(format!("admin socket {}: {what}: {e}", path.display()));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| failed("handshake", &e))?;
    tokio::spawn(connection);
    let request = http::Request::post(format!("/gc?grace={}ms&dry_run={dry_run}", grace.as_millis()))
        .header(header::HOST, "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| failed("request", &e))?;
    let response = sender.send_request(request).await.map_err(|e| failed("request", &e))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| failed("answer", &e))?.to_bytes();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(Error::Internal(format!("garbage collection failed: {message}")));
    }
    serde_json::from_slice(&body).map(Some).map_err(|e| failed("answer", &e))
}
