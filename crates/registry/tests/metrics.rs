//! `GET /metrics` after real traffic: skopeo pushes and pulls, an upload left open, a
//! webhook endpoint that is down; and access to the endpoint (token, disabled).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::peers::*;
use common::*;
use reqwest::StatusCode;
use tempfile::TempDir;

/// The samples of a scrape, `name{labels}` -> value; checks every line's syntax.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(series.starts_with("berth_registry_"), "{line}");
        if let Some((_, labels)) = series.split_once('{') {
            assert!(labels.ends_with('}'), "{line}");
        }
        out.insert(series.to_string(), value);
    }
    out
}

async fn scrape(reg: &Registry) -> BTreeMap<String, f64> {
    let r = client().get(reg.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "content-type").starts_with("text/plain; version=0.0.4"));
    parse(&r.text().await.unwrap())
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn scrape_after_skopeo_push_and_pull() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let dir = TempDir::new().unwrap();
    // An endpoint nobody listens on: its deliveries fail.
    let hook = format!("[[webhook]]\nurl = \"http://127.0.0.1:{}/hook\"\nretries = 0\ntimeout = \"1s\"\nevents = [\"push\"]\n", free_port());
    let reg = Registry::start_with_config(dir.path(), &hook);
    let work = TempDir::new().unwrap();
    let digest = make_image(work.path(), "in", &[]);
    let image = format!("docker://{}/metrics/busybox:v1", reg.addr);
    skopeo(&["copy", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", work.path().join("in").display()), &image]);
    let out = work.path().join("out");
    skopeo(&["copy", "--src-tls-verify=false", &image, &format!("oci:{}:latest", out.display())]);
    assert_eq!(layout_digest(&out), digest);
    // One upload left open, one request for something missing.
    let r = client().post(reg.url("/v2/metrics/busybox/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = client().get(reg.url("/v2/metrics/busybox/manifests/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = scrape(&reg).await;
        if value(&m, "berth_registry_webhook_deliveries_total{result=\"failed\"}") >= 1.0 || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let requests = |method: &str, route: &str, code: u16| value(&m, &format!("berth_registry_http_requests_total{{method=\"{method}\",route=\"{route}\",code=\"{code}\"}}"));
    assert_eq!(requests("PUT", "manifest", 201), 1.0, "{m:#?}");
    assert!(requests("POST", "upload", 202) >= 2.0, "{m:#?}");
    assert!(requests("PUT", "upload", 201) >= 1.0, "{m:#?}");
    assert!(requests("GET", "manifest", 200) >= 1.0, "{m:#?}");
    assert_eq!(requests("GET", "manifest", 404), 1.0, "{m:#?}");
    assert!(requests("GET", "base", 200) + requests("GET", "base", 401) >= 2.0, "{m:#?}");

    // What is stored, as the gauges say.
    let blobs = std::fs::read_dir(reg.root().join("blobs/sha256")).unwrap().flatten().collect::<Vec<_>>();
    let bytes: u64 = blobs.iter().map(|e| e.metadata().unwrap().len()).sum();
    assert_eq!(value(&m, "berth_registry_blobs"), blobs.len() as f64);
    assert_eq!(value(&m, "berth_registry_blob_bytes"), bytes as f64);
    assert_eq!(value(&m, "berth_registry_upload_sessions"), 1.0);
    // The pull read every layer and the config: at least their bytes went out.
    let manifest: serde_json::Value = serde_json::from_slice(&layout_blob(&out, &digest)).unwrap();
    let pulled: u64 = manifest["layers"].as_array().unwrap().iter().chain([&manifest["config"]]).map(|d| d["size"].as_u64().unwrap()).sum();
    assert!(value(&m, "berth_registry_http_response_bytes_total{route=\"blob\"}") >= pulled as f64, "{m:#?}");
    let count = value(&m, "berth_registry_http_request_duration_seconds_count{route=\"manifest\"}");
    assert!(count >= 3.0, "{m:#?}");
    assert_eq!(value(&m, "berth_registry_http_request_duration_seconds_bucket{route=\"manifest\",le=\"+Inf\"}"), count);
    assert!(value(&m, "berth_registry_http_request_duration_seconds_sum{route=\"manifest\"}") > 0.0);
    assert_eq!(value(&m, "berth_registry_webhook_deliveries_total{result=\"failed\"}"), 1.0, "{m:#?}");
    assert_eq!(value(&m, "berth_registry_webhook_dropped_total"), 0.0);
    assert_eq!(value(&m, "berth_registry_gc_runs_total"), 0.0);
    // Scrapes are counted too (after their answer is made).
    let again = scrape(&reg).await;
    assert!(value(&again, "berth_registry_http_requests_total{method=\"GET\",route=\"metrics\",code=\"200\"}") >= 1.0);
}

#[tokio::test]
async fn access_to_metrics() {
    let dir = TempDir::new().unwrap();
    let reg = Registry::start_with_config(dir.path(), "[metrics]\ntoken = \"s3cret\"\n");
    let get = |auth: Option<&str>| {
        let mut r = client().get(reg.url("/metrics"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    expect_error(get(None).await.unwrap(), StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    expect_error(get(Some("Bearer wrong")).await.unwrap(), StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let r = get(Some("Bearer s3cret")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("berth_registry_http_requests_total{method=\"GET\",route=\"metrics\",code=\"401\"} 2"));

    let dir = TempDir::new().unwrap();
    let reg = Registry::start_with_config(dir.path(), "[metrics]\nenabled = false\n");
    assert_eq!(client().get(reg.url("/metrics")).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    // Refused at start: an empty token.
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("registry.toml"), "[metrics]\ntoken = \"\"\n").unwrap();
    let config = dir.path().join("registry.toml");
    let e = Registry::spawn(&dir.path().join("data"), &["serve", "--addr", "127.0.0.1:0", "--config", &config.to_string_lossy()]).err().unwrap();
    assert!(e.contains("metrics.token"), "{e}");
}
