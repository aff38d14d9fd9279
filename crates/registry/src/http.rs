//! The HTTP edge: parses `/v2/...` requests into registry operations and turns results
//! and errors into distribution-spec responses.
//!
//! Repository names contain slashes, so paths are routed here rather than by a router
//! pattern: the path is split at the last `/blobs/`, `/manifests/`, `/tags/list` or
//! `/referrers/`, and the name before it is validated before anything else happens.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use berth_store::Digest;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use crate::blobmap::BlobWindows;
use crate::error::{Error, Result};
use crate::hooks::{Action, Object, Origin, RequestFacts, Scope};
use crate::manifest::{MAX_MANIFEST_SIZE, OCI_INDEX};
use crate::mirror::{BlobSource, Upstream};
use crate::names::{parse_digest, Reference, RepoName};
use crate::registry::Registry;
use crate::uploads::drain;

/// The client's address, put into each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The router serving the distribution API for `registry`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().fallback(dispatch).with_state(registry)
}

/// A parsed request path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Base,
    Catalog,
    Blob(RepoName, String),
    Uploads(RepoName),
    Upload(RepoName, String),
    Manifest(RepoName, String),
    Tags(RepoName),
    Referrers(RepoName, String),
}

fn parse_route(method: &Method, path: &str) -> Result<Route> {
    let unknown = || Error::UnknownEndpoint { method: method.to_string(), path: path.to_string() };
    let rest = path.strip_prefix("/v2").ok_or_else(unknown)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or_else(unknown)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let (pos, marker) = ["/blobs/", "/manifests/", "/tags/list", "/referrers/"]
        .iter()
        .filter_map(|m| rest.rfind(m).map(|p| (p, *m)))
        .max()
        .ok_or_else(unknown)?;
    let name = RepoName::parse(&rest[..pos])?;
    let tail = &rest[pos + marker.len()..];
    Ok(match marker {
        "/blobs/" => match tail {
            "uploads" | "uploads/" => Route::Uploads(name),
            _ => match tail.strip_prefix("uploads/") {
                Some(id) => Route::Upload(name, id.to_string()),
                None => Route::Blob(name, tail.to_string()),
            },
        },
        "/manifests/" => Route::Manifest(name, tail.to_string()),
        "/tags/list" if tail.is_empty() || tail == "/" => Route::Tags(name),
        "/referrers/" => Route::Referrers(name, tail.to_string()),
        _ => return Err(unknown()),
    })
}

/// Query parameters in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

async fn dispatch(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    let mut response = match handle(&registry, &parts, &mut body).await {
        Ok(r) => r,
        Err(e) => {
            // Refused before the body was looked at: read it, so the client sees the error.
            if let Some(body) = body.take() {
                drain(body).await;
            }
            error_response(&parts.method, &e)
        }
    };
    response
        .headers_mut()
        .insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    response
}

/// The JSON error body of the spec.
pub(crate) fn error_response(method: &Method, e: &Error) -> Response {
    let status = e.status();
    if status.is_server_error() {
        tracing::error!(error = %e, "request failed");
    } else {
        tracing::debug!(error = %e, "request refused");
    }
    let mut error = json!({ "code": e.code().as_str(), "message": e.to_string() });
    let detail = e.detail();
    if !detail.is_null() {
        error["detail"] = detail;
    }
    let body = json!({ "errors": [error] }).to_string();
    let len = body.len();
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len);
    match e {
        Error::Unauthorized { challenge, .. } => builder = builder.header(header::WWW_AUTHENTICATE, challenge),
        Error::RangeNotSatisfiable { size, .. } => builder = builder.header(header::CONTENT_RANGE, format!("bytes */{size}")),
        _ => {}
    }
    let body = if method == Method::HEAD { Body::empty() } else { Body::from(body) };
    builder.body(body).unwrap_or_else(|_| Response::new(Body::empty()))
}

fn respond(status: StatusCode, headers: Vec<(header::HeaderName, String)>, body: Body) -> Result<Response> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(body).map_err(|e| Error::Internal(format!("building response: {e}")))
}

fn empty(status: StatusCode, mut headers: Vec<(header::HeaderName, String)>) -> Result<Response> {
    headers.push((header::CONTENT_LENGTH, "0".into()));
    respond(status, headers, Body::empty())
}

fn name_header(name: &'static str) -> header::HeaderName {
    header::HeaderName::from_static(name)
}

/// Takes the request body for an operation that consumes it.
fn take(body: &mut Option<Body>) -> Body {
    body.take().unwrap_or_default()
}

async fn handle(registry: &Registry, parts: &http::request::Parts, body: &mut Option<Body>) -> Result<Response> {
    let raw_path = parts.uri.path();
    let path = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| Error::UnknownEndpoint { method: parts.method.to_string(), path: raw_path.to_string() })?;
    let query = Query::parse(parts.uri.query());
    // A mirrored namespace is named by the path, by `?ns=` or by default (see `mirror`).
    let path = registry.mirrors().route(&path, query.get("ns"));
    let route = parse_route(&parts.method, &path)?;
    let method = &parts.method;
    let not_allowed = || Err(Error::MethodNotAllowed { method: method.to_string(), path: path.to_string() });
    let authorize = |name: &RepoName, actions: &[Action]| -> Result<Origin> {
        let actor = registry.access().authorize(parts, Scope::Repository { name: name.as_str(), actions })?;
        Ok(origin(parts, actor))
    };
    match route {
        Route::Base => {
            if *method != Method::GET && *method != Method::HEAD {
                return not_allowed();
            }
            registry.access().authorize(parts, Scope::Base)?;
            respond(StatusCode::OK, vec![(header::CONTENT_TYPE, "application/json".into()), (header::CONTENT_LENGTH, "2".into())], body_unless_head(method, Bytes::from_static(b"{}")))
        }
        Route::Catalog => {
            if *method != Method::GET {
                return not_allowed();
            }
            registry.access().authorize(parts, Scope::Catalog)?;
            let all = registry.access().pullable(parts, registry.repositories().await?);
            let (page, next) = paginate(all, &query)?;
            let link = next.map(|(n, last)| format!("</v2/_catalog?n={n}&last={}>; rel=\"next\"", encode_query(&last)));
            json_response(json!({ "repositories": page }), link)
        }
        Route::Blob(name, digest) => {
            let digest = parse_digest(&digest)?;
            match *method {
                Method::GET | Method::HEAD => {
                    let origin = authorize(&name, &[Action::Pull])?;
                    match registry.mirror_for(&name) {
                        Some(upstream) => get_mirrored_blob(registry, upstream, parts, &name, &digest, &origin).await,
                        None => get_blob(registry, parts, &name, &digest, &origin).await,
                    }
                }
                Method::DELETE => {
                    let origin = authorize(&name, &[Action::Delete])?;
                    writable(registry, &name, "deleting a blob")?;
                    registry.delete_blob(&name, &digest, &origin).await?;
                    empty(StatusCode::ACCEPTED, vec![(name_header("docker-content-digest"), digest.to_string())])
                }
                _ => not_allowed(),
            }
        }
        Route::Uploads(name) => {
            if *method != Method::POST {
                return not_allowed();
            }
            let origin = authorize(&name, &[Action::Push])?;
            writable(registry, &name, "pushing")?;
            start_upload(registry, parts, &name, &query, body, &origin).await
        }
        Route::Upload(name, id) => {
            let origin = authorize(&name, &[Action::Push])?;
            writable(registry, &name, "pushing")?;
            match *method {
                Method::GET => {
                    let offset = registry.upload_offset(&name, &id).await?;
                    upload_response(StatusCode::NO_CONTENT, &name, &id, offset)
                }
                Method::PATCH => {
                    let range = content_range(&parts.headers, &id)?;
                    let offset = registry.append_upload(&name, &id, range, take(body)).await?;
                    upload_response(StatusCode::ACCEPTED, &name, &id, offset)
                }
                Method::PUT => {
                    let digest = required_digest(&query)?;
                    let range = content_range(&parts.headers, &id)?;
                    registry.complete_upload(&name, &id, range, take(body), &digest, &origin).await?;
                    blob_created(&name, &digest)
                }
                Method::DELETE => {
                    registry.cancel_upload(&name, &id).await?;
                    empty(StatusCode::NO_CONTENT, vec![])
                }
                _ => not_allowed(),
            }
        }
        Route::Manifest(name, reference) => {
            let reference = Reference::parse(&reference)?;
            match *method {
                Method::GET | Method::HEAD => {
                    let origin = authorize(&name, &[Action::Pull])?;
                    let m = match registry.mirror_for(&name) {
                        Some(upstream) => registry.mirrored_manifest(upstream, &name, &reference).await?,
                        None => registry.manifest(&name, &reference).await?,
                    };
                    if *method == Method::GET {
                        let tag = match &reference {
                            Reference::Tag(t) => Some(t.clone()),
                            Reference::Digest(_) => None,
                        };
                        registry.emit(&origin, Action::Pull, Object::Manifest, &name, &m.digest, &m.media_type, m.body.len() as u64, tag);
                    }
                    respond(
                        StatusCode::OK,
                        vec![
                            (header::CONTENT_TYPE, m.media_type.clone()),
                            (header::CONTENT_LENGTH, m.body.len().to_string()),
                            (name_header("docker-content-digest"), m.digest.to_string()),
                            (header::ETAG, format!("\"{}\"", m.digest)),
                        ],
                        body_unless_head(method, m.body.clone()),
                    )
                }
                Method::PUT => {
                    let origin = authorize(&name, &[Action::Push])?;
                    writable(registry, &name, "pushing")?;
                    put_manifest(registry, parts, &name, &reference, &query, take(body), &origin).await
                }
                Method::DELETE => {
                    let origin = authorize(&name, &[Action::Delete])?;
                    writable(registry, &name, "deleting a manifest")?;
                    registry.delete_manifest(&name, &reference, &origin).await?;
                    empty(StatusCode::ACCEPTED, vec![])
                }
                _ => not_allowed(),
            }
        }
        Route::Tags(name) => {
            if *method != Method::GET {
                return not_allowed();
            }
            authorize(&name, &[Action::Pull])?;
            let all = match registry.mirror_for(&name) {
                // The upstream's list, or what is stored when it cannot be asked.
                Some(upstream) => match upstream.tags(&name).await {
                    Ok(tags) => tags,
                    Err(e) if e.kind() == crate::error::ErrorKind::Unavailable => {
                        tracing::warn!(repository = %name, error = %e, "upstream unreachable, listing the cached tags");
                        registry.tags(&name).await?
                    }
                    Err(e) => return Err(e),
                },
                None => registry.tags(&name).await?,
            };
            let (page, next) = paginate(all, &query)?;
            let link = next.map(|(n, last)| format!("</v2/{name}/tags/list?n={n}&last={}>; rel=\"next\"", encode_query(&last)));
            json_response(json!({ "name": name.as_str(), "tags": page }), link)
        }
        Route::Referrers(name, digest) => {
            if *method != Method::GET {
                return not_allowed();
            }
            let digest = parse_digest(&digest)?;
            authorize(&name, &[Action::Pull])?;
            let artifact_type = query.get("artifactType").filter(|t| !t.is_empty());
            let manifests = registry.referrers(&name, &digest, artifact_type).await?;
            let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }).to_string();
            let mut headers = vec![(header::CONTENT_TYPE, OCI_INDEX.to_string()), (header::CONTENT_LENGTH, body.len().to_string())];
            if artifact_type.is_some() {
                headers.push((name_header("oci-filters-applied"), "artifactType".into()));
            }
            respond(StatusCode::OK, headers, Body::from(body))
        }
    }
}

/// Refuses writes to a mirrored namespace that is not also local.
fn writable(registry: &Registry, name: &RepoName, operation: &'static str) -> Result<()> {
    match registry.mirror_for(name) {
        Some(upstream) => upstream.check_writable(name, operation),
        None => Ok(()),
    }
}

/// The facts about a request that events report, with the user access control found.
fn origin(parts: &http::request::Parts, actor: Option<String>) -> Origin {
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Origin {
        actor,
        request: RequestFacts {
            addr: parts.extensions.get::<PeerAddr>().map(|p| p.0.to_string()).unwrap_or_default(),
            host: header(header::HOST),
            method: parts.method.to_string(),
            user_agent: header(header::USER_AGENT),
        },
    }
}

fn body_unless_head(method: &Method, body: Bytes) -> Body {
    if *method == Method::HEAD { Body::empty() } else { Body::from(body) }
}

fn encode_query(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn json_response(value: serde_json::Value, link: Option<String>) -> Result<Response> {
    let body = value.to_string();
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string()), (header::CONTENT_LENGTH, body.len().to_string())];
    if let Some(link) = link {
        headers.push((header::LINK, link));
    }
    respond(StatusCode::OK, headers, Body::from(body))
}

/// One page of a sorted list and, when more follow, the `n` and `last` of the next page.
type Page = (Vec<String>, Option<(usize, String)>);

/// Applies `n` and `last` to a sorted list.
fn paginate(all: Vec<String>, query: &Query) -> Result<Page> {
    let n = match query.get("n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| Error::QueryInvalid {
            name: "n",
            value: v.to_string(),
            reason: "not a non-negative integer",
        })?),
    };
    let start = match query.get("last") {
        Some(last) if !last.is_empty() => all.partition_point(|x| x.as_str() <= last),
        _ => 0,
    };
    let mut rest: Vec<String> = all.into_iter().skip(start).collect();
    let Some(n) = n else { return Ok((rest, None)) };
    if rest.len() <= n {
        return Ok((rest, None));
    }
    rest.truncate(n);
    let next = rest.last().map(|last| (n, last.clone()));
    Ok((rest, next))
}

fn required_digest(query: &Query) -> Result<Digest> {
    match query.get("digest") {
        Some(d) => parse_digest(d),
        None => Err(Error::DigestMalformed { digest: String::new(), reason: "the digest query parameter is missing".into() }),
    }
}

/// Parses `Content-Range: <start>-<end>` (inclusive; `bytes ` or `bytes=` prefixes and a
/// `/total` suffix are tolerated).
fn content_range(headers: &HeaderMap, id: &str) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let invalid = || Error::UploadInvalid { uuid: id.to_string(), reason: format!("malformed Content-Range {value:?}") };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text.strip_prefix("bytes").map(|t| t.trim_start_matches([' ', '='])).unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let start = start.trim().parse::<u64>().map_err(|_| invalid())?;
    let end = end.trim().parse::<u64>().map_err(|_| invalid())?;
    Ok(Some((start, end)))
}

fn upload_location(name: &RepoName, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn upload_response(status: StatusCode, name: &RepoName, id: &str, offset: u64) -> Result<Response> {
    // As the reference registry does: an empty upload reports "0-0".
    let end = offset.saturating_sub(1);
    empty(
        status,
        vec![
            (header::LOCATION, upload_location(name, id)),
            (header::RANGE, format!("0-{end}")),
            (name_header("docker-upload-uuid"), id.to_string()),
        ],
    )
}

fn blob_created(name: &RepoName, digest: &Digest) -> Result<Response> {
    empty(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (name_header("docker-content-digest"), digest.to_string()),
        ],
    )
}

async fn start_upload(registry: &Registry, parts: &http::request::Parts, name: &RepoName, query: &Query, body: &mut Option<Body>, origin: &Origin) -> Result<Response> {
    if let Some(mount) = query.get("mount") {
        let digest = parse_digest(mount)?;
        let from = match query.get("from").filter(|f| !f.is_empty()) {
            // A source the caller may not pull is treated like one without the blob.
            Some(f) => Some(RepoName::parse(f)?).filter(|from| {
                registry.access().authorize(parts, Scope::Repository { name: from.as_str(), actions: &[Action::Pull] }).is_ok()
            }),
            // By digest alone: from any repository the caller may pull that has the blob.
            None => {
                let holders = registry.access().pullable(parts, registry.repositories_with_blob(&digest).await?);
                holders.first().and_then(|h| RepoName::parse(h).ok())
            }
        };
        if let Some(from) = from {
            if registry.mount_blob(name, &digest, &from, origin).await? {
                return blob_created(name, &digest);
            }
        }
        // Not mountable: an ordinary upload session, as the spec asks.
        let id = registry.start_upload(name, digest.algorithm()).await?;
        return upload_response(StatusCode::ACCEPTED, name, &id, 0);
    }
    if let Some(digest) = query.get("digest") {
        let digest = parse_digest(digest)?;
        registry.upload_whole(name, take(body), &digest, origin).await?;
        return blob_created(name, &digest);
    }
    let algorithm = query.get("digest-algorithm").unwrap_or("sha256");
    let id = registry.start_upload(name, algorithm).await?;
    upload_response(StatusCode::ACCEPTED, name, &id, 0)
}

/// Parses `Range: bytes=a-b | a- | -n` into the first and last byte; `None` for absent or
/// unusable headers (served whole, as HTTP allows), an error when no byte of the blob is
/// in range.
fn blob_range(range: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(value) = range.and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || Error::RangeNotSatisfiable { range: value.to_string(), size };
    let (start, end) = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        (Ok(start), Err(_)) if b.is_empty() => (start, size.saturating_sub(1)),
        (Err(_), Ok(suffix)) if a.is_empty() => {
            if suffix == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        _ => return Ok(None),
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

async fn get_blob(registry: &Registry, parts: &http::request::Parts, name: &RepoName, digest: &Digest, origin: &Origin) -> Result<Response> {
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (name_header("docker-content-digest"), digest.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
        (header::ACCEPT_RANGES, "bytes".into()),
        (header::CACHE_CONTROL, "max-age=31536000".into()),
    ];
    if parts.method == Method::HEAD {
        let size = registry.blob_size(name, digest).await?;
        headers.push((header::CONTENT_LENGTH, size.to_string()));
        return respond(StatusCode::OK, headers, Body::empty());
    }
    // Opened, range checked and the first window mapped in one trip to the blocking pool.
    let range = parts.headers.get(header::RANGE).cloned();
    let path = registry.storage().blob_path(digest);
    let (size, span, windows) = registry
        .open_blob(name, digest, move |file, size| {
            let span = blob_range(range.as_ref(), size)?;
            let (start, end) = span.map_or((0, size), |(start, last)| (start, last + 1));
            let windows = BlobWindows::open(file, start, end).map_err(Error::io("mmap", path))?;
            Ok((size, span, windows))
        })
        .await?;
    registry.emit(origin, Action::Pull, Object::Blob, name, digest, "application/octet-stream", size, None);
    match span {
        None => {
            headers.push((header::CONTENT_LENGTH, size.to_string()));
            respond(StatusCode::OK, headers, windows.into_body())
        }
        Some((start, end)) => {
            headers.push((header::CONTENT_LENGTH, (end - start + 1).to_string()));
            headers.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            respond(StatusCode::PARTIAL_CONTENT, headers, windows.into_body())
        }
    }
}

/// A blob of a mirrored repository: served from storage once there, else streamed while
/// it arrives from the upstream (whole: Range applies to stored blobs).
async fn get_mirrored_blob(registry: &Registry, upstream: &Arc<Upstream>, parts: &http::request::Parts, name: &RepoName, digest: &Digest, origin: &Origin) -> Result<Response> {
    if parts.method == Method::HEAD {
        if registry.blob_size(name, digest).await.is_ok() {
            return get_blob(registry, parts, name, digest, origin).await;
        }
        let size = upstream
            .blob_size(name, digest)
            .await?
            .ok_or_else(|| Error::BlobUnknown { repository: name.to_string(), digest: digest.to_string() })?;
        return respond(StatusCode::OK, blob_headers(digest, Some(size)), Body::empty());
    }
    match registry.mirrored_blob(upstream, name, digest).await? {
        BlobSource::Stored => get_blob(registry, parts, name, digest, origin).await,
        BlobSource::Streaming { size, body } => {
            registry.emit(origin, Action::Pull, Object::Blob, name, digest, "application/octet-stream", size.unwrap_or(0), None);
            respond(StatusCode::OK, blob_headers(digest, size), body)
        }
    }
}

fn blob_headers(digest: &Digest, size: Option<u64>) -> Vec<(header::HeaderName, String)> {
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (name_header("docker-content-digest"), digest.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
        (header::ACCEPT_RANGES, "bytes".into()),
        (header::CACHE_CONTROL, "max-age=31536000".into()),
    ];
    if let Some(size) = size {
        headers.push((header::CONTENT_LENGTH, size.to_string()));
    }
    headers
}

/// Reads a manifest body, refusing more than the size limit without buffering it.
async fn read_manifest_body(headers: &HeaderMap, mut body: Body) -> Result<Bytes> {
    let too_large = || Error::ManifestTooLarge { limit: MAX_MANIFEST_SIZE };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_SIZE) {
        drain(body).await;
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(4096).min(MAX_MANIFEST_SIZE) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Body(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > MAX_MANIFEST_SIZE {
                drain(body).await;
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

async fn put_manifest(registry: &Registry, parts: &http::request::Parts, name: &RepoName, reference: &Reference, query: &Query, body: Body, origin: &Origin) -> Result<Response> {
    let body = read_manifest_body(&parts.headers, body).await?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let extra_tags = query.all("tag");
    let pushed = registry.put_manifest(name, reference, content_type, body, &extra_tags, origin).await?;
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{}", pushed.digest)),
        (name_header("docker-content-digest"), pushed.digest.to_string()),
    ];
    if let Some(subject) = &pushed.subject {
        headers.push((name_header("oci-subject"), subject.to_string()));
    }
    for tag in extra_tags {
        headers.push((name_header("oci-tag"), tag));
    }
    empty(StatusCode::CREATED, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Result<Route> {
        parse_route(&Method::GET, path)
    }
    fn name(n: &str) -> RepoName {
        RepoName::parse(n).unwrap()
    }

    #[test]
    fn routes_split_at_the_last_marker() {
        assert_eq!(route("/v2/").unwrap(), Route::Base);
        assert_eq!(route("/v2").unwrap(), Route::Base);
        assert_eq!(route("/v2/_catalog").unwrap(), Route::Catalog);
        assert_eq!(route("/v2/a/b/blobs/sha256:x").unwrap(), Route::Blob(name("a/b"), "sha256:x".into()));
        assert_eq!(route("/v2/blobs/blobs/uploads/").unwrap(), Route::Uploads(name("blobs")));
        assert_eq!(route("/v2/a/blobs/uploads/id").unwrap(), Route::Upload(name("a"), "id".into()));
        assert_eq!(route("/v2/x/manifests/y/manifests/latest").unwrap(), Route::Manifest(name("x/manifests/y"), "latest".into()));
        assert_eq!(route("/v2/x/tags/list").unwrap(), Route::Tags(name("x")));
        assert_eq!(route("/v2/x/referrers/sha256:a").unwrap(), Route::Referrers(name("x"), "sha256:a".into()));
        assert!(matches!(route("/v2/../etc/manifests/latest"), Err(Error::NameInvalid { .. })));
        assert!(matches!(route("/v2/x/nothing"), Err(Error::UnknownEndpoint { .. })));
        assert!(matches!(route("/v3/x"), Err(Error::UnknownEndpoint { .. })));
    }

    #[test]
    fn ranges() {
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        assert_eq!(blob_range(Some(&h("bytes=0-9")), 100).unwrap(), Some((0, 9)));
        assert_eq!(blob_range(Some(&h("bytes=90-")), 100).unwrap(), Some((90, 99)));
        assert_eq!(blob_range(Some(&h("bytes=-10")), 100).unwrap(), Some((90, 99)));
        assert_eq!(blob_range(Some(&h("bytes=50-1000")), 100).unwrap(), Some((50, 99)));
        assert_eq!(blob_range(Some(&h("bytes=0-1,5-6")), 100).unwrap(), None);
        assert_eq!(blob_range(Some(&h("items=0-1")), 100).unwrap(), None);
        assert!(blob_range(Some(&h("bytes=100-")), 100).is_err());
        assert!(blob_range(Some(&h("bytes=-0")), 100).is_err());
    }

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(paginate(all.clone(), &q("n=2")).unwrap(), (vec!["a".into(), "b".into()], Some((2, "b".into()))));
        assert_eq!(paginate(all.clone(), &q("n=2&last=b")).unwrap(), (vec!["c".into(), "d".into()], None));
        assert_eq!(paginate(all.clone(), &q("n=0")).unwrap(), (vec![], None));
        assert_eq!(paginate(all.clone(), &q("last=c")).unwrap(), (vec!["d".into()], None));
        assert!(paginate(all, &q("n=-1")).is_err());
    }
}
