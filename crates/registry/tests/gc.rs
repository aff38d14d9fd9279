//! Online garbage collection: `berth-registry gc` against a running registry (through its
//! admin socket) and a stopped one, the background sweep, the grace period, pushes racing
//! sweeps, dry runs, and kill -9 in the middle of a sweep.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// `berth-registry gc --root ROOT ARGS`.
fn gc(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["--log-level", "warn", "gc", "--root"])
        .arg(root)
        .args(args)
        .output()
        .expect("running berth-registry gc")
}

fn gc_ok(root: &Path, args: &[&str]) -> String {
    let out = gc(root, args);
    assert!(out.status.success(), "gc {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The digests of the stored blobs.
fn blob_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for alg in ["sha256", "sha512"] {
        for e in std::fs::read_dir(root.join("blobs").join(alg)).unwrap().flatten() {
            out.insert(format!("{alg}:{}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// Pushes an image of a config made from `seed` and `layers` to `name:tag`; returns the
/// manifest's digest and the digests of its config and layers.
async fn push_layers(reg: &Registry, name: &str, tag: &str, seed: &str, layers: &[&[u8]]) -> (String, Vec<String>) {
    let config = json!({ "architecture": "amd64", "os": "linux", "seed": seed }).to_string().into_bytes();
    let mut blobs = vec![push_blob(reg, name, &config).await];
    for layer in layers {
        blobs.push(push_blob(reg, name, layer).await);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let r = put_manifest(reg, name, tag, OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    (sha256(&manifest), blobs)
}

async fn status(r: reqwest::RequestBuilder) -> StatusCode {
    r.send().await.unwrap().status()
}

/// Every tagged manifest in every repository reads back, and so does everything it
/// references (children of indexes too), with the right digests.
async fn assert_images_complete(reg: &Registry) {
    let c = client();
    let catalog: Value = c.get(reg.url("/v2/_catalog")).send().await.unwrap().json().await.unwrap();
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let tags: Value = c.get(reg.url(&format!("/v2/{repo}/tags/list"))).send().await.unwrap().json().await.unwrap();
        let mut queue: Vec<String> = tags["tags"].as_array().into_iter().flatten().map(|t| t.as_str().unwrap().to_string()).collect();
        while let Some(reference) = queue.pop() {
            let r = c.get(reg.url(&format!("/v2/{repo}/manifests/{reference}"))).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{repo}:{reference}");
            let m: Value = r.json().await.unwrap();
            for child in m["manifests"].as_array().into_iter().flatten() {
                queue.push(child["digest"].as_str().unwrap().to_string());
            }
            for d in m["layers"].as_array().into_iter().flatten().chain(m.get("config")) {
                let digest = d["digest"].as_str().unwrap();
                let body = c.get(reg.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap();
                assert_eq!(body.status(), StatusCode::OK, "{repo}:{reference} lost {digest}");
                let body = body.bytes().await.unwrap();
                assert_eq!(format!("sha256:{}", hex::encode(Sha256::digest(&body))), digest);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sweep_keeps_shared_layers_and_the_other_image_still_pulls() {
    let reg = Registry::start();
    let (shared, a_only, b_only) = (b"shared layer".as_slice(), b"layer of a".as_slice(), b"layer of b".as_slice());
    let (a, a_blobs) = push_layers(&reg, "app/a", "v1", "a", &[shared, a_only]).await;
    let (b, _) = push_layers(&reg, "app/b", "v1", "b", &[shared, b_only]).await;
    assert_eq!(status(client().delete(reg.url(&format!("/v2/app/a/manifests/{a}")))).await, StatusCode::ACCEPTED);
    let garbage: BTreeSet<String> = [a.clone(), a_blobs[0].clone(), a_blobs[2].clone()].into();

    // A dry run names what would go and deletes nothing.
    let files = reg.files();
    let before = blob_files(reg.root());
    let out = gc_ok(reg.root(), &["--dry-run", "--grace", "0s"]);
    for d in &garbage {
        assert!(out.contains(&format!("would delete blob {d}")), "{out}");
    }
    assert!(out.contains("would delete 0 manifests and 3 blobs"), "{out}");
    assert_eq!(reg.files(), files, "a dry run changed the storage");

    // Within the grace period nothing goes.
    let out = gc_ok(reg.root(), &[]);
    assert!(out.contains("deleted 0 manifests and 0 blobs"), "{out}");

    let out = gc_ok(reg.root(), &["--grace", "0s"]);
    assert!(out.contains("deleted 0 manifests and 3 blobs"), "{out}");
    let after = blob_files(reg.root());
    assert_eq!(before.difference(&after).cloned().collect::<BTreeSet<_>>(), garbage);
    assert_eq!(status(client().get(reg.url(&format!("/v2/app/a/blobs/{}", a_blobs[2])))).await, StatusCode::NOT_FOUND);
    assert_eq!(status(client().get(reg.url(&format!("/v2/app/b/manifests/{b}")))).await, StatusCode::OK);
    assert_images_complete(&reg).await;
    assert!(!reg.root().join("repositories/app/a/_layers/sha256").join(&a_blobs[2][7..]).exists(), "link to a deleted blob left");

    let metrics = client().get(reg.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("berth_registry_gc_runs_total 2"), "{metrics}");
    assert!(metrics.contains("berth_registry_gc_blobs_deleted_total 3"), "{metrics}");

    // A real client pulls what is left.
    if have("skopeo", "skopeo") {
        let out = TempDir::new().unwrap();
        skopeo(&["copy", "--src-tls-verify=false", "--preserve-digests", &format!("docker://{}/app/b:v1", reg.addr), &format!("oci:{}:latest", out.path().join("b").display())]);
        assert_eq!(layout_digest(&out.path().join("b")), b);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn untagged_manifests_go_and_indexes_and_referrers_hold_theirs() {
    let reg = Registry::start();
    let (old, old_blobs) = push_layers(&reg, "app/x", "v1", "old", &[b"old layer"]).await;
    // v1 moves on: the old manifest is untagged.
    let (new, _) = push_layers(&reg, "app/x", "v1", "new", &[b"new layer"]).await;
    // A signature of the new one, pushed by digest: kept while its subject lives.
    let sig_config = push_blob(&reg, "app/x", b"{}").await;
    let sig = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": sig_config, "size": 2 },
        "layers": [], "subject": { "mediaType": OCI_MANIFEST, "digest": new, "size": 1 },
    })
    .to_string()
    .into_bytes();
    let sig_digest = sha256(&sig);
    assert_eq!(put_manifest(&reg, "app/x", &sig_digest, OCI_MANIFEST, &sig).await.status(), StatusCode::CREATED);
    // An index whose children were pushed by digest.
    let (e, _) = push_layers(&reg, "app/multi", "e-tmp", "e", &[b"e layer"]).await;
    let (f, _) = push_layers(&reg, "app/multi", "f-tmp", "f", &[b"f layer"]).await;
    for t in ["e-tmp", "f-tmp"] {
        assert_eq!(status(client().delete(reg.url(&format!("/v2/app/multi/manifests/{t}")))).await, StatusCode::ACCEPTED);
    }
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            { "mediaType": OCI_MANIFEST, "digest": e, "size": 1, "platform": { "architecture": "amd64", "os": "linux" } },
            { "mediaType": OCI_MANIFEST, "digest": f, "size": 1, "platform": { "architecture": "arm64", "os": "linux" } },
        ],
    })
    .to_string()
    .into_bytes();
    assert_eq!(put_manifest(&reg, "app/multi", "v1", OCI_INDEX, &index).await.status(), StatusCode::CREATED);

    // Untagged but young: kept.
    let out = gc_ok(reg.root(), &["--grace", "1h"]);
    assert!(out.contains("deleted 0 manifests and 0 blobs"), "{out}");

    let out = gc_ok(reg.root(), &["--grace", "0s"]);
    assert!(out.contains(&format!("deleted manifest app/x@{old}")), "{out}");
    assert!(out.contains("deleted 1 manifests"), "only the untagged image goes: {out}");
    for d in &old_blobs {
        assert!(out.contains(&format!("deleted blob {d}")), "{out}");
    }
    assert_eq!(status(client().get(reg.url(&format!("/v2/app/x/manifests/{old}")))).await, StatusCode::NOT_FOUND);
    assert_eq!(status(client().get(reg.url(&format!("/v2/app/x/manifests/{sig_digest}")))).await, StatusCode::OK);
    let referrers: Value = client().get(reg.url(&format!("/v2/app/x/referrers/{new}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], sig_digest.as_str());
    assert_images_complete(&reg).await;

    // The index untagged: it goes, then its children, then their blobs, in one sweep.
    assert_eq!(status(client().delete(reg.url("/v2/app/multi/manifests/v1"))).await, StatusCode::ACCEPTED);
    let out = gc_ok(reg.root(), &["--grace", "0s"]);
    // The index and its two children, and their 3 manifest bodies, 2 configs, 2 layers.
    assert!(out.contains("deleted 3 manifests and 7 blobs"), "{out}");
    for d in [&e, &f] {
        assert_eq!(status(client().get(reg.url(&format!("/v2/app/multi/manifests/{d}")))).await, StatusCode::NOT_FOUND);
    }
    // The signature goes with its subject.
    assert_eq!(status(client().delete(reg.url(&format!("/v2/app/x/manifests/{new}")))).await, StatusCode::ACCEPTED);
    let out = gc_ok(reg.root(), &["--grace", "0s"]);
    assert!(out.contains(&format!("deleted manifest app/x@{sig_digest}")), "{out}");
    let left = blob_files(reg.root());
    assert!(left.is_empty(), "everything was unreferenced: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreferenced_blob_is_kept_for_the_grace_period_and_uploads_are_never_touched() {
    let reg = Registry::start();
    let orphan = push_blob(&reg, "app/up", b"uploaded, no manifest yet").await;
    // An upload in progress.
    let c = client();
    let r = c.post(reg.url("/v2/app/up/blobs/uploads/")).send().await.unwrap();
    let location = header(&r, "location").to_string();
    let r = c.patch(reg.url(&location)).body(b"first half ".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let out = gc_ok(reg.root(), &["--grace", "1h"]);
    assert!(out.contains("deleted 0 manifests and 0 blobs"), "{out}");
    assert!(blob_files(reg.root()).contains(&orphan));

    let out = gc_ok(reg.root(), &["--grace", "0s"]);
    assert!(out.contains(&format!("deleted blob {orphan}")), "{out}");
    assert_eq!(status(c.head(reg.url(&format!("/v2/app/up/blobs/{orphan}")))).await, StatusCode::NOT_FOUND);

    // The upload goes on and completes.
    let whole = b"first half second half";
    let r = c.put(reg.url(&format!("{location}?digest={}", sha256(whole)))).body(b"second half".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    let body = c.get(reg.url(&format!("/v2/app/up/blobs/{}", sha256(whole)))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body.as_ref(), whole);
}

#[tokio::test(flavor = "multi_thread")]
async fn background_sweeps_respect_the_grace_period() {
    let dir = TempDir::new().unwrap();
    let reg = Registry::start_with_config(dir.path(), "[gc]\ninterval = \"1s\"\ngrace = \"3s\"\n");
    let (gone, _) = push_layers(&reg, "app/bg", "v1", "bg", &[b"bg layer"]).await;
    let kept = push_image(&reg, "app/bg", "v2", "kept").await;
    assert_eq!(status(client().delete(reg.url(&format!("/v2/app/bg/manifests/{gone}")))).await, StatusCode::ACCEPTED);
    let released = Instant::now();
    let deadline = released + Duration::from_secs(20);
    while blob_files(reg.root()).contains(&gone) {
        assert!(Instant::now() < deadline, "not swept: {}", reg.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(released.elapsed() >= Duration::from_millis(2900), "swept before its grace period ended");
    assert!(blob_files(reg.root()).contains(&sha256(&kept)));
    assert_images_complete(&reg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_during_sweeps_stay_intact() {
    let reg = Arc::new(Registry::start());
    // Garbage for the sweeps to work on.
    for i in 0..20 {
        let (d, _) = push_layers(&reg, "app/old", &format!("t{i}"), &format!("old {i}"), &[format!("old layer {i}").as_bytes()]).await;
        assert_eq!(status(client().delete(reg.url(&format!("/v2/app/old/manifests/{d}")))).await, StatusCode::ACCEPTED);
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // With a grace period, every push succeeds while sweeps run.
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let (root, stop) = (reg.root().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) || runs == 0 {
                gc_ok(&root, &["--grace", "3s"]);
                runs += 1;
            }
            runs
        })
    };
    for i in 0..30 {
        let seed = format!("new {i}");
        try_push_image(&client(), &reg, "app/new", &format!("t{i}"), &seed).await.unwrap_or_else(|(s, b)| panic!("push {i}: {s} {b}"));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(sweeper.join().unwrap() > 0);
    assert_images_complete(&reg).await;
    let tags: Value = client().get(reg.url("/v2/app/new/tags/list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 30);

    // With no grace at all a sweep may take a blob between its upload and the manifest:
    // the push is refused then, never stored with a dangling reference.
    stop.store(false, Ordering::Relaxed);
    let sweeper = {
        let (root, stop) = (reg.root().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                gc_ok(&root, &["--grace", "0s"]);
                // Pauses let some pushes through whole.
                std::thread::sleep(Duration::from_millis(rand_ms()));
            }
        })
    };
    let mut refused = 0;
    for i in 0..40 {
        match try_push_image(&client(), &reg, "app/race", &format!("t{i}"), &format!("race {i}")).await {
            Ok(_) => {}
            Err((s, body)) => {
                assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
                assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{body}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    sweeper.join().unwrap();
    eprintln!("{refused} of 40 pushes lost a blob to a sweep with no grace period");
    assert_images_complete(&reg).await;
}

/// A pause of 0-60 ms, different each time.
fn rand_ms() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    u64::from(nanos % 61)
}

/// Every stored blob hashes to its name.
fn assert_blob_store_consistent(root: &Path) {
    for digest in blob_files(root) {
        let data = std::fs::read(root.join("blobs/sha256").join(&digest[7..])).unwrap();
        assert_eq!(sha256(&data), digest);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_a_sweep_then_restart_and_sweep_offline() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("data");
    let mut reg = Registry::start_at(&root, &[]);
    for i in 0..5 {
        push_layers(&reg, "app/keep", &format!("v{i}"), &format!("keep {i}"), &[b"shared base", format!("keep layer {i}").as_bytes()]).await;
    }
    // Plenty of garbage: unreferenced blobs and deleted images sharing the kept base.
    let c = client();
    for i in 0..300 {
        push_blob(&reg, "app/junk", format!("junk blob {i}").as_bytes()).await;
    }
    for i in 0..20 {
        let (d, _) = push_layers(&reg, "app/gone", "v1", &format!("gone {i}"), &[b"shared base", format!("gone layer {i}").as_bytes()]).await;
        assert_eq!(status(c.delete(reg.url(&format!("/v2/app/gone/manifests/{d}")))).await, StatusCode::ACCEPTED);
    }
    let before = blob_files(&root).len();

    let mut sweep = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["--log-level", "warn", "gc", "--grace", "0s", "--root"])
        .arg(&root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while blob_files(&root).len() + 20 > before {
        assert!(Instant::now() < deadline, "the sweep did not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    reg.kill9();
    let _ = sweep.wait();
    let left = blob_files(&root).len();
    eprintln!("killed with {} of {} blobs deleted", before - left, before);

    let reg = Registry::start_at(&root, &[]);
    assert_blob_store_consistent(&root);
    assert_images_complete(&reg).await;
    // The sweep finishes on the next run, with nothing broken.
    drop(reg);
    // Offline, on a stopped registry (its admin socket is stale now).
    let out = gc_ok(&root, &["--grace", "0s"]);
    assert!(out.contains("deleted"), "{out}");
    let reg = Registry::start_at(&root, &[]);
    assert_images_complete(&reg).await;
    // 5 manifests, 5 configs, 5 own layers, the shared base.
    assert_eq!(blob_files(&root).len(), 16, "garbage left");
    assert_eq!(status(c.get(reg.url("/v2/app/keep/manifests/v4"))).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_manifest_stops_blob_collection() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("data");
    let reg = Registry::start_at(&root, &[]);
    let (image, _) = push_layers(&reg, "app/damaged", "v1", "damaged", &[b"damaged layer"]).await;
    let orphan = push_blob(&reg, "app/damaged", b"an orphan").await;
    drop(reg);
    // The disk damaged the manifest's bytes: what it references cannot be known.
    std::fs::write(root.join("blobs/sha256").join(&image[7..]), b"not json").unwrap();
    let reg = Registry::start_at(&root, &[]);
    assert!(reg.log().contains("unreadable manifest"), "{}", reg.log());
    let out = gc_ok(&root, &["--grace", "0s"]);
    assert!(out.contains("deleted 0 manifests and 0 blobs"), "{out}");
    assert!(blob_files(&root).contains(&orphan));
}
