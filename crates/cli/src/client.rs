//! HTTP client for the Docker Engine API over a unix socket or TCP, with docker's API
//! version negotiation (`/_ping`, then `/v1.xx/...` at the lower of the two versions).

use std::io::{self, Read};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// The newest API version this client speaks.
pub const CLIENT_API_VERSION: &str = "1.45";
/// What a daemon that sends no version header is assumed to speak.
const FALLBACK_API_VERSION: &str = "1.24";
/// The socket used when neither `-H` nor `BERTH_HOST` is given.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
/// Host name sent on unix sockets, as docker does.
const SOCKET_HOST: &str = "api.moby.localhost";
/// Daemon error bodies are read up to this size.
const ERROR_BODY_MAX: usize = 1 << 20;

/// Characters escaped in a URL path (Go's `url.URL.EscapedPath` keeps `/:@` and friends).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// A request or response body.
pub type Body = BoxBody<Bytes, io::Error>;

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body held in memory.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body streamed from a reader (a file or stdin) by a helper thread, so a blocking
/// read never stalls the single-threaded runtime.
pub fn from_reader(mut reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    ChannelBody { rx }.boxed()
}

struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|result| result.map(Frame::data)))
    }
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

/// Parses `-H` syntax: `unix:///path`, `tcp://host:port`, `http://host:port` or `host:port`.
pub fn parse_host(host: &str) -> Result<Endpoint> {
    let bad = || Error::BadHost(host.to_string());
    if let Some(path) = host.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(bad());
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    let addr = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host);
    if host.contains("://") && addr == host {
        return Err(bad());
    }
    let addr = addr.trim_end_matches('/');
    match addr.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            let h = if h.is_empty() { "127.0.0.1" } else { h };
            Ok(Endpoint::Tcp(format!("{h}:{port}")))
        }
        None if !addr.is_empty() => Ok(Endpoint::Tcp(format!("{addr}:2375"))),
        _ => Err(bad()),
    }
}

/// Query parameters, encoded sorted by key as Go's `url.Values.Encode` does.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds a parameter (repeated keys are kept).
    pub fn add(mut self, key: &str, value: impl Into<String>) -> Query {
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// Adds a parameter when `value` is not empty.
    pub fn add_nonempty(self, key: &str, value: &str) -> Query {
        if value.is_empty() {
            self
        } else {
            self.add(key, value)
        }
    }

    fn encode(&self) -> String {
        let mut pairs: Vec<&(String, String)> = self.0.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            serializer.append_pair(k, v);
        }
        serializer.finish()
    }
}

/// Escapes one path segment (an image name may contain `/` and `:`, which stay as is).
pub fn escape_path(segment: &str) -> String {
    utf8_percent_encode(segment, PATH).to_string()
}

/// The raw two-way stream of an upgraded (hijacked) connection.
pub type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

/// A client bound to one daemon.
pub struct Client {
    endpoint: Endpoint,
    host: String,
    version: Option<String>,
    negotiated: bool,
    sender: Option<SendRequest<Body>>,
}

impl Client {
    /// A client for `host`; with `version` set, negotiation is skipped.
    pub fn new(host: &str, version: Option<String>) -> Result<Client> {
        Ok(Client {
            endpoint: parse_host(host)?,
            host: host.to_string(),
            negotiated: version.is_some(),
            version,
            sender: None,
        })
    }

    /// Another client for the same daemon and API version with a connection of its own,
    /// for requests that run alongside others (waiting, streaming, signalling).
    pub async fn fork(&mut self) -> Result<Client> {
        let version = self.api_version().await?;
        Ok(Client {
            endpoint: self.endpoint.clone(),
            host: self.host.clone(),
            version: Some(version),
            negotiated: true,
            sender: None,
        })
    }

    /// POSTs a JSON body.
    pub async fn post_json(
        &mut self,
        path: &str,
        query: &Query,
        body: &serde_json::Value,
    ) -> Result<Response<Incoming>> {
        let headers = [("Content-Type", "application/json".to_string())];
        self.request(Method::POST, path, query, &headers, full(body.to_string()))
            .await
    }

    /// POSTs and takes over the connection (`Connection: Upgrade`, `Upgrade: tcp`): after
    /// the daemon's `101 Switching Protocols` the stream carries raw bytes both ways.
    pub async fn hijack(
        &mut self,
        path: &str,
        query: &Query,
        body: Option<&serde_json::Value>,
    ) -> Result<Hijacked> {
        let version = self.api_version().await?;
        let mut uri = format!("/v{version}{path}");
        let encoded = query.encode();
        if !encoded.is_empty() {
            uri.push('?');
            uri.push_str(&encoded);
        }
        let mut headers = vec![
            ("Connection", "Upgrade".to_string()),
            ("Upgrade", "tcp".to_string()),
            ("Host", self.host_header()),
            (
                "User-Agent",
                concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)").to_string(),
            ),
        ];
        let body = match body {
            Some(b) => {
                headers.push(("Content-Type", "application/json".to_string()));
                full(b.to_string())
            }
            None => empty(),
        };
        let request = build(Method::POST, &uri, body, &headers)?;
        let handshake = |e| Error::Transport {
            operation: "handshake",
            source: e,
        };
        let response = match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| self.connect_error(source))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(handshake)?;
                tokio::spawn(conn.with_upgrades());
                sender.send_request(request).await
            }
            Endpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|source| self.connect_error(source))?;
                let _ = stream.set_nodelay(true);
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(handshake)?;
                tokio::spawn(conn.with_upgrades());
                sender.send_request(request).await
            }
        }
        .map_err(|e| Error::Transport {
            operation: "sending request",
            source: e,
        })?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let code = response.status().as_u16();
            drain(response).await;
            return Err(Error::InvalidArgument(format!(
                "unable to upgrade to tcp, received {code}"
            )));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| Error::Transport {
                operation: "upgrading connection",
                source: e,
            })?;
        Ok(TokioIo::new(upgraded))
    }

    fn connect_error(&self, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::PermissionDenied {
            Error::ConnectPermission {
                host: self.host.clone(),
                source,
            }
        } else {
            Error::Connect {
                host: self.host.clone(),
                source,
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>> {
        let connect_error = |source: io::Error| {
            if source.kind() == io::ErrorKind::PermissionDenied {
                Error::ConnectPermission {
                    host: self.host.clone(),
                    source,
                }
            } else {
                Error::Connect {
                    host: self.host.clone(),
                    source,
                }
            }
        };
        let handshake = |e| Error::Transport {
            operation: "handshake",
            source: e,
        };
        let sender = match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_error)?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(handshake)?;
                tokio::spawn(conn);
                sender
            }
            Endpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(connect_error)?;
                let _ = stream.set_nodelay(true);
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(handshake)?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(sender)
    }

    fn host_header(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(_) => SOCKET_HOST.to_string(),
            Endpoint::Tcp(addr) => addr.clone(),
        }
    }

    /// Sends a request on the kept-alive connection, reconnecting if it was closed.
    async fn send(&mut self, mut request: Request<Body>) -> Result<Response<Incoming>> {
        let headers = request.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.host_header()) {
            headers.insert(http::header::HOST, v);
        }
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
        );
        let reusable = match self.sender.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reusable {
            Some(s) => s,
            None => self.connect().await?,
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Error::Transport {
                operation: "sending request",
                source: e,
            })?;
        self.sender = Some(sender);
        Ok(response)
    }

    /// The API version requests use, negotiated with the daemon on first use.
    pub async fn api_version(&mut self) -> Result<String> {
        if let Some(v) = &self.version {
            if self.negotiated {
                return Ok(v.clone());
            }
        }
        let server = self.ping().await?.api_version;
        let server = if server.is_empty() {
            FALLBACK_API_VERSION.to_string()
        } else {
            server
        };
        let chosen = if version_less(&server, CLIENT_API_VERSION) {
            server
        } else {
            CLIENT_API_VERSION.to_string()
        };
        self.version = Some(chosen.clone());
        self.negotiated = true;
        Ok(chosen)
    }

    /// `HEAD /_ping`, falling back to `GET` as docker does.
    pub async fn ping(&mut self) -> Result<Ping> {
        for method in [Method::HEAD, Method::GET] {
            let request = build(method, "/_ping", empty(), &[])?;
            let response = self.send(request).await?;
            let status = response.status();
            if status == StatusCode::OK || status == StatusCode::INTERNAL_SERVER_ERROR {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let ping = Ping {
                    api_version: header("api-version"),
                };
                drain(response).await;
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    return Err(Error::Daemon {
                        status: 500,
                        message: "ping failed".to_string(),
                    });
                }
                return Ok(ping);
            }
            drain(response).await;
        }
        Err(Error::Daemon {
            status: 404,
            message: "page not found".to_string(),
        })
    }

    /// Sends an API request and turns an error status into the daemon's message.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        query: &Query,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response<Incoming>> {
        let version = self.api_version().await?;
        let mut uri = format!("/v{version}{path}");
        let encoded = query.encode();
        if !encoded.is_empty() {
            uri.push('?');
            uri.push_str(&encoded);
        }
        let request = build(method, &uri, body, headers)?;
        let response = self.send(request).await?;
        if response.status().as_u16() >= 400 {
            return Err(error_from_response(response, &uri).await);
        }
        Ok(response)
    }

    /// GET and decode a JSON response.
    pub async fn get_json<T: DeserializeOwned>(
        &mut self,
        path: &str,
        query: &Query,
        operation: &'static str,
    ) -> Result<T> {
        let bytes = self.get_bytes(path, query).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode { operation, source })
    }

    /// GET the whole response body.
    pub async fn get_bytes(&mut self, path: &str, query: &Query) -> Result<Bytes> {
        let response = self.request(Method::GET, path, query, &[], empty()).await?;
        read_body(response).await
    }
}

/// What `/_ping` reports.
#[derive(Debug, Clone, Default)]
pub struct Ping {
    pub api_version: String,
}

fn build(
    method: Method,
    uri: &str,
    body: Body,
    headers: &[(&str, String)],
) -> Result<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid request {uri}: {e}")))
}

/// Reads a whole response body.
pub async fn read_body(response: Response<Incoming>) -> Result<Bytes> {
    response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Transport {
            operation: "reading response",
            source: e,
        })
}

async fn drain(response: Response<Incoming>) {
    let _ = response.into_body().collect().await;
}

/// docker's `checkResponseErr`: the daemon's JSON `message`, or the body as text.
async fn error_from_response(response: Response<Incoming>, uri: &str) -> Error {
    let status = response.status();
    let status_text = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some("application/json");
    let mut body = Vec::new();
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            body.extend_from_slice(&data);
            if body.len() > ERROR_BODY_MAX {
                return Error::Daemon {
                    status: status.as_u16(),
                    message: format!(
                        "request returned {status_text} with a message (> {ERROR_BODY_MAX} bytes) for API route and version {uri}, check if the server supports the requested API version"
                    ),
                };
            }
        }
    }
    let message = if body.is_empty() {
        format!(
            "request returned {status_text} for API route and version {uri}, check if the server supports the requested API version"
        )
    } else if is_json {
        #[derive(serde::Deserialize)]
        struct ErrorResponse {
            #[serde(default)]
            message: String,
        }
        match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) if !e.message.is_empty() => e.message.trim().to_string(),
            Ok(_) => format!(
                "API returned a {} ({}) but provided no error-message",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
            Err(e) => format!("Error reading JSON: {e}"),
        }
    } else {
        String::from_utf8_lossy(&body).trim().to_string()
    };
    Error::Daemon {
        status: status.as_u16(),
        message,
    }
}

/// Compares dotted versions numerically ("1.9" < "1.41").
pub fn version_less(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parse(a), parse(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x < y;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            parse_host("unix:///run/berth/berth.sock").unwrap(),
            Endpoint::Unix("/run/berth/berth.sock".into())
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            parse_host("localhost:1234").unwrap(),
            Endpoint::Tcp("localhost:1234".into())
        );
        assert_eq!(
            parse_host("tcp://:99").unwrap(),
            Endpoint::Tcp("127.0.0.1:99".into())
        );
        assert!(parse_host("unix://").is_err());
        assert!(parse_host("ssh://x").is_err());
        assert!(parse_host("tcp://host:port").is_err());
    }

    #[test]
    fn encodes_queries_sorted() {
        let q = Query::new()
            .add("tag", "v1")
            .add("fromImage", "docker.io/library/busybox")
            .add("changes", "CMD [\"sh\"]")
            .add("changes", "ENV A=1")
            .add_nonempty("platform", "");
        assert_eq!(
            q.encode(),
            "changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&fromImage=docker.io%2Flibrary%2Fbusybox&tag=v1"
        );
    }

    #[test]
    fn escapes_paths() {
        assert_eq!(
            escape_path("127.0.0.1:5000/a/b:v1"),
            "127.0.0.1:5000/a/b:v1"
        );
        assert_eq!(escape_path("a b#c?"), "a%20b%23c%3F");
    }

    #[test]
    fn compares_versions() {
        assert!(version_less("1.41", "1.45"));
        assert!(version_less("1.9", "1.41"));
        assert!(!version_less("1.45", "1.45"));
        assert!(!version_less("1.47", "1.45"));
    }
}
