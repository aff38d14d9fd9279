//! Repository search: `GET /v1/search?q=&n=&page=` in the shape `docker search` reads
//! (Docker Hub's v1 search), over the repositories the caller may pull.
//!
//! A repository matches when its name contains the query (case-insensitive). Exact
//! matches (the whole name or its last component) come first, then names with a
//! component starting with the query, then the rest; each group in lexical order.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hooks::Scope;
use crate::names::RepoName;
use crate::registry::Registry;
use crate::ui::inspect;

/// Results per page unless `n` says otherwise (Docker Hub's default).
pub const DEFAULT_PAGE_SIZE: usize = 25;
/// The largest `n` accepted (as Docker Hub, and what dockerd allows for `--limit`).
pub const MAX_PAGE_SIZE: usize = 100;

/// What `/v1/search` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub num_pages: usize,
    pub num_results: usize,
    pub results: Vec<SearchResult>,
    pub page_size: usize,
    pub query: String,
    pub page: usize,
}

/// One repository found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    pub name: String,
    pub description: String,
    pub star_count: u64,
    pub is_official: bool,
    pub is_automated: bool,
}

/// `/v1/search`, and `/v1/_ping`, which dockerd asks before searching.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v1/search", get(search_endpoint))
        .route("/v1/_ping", get(ping))
        .with_state(registry)
}

/// How well a name matches a lowercase query: 0 exact, 1 a component starts with it,
/// 2 contains it; `None` when it does not match. An empty query matches everything (2).
pub fn rank(query: &str, name: &str) -> Option<u8> {
    let name = name.to_lowercase();
    if query.is_empty() {
        return Some(2);
    }
    let last = name.rsplit('/').next().unwrap_or(&name);
    if name == query || last == query {
        Some(0)
    } else if name.starts_with(query) || name.split('/').any(|c| c.starts_with(query)) {
        Some(1)
    } else if name.contains(query) {
        Some(2)
    } else {
        None
    }
}

/// The names matching `query`, best first.
pub fn matching(names: Vec<String>, query: &str) -> Vec<String> {
    let query = query.trim().to_lowercase();
    let mut ranked: Vec<(u8, String)> = names.into_iter().filter_map(|n| rank(&query, &n).map(|r| (r, n))).collect();
    ranked.sort();
    ranked.into_iter().map(|(_, n)| n).collect()
}

/// Checks credentials the request carries (wrong ones are refused rather than taken as
/// anonymous); returns the user they name, if any.
pub fn check_credentials(registry: &Registry, parts: &http::request::Parts) -> Result<Option<String>> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        registry.access().authorize(parts, Scope::Base)
    } else {
        Ok(None)
    }
}

/// The repositories matching `query` that the caller may pull, best first. Callers check
/// the request's credentials first ([`check_credentials`]).
pub async fn find(registry: &Registry, parts: &http::request::Parts, query: &str) -> Result<Vec<String>> {
    let visible = registry.access().pullable(parts, registry.repositories().await?);
    Ok(matching(visible, query))
}

/// One page (from 1) of the repositories matching `query`, with descriptions. Callers
/// check the request's credentials first ([`check_credentials`]).
pub async fn search(registry: &Registry, parts: &http::request::Parts, query: &str, page: usize, page_size: usize) -> Result<SearchResults> {
    let found = find(registry, parts, query).await?;
    let num_results = found.len();
    let mut results = Vec::new();
    for name in found.into_iter().skip(page.saturating_sub(1).saturating_mul(page_size)).take(page_size) {
        let description = match RepoName::parse(&name) {
            Ok(n) => inspect::description(registry, &n).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        results.push(SearchResult { name, description, ..SearchResult::default() });
    }
    Ok(SearchResults {
        num_pages: num_results.div_ceil(page_size),
        num_results,
        results,
        page_size,
        query: query.to_string(),
        page,
    })
}

/// A positive integer query parameter, at most `max`.
pub fn number_param(value: Option<&str>, name: &'static str, default: usize, max: usize, reason: &'static str) -> Result<usize> {
    let Some(text) = value.filter(|v| !v.is_empty()) else { return Ok(default) };
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Error::QueryInvalid { name, value: text.to_string(), reason }),
    }
}

/// The query parameters of a request, decoded.
pub fn query_pairs(parts: &http::request::Parts) -> Vec<(String, String)> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// The first value of a query parameter.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn search_endpoint(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let answer = async {
        let pairs = query_pairs(&parts);
        let page_size =
            number_param(param(&pairs, "n"), "n", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, "must be an integer from 1 to 100")?;
        let page = number_param(param(&pairs, "page"), "page", 1, usize::MAX, "must be an integer from 1")?;
        let query = param(&pairs, "q").unwrap_or("").trim().to_string();
        check_credentials(&registry, &parts)?;
        search(&registry, &parts, &query, page, page_size).await
    }
    .await;
    match answer {
        Ok(results) => json(StatusCode::OK, serde_json::to_string(&results).unwrap_or_default()),
        Err(e) => crate::http::error_response(&parts.method, &e),
    }
}

/// dockerd pings the v1 endpoint before a search; any answer will do, this one says the
/// registry stands alone (no separate index).
async fn ping() -> Response {
    json(StatusCode::OK, r#"{"standalone":true}"#.to_string())
}

fn json(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking() {
        let names = ["zzz", "myapp", "tools/apple", "web/app", "app-server", "app"].map(String::from).to_vec();
        assert_eq!(matching(names.clone(), "APP"), vec!["app", "web/app", "app-server", "tools/apple", "myapp"]);
        assert_eq!(matching(names.clone(), "").len(), 6);
        assert!(matching(names, "nothing").is_empty());
    }

    #[test]
    fn numbers() {
        let n = |v: Option<&str>| number_param(v, "n", 25, 100, "r");
        assert_eq!(n(None).unwrap(), 25);
        assert_eq!(n(Some("")).unwrap(), 25);
        assert_eq!(n(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", "1.5"] {
            assert!(matches!(n(Some(bad)), Err(Error::QueryInvalid { name: "n", .. })), "{bad}");
        }
    }
}
