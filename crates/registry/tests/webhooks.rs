//! Webhooks against a real HTTP endpoint run by the test (a small axum server that
//! records what it receives): events for skopeo's push, pull and delete with the actor and
//! request facts, retries with backoff that deliver exactly once, an endpoint that hangs
//! without slowing pushes, and a full queue that drops events with a warning.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::peers::make_image;
use common::*;
use serde_json::Value;
use tempfile::TempDir;

/// One request the endpoint received.
#[derive(Debug, Clone)]
struct Delivery {
    body: Value,
    content_type: String,
    authorization: String,
}

/// How the endpoint answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    /// 500 to the first N requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

#[derive(Clone)]
struct Endpoint {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    behaviour: Behaviour,
}

async fn receive(State(ep): State<Endpoint>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let delivery = Delivery {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        content_type: header("content-type"),
        authorization: header("authorization"),
    };
    let n = {
        let mut all = ep.deliveries.lock().unwrap();
        all.push(delivery);
        all.len()
    };
    match ep.behaviour {
        Behaviour::Ok => StatusCode::OK,
        Behaviour::FailFirst(k) if n <= k => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst(_) => StatusCode::OK,
        Behaviour::Hang => std::future::pending().await,
    }
}

/// Serves the endpoint on a free loopback port; returns its URL and what it receives.
async fn endpoint(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Delivery>>>) {
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().route("/hook", post(receive)).with_state(Endpoint { deliveries: deliveries.clone(), behaviour });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, deliveries)
}

/// The events received so far (each delivery holds one).
fn events(deliveries: &Arc<Mutex<Vec<Delivery>>>) -> Vec<Value> {
    deliveries.lock().unwrap().iter().map(|d| d.body["events"][0].clone()).collect()
}

/// Waits until `pred` holds for the events received, or fails after `timeout`.
async fn wait_for(deliveries: &Arc<Mutex<Vec<Delivery>>>, timeout: Duration, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = events(deliveries);
        if pred(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; received: {got:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs skopeo with its own (empty) auth file, off the async runtime.
async fn skopeo(auth_file: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.env("REGISTRY_AUTH_FILE", auth_file).args(args);
    tokio::task::spawn_blocking(move || run(&mut cmd)).await.unwrap()
}

fn have_tools() -> bool {
    have("skopeo", "skopeo") && have("python3", "python3")
}

fn webhook(url: &str, extra: &str) -> String {
    format!("\n[[webhook]]\nurl = \"{url}\"\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn events_for_skopeo_push_pull_and_delete() {
    if !have_tools() {
        return;
    }
    let dir = TempDir::new().unwrap();
    if !write_htpasswd(&dir.path().join("htpasswd"), &[("alice", "wonderland")]) {
        return;
    }
    let (url, received) = endpoint(Behaviour::Ok).await;
    let toml = format!(
        "[auth]\nhtpasswd = \"{}\"\n[[auth.repository]]\nmatch = \"library/*\"\npublic = true\npush = [\"alice\"]\n{}",
        dir.path().join("htpasswd").display(),
        webhook(&url, "headers = { Authorization = \"Bearer secret\" }")
    );
    let reg = Registry::start_with_config(dir.path(), &toml);
    let auth_file = dir.path().join("auth.json");
    std::fs::write(&auth_file, "{}").unwrap();
    let digest = make_image(dir.path(), "in", &[]);
    let manifest_size = std::fs::metadata(dir.path().join("in/blobs/sha256").join(&digest[7..])).unwrap().len();
    let image = format!("docker://{}/library/busybox:v1", reg.addr);
    let layout = format!("oci:{}:latest", dir.path().join("in").display());

    skopeo(&auth_file, &["copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland", "--preserve-digests", &layout, &image]).await;
    let got = wait_for(&received, Duration::from_secs(10), "the push event", |e| !e.is_empty()).await;
    let push = &got[0];
    assert_eq!(push["action"], "push");
    assert_eq!(push["target"]["repository"], "library/busybox");
    assert_eq!(push["target"]["tag"], "v1");
    assert_eq!(push["target"]["digest"], digest.as_str());
    assert_eq!(push["target"]["mediaType"], OCI_MANIFEST);
    assert_eq!(push["target"]["size"], manifest_size);
    assert_eq!(push["actor"]["name"], "alice");
    assert_eq!(push["request"]["method"], "PUT");
    assert!(push["request"]["addr"].as_str().unwrap().starts_with("127.0.0.1:"), "{push}");
    assert_eq!(push["request"]["host"], reg.addr.as_str());
    assert!(!push["request"]["useragent"].as_str().unwrap().is_empty(), "{push}");
    assert!(humantime::parse_rfc3339(push["timestamp"].as_str().unwrap()).is_ok(), "{push}");
    assert_eq!(push["source"]["addr"], reg.addr.as_str());
    let first = received.lock().unwrap()[0].clone();
    assert_eq!(first.content_type, "application/vnd.docker.distribution.events.v1+json");
    assert_eq!(first.authorization, "Bearer secret");

    // An anonymous pull (the repository is public).
    let out = dir.path().join("out");
    skopeo(&auth_file, &["copy", "--src-tls-verify=false", &image, &format!("oci:{}:latest", out.display())]).await;
    let got = wait_for(&received, Duration::from_secs(10), "a pull event", |e| e.iter().any(|e| e["action"] == "pull")).await;
    let pull = got.iter().find(|e| e["action"] == "pull").unwrap();
    assert_eq!(pull["target"]["digest"], digest.as_str());
    assert_eq!(pull["request"]["method"], "GET");
    assert!(pull["actor"].get("name").is_none(), "anonymous: {pull}");

    skopeo(&auth_file, &["delete", "--tls-verify=false", "--creds", "alice:wonderland", &format!("docker://{}/library/busybox@{digest}", reg.addr)]).await;
    let got = wait_for(&received, Duration::from_secs(10), "the delete event", |e| e.iter().any(|e| e["action"] == "delete")).await;
    let delete = got.iter().find(|e| e["action"] == "delete").unwrap();
    assert_eq!(delete["target"]["digest"], digest.as_str());
    assert_eq!(delete["actor"]["name"], "alice");
    assert_eq!(delete["request"]["method"], "DELETE");

    // Manifests only: no event for the layers and config skopeo moved.
    assert!(got.iter().all(|e| e["target"]["digest"] == digest.as_str()), "{got:#?}");
    assert_eq!(got.iter().filter(|e| e["action"] == "push").count(), 1, "{got:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_deliver_exactly_once() {
    let dir = TempDir::new().unwrap();
    let (url, received) = endpoint(Behaviour::FailFirst(2)).await;
    let reg = Registry::start_with_config(dir.path(), &webhook(&url, "retries = 5\nbackoff = \"200ms\"\nevents = [\"push\"]"));
    let started = Instant::now();
    push_image(&reg, "app", "v1", "retried").await;
    // A pull is not among this endpoint's events.
    client().get(reg.url("/v2/app/manifests/v1")).send().await.unwrap();
    wait_for(&received, Duration::from_secs(10), "three attempts", |e| e.len() >= 3).await;
    // The retries waited 200 ms, then 400 ms.
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = events(&received);
    assert_eq!(got.len(), 3, "two failures and one success, nothing after: {got:#?}");
    assert!(got.iter().all(|e| e["id"] == got[0]["id"]), "the same event each time: {got:#?}");
    assert_eq!(got[2]["action"], "push");
    assert!(reg.log().contains("webhook delivery failed"), "{}", reg.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_endpoint_does_not_slow_pushes() {
    if !have_tools() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let (hanging, hung) = endpoint(Behaviour::Hang).await;
    let (url, received) = endpoint(Behaviour::Ok).await;
    let toml = webhook(&hanging, "timeout = \"30s\"\nretries = 0") + &webhook(&url, "");
    let reg = Registry::start_with_config(dir.path(), &toml);
    let auth_file = dir.path().join("auth.json");
    std::fs::write(&auth_file, "{}").unwrap();
    make_image(dir.path(), "in", &[]);
    let layout = format!("oci:{}:latest", dir.path().join("in").display());

    let started = Instant::now();
    for tag in ["a", "b", "c"] {
        skopeo(&auth_file, &["copy", "--dest-tls-verify=false", &layout, &format!("docker://{}/app:{tag}", reg.addr)]).await;
    }
    let took = started.elapsed();
    // Well within the 30 s the hanging endpoint may take per attempt.
    assert!(took < Duration::from_secs(10), "three pushes took {took:?}");
    // The other endpoint is not held up either.
    wait_for(&received, Duration::from_secs(5), "three push events", |e| e.len() == 3).await;
    assert_eq!(events(&hung).len(), 1, "the hanging endpoint holds the first event");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_drops_events_with_a_warning() {
    let dir = TempDir::new().unwrap();
    let (hanging, _hung) = endpoint(Behaviour::Hang).await;
    let reg = Registry::start_with_config(dir.path(), &webhook(&hanging, "timeout = \"30s\"\nretries = 0\nqueue = 1"));
    for i in 0..5 {
        push_image(&reg, "app", &format!("v{i}"), &format!("seed {i}")).await;
    }
    // One event in delivery, one queued, the rest dropped (one more if the first was not
    // taken from the queue yet).
    let warnings = reg.log().matches("webhook queue full, event dropped").count();
    assert!((3..=4).contains(&warnings), "{warnings} warnings:\n{}", reg.log());
}
