//! API versions: `/v1.xx/` prefixes are checked against the supported range and stripped
//! before routing; every response carries docker's identifying headers.

use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub const API_VERSION: &str = "1.45";
pub const MIN_API_VERSION: &str = "1.24";

fn parse(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The API version a request asked for (its path prefix), if any.
#[derive(Debug, Clone, Copy)]
pub struct RequestVersion(pub (u32, u32));

pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let mut asked = parse(API_VERSION).unwrap_or((1, 45));
    if let Some(rest) = path.strip_prefix("/v") {
        let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some(v) = parse(version) {
            let max = parse(API_VERSION).unwrap_or((1, 45));
            let min = parse(MIN_API_VERSION).unwrap_or((1, 24));
            if v > max {
                return with_headers(ApiError::bad_request(format!("client version {version} is too new. Maximum supported API version is {API_VERSION}")).into_response());
            }
            if v < min {
                return with_headers(ApiError::bad_request(format!(
                    "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response());
            }
            asked = v;
            let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
            let tail = if tail.is_empty() { "/" } else { tail };
            if let Ok(uri) = format!("{tail}{query}").parse::<Uri>() {
                *request.uri_mut() = uri;
            }
        }
    }
    request.extensions_mut().insert(RequestVersion(asked));
    with_headers(next.run(request).await)
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("api-version", HeaderValue::from_static(API_VERSION));
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    if let Ok(server) = HeaderValue::from_str(&format!("berth/{} (linux)", crate::ENGINE_VERSION)) {
        headers.insert("server", server);
    }
    response
}
