//! Test fixtures: the reference registry (tests/registry.sh), images made with
//! tests/make-image.py and pushed with skopeo, a scriptable raw HTTP server for lying
//! registries, a proxy that cuts a connection once, and a JWT token issuer.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use berth_distribution::{AuthConfig, BlobStream, Client, RegistryConfig};
use futures_util::StreamExt;
use sha2::Digest as _;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Installs the Debian packages the fixtures run (a no-op when they are there).
fn ensure_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new(repo_root().join("tests/install-deps.sh"))
            .args([
                "docker-registry",
                "skopeo",
                "apache2-utils",
                "curl",
                "openssl",
                "python3",
                "zstd",
            ])
            .status()
            .expect("run tests/install-deps.sh");
        assert!(status.success(), "tests/install-deps.sh failed");
    });
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A reference registry on a free port; stopped and removed on drop.
pub struct Registry {
    pub addr: String,
    dir: TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Registry {
        ensure_tools();
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = run(Command::new(repo_root().join("tests/registry.sh"))
            .arg("start")
            .arg(dir.path())
            .args(args));
        Registry { addr, dir }
    }

    /// The registry's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("tests/registry.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// An OCI layout written by tests/make-image.py.
pub struct Layout {
    pub dir: TempDir,
    /// The top-level digest (manifest or index).
    pub digest: String,
}

impl Layout {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        std::fs::read(self.path().join("blobs/sha256").join(hex)).expect("read blob")
    }

    pub fn json(&self, digest: &str) -> serde_json::Value {
        serde_json::from_slice(&self.blob(digest)).expect("blob is JSON")
    }

    /// Pushes the layout (tag `latest`) to `registry/name` with skopeo, digests kept
    /// unless `extra` converts the format (`--format v2s2`).
    pub fn push(&self, registry: &str, name: &str, extra: &[&str]) {
        let src = format!("oci:{}:latest", self.path().display());
        let dst = format!("docker://{registry}/{name}");
        let keep = if extra.contains(&"--format") {
            None
        } else {
            Some("--preserve-digests")
        };
        run(Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
            .args(keep)
            .args(extra)
            .arg(&src)
            .arg(&dst));
    }
}

/// Runs make-image.py into a new layout.
pub fn make_image(args: &[&str]) -> Layout {
    ensure_tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let digest = run(Command::new("python3")
        .arg(repo_root().join("tests/make-image.py"))
        .arg(dir.path())
        .args(args));
    Layout { dir, digest }
}

/// A directory of files for a layer; `random` adds that many incompressible bytes.
pub fn layer_dir(files: &[(&str, &str)], random: usize) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write");
    }
    if random > 0 {
        let mut f = std::fs::File::create(dir.path().join("random.bin")).expect("create");
        f.write_all(&random_bytes(random, 0x5eed)).expect("write");
    }
    dir
}

/// Deterministic incompressible bytes (xorshift).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn client() -> Client {
    Client::new(RegistryConfig::default()).expect("client")
}

pub fn client_with(config: RegistryConfig) -> Client {
    Client::new(config).expect("client")
}

pub fn user(name: &str, password: &str) -> AuthConfig {
    AuthConfig {
        username: name.into(),
        password: password.into(),
        ..AuthConfig::default()
    }
}

/// Reads a blob stream to the end, hashing it; returns (bytes, digest).
pub async fn drain(mut stream: BlobStream) -> Result<(Vec<u8>, String), berth_distribution::Error> {
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk?);
    }
    let digest = sha256(&data);
    Ok((data, digest))
}

/// A free loopback port nobody listens on.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One request as the raw server saw it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    pub headers: HashMap<String, String>,
}

/// What the raw server answers; it may lie about the length or cut the body.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Content-Length to announce instead of the body's length.
    pub content_length: Option<usize>,
    /// Close the connection after this many body bytes.
    pub cut_after: Option<usize>,
}

impl RawResponse {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> RawResponse {
        RawResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            ..RawResponse::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> RawResponse {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&RawRequest) -> RawResponse + Send + Sync>;

/// A minimal HTTP/1.1 server that answers each request from a closure and closes the
/// connection; non-HTTP bytes (a TLS hello) get the connection closed at once.
pub struct RawServer {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<RawRequest>>>,
    task: JoinHandle<()>,
}

impl RawServer {
    pub async fn start(
        handler: impl Fn(&RawRequest) -> RawResponse + Send + Sync + 'static,
    ) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let handler: Handler = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (handler, seen) = (handler.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = serve_raw(conn, handler, seen).await;
                });
            }
        });
        RawServer {
            addr,
            requests,
            task,
        }
    }

    pub fn count(&self, method: &str, target_prefix: &str) -> usize {
        let requests = self.requests.lock().expect("lock");
        requests
            .iter()
            .filter(|r| r.method == method && r.target.starts_with(target_prefix))
            .count()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_raw(
    mut conn: TcpStream,
    handler: Handler,
    seen: Arc<Mutex<Vec<RawRequest>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if !buf[0].is_ascii_uppercase() {
            return Ok(());
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 65536 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let request = RawRequest {
        method,
        target,
        headers,
    };
    seen.lock().expect("lock").push(request.clone());
    let resp = handler(&request);
    let mut out = format!("HTTP/1.1 {} X\r\n", resp.status);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.content_length.unwrap_or(resp.body.len())
    ));
    conn.write_all(out.as_bytes()).await?;
    if request.method != "HEAD" {
        let end = resp
            .cut_after
            .unwrap_or(resp.body.len())
            .min(resp.body.len());
        conn.write_all(&resp.body[..end]).await?;
    }
    conn.flush().await?;
    conn.shutdown().await
}

/// A TCP proxy to `upstream` that, once, closes a connection after `cut_after` bytes
/// have gone from upstream to the client on it.
pub struct CutProxy {
    pub addr: String,
    pub cuts: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: &str, cut_after: usize) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let armed = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (upstream, c, n) = (upstream.to_string(), cuts.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let (upstream, armed, cuts) = (upstream.clone(), armed.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let forward = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n) = server_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if sent + n > cut_after && armed.swap(false, Ordering::SeqCst) {
                            let _ = client_write.write_all(&buf[..cut_after - sent]).await;
                            cuts.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                    }
                    forward.abort();
                });
            }
        });
        CutProxy {
            addr,
            cuts,
            connections,
            task,
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const TOKEN_SERVICE: &str = "berth-test-registry";
pub const TOKEN_ISSUER: &str = "berth-test-issuer";
pub const ALICE: (&str, &str) = ("alice", "wonderland");
pub const ALICE_REFRESH: &str = "refresh-token-of-alice";

/// A token server for the registry's `auth: token`: ES256 JWTs signed with a key whose
/// self-signed certificate the registry trusts. alice gets every action she asks for,
/// anonymous clients get pull on `public/*`.
pub struct TokenIssuer {
    pub realm: String,
    pub cert: PathBuf,
    pub gets: Arc<AtomicUsize>,
    pub posts: Arc<AtomicUsize>,
    _dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Signer {
    key: ring::signature::EcdsaKeyPair,
    x5c: String,
    rng: ring::rand::SystemRandom,
}

fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

impl Signer {
    fn jwt(&self, account: &str, access: serde_json::Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": account, "aud": TOKEN_SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{account}"),
            "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.key.sign(&self.rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// Access granted to `account` for the requested scopes.
fn grant(account: &str, scopes: &[String]) -> serde_json::Value {
    let mut out = Vec::new();
    for scope in scopes.iter().flat_map(|s| s.split(' ')) {
        let parts: Vec<&str> = scope.split(':').collect();
        let [kind, name, actions] = parts.as_slice() else {
            continue;
        };
        let actions: Vec<&str> = actions
            .split(',')
            .filter(|a| account == ALICE.0 || (*a == "pull" && name.starts_with("public/")))
            .collect();
        if *kind == "repository" && !actions.is_empty() {
            out.push(serde_json::json!({"type": kind, "name": name, "actions": actions}));
        }
    }
    serde_json::Value::Array(out)
}

fn token_answer(
    signer: &Signer,
    account: &str,
    scopes: &[String],
    refresh: bool,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let token = signer.jwt(account, grant(account, scopes));
    let mut body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    if refresh {
        body["refresh_token"] = ALICE_REFRESH.into();
    }
    axum::Json(body).into_response()
}

fn unauthorized(detail: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({"details": detail})),
    )
        .into_response()
}

impl TokenIssuer {
    pub fn start() -> TokenIssuer {
        ensure_tools();
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
            ])
            .args(["-subj", "/CN=berth-test-issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let key_der = STANDARD
            .decode(pem_body(&std::fs::read_to_string(&key).expect("key")))
            .expect("key base64");
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_der,
            &rng,
        )
        .expect("pkcs8 key");
        let signer = Arc::new(Signer {
            key,
            x5c: pem_body(&std::fs::read_to_string(&cert).expect("cert")),
            rng,
        });

        // Its own thread and runtime: tests block theirs on skopeo, which asks for tokens.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let realm = format!("http://{}/token", std_listener.local_addr().expect("addr"));
        let (gets, posts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s1, s2, g, p) = (signer.clone(), signer, gets.clone(), posts.clone());
        let app = axum::Router::new().route(
            "/token",
            axum::routing::get(
                move |axum::extract::Query(query): axum::extract::Query<Vec<(String, String)>>,
                      headers: axum::http::HeaderMap| {
                    let signer = s1.clone();
                    g.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let get = |k: &str| {
                            query
                                .iter()
                                .filter(|(n, _)| n == k)
                                .map(|(_, v)| v.clone())
                                .collect::<Vec<_>>()
                        };
                        let basic = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Basic "))
                            .and_then(|b| STANDARD.decode(b).ok())
                            .map(|b| String::from_utf8_lossy(&b).to_string());
                        let account = match basic {
                            None => "",
                            Some(c) if c == format!("{}:{}", ALICE.0, ALICE.1) => ALICE.0,
                            Some(_) => return unauthorized("incorrect username or password"),
                        };
                        let offline =
                            get("offline_token").first().map(String::as_str) == Some("true");
                        token_answer(
                            &signer,
                            account,
                            &get("scope"),
                            offline && account == ALICE.0,
                        )
                    }
                },
            )
            .post(move |body: String| {
                let signer = s2.clone();
                p.fetch_add(1, Ordering::SeqCst);
                async move {
                    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                    let get = |k: &str| {
                        form.iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    if get("grant_type") != "refresh_token" || get("refresh_token") != ALICE_REFRESH
                    {
                        return unauthorized("invalid refresh token");
                    }
                    token_answer(&signer, ALICE.0, &[get("scope")], true)
                }
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        TokenIssuer {
            realm,
            cert,
            gets,
            posts,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The `--token` argument of tests/registry.sh.
    pub fn registry_arg(&self) -> String {
        format!(
            "{},{TOKEN_SERVICE},{TOKEN_ISSUER},{}",
            self.realm,
            self.cert.display()
        )
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Not joined: graceful shutdown may wait for a client's idle connection.
        drop(self.thread.take());
    }
}
