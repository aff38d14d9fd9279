//! The web UI: server-rendered pages, no JavaScript. `/` redirects to `/ui/`, the
//! repository list with a search box (`?q=` searches, `?page=` pages); `/ui/r/<repo>` lists
//! a repository's tags; `/ui/r/<repo>/m/<digest>` shows one manifest. `/ui/login` asks
//! the browser for Basic credentials.
//!
//! Pages follow the API's access rules: the list shows only repositories the viewer may
//! pull, and a repository page needs pull access (anonymous viewers get a Basic challenge,
//! other users 403). Wrong credentials are refused rather than taken as anonymous.

pub mod html;
pub mod inspect;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use berth_store::Digest;
use http::{header, StatusCode};

use crate::error::{Error, ErrorKind, Result};
use crate::hooks::{Action, Scope};
use crate::names::{parse_digest, Reference, RepoName};
use crate::registry::Registry;
use crate::search::{self, param};
use html::Viewer;
use inspect::Shape;

/// Repositories per page of the list.
const LIST_PAGE_SIZE: usize = 30;
/// Tags per page of a repository.
const TAGS_PAGE_SIZE: usize = 50;
/// The realm of the UI's Basic challenges when access control does not name one.
const DEFAULT_REALM: &str = "berth-registry";
/// No scripts at all; styles only inline; forms only to this site; never framed.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The UI's routes.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(to_ui))
        .route("/ui", get(to_ui))
        .route("/ui/", get(home))
        .route("/ui/login", get(login))
        .route("/ui/r/{*path}", get(repository_or_manifest))
        .with_state(registry)
}

async fn to_ui() -> Redirect {
    Redirect::to("/ui/")
}

/// Who is looking. Wrong credentials are an error (the browser asks again).
fn viewer(registry: &Registry, parts: &http::request::Parts) -> Result<Viewer> {
    match registry.access().authorize(parts, Scope::Base) {
        Ok(user) => Ok(Viewer { user, can_log_in: false }),
        // Anonymous on a registry with logins: browsing public repositories is fine.
        Err(_) if !parts.headers.contains_key(header::AUTHORIZATION) => Ok(Viewer { user: None, can_log_in: true }),
        Err(e) => Err(e),
    }
}

fn authorize_pull(registry: &Registry, parts: &http::request::Parts, name: &RepoName) -> Result<()> {
    registry.access().authorize(parts, Scope::Repository { name: name.as_str(), actions: &[Action::Pull] }).map(|_| ())
}

/// A Basic challenge browsers answer: the one access control sent when it is Basic,
/// else one for the default realm (token challenges mean nothing to a browser).
fn basic_challenge(e: &Error) -> String {
    match e {
        Error::Unauthorized { challenge, .. } if challenge.starts_with("Basic ") => challenge.clone(),
        _ => format!("Basic realm=\"{DEFAULT_REALM}\""),
    }
}

fn html_response(status: StatusCode, body: String, challenge: Option<String>) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "same-origin")
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(c) = challenge {
        builder = builder.header(header::WWW_AUTHENTICATE, c);
    }
    builder.body(Body::from(body)).unwrap_or_else(|_| Response::new(Body::empty()))
}

fn error_page(viewer: &Viewer, e: &Error) -> Response {
    let status = e.status();
    if status.is_server_error() {
        tracing::error!(error = %e, "page failed");
    }
    let challenge = (e.kind() == ErrorKind::Unauthorized && status == StatusCode::UNAUTHORIZED).then(|| basic_challenge(e));
    html_response(status, html::error(viewer, status, &e.to_string()), challenge)
}

fn page(viewer: &Viewer, result: Result<String>) -> Response {
    match result {
        Ok(body) => html_response(StatusCode::OK, body, None),
        Err(e) => error_page(viewer, &e),
    }
}

fn page_param(parts: &http::request::Parts) -> Result<usize> {
    let pairs = search::query_pairs(parts);
    search::number_param(param(&pairs, "page"), "page", 1, usize::MAX, "must be an integer from 1")
}

async fn home(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let viewer = match viewer(&registry, &parts) {
        Ok(v) => v,
        Err(e) => return error_page(&Viewer::default(), &e),
    };
    let result = async {
        let page = page_param(&parts)?;
        let pairs = search::query_pairs(&parts);
        let query = param(&pairs, "q").unwrap_or("").trim().to_string();
        let results = search::search(&registry, &parts, &query, page, LIST_PAGE_SIZE).await?;
        Ok(html::home(&viewer, &results))
    }
    .await;
    page(&viewer, result)
}

async fn login(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    match registry.access().authorize(&parts, Scope::Base) {
        Ok(_) => Redirect::to("/ui/").into_response(),
        Err(e) => error_page(&Viewer { user: None, can_log_in: true }, &e),
    }
}

/// `<repo>` or `<repo>/m/<digest>`. Names cannot contain `:`, digests always do.
fn parse_ui_path(path: &str) -> Result<(RepoName, Option<Digest>)> {
    let path = path.trim_matches('/');
    if let Some((name, digest)) = path.rsplit_once("/m/") {
        if digest.contains(':') {
            return Ok((RepoName::parse(name)?, Some(parse_digest(digest)?)));
        }
    }
    Ok((RepoName::parse(path)?, None))
}

async fn repository_or_manifest(State(registry): State<Arc<Registry>>, Path(path): Path<String>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let viewer = match viewer(&registry, &parts) {
        Ok(v) => v,
        Err(e) => return error_page(&Viewer::default(), &e),
    };
    let result = async {
        let (name, digest) = parse_ui_path(&path)?;
        authorize_pull(&registry, &parts, &name)?;
        match digest {
            None => repository_page(&registry, &parts, &viewer, &name).await,
            Some(digest) => manifest_page(&registry, &viewer, &name, &digest).await,
        }
    }
    .await;
    page(&viewer, result)
}

async fn repository_page(registry: &Registry, parts: &http::request::Parts, viewer: &Viewer, name: &RepoName) -> Result<String> {
    let page = page_param(parts)?;
    let tags = registry.tags(name).await?;
    let mut infos = Vec::new();
    for tag in tags.iter().skip(page.saturating_sub(1).saturating_mul(TAGS_PAGE_SIZE)).take(TAGS_PAGE_SIZE) {
        match inspect::tag_info(registry, name, tag).await {
            Ok(info) => infos.push(info),
            // Deleted since the listing.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let description = inspect::description(registry, name).await;
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
    Ok(html::repository(
        viewer,
        &html::RepositoryPage {
            name: name.as_str(),
            description: description.as_deref(),
            host,
            tags: &infos,
            total_tags: tags.len(),
            page,
            pages: tags.len().div_ceil(TAGS_PAGE_SIZE),
        },
    ))
}

async fn manifest_page(registry: &Registry, viewer: &Viewer, name: &RepoName, digest: &Digest) -> Result<String> {
    let view = inspect::manifest(registry, name, &Reference::Digest(digest.clone())).await?;
    let mut tags = Vec::new();
    for tag in registry.tags(name).await? {
        if registry.manifest(name, &Reference::Tag(tag.clone())).await.is_ok_and(|m| m.digest == *digest) {
            tags.push(tag);
        }
    }
    let pushed = inspect::manifest_pushed(registry, name, digest).await;
    let (config, note) = match inspect::image_config(registry, name, &view).await {
        Ok(Some(c)) => (Some(c), None),
        Ok(None) => (None, Some("The config is not an image config.".to_string())),
        Err(e) => (None, Some(format!("The config could not be read: {e}"))),
    };
    let mut child_sizes = Vec::new();
    if let Shape::Index { manifests } = &view.shape {
        for child in manifests {
            child_sizes.push(inspect::child_size(registry, name, child).await);
        }
    }
    let total_size = view.image_size().unwrap_or_else(|| child_sizes.iter().fold(0u64, |a, b| a.saturating_add(*b)));
    let pretty = inspect::pretty_json(&view.body);
    Ok(html::manifest(
        viewer,
        &html::ManifestPage {
            name: name.as_str(),
            view: &view,
            tags: &tags,
            pushed,
            total_size,
            child_sizes: &child_sizes,
            config: config.as_ref(),
            config_note: note.as_deref(),
            pretty: &pretty,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_paths() {
        let d = format!("sha256:{}", "a".repeat(64));
        let (name, digest) = parse_ui_path(&format!("a/m/b/m/{d}")).unwrap();
        assert_eq!((name.as_str(), digest.map(|d| d.to_string())), ("a/m/b", Some(d.clone())));
        let (name, digest) = parse_ui_path("a/m/b").unwrap();
        assert_eq!((name.as_str(), digest), ("a/m/b", None));
        assert!(parse_ui_path("a/m/sha256:zz").is_err());
        assert!(parse_ui_path("../etc").is_err());
        assert!(parse_ui_path("A").is_err());
    }
}
