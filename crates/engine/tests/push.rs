//! push against Debian's reference registry (`docker-registry`, distribution 2.8): docker's
//! progress lines, digests skopeo agrees with, skipped and mounted layers, pull back into a
//! fresh store, and basic auth.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use berth_engine::{AuthConfig, ErrorKind, Images};
use common::*;

/// A registry started with tests/registry.sh, stopped on drop.
struct Registry {
    dir: PathBuf,
    addr: String,
}

impl Registry {
    fn start(dir: &Path, htpasswd: Option<&str>) -> Option<Registry> {
        if !Path::new("/usr/bin/docker-registry").exists() {
            return None;
        }
        let dir = dir.join("registry");
        let mut command = Command::new(repo_root().join("tests/registry.sh"));
        command.arg("start").arg(&dir);
        if let Some(user) = htpasswd {
            command.arg("--htpasswd").arg(user);
        }
        let addr = run(&mut command).trim().to_string();
        Some(Registry { dir, addr })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("tests/registry.sh")).arg("stop").arg(&self.dir).status();
    }
}

fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    let mut command = Command::new("skopeo");
    command.args(["inspect", "--tls-verify=false"]);
    if let Some(creds) = creds {
        command.arg("--creds").arg(creds);
    }
    let out = run(command.arg(format!("docker://{reference}")));
    let value: serde_json::Value = serde_json::from_str(&out).expect("skopeo json");
    value["Digest"].as_str().expect("digest").to_string()
}

/// Pushes and returns the progress lines and the aux digests.
async fn push(images: &Arc<Images>, name: &str, tag: Option<&str>, auth: Option<AuthConfig>) -> berth_engine::Result<(Vec<String>, Vec<String>)> {
    let (progress, mut rx) = progress();
    images.push(name, tag, auth, &progress).await?;
    let messages = drain(&mut rx);
    let digests = messages.iter().filter_map(|m| m.aux.as_ref()?.get("Digest")?.as_str().map(str::to_string)).collect();
    Ok((progress_lines(&messages), digests))
}

#[tokio::test(flavor = "multi_thread")]
async fn push_reports_like_docker_and_the_image_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start(dir.path(), None) else {
        eprintln!("skipping: docker-registry is not installed (apt-get install docker-registry)");
        return;
    };
    let engine = open_engine(&dir.path().join("one"));
    let name = format!("{}/app", registry.addr);
    let id = import_busybox(&engine.images, dir.path(), &format!("{name}:1")).await;
    let diff = engine.images.inspect(&id).unwrap().parsed.rootfs.diff_ids[0].clone();
    let short = &diff[7..19];

    let (lines, digests) = push(&engine.images, &name, Some("1"), None).await.unwrap();
    assert_eq!(lines[0], format!("The push refers to repository [{name}]"));
    assert!(lines.contains(&format!("{short}: Preparing")), "{lines:?}");
    assert!(lines.contains(&format!("{short}: Pushed")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with(&format!("{short}: Pushing"))), "{lines:?}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("1: digest: sha256:") && last.contains(" size: "), "{last}");
    assert_eq!(digests.len(), 1);
    let digest = digests[0].clone();
    assert_eq!(last, &format!("1: digest: {digest} size: {}", last.rsplit(' ').next().unwrap()));

    // The registry serves what push reported, and the engine records the repo digest.
    assert_eq!(skopeo_digest(&format!("{name}:1"), None), digest);
    let view = engine.images.inspect(&id).unwrap();
    assert_eq!(view.repo_digests, [format!("{name}@{digest}")]);

    // Again: every layer is already there, and the manifest (reused) has the same digest.
    let (lines, digests) = push(&engine.images, &name, Some("1"), None).await.unwrap();
    assert!(lines.contains(&format!("{short}: Layer already exists")), "{lines:?}");
    assert_eq!(digests, std::slice::from_ref(&digest));

    // Another repository of the same registry: the layer is mounted, not uploaded.
    let other = format!("{}/team/copy", registry.addr);
    engine.images.tag(&format!("{name}:1"), &format!("{other}:2")).unwrap();
    let (lines, digests) = push(&engine.images, &format!("{other}:2"), None, None).await.unwrap();
    assert!(lines.contains(&format!("{short}: Mounted from app")), "{lines:?}");
    assert_eq!(skopeo_digest(&format!("{other}:2"), None), digests[0]);

    // A fresh store pulls it back: the same image.
    let fresh = open_engine(&dir.path().join("two"));
    let (pulling, _rx) = progress();
    fresh.images.pull(&format!("{name}:1"), None, false, None, &pulling).await.unwrap();
    let pulled = fresh.images.inspect(&format!("{name}:1")).unwrap();
    assert_eq!(pulled.record.id, id);
    assert_eq!(pulled.repo_digests, [format!("{name}@{digest}")]);
    assert!(pulled.layer_dirs[0].join("bin/busybox").is_file());
    let (past, _) = engine.events.subscribe(Some(0));
    assert!(past.iter().any(|e| e.action == "push"));
}

#[tokio::test(flavor = "multi_thread")]
async fn push_of_a_loaded_image_gzips_its_layer_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start(dir.path(), None) else {
        eprintln!("skipping: docker-registry is not installed");
        return;
    };
    let first = open_engine(&dir.path().join("one"));
    let name = format!("{}/loaded", registry.addr);
    let id = import_busybox(&first.images, dir.path(), &format!("{name}:v1")).await;
    let archive = dir.path().join("image.tar");
    first.images.save(&[format!("{name}:v1")], std::fs::File::create(&archive).unwrap()).await.unwrap();

    // Loaded from an archive the layer is stored uncompressed.
    let second = open_engine(&dir.path().join("two"));
    let (loading, _rx) = progress();
    second.images.load(std::fs::File::open(&archive).unwrap(), true, &loading).await.unwrap();
    let diff = second.images.inspect(&id).unwrap().parsed.rootfs.diff_ids[0].clone();
    let blobs = |engine: &berth_engine::Engine| engine.images.meta().read().unwrap().layer(&diff).unwrap().unwrap().blobs;
    assert_eq!(blobs(&second).len(), 1);
    assert_eq!(blobs(&second)[0].media_type, "application/vnd.oci.image.layer.v1.tar");

    let (_, digests) = push(&second.images, &name, Some("v1"), None).await.unwrap();
    assert_eq!(skopeo_digest(&format!("{name}:v1"), None), digests[0]);
    let after = blobs(&second);
    assert_eq!(after.len(), 2, "the gzip made for the push is kept");
    let gzip = after.iter().find(|b| b.media_type.ends_with("gzip")).unwrap();
    assert_eq!(gzip.sources, std::slice::from_ref(&name));
    // The next push reuses it.
    let (lines, digests_again) = push(&second.images, &name, Some("v1"), None).await.unwrap();
    assert_eq!(digests_again, digests);
    assert!(lines.iter().any(|l| l.ends_with("Layer already exists")), "{lines:?}");
    assert_eq!(blobs(&second).len(), 2);

    let third = open_engine(&dir.path().join("three"));
    let (pulling, _rx) = progress();
    third.images.pull(&format!("{name}:v1"), None, false, None, &pulling).await.unwrap();
    assert_eq!(third.images.inspect(&format!("{name}:v1")).unwrap().record.id, id);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_without_a_tag_pushes_every_tag_and_unknown_names_fail() {
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start(dir.path(), None) else {
        eprintln!("skipping: docker-registry is not installed");
        return;
    };
    let engine = open_engine(&dir.path().join("one"));
    let name = format!("{}/tags", registry.addr);
    import_busybox(&engine.images, dir.path(), &format!("{name}:a")).await;
    engine.images.tag(&format!("{name}:a"), &format!("{name}:b")).unwrap();
    let (lines, digests) = push(&engine.images, &name, None, None).await.unwrap();
    assert_eq!(lines.iter().filter(|l| l.starts_with("The push refers to")).count(), 1);
    assert!(lines.iter().any(|l| l.starts_with("a: digest: ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("b: digest: ")), "{lines:?}");
    assert_eq!(digests.len(), 2);
    assert_eq!(skopeo_digest(&format!("{name}:b"), None), digests[1]);

    let missing = format!("{}/nothing", registry.addr);
    let err = push(&engine.images, &missing, None, None).await.unwrap_err();
    assert_eq!(err.to_string(), format!("An image does not exist locally with the tag: {missing}"));
    let err = push(&engine.images, &name, Some("zzz"), None).await.unwrap_err();
    assert_eq!(err.to_string(), format!("An image does not exist locally with the tag: {name}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn push_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start(dir.path(), Some("tester:right-password")) else {
        eprintln!("skipping: docker-registry is not installed");
        return;
    };
    let engine = open_engine(&dir.path().join("one"));
    let name = format!("{}/private", registry.addr);
    import_busybox(&engine.images, dir.path(), &format!("{name}:1")).await;
    let creds = |password: &str| AuthConfig {
        username: "tester".to_string(),
        password: password.to_string(),
        server_address: registry.addr.clone(),
        ..Default::default()
    };

    for auth in [None, Some(creds("wrong-password"))] {
        let anonymous = auth.is_none();
        let err = push(&engine.images, &name, Some("1"), auth).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "anonymous={anonymous}: {err}");
        let message = err.to_string();
        assert!(message.contains("denied") || message.contains("unauthorized"), "{message}");
    }
    let (_, digests) = push(&engine.images, &name, Some("1"), Some(creds("right-password"))).await.unwrap();
    assert_eq!(skopeo_digest(&format!("{name}:1"), Some("tester:right-password")), digests[0]);
}
