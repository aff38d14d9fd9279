//! Pull-through mirrors against real upstreams: the reference registry (distribution 2.8)
//! holding images pushed by skopeo, and a second berth-registry with token
//! authentication. Clients are skopeo, dockerd (`registry-mirrors`), and reqwest sending
//! containerd's `?ns=`. The upstream's access log counts what reached it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::peers::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// One `[[mirror]]` table.
fn mirror(namespace: &str, upstream: &str, extra: &str) -> String {
    format!("[[mirror]]\nnamespace = \"{namespace}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

fn start_mirror(dir: &TempDir, mirrors: &[String]) -> Registry {
    Registry::start_with_config(dir.path(), &mirrors.concat())
}

/// Pushes a blob to a registry the way distribution wants it (POST, then PUT).
async fn push_blob_to(addr: &str, name: &str, data: &[u8]) -> String {
    let c = client();
    let r = c.post(format!("http://{addr}/v2/{name}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", r.text().await.unwrap_or_default());
    let location = header(&r, "location").to_string();
    let url = if location.starts_with("http") { location } else { format!("http://{addr}{location}") };
    let digest = sha256(data);
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = c.put(format!("{url}{sep}digest={digest}")).header("content-type", "application/octet-stream").body(data.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    digest
}

/// Pushes an image of `layers` to `name:tag` on the registry at `addr`; returns the
/// manifest's digest.
async fn push_image_to(addr: &str, name: &str, tag: &str, seed: &str, layers: &[&[u8]]) -> String {
    let config = json!({ "architecture": "amd64", "os": "linux", "seed": seed }).to_string().into_bytes();
    push_blob_to(addr, name, &config).await;
    for layer in layers {
        push_blob_to(addr, name, layer).await;
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let r = client()
        .put(format!("http://{addr}/v2/{name}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    sha256(&manifest)
}

/// The digest a mirror answers for a manifest (by the bytes it sends).
async fn manifest_digest(url: &str) -> Result<String, (StatusCode, String)> {
    let r = client().get(url).header("accept", ACCEPT).send().await.unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    if status != StatusCode::OK {
        return Err((status, String::from_utf8_lossy(&body).into_owned()));
    }
    Ok(sha256(&body))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ seed).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_and_ns_pulls_through_a_mirror_of_the_reference_registry() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let Some(mut upstream) = Distribution::start() else { return };
    let work = TempDir::new().unwrap();
    let digest = make_image(work.path(), "in", &[]);
    let layout = work.path().join("in");
    skopeo(&["copy", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", layout.display()), &format!("docker://{}/library/busybox:v1", upstream.addr)]);

    let dir = TempDir::new().unwrap();
    let reg = start_mirror(&dir, &[mirror("docker.io", &format!("http://{}", upstream.addr), "manifest_ttl = \"1h\"")]);
    let pull = |from: &str, out: &str| {
        let out = work.path().join(out);
        skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{}/{from}", reg.addr), &format!("oci:{}:latest", out.display())]);
        layout_digest(&out)
    };
    // As docker names it (no namespace: Docker Hub's mirror), then by the path.
    assert_eq!(pull("library/busybox:v1", "out1"), digest, "{}", reg.log());
    assert_eq!(pull("docker.io/library/busybox:v1", "out2"), digest);

    // As containerd asks a mirror: ?ns= on every request.
    let url = |path: &str| reg.url(&format!("/v2/library/busybox/{path}?ns=docker.io"));
    assert_eq!(manifest_digest(&url("manifests/v1")).await.unwrap(), digest);
    let manifest: Value = serde_json::from_slice(&layout_blob(&layout, &digest)).unwrap();
    let blobs: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&manifest["config"]])
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    for blob in &blobs {
        let body = client().get(url(&format!("blobs/{blob}"))).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(body.as_ref(), layout_blob(&layout, blob).as_slice(), "{blob}");
        // Fetched from the upstream once, then served from storage.
        assert_eq!(upstream.requests("GET", &format!("/v2/library/busybox/blobs/{blob}")), 1, "{blob}: {}", upstream.log());
    }
    assert!(reg.root().join("repositories/docker.io/library/busybox/_tags/v1").is_file());
    let catalog: Value = client().get(reg.url("/v2/_catalog")).send().await.unwrap().json().await.unwrap();
    assert_eq!(catalog["repositories"], json!(["docker.io/library/busybox"]));

    // The second pull needs no upstream.
    upstream.stop();
    assert_eq!(pull("library/busybox:v1", "out3"), digest, "{}", reg.log());
    assert_eq!(manifest_digest(&url(&format!("manifests/{digest}"))).await.unwrap(), digest);
    // Not cached and the upstream is gone: 503, not 404.
    let (status, _) = manifest_digest(&url("manifests/v2")).await.unwrap_err();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // Pushing to a mirrored namespace is distribution's 405 UNSUPPORTED.
    let r = client().post(url("blobs/uploads/")).send().await.unwrap();
    expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    let r = put_manifest(&reg, "library/busybox", "v9", OCI_MANIFEST, &layout_blob(&layout, &digest)).await;
    expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    let r = client().delete(url(&format!("manifests/{digest}"))).send().await.unwrap();
    expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_moved_upstream_is_seen_after_the_ttl() {
    let Some(mut upstream) = Distribution::start() else { return };
    let first = push_image_to(&upstream.addr, "team/app", "latest", "one", &[b"layer one"]).await;
    let dir = TempDir::new().unwrap();
    let reg = start_mirror(&dir, &[mirror("ghcr.io", &format!("http://{}", upstream.addr), "manifest_ttl = \"2s\"")]);
    let url = reg.url("/v2/ghcr.io/team/app/manifests/latest");

    let fetched = Instant::now();
    assert_eq!(manifest_digest(&url).await.unwrap(), first);
    let second = push_image_to(&upstream.addr, "team/app", "latest", "two", &[b"layer two"]).await;
    // Within the TTL: the cached manifest, and no request upstream.
    let gets = upstream.requests("GET", "/v2/team/app/manifests/latest");
    assert_eq!(manifest_digest(&url).await.unwrap(), first);
    assert_eq!(upstream.requests("GET", "/v2/team/app/manifests/latest"), gets);
    if fetched.elapsed() >= Duration::from_secs(2) {
        eprintln!("skipping the within-TTL check: the machine is too slow");
    }
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(fetched.elapsed()) + Duration::from_millis(200)).await;
    assert_eq!(manifest_digest(&url).await.unwrap(), second, "{}", reg.log());
    // Both images' manifests are stored; the tag follows the upstream.
    assert_eq!(manifest_digest(&reg.url(&format!("/v2/ghcr.io/team/app/manifests/{first}"))).await.unwrap(), first);

    // Past the TTL again with the tag where it was: a HEAD checks it and nothing is
    // downloaded (Docker Hub counts manifest GETs against its pull limits).
    let count = |method: &str| upstream.requests(method, "/v2/team/app/manifests/latest");
    let (gets, heads) = (count("GET"), count("HEAD"));
    assert!(heads >= 1, "the moved tag was checked with a HEAD: {}", upstream.log());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(manifest_digest(&url).await.unwrap(), second, "{}", reg.log());
    assert_eq!(count("HEAD"), heads + 1, "{}", upstream.log());
    assert_eq!(count("GET"), gets, "an unchanged tag was downloaded again: {}", upstream.log());

    // Stale but the upstream is down: the cached copy, with a warning.
    upstream.stop();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(manifest_digest(&url).await.unwrap(), second);
    assert!(reg.log().contains("serving the cached manifest"), "{}", reg.log());
    // The tag list comes from storage when the upstream is down.
    let tags: Value = client().get(reg.url("/v2/ghcr.io/team/app/tags/list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["tags"], json!(["latest"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_of_a_blob_fetch_it_once() {
    let Some(upstream) = Distribution::start() else { return };
    let big = pattern(24 << 20, 3);
    push_image_to(&upstream.addr, "library/big", "v1", "big", &[&big]).await;
    let digest = sha256(&big);
    let dir = TempDir::new().unwrap();
    let reg = start_mirror(&dir, &[mirror("docker.io", &format!("http://{}", upstream.addr), "")]);

    // Eight clients at once, by all three ways of naming the namespace.
    let urls = [
        reg.url(&format!("/v2/library/big/blobs/{digest}")),
        reg.url(&format!("/v2/docker.io/library/big/blobs/{digest}")),
        reg.url(&format!("/v2/library/big/blobs/{digest}?ns=docker.io")),
    ];
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = urls[i % urls.len()].clone();
        tasks.push(tokio::spawn(async move {
            let r = client().get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.bytes().await.unwrap()
        }));
    }
    for t in tasks {
        let body = t.await.unwrap();
        assert!(body == big.as_slice(), "a client got {} bytes that differ", body.len());
    }
    assert_eq!(upstream.requests("GET", &format!("/v2/library/big/blobs/{digest}")), 1, "{}", upstream.log());
    assert!(reg.log().contains("blob cached from upstream"), "{}", reg.log());

    // Cached: Range requests, still no upstream request.
    let r = client().get(urls[0].clone()).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &big[100..200]);
    assert_eq!(upstream.requests("GET", &format!("/v2/library/big/blobs/{digest}")), 1);
    let metrics = client().get(reg.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("berth_registry_mirror_cache_misses_total{kind=\"blob\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_lying_about_a_digest_gets_nothing_cached() {
    let Some(upstream) = Distribution::start() else { return };
    let data = pattern(3 << 20, 9);
    let digest = push_blob_to(&upstream.addr, "library/liar", &data).await;
    // The upstream's copy is damaged: same length, other bytes.
    let stored = upstream.blob_data(&digest);
    std::fs::write(&stored, pattern(3 << 20, 10)).unwrap();
    let dir = TempDir::new().unwrap();
    let reg = start_mirror(&dir, &[mirror("docker.io", &format!("http://{}", upstream.addr), "")]);
    let url = reg.url(&format!("/v2/library/liar/blobs/{digest}"));
    let cached = reg.root().join("blobs/sha256").join(&digest[7..]);

    for attempt in 0..2 {
        let r = client().get(&url).send().await.unwrap();
        let status = r.status();
        let body = r.bytes().await;
        // Either refused outright, or the body breaks off before its end: never the
        // whole of a wrong blob with a success.
        assert!(status != StatusCode::OK || body.is_err(), "attempt {attempt}: {status}, {:?} bytes", body.map(|b| b.len()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reg.log().contains("blob not cached") {
            assert!(Instant::now() < deadline, "{}", reg.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!cached.exists(), "a blob with the wrong content was stored");
    }
    assert_eq!(upstream.requests("GET", &format!("/v2/library/liar/blobs/{digest}")), 2);
    assert_eq!(std::fs::read_dir(reg.root().join("tmp")).unwrap().count(), 0, "temporary files left");

    // Repaired upstream: served and cached.
    std::fs::write(&stored, &data).unwrap();
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap() == data.as_slice());
    assert_eq!(std::fs::read(&cached).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_authenticated_berth_registry_upstream() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let up_dir = TempDir::new().unwrap();
    if !write_htpasswd(&up_dir.path().join("htpasswd"), USERS) {
        return;
    }
    let upstream = Registry::start_with_config(up_dir.path(), &auth_toml(up_dir.path(), "token = { service = \"upstream\" }"));
    let work = TempDir::new().unwrap();
    let digest = make_image(work.path(), "in", &[]);
    let layout = format!("oci:{}:latest", work.path().join("in").display());
    skopeo(&["copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland", "--preserve-digests", &layout, &format!("docker://{}/alice/private:v1", upstream.addr)]);

    let dir = TempDir::new().unwrap();
    let up = format!("http://{}", upstream.addr);
    let reg = start_mirror(&dir, &[
        mirror("ghcr.io", &up, "username = \"alice\"\npassword = \"wonderland\""),
        mirror("quay.io", &up, ""),
    ]);
    let out = work.path().join("out");
    skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{}/ghcr.io/alice/private:v1", reg.addr), &format!("oci:{}:latest", out.display())]);
    assert_eq!(layout_digest(&out), digest);
    assert_eq!(manifest_digest(&reg.url("/v2/alice/private/manifests/v1?ns=ghcr.io")).await.unwrap(), digest);
    // The upstream saw the token flow.
    assert!(upstream.log().contains("/token"), "{}", upstream.log());

    // Without credentials the upstream refuses: nothing to serve.
    let failed = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw", &format!("docker://{}/quay.io/alice/private:v1", reg.addr)])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(!reg.root().join("repositories/quay.io/alice/private/_tags/v1").exists());
}

#[test]
fn dockerd_pulls_docker_io_images_through_the_mirror() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let Some(upstream) = Distribution::start() else { return };
    let work = TempDir::new().unwrap();
    make_image(work.path(), "in", &[]);
    let layout = format!("oci:{}:latest", work.path().join("in").display());
    skopeo(&["copy", "--dest-tls-verify=false", "--format", "v2s2", &layout, &format!("docker://{}/library/mirrortest:v1", upstream.addr)]);
    let config_digest = {
        let raw = inspect_raw(&format!("docker://{}/library/mirrortest:v1", upstream.addr));
        let m: Value = serde_json::from_slice(&raw).unwrap();
        m["config"]["digest"].as_str().unwrap().to_string()
    };

    let dir = TempDir::new().unwrap();
    let reg = start_mirror(&dir, &[mirror("docker.io", &format!("http://{}", upstream.addr), "")]);
    let daemon_json = json!({ "registry-mirrors": [format!("http://{}", reg.addr)] }).to_string();
    let Some(dockerd) = Dockerd::start_with(&[], &daemon_json) else { return };
    // docker.io/library/mirrortest: Docker Hub, as far as docker knows.
    let out = dockerd.ok(&["pull", "mirrortest:v1"]);
    assert!(out.contains("Digest: sha256:"), "{out}");
    let id = dockerd.ok(&["image", "inspect", "-f", "{{.Id}}", "mirrortest:v1"]).trim().to_string();
    assert_eq!(id, config_digest);
    assert!(upstream.requests("GET", "/v2/library/mirrortest/manifests/v1") >= 1, "{}", upstream.log());
    assert!(reg.root().join("repositories/docker.io/library/mirrortest/_tags/v1").is_file(), "{}", reg.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_namespace_takes_pushes_and_a_mirrored_one_does_not() {
    let Some(upstream) = Distribution::start() else { return };
    let upstream_digest = push_image_to(&upstream.addr, "team/app", "v1", "upstream", &[b"up"]).await;
    let dir = TempDir::new().unwrap();
    let up = format!("http://{}", upstream.addr);
    let reg = start_mirror(&dir, &[mirror("docker.io", &up, "local = true\nmanifest_ttl = \"0s\""), mirror("ghcr.io", &up, "")]);

    let r = client().post(reg.url("/v2/ghcr.io/team/app/blobs/uploads/")).send().await.unwrap();
    expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    // docker.io is also local: pushes are stored here, under the namespace.
    let pushed = push_image(&reg, "team/app", "mine", "local").await;
    assert!(reg.root().join("repositories/docker.io/team/app/_tags/mine").is_file());
    assert_eq!(manifest_digest(&reg.url("/v2/team/app/manifests/mine")).await.unwrap(), sha256(&pushed));
    assert_eq!(upstream.requests("GET", "/v2/team/app/manifests/mine"), 0, "a pushed tag was asked upstream");
    // Other tags still come from the upstream.
    assert_eq!(manifest_digest(&reg.url("/v2/team/app/manifests/v1")).await.unwrap(), upstream_digest);
    // A tag pushed over a mirrored one stops following the upstream.
    push_image(&reg, "team/app", "v1", "over").await;
    let gets = upstream.requests("GET", "/v2/team/app/manifests/v1");
    assert_ne!(manifest_digest(&reg.url("/v2/team/app/manifests/v1")).await.unwrap(), upstream_digest);
    assert_eq!(upstream.requests("GET", "/v2/team/app/manifests/v1"), gets);
}

/// `berth-registry gc --root ROOT ARGS` (through the running registry's admin socket, or
/// offline when none runs); its output.
fn gc(root: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["--log-level", "warn", "gc", "--root"])
        .arg(root)
        .args(args)
        .output()
        .expect("running berth-registry gc");
    assert!(out.status.success(), "gc {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sets the time of every file under `dir` `age` back, as if that long had passed since
/// it was last written or used.
fn age_files(dir: &std::path::Path, age: Duration) {
    let when = std::time::SystemTime::now() - age;
    for path in files_under(dir) {
        if path.is_file() {
            std::fs::File::open(&path).and_then(|f| f.set_modified(when)).unwrap_or_else(|e| panic!("aging {}: {e}", path.display()));
        }
    }
}

/// The digests of the stored blobs.
fn stored_blobs(root: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(root.join("blobs/sha256")).unwrap().flatten().map(|e| format!("sha256:{}", e.file_name().to_string_lossy())).collect()
}

/// The digests an image manifest of an OCI layout references (config and layers), and
/// the manifest's own.
fn image_blobs(layout: &std::path::Path, manifest: &str) -> Vec<String> {
    let m: Value = serde_json::from_slice(&layout_blob(layout, manifest)).unwrap();
    let mut out = vec![manifest.to_string(), m["config"]["digest"].as_str().unwrap().to_string()];
    out.extend(m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn unused_images_are_evicted_and_pulled_again() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let Some(upstream) = Distribution::start() else { return };
    let work = TempDir::new().unwrap();
    let w = work.path();
    for (dir, file) in [("a", "only in old"), ("b", "only in recent"), ("x", "amd64"), ("y", "arm64")] {
        std::fs::create_dir_all(w.join(dir)).unwrap();
        std::fs::write(w.join(dir).join("file"), file).unwrap();
    }
    let arg = |dir: &str| w.join(dir).to_string_lossy().into_owned();
    // Two images sharing the busybox layer, and an index over two images.
    let old = make_image(w, "old", &["--layer", &arg("a")]);
    let recent = make_image(w, "recent", &["--layer", &arg("b")]);
    let multi = make_image(w, "multi", &["--index", &format!("linux/amd64={}", arg("x")), &format!("linux/arm64/v8={}", arg("y"))]);
    for (layout, name) in [("old", "library/old:v1"), ("recent", "library/recent:v1"), ("multi", "library/multi:v1")] {
        skopeo(&["copy", "--all", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", w.join(layout).display()), &format!("docker://{}/{name}", upstream.addr)]);
    }
    let children: Vec<String> = serde_json::from_slice::<Value>(&layout_blob(&w.join("multi"), &multi)).unwrap()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();

    // docker.io is a pure cache; local.io also takes pushes. Both evict after 30 days.
    let dir = TempDir::new().unwrap();
    let up = format!("http://{}", upstream.addr);
    let config = dir.path().join("registry.toml");
    std::fs::write(&config, [mirror("docker.io", &up, "max_age = \"30d\""), mirror("local.io", &up, "local = true\nmax_age = \"720h\"")].concat()).unwrap();
    let root = dir.path().join("data");
    let start = || Registry::start_at(&root, &["--config", &config.to_string_lossy()]);
    let reg = start();
    let pull = |reg: &Registry, from: &str, out: &str| {
        let out = w.join(out);
        skopeo(&["copy", "--all", "--src-tls-verify=false", &format!("docker://{}/{from}", reg.addr), &format!("oci:{}:latest", out.display())]);
        layout_digest(&out)
    };
    assert_eq!(pull(&reg, "library/old:v1", "pulled-old"), old, "{}", reg.log());
    assert_eq!(pull(&reg, "library/recent:v1", "pulled-recent"), recent);
    assert_eq!(pull(&reg, "library/multi:v1", "pulled-multi"), multi);
    // local.io: one image fetched from the upstream, one pushed here (which exists nowhere
    // else).
    assert_eq!(pull(&reg, "local.io/library/old:v1", "pulled-local-old"), old);
    skopeo(&["copy", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", w.join("recent").display()), &format!("docker://{}/local.io/team/mine:v1", reg.addr)]);
    let local_old = format!("local.io/library/old@{old}");
    // And one pushed here whose tag was then deleted: untagged, still pushed content.
    let by_digest = sha256(&push_image(&reg, "local.io/team/untagged", "gone", "untagged").await);
    assert_eq!(client().delete(reg.url("/v2/local.io/team/untagged/manifests/gone")).send().await.unwrap().status(), StatusCode::ACCEPTED);
    drop(reg);

    // 40 days pass; then only `recent` is pulled again.
    for sub in ["repositories", "blobs"] {
        age_files(&root.join(sub), Duration::from_secs(40 * 24 * 3600));
    }
    // With no registry running, gc opens the root itself and evicts the same way.
    let offline = gc(&root, &["--dry-run", "--grace", "0s", "--config", &config.to_string_lossy()]);
    assert!(offline.contains(&format!("would delete manifest docker.io/library/old@{old} (evicted: unused for 40d")), "{offline}");
    assert!(offline.contains("(6 evicted from mirror caches)"), "{offline}");
    let reg = start();
    assert_eq!(pull(&reg, "library/recent:v1", "pulled-recent-2"), recent);

    let evicted: Vec<String> = [format!("docker.io/library/old@{old}"), format!("docker.io/library/multi@{multi}"), local_old.clone()]
        .into_iter()
        .chain(children.iter().map(|c| format!("docker.io/library/multi@{c}")))
        .collect();
    // A dry run lists the evictions and what they release, and changes nothing.
    let files = reg.files();
    let blobs_before = stored_blobs(&root);
    let dry = gc(&root, &["--dry-run", "--grace", "0s"]);
    for m in &evicted {
        assert!(dry.contains(&format!("would delete manifest {m} (evicted: unused for 40d")), "{m}: {dry}");
    }
    assert!(dry.contains("would delete 5 manifests (5 evicted from mirror caches) and "), "{dry}");
    assert!(!dry.contains("library/recent") && !dry.contains("team/"), "{dry}");
    assert_eq!(reg.files(), files, "a dry run changed the storage");

    let out = gc(&root, &["--grace", "0s"]);
    assert!(out.contains("deleted 5 manifests (5 evicted from mirror caches) and "), "{out}");
    assert_eq!(out.replace("deleted ", "would delete "), dry, "the dry run foretold the sweep");
    // What only the evicted manifests used is gone; what recent shares with old stays.
    let kept: std::collections::BTreeSet<String> = image_blobs(&w.join("recent"), &recent).into_iter().collect();
    let mut gone: std::collections::BTreeSet<String> = image_blobs(&w.join("old"), &old).into_iter().collect();
    gone.insert(multi.clone());
    for c in &children {
        gone.extend(image_blobs(&w.join("multi"), c));
    }
    let gone: std::collections::BTreeSet<String> = gone.difference(&kept).cloned().collect();
    let after = stored_blobs(&root);
    assert_eq!(blobs_before.difference(&after).cloned().collect::<std::collections::BTreeSet<_>>(), gone);
    assert!(kept.is_subset(&after));
    assert!(image_blobs(&w.join("old"), &old).iter().any(|d| kept.contains(d)), "the images share a layer");
    assert!(!root.join("repositories/docker.io/library/old/_tags/v1").exists());
    assert!(!root.join("repositories/docker.io/library/old/_mirrored/v1").exists());
    let metrics = client().get(reg.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("berth_registry_mirror_evicted_total 5"), "{metrics}");

    // What was pushed to local.io stays and pulls; the evicted images come from the
    // upstream again.
    assert_eq!(pull(&reg, "local.io/team/mine:v1", "pulled-mine"), recent);
    assert_eq!(manifest_digest(&reg.url(&format!("/v2/local.io/team/untagged/manifests/{by_digest}"))).await.unwrap(), by_digest);
    let manifest_gets = upstream.requests("GET", "/v2/library/old/manifests/v1");
    let layer_a = image_blobs(&w.join("old"), &old).into_iter().find(|d| gone.contains(d) && *d != old).unwrap();
    let blob_gets = upstream.requests("GET", &format!("/v2/library/old/blobs/{layer_a}"));
    assert_eq!(pull(&reg, "library/old:v1", "pulled-old-2"), old, "{}", reg.log());
    assert_eq!(upstream.requests("GET", "/v2/library/old/manifests/v1"), manifest_gets + 1, "{}", upstream.log());
    assert!(upstream.requests("GET", &format!("/v2/library/old/blobs/{layer_a}")) > blob_gets, "{}", upstream.log());
    assert_eq!(pull(&reg, "library/multi:v1", "pulled-multi-2"), multi);
    // Just fetched: a sweep keeps it.
    let out = gc(&root, &["--grace", "0s"]);
    assert!(out.contains("deleted 0 manifests and 0 blobs"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_racing_evictions_get_whole_manifests() {
    let Some(upstream) = Distribution::start() else { return };
    let digest = push_image_to(&upstream.addr, "library/hot", "v1", "hot", &[b"hot layer"]).await;
    let dir = TempDir::new().unwrap();
    // The tag stays fresh in memory for the whole test while its manifest is evicted
    // under it again and again. The namespace is local so that pushes to the repository,
    // which drop its manifests from the in-memory cache, make readers look at the disk
    // while the sweep works.
    let reg = start_mirror(&dir, &[mirror("docker.io", &format!("http://{}", upstream.addr), "max_age = \"1h\"\nmanifest_ttl = \"1h\"\nlocal = true")]);
    let root = reg.root().to_path_buf();
    let base = reg.url("/v2/library/hot/manifests/");
    assert_eq!(manifest_digest(&format!("{base}v1")).await.unwrap(), digest);
    // What the pushes below reference, referenced from the start (a sweep with grace 0
    // would delete it between its upload and a manifest).
    let config = push_blob(&reg, "library/hot", b"{}").await;
    let r = put_manifest(&reg, "library/hot", "pushed", OCI_MANIFEST, json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor("application/vnd.oci.image.config.v1+json", b"{}"), "layers": [] }).to_string().as_bytes()).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{config}: {}", r.text().await.unwrap_or_default());

    let rounds = 4;
    for round in 0..rounds {
        // Blobs nothing references, which the sweep deletes after the eviction: the time
        // it takes is the time readers may find the manifest gone from the disk before
        // the sweep ends and the registry forgets what it knew about the tag.
        for i in 0..100 {
            push_blob(&reg, "junk/blobs", format!("junk {round} {i}").as_bytes()).await;
        }
        age_files(&root.join("repositories/docker.io/library/hot/_cached"), Duration::from_secs(2 * 3600));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        let pusher = {
            let (stop, reg_url) = (stop.clone(), reg.url(""));
            tokio::spawn(async move {
                let mut pushes = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let manifest = json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor("application/vnd.oci.image.config.v1+json", b"{}"), "layers": [], "annotations": { "n": pushes.to_string() } });
                    let r = client().put(format!("{reg_url}/v2/library/hot/manifests/pushed")).header("content-type", OCI_MANIFEST).body(manifest.to_string()).send().await.unwrap();
                    assert_eq!(r.status(), StatusCode::CREATED, "round {round} push {pushes}: {}", r.text().await.unwrap_or_default());
                    pushes += 1;
                }
                pushes
            })
        };
        for i in 0..6 {
            let (stop, base, digest) = (stop.clone(), base.clone(), digest.clone());
            clients.push(tokio::spawn(async move {
                let reference = if i % 2 == 0 { "v1".to_string() } else { digest.clone() };
                let head = i % 3 == 2;
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let request = if head { client().head(format!("{base}{reference}")) } else { client().get(format!("{base}{reference}")) };
                    let r = request.header("accept", ACCEPT).send().await.unwrap();
                    let status = r.status();
                    let header_digest = header(&r, "docker-content-digest").to_string();
                    let body = r.bytes().await.unwrap();
                    assert_eq!(status, StatusCode::OK, "{reference}: {}", String::from_utf8_lossy(&body));
                    assert_eq!(header_digest, digest);
                    if !head {
                        assert_eq!(sha256(&body), digest, "a partial or wrong manifest");
                    }
                    answered += 1;
                }
                answered
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = root.clone();
        let out = tokio::task::spawn_blocking(move || gc(&r, &["--grace", "0s"])).await.unwrap();
        assert!(out.contains("(1 evicted from mirror caches)"), "round {round}: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            assert!(c.await.unwrap() > 0);
        }
        assert!(pusher.await.unwrap() > 0);
    }
    // Each eviction made the next pull fetch the manifest again.
    let fetched = upstream.requests("GET", "/v2/library/hot/manifests/v1") + upstream.requests("GET", &format!("/v2/library/hot/manifests/{digest}"));
    assert!(fetched > rounds, "{fetched} fetches: {}", upstream.log());
    let metrics = client().get(reg.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("berth_registry_mirror_evicted_total {rounds}")), "{metrics}");
}

#[test]
fn a_bad_max_age_is_refused_naming_the_mirror() {
    let dir = TempDir::new().unwrap();
    for (value, expected) in [("\"a month\"", "mirror ghcr.io: max_age: invalid duration \"a month\""), ("\"0s\"", "mirror ghcr.io: max_age: invalid duration \"0s\": must be longer than zero")] {
        let config = dir.path().join("registry.toml");
        std::fs::write(&config, mirror("ghcr.io", "http://127.0.0.1:9", &format!("max_age = {value}"))).unwrap();
        let Err(e) = Registry::spawn(&dir.path().join("data"), &["serve", "--addr", "127.0.0.1:0", "--root", &dir.path().join("data").to_string_lossy(), "--config", &config.to_string_lossy()]) else {
            panic!("max_age = {value} was accepted");
        };
        assert!(e.contains(expected), "{e}");
    }
}
