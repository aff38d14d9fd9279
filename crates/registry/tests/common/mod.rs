//! Test harness: runs `berth-registry` as a real process on a free loopback port with a
//! temporary storage root, killed (and its files removed) when the handle drops, also when
//! the test fails. Helpers push blobs and manifests over HTTP with reqwest.

#![allow(dead_code)]

pub mod peers;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A running registry process.
pub struct Registry {
    child: Option<Child>,
    _stdout: Option<BufReader<ChildStdout>>,
    /// `127.0.0.1:PORT`
    pub addr: String,
    root: PathBuf,
    log: PathBuf,
    /// Owns the temporary root unless the test passed its own.
    _dir: Option<TempDir>,
    _log_dir: TempDir,
}

impl Registry {
    /// A registry with its own temporary root.
    pub fn start() -> Registry {
        Registry::start_with(&[])
    }

    /// A registry with its own temporary root and extra `serve` flags.
    pub fn start_with(args: &[&str]) -> Registry {
        let dir = tempfile::Builder::new().prefix("berth-registry-test").tempdir().expect("temp root");
        let mut r = Registry::start_at(&dir.path().join("data"), args);
        r._dir = Some(dir);
        r
    }

    /// A registry over `root` (which may hold data of an earlier run).
    pub fn start_at(root: &Path, args: &[&str]) -> Registry {
        let root_arg = root.to_string_lossy().into_owned();
        let mut all = vec!["serve", "--addr", "127.0.0.1:0", "--root", &root_arg];
        all.extend_from_slice(args);
        Registry::spawn(root, &all).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A registry with its own temporary root and `toml` as its config file (written
    /// into `dir`, which the test keeps for files the config names).
    pub fn start_with_config(dir: &Path, toml: &str) -> Registry {
        let config = dir.join("registry.toml");
        std::fs::write(&config, toml).expect("write registry.toml");
        Registry::start_with(&["--config", &config.to_string_lossy()])
    }

    /// Runs `berth-registry ARGS` (storing under `root`) until it prints its address; on
    /// failure, the exit status and log.
    pub fn spawn(root: &Path, args: &[&str]) -> Result<Registry, String> {
        let log_dir = tempfile::Builder::new().prefix("berth-registry-log").tempdir().expect("log dir");
        let log = log_dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
            .args(["--log-level", "debug"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("starting berth-registry");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let addr = line.trim().rsplit("://").next().unwrap_or("").to_string();
        if !line.starts_with("listening on ") || addr.is_empty() {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!("berth-registry did not start ({status}):\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
        }
        Ok(Registry { child: Some(child), _stdout: Some(stdout), addr, root: root.to_path_buf(), log, _dir: None, _log_dir: log_dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every file under the root, for "nothing was written" checks.
    pub fn files(&self) -> BTreeSet<PathBuf> {
        files_under(&self.root)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.insert(p.clone());
                stack.push(p);
            } else {
                out.insert(p);
            }
        }
    }
    out
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `len` random bytes (/dev/urandom).
pub fn random_bytes(len: usize) -> Vec<u8> {
    use std::io::Read;
    let mut data = Vec::with_capacity(len);
    std::fs::File::open("/dev/urandom").and_then(|f| f.take(len as u64).read_to_end(&mut data)).expect("reading /dev/urandom");
    data
}

pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// The `code` of the first error in a spec error body.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    body["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

/// Asserts the status and the spec error code of a response.
pub async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) {
    let got = response.status();
    let url = response.url().clone();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "{url}: {body}");
    let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{url}: error body is not JSON: {body}"));
    assert_eq!(parsed["errors"][0]["code"], code, "{url}: {body}");
    assert!(parsed["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{url}: {body}");
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Pushes a blob in one POST; returns its digest.
pub async fn push_blob(reg: &Registry, name: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let r = client()
        .post(reg.url(&format!("/v2/{name}/blobs/uploads/?digest={digest}")))
        .body(data.to_vec())
        .send()
        .await
        .expect("POST blob");
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    digest
}

/// Pushes a manifest; returns the response.
pub async fn put_manifest(reg: &Registry, name: &str, reference: &str, media_type: &str, body: &[u8]) -> reqwest::Response {
    put_manifest_with(&client(), reg, name, reference, media_type, body).await
}

pub async fn put_manifest_with(c: &reqwest::Client, reg: &Registry, name: &str, reference: &str, media_type: &str, body: &[u8]) -> reqwest::Response {
    c.put(reg.url(&format!("/v2/{name}/manifests/{reference}")))
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .expect("PUT manifest")
}

/// A descriptor JSON value.
pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(data), "size": data.len() })
}

/// The config and layer of the small image [`push_image`] pushes for `seed`.
pub fn image_parts(seed: &str) -> (Vec<u8>, Vec<u8>) {
    let config = json!({ "architecture": "amd64", "os": "linux", "seed": seed }).to_string().into_bytes();
    (config, format!("layer of {seed}").into_bytes())
}

/// Pushes a small image (config + one layer) and its manifest under `tag`; returns the
/// manifest bytes.
pub async fn push_image(reg: &Registry, name: &str, tag: &str, seed: &str) -> Vec<u8> {
    try_push_image(&client(), reg, name, tag, seed).await.unwrap_or_else(|(s, b)| panic!("push {name}:{tag}: {s} {b}"))
}

/// Pushes a small image with `c`; on the first refused request, its status and body.
pub async fn try_push_image(c: &reqwest::Client, reg: &Registry, name: &str, tag: &str, seed: &str) -> Result<Vec<u8>, (StatusCode, String)> {
    let (config, layer) = image_parts(seed);
    for blob in [&config, &layer] {
        let r = c
            .post(reg.url(&format!("/v2/{name}/blobs/uploads/?digest={}", sha256(blob))))
            .body(blob.to_vec())
            .send()
            .await
            .expect("POST blob");
        if r.status() != StatusCode::CREATED {
            return Err((r.status(), r.text().await.unwrap_or_default()));
        }
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    })
    .to_string()
    .into_bytes();
    let r = put_manifest_with(c, reg, name, tag, OCI_MANIFEST, &manifest).await;
    if r.status() != StatusCode::CREATED {
        return Err((r.status(), r.text().await.unwrap_or_default()));
    }
    Ok(manifest)
}

/// A client sending `Authorization` with every request.
pub fn client_with_auth(authorization: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, authorization.parse().expect("header value"));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// A client with Basic credentials.
pub fn client_as(user: &str, password: &str) -> reqwest::Client {
    use base64::Engine as _;
    client_with_auth(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
}

/// A client with a bearer token.
pub fn client_bearer(token: &str) -> reqwest::Client {
    client_with_auth(&format!("Bearer {token}"))
}

/// The users of access control tests.
pub const USERS: &[(&str, &str)] = &[("alice", "wonderland"), ("bob", "builder")];

/// `[auth]` with the htpasswd file `dir/htpasswd` and the rules of access control tests:
/// `library/*` public (alice pushes), `team/*` for every user (bob pushes, nobody
/// deletes), `alice/*` alice's only. `extra` goes into the `[auth]` table.
pub fn auth_toml(dir: &Path, extra: &str) -> String {
    format!(
        r#"
[auth]
htpasswd = "{}"
{extra}
[[auth.repository]]
match = "library/*"
public = true
push = ["alice"]
[[auth.repository]]
match = "team/*"
pull = ["*"]
push = ["bob"]
delete = []
[[auth.repository]]
match = "alice/*"
pull = ["alice"]
push = ["alice"]
"#,
        dir.join("htpasswd").display()
    )
}

/// Writes an htpasswd file of bcrypt entries made by `htpasswd -Bbn`; false (the test
/// skips) when the tool is not installed.
pub fn write_htpasswd(path: &Path, users: &[(&str, &str)]) -> bool {
    if !have("htpasswd", "apache2-utils") {
        return false;
    }
    let mut text = String::new();
    for (user, password) in users {
        text.push_str(run(Command::new("htpasswd").args(["-Bbn", user, password])).trim());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write htpasswd");
    true
}

/// Whether a program is on PATH; prints why a test is skipped when it is not.
pub fn have(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("skipping: {program} is not installed (tests/install-deps.sh {package})");
    }
    found
}

/// The repository root (for tests/make-image.py and tests/make-rootfs.sh).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends one request with the path exactly as given (no client-side normalisation of
/// `..` or percent escapes); returns the status and the body.
pub fn raw_request(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write request");
    stream.write_all(body).expect("write body");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A request body that sends what the test feeds it and then waits, like a slow client;
/// it ends when the sender is dropped.
pub fn fed_body() -> (tokio::sync::mpsc::Sender<Vec<u8>>, reqwest::Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}
