//! `GET /v1/search`: ranking, paging and bad parameters over HTTP; only repositories the
//! caller may pull; the real `docker search` (the docker CLI and a private dockerd) and
//! `berth search` (berthd and the berth CLI, when built next to berth-registry or in
//! `BERTH_BIN_DIR`) reading its answers.

mod common;

use std::process::Output;
use std::time::Duration;

use common::peers::{berth_binaries, Berthd, Dockerd};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

const DESCRIPTION_LABEL: &str = "org.opencontainers.image.description";

/// Pushes a one-layer image whose config has `labels`, tagged `tag`.
async fn push_labelled(c: &reqwest::Client, reg: &Registry, name: &str, tag: &str, labels: Value) {
    let config = json!({ "architecture": "amd64", "os": "linux", "config": { "Labels": labels }, "rootfs": {"type": "layers", "diff_ids": []} })
        .to_string()
        .into_bytes();
    let layer = format!("layer of {name}:{tag}").into_bytes();
    for blob in [&config, &layer] {
        let r = c.post(reg.url(&format!("/v2/{name}/blobs/uploads/?digest={}", sha256(blob)))).body(blob.clone()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    });
    let r = put_manifest_with(c, reg, name, tag, OCI_MANIFEST, manifest.to_string().as_bytes()).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
}

async fn search(c: &reqwest::Client, reg: &Registry, query: &str) -> Value {
    let r = c.get(reg.url(&format!("/v1/search?{query}"))).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn names(results: &Value) -> Vec<String> {
    results["results"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn ranks_pages_and_refuses_bad_parameters() {
    let reg = Registry::start();
    let c = client();
    for name in ["zzz", "myapp", "tools/apple", "web/app", "app-server"] {
        push_image(&reg, name, "v1", name).await;
    }
    push_labelled(&c, &reg, "app", "old", json!({ DESCRIPTION_LABEL: "the old app" })).await;
    // The newest tag describes the repository.
    tokio::time::sleep(Duration::from_millis(20)).await;
    push_labelled(&c, &reg, "app", "new", json!({ DESCRIPTION_LABEL: "the app, with <markup> & \"quotes\"" })).await;

    // Exact (whole name or last component), then a component starting with it, then the rest.
    let all = search(&c, &reg, "q=APP").await;
    assert_eq!(names(&all), ["app", "web/app", "app-server", "tools/apple", "myapp"]);
    assert_eq!(all["num_results"], 5);
    assert_eq!(all["num_pages"], 1);
    assert_eq!(all["page_size"], 25);
    assert_eq!(all["page"], 1);
    assert_eq!(all["query"], "APP");
    let first = &all["results"][0];
    assert_eq!(first["description"], "the app, with <markup> & \"quotes\"");
    assert_eq!((first["star_count"].clone(), first["is_official"].clone(), first["is_automated"].clone()), (json!(0), json!(false), json!(false)));
    assert_eq!(all["results"][1]["description"], "");

    // Pages.
    let page = search(&c, &reg, "q=app&n=2&page=2").await;
    assert_eq!(names(&page), ["app-server", "tools/apple"]);
    assert_eq!((page["num_pages"].clone(), page["num_results"].clone(), page["page"].clone(), page["page_size"].clone()), (json!(3), json!(5), json!(2), json!(2)));
    assert_eq!(names(&search(&c, &reg, "q=app&n=2&page=3").await), ["myapp"]);
    assert!(names(&search(&c, &reg, "q=app&n=2&page=4").await).is_empty());
    assert_eq!(search(&c, &reg, "q=app&n=100").await["num_results"], 5);
    let none = search(&c, &reg, "q=nothing").await;
    assert_eq!((none["num_results"].clone(), none["num_pages"].clone()), (json!(0), json!(0)));
    assert_eq!(search(&c, &reg, "").await["num_results"], 6);

    // Bad parameters name themselves.
    for (query, parameter) in [("q=a&n=0", "n"), ("q=a&n=101", "n"), ("q=a&n=ten", "n"), ("q=a&n=-1", "n"), ("q=a&page=0", "page"), ("q=a&page=x", "page")] {
        let r = c.get(reg.url(&format!("/v1/search?{query}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = r.json().await.unwrap();
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(&format!("invalid query parameter {parameter}=")), "{query}: {message}");
        assert_eq!(body["errors"][0]["detail"]["parameter"], parameter, "{query}");
    }
    let r = c.get(reg.url("/v1/search?q=a&n=101")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("from 1 to 100"), "{body}");

    // dockerd's ping before a search.
    let r = c.get(reg.url("/v1/_ping")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn finds_only_pullable_repositories() {
    let dir = TempDir::new().unwrap();
    if !write_htpasswd(&dir.path().join("htpasswd"), USERS) {
        return;
    }
    let reg = Registry::start_with_config(dir.path(), &auth_toml(dir.path(), ""));
    let alice = client_as("alice", "wonderland");
    let bob = client_as("bob", "builder");
    for (who, name) in [(&alice, "library/app"), (&alice, "alice/app"), (&bob, "team/app")] {
        try_push_image(who, &reg, name, "v1", name).await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    assert_eq!(names(&search(&client(), &reg, "q=app").await), ["library/app"]);
    assert_eq!(names(&search(&alice, &reg, "q=app").await), ["alice/app", "library/app", "team/app"]);
    assert_eq!(names(&search(&bob, &reg, "q=app").await), ["library/app", "team/app"]);
    let r = client_as("alice", "wrong").get(reg.url("/v1/search?q=app")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Pushes the repositories `docker search` and `berth search` look for.
async fn push_search_fixtures(reg: &Registry) {
    let c = client();
    push_labelled(&c, reg, "tools/finder", "v1", json!({ DESCRIPTION_LABEL: "finds things" })).await;
    push_labelled(&c, reg, "finder", "v1", json!({ DESCRIPTION_LABEL: "the finder" })).await;
    push_image(reg, "pathfinder", "v1", "pathfinder").await;
    push_image(reg, "other", "v1", "other").await;
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn docker_search() {
    let reg = Registry::start();
    push_search_fixtures(&reg).await;
    let addr = reg.addr.clone();
    let Some(dockerd) = tokio::task::spawn_blocking(move || Dockerd::start(&[&addr])).await.unwrap() else { return };
    let term = format!("{}/FIND", reg.addr);
    let out = dockerd.docker(&["search", "--no-trunc", "--format", "{{.Name}}|{{.Description}}|{{.StarCount}}", &term]);
    assert!(out.status.success(), "docker search: {}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines, ["finder|the finder|0", "tools/finder|finds things|0", "pathfinder||0"], "{}", text(&out));
    let table = dockerd.ok(&["search", &term]);
    assert!(table.starts_with("NAME") && table.contains("tools/finder") && table.contains("finds things"), "{table}");
    let limited = dockerd.ok(&["search", "--limit", "1", "--format", "{{.Name}}", &term]);
    assert_eq!(limited.trim(), "finder");
    let none = dockerd.ok(&["search", "--format", "{{.Name}}", &format!("{}/nothing", reg.addr)]);
    assert_eq!(none.trim(), "");
}


#[tokio::test]
async fn berth_search() {
    let Some((berthd, berth)) = berth_binaries() else { return };
    let reg = Registry::start();
    push_search_fixtures(&reg).await;
    let daemon = Berthd::start(&berthd, &berth, &[&reg.addr]);
    let term = format!("{}/find", reg.addr);
    let out = daemon.berth(&["search", "--no-trunc", "--format", "{{.Name}}|{{.Description}}", &term], b"");
    assert!(out.status.success(), "berth search: {}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines, ["finder|the finder", "tools/finder|finds things", "pathfinder|"], "{}", text(&out));
    let out = daemon.berth(&["search", "--limit", "2", &term], b"");
    assert!(out.status.success(), "berth search --limit: {}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("NAME") && table.contains("finds things") && !table.contains("pathfinder"), "{table}");
    // n out of range reaches the registry, which refuses it by name.
    let out = daemon.berth(&["search", "--limit", "101", &term], b"");
    assert!(!out.status.success() && text(&out).contains("from 1 to 100"), "berth search --limit 101: {}", text(&out));
}
