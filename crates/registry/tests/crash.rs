//! Crash safety and concurrency: kill -9 in the middle of uploads, restart on the same
//! root, and check that nothing partial is visible and interrupted uploads resume; many
//! clients pushing the same blob at once.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256, Sha512};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ seed).collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every stored blob hashes to its name; no temporary file is visible as a blob.
fn assert_blob_store_consistent(root: &Path) {
    for alg in ["sha256", "sha512"] {
        let dir = root.join("blobs").join(alg);
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let data = std::fs::read(entry.path()).unwrap();
            let actual = if alg == "sha256" { hex::encode(Sha256::digest(&data)) } else { hex::encode(Sha512::digest(&data)) };
            assert_eq!(actual, name, "blob {alg}:{name} does not match its content ({} bytes)", data.len());
        }
    }
}

#[tokio::test]
async fn kill9_during_patch_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let data = pattern(5 << 20, 7);
    let digest = sha256(&data);
    let first = 3 << 20;

    let mut reg = Registry::start_at(&root, &[]);
    let c = client();
    let r = c.post(reg.url("/v2/crash/patch/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location").to_string();
    let id = header(&r, "docker-upload-uuid").to_string();

    // A slow PATCH: 3 MiB arrive, then the client goes quiet with the request open.
    let (tx, body) = fed_body();
    let request = tokio::spawn(client().patch(reg.url(&location)).body(body).send());
    for chunk in data[..first].chunks(64 << 10) {
        tx.send(chunk.to_vec()).await.unwrap();
    }
    let session_data = root.join("uploads").join(&id).join("data");
    wait_for("the first 3 MiB on disk", || std::fs::metadata(&session_data).is_ok_and(|m| m.len() == first as u64)).await;
    reg.kill9();
    let _ = request.await;
    drop(tx);

    let reg = Registry::start_at(&root, &[]);
    let r = c.head(reg.url(&format!("/v2/crash/patch/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a partial blob is visible");
    assert_blob_store_consistent(&root);

    // The session survived the crash, with exactly the bytes that reached the disk.
    let r = c.get(reg.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", reg.log());
    assert_eq!(header(&r, "range"), format!("0-{}", first - 1));
    assert_eq!(header(&r, "docker-upload-uuid"), id);
    let r = c
        .patch(reg.url(&location))
        .header("content-range", format!("{first}-{}", data.len() - 1))
        .body(data[first..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", r.text().await.unwrap());
    let r = c.put(reg.url(&format!("{location}?digest={digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let got = c.get(reg.url(&format!("/v2/crash/patch/blobs/{digest}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&got), digest);
    assert!(!root.join("uploads").join(&id).exists());
}

#[tokio::test]
async fn kill9_at_random_moments_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let blobs: Vec<Vec<u8>> = (0..24u8).map(|i| pattern((1 << 20) + i as usize * 4099, i)).collect();
    let delays = [20u64, 80, 200, 400, 700, 1000];
    for (round, delay) in delays.iter().enumerate() {
        let mut reg = Registry::start_at(&root, &[]);
        let addr = reg.addr.clone();
        let to_push = blobs.clone();
        // Monolithic and chunked pushes back to back, killed part way.
        let pusher = tokio::spawn(async move {
            let c = client();
            for (i, blob) in to_push.iter().enumerate() {
                let digest = sha256(blob);
                let name = format!("crash/r{round}");
                let result = if i % 2 == 0 {
                    c.post(format!("http://{addr}/v2/{name}/blobs/uploads/?digest={digest}")).body(blob.clone()).send().await
                } else {
                    let Ok(r) = c.post(format!("http://{addr}/v2/{name}/blobs/uploads/")).send().await else { break };
                    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    if c.patch(format!("http://{addr}{location}")).body(blob.clone()).send().await.is_err() {
                        break;
                    }
                    c.put(format!("http://{addr}{location}?digest={digest}")).send().await
                };
                if result.is_err() {
                    break;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        reg.kill9();
        let _ = pusher.await;

        // After the crash: every stored blob is whole, every visible blob reads back right,
        // and temporary files are gone once the registry starts again.
        assert_blob_store_consistent(&root);
        let reg = Registry::start_at(&root, &[]);
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        let c = client();
        for blob in &blobs {
            let digest = sha256(blob);
            let r = c.get(reg.url(&format!("/v2/crash/r{round}/blobs/{digest}"))).send().await.unwrap();
            match r.status() {
                StatusCode::OK => assert_eq!(sha256(&r.bytes().await.unwrap()), digest),
                StatusCode::NOT_FOUND => {}
                other => panic!("unexpected status {other}"),
            }
        }
        for entry in std::fs::read_dir(root.join("uploads")).unwrap().flatten() {
            assert!(entry.path().join("state.json").is_file() && entry.path().join("data").is_file(), "incomplete session {:?}", entry.path());
        }
    }
}

#[tokio::test]
async fn concurrent_pushes_of_the_same_blob() {
    let reg = Registry::start();
    let data = pattern(8 << 20, 42);
    let digest = sha256(&data);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (url, data, digest) = (reg.url(""), data.clone(), digest.clone());
        let name = if i % 2 == 0 { "same/a" } else { "same/b" };
        tasks.push(tokio::spawn(async move {
            let c = client();
            let r = c.post(format!("{url}/v2/{name}/blobs/uploads/")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            let mut location = header(&r, "location").to_string();
            let half = data.len() / 2;
            for (start, chunk) in [(0, &data[..half]), (half, &data[half..])] {
                let r = c
                    .patch(format!("{url}{location}"))
                    .header("content-range", format!("{start}-{}", start + chunk.len() - 1))
                    .body(chunk.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::ACCEPTED);
                location = header(&r, "location").to_string();
            }
            let r = c.put(format!("{url}{location}?digest={digest}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let blobs: Vec<_> = std::fs::read_dir(reg.root().join("blobs/sha256")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(blobs, vec![std::ffi::OsString::from(&digest[7..])]);
    let c = client();
    for name in ["same/a", "same/b"] {
        let r = c.get(reg.url(&format!("/v2/{name}/blobs/{digest}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
    }
    assert_eq!(std::fs::read_dir(reg.root().join("uploads")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(reg.root().join("tmp")).unwrap().count(), 0);
}
