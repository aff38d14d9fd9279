//! Real clients against the registry: skopeo (copy in and out, inspect, index copies,
//! Docker media types, cross-repository copies, delete), dockerd with the docker CLI
//! (push, pull) and podman (push, pull). Each test skips with a message when its tool is
//! missing; everything a test starts is stopped and removed when it ends.

mod common;

use std::process::Command;

use common::peers::*;
use common::*;
use serde_json::Value;
use tempfile::TempDir;

#[test]
fn skopeo_copy_in_inspect_and_out() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let reg = Registry::start();
    let work = TempDir::new().unwrap();
    let digest = make_image(work.path(), "in", &[]);
    let dest = format!("docker://{}/skopeo/busybox:latest", reg.addr);
    skopeo(&["copy", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", work.path().join("in").display()), &dest]);

    let info: Value = serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &dest])).unwrap();
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["RepoTags"], serde_json::json!(["latest"]));
    let raw = inspect_raw(&dest);
    assert_eq!(raw, layout_blob(&work.path().join("in"), &digest), "the registry changed the manifest bytes");

    // Out again into a fresh layout: same manifest, same layers, byte for byte.
    let out = work.path().join("out");
    skopeo(&["copy", "--src-tls-verify=false", "--preserve-digests", &dest, &format!("oci:{}:latest", out.display())]);
    assert_eq!(layout_digest(&out), digest);
    let manifest: Value = serde_json::from_slice(&layout_blob(&out, &digest)).unwrap();
    for layer in manifest["layers"].as_array().unwrap().iter().chain([&manifest["config"]]) {
        let d = layer["digest"].as_str().unwrap();
        assert_eq!(sha256(&layout_blob(&out, d)), d);
        assert_eq!(layout_blob(&out, d), layout_blob(&work.path().join("in"), d));
    }

    // Registry to registry (another repository): blobs are mounted, not sent again.
    let copy = format!("docker://{}/skopeo/copy:v1", reg.addr);
    skopeo(&["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests", &dest, &copy]);
    assert_eq!(inspect_raw(&copy), raw);

    // Docker media types (v2s2).
    let v2s2 = format!("docker://{}/skopeo/v2s2:latest", reg.addr);
    skopeo(&["copy", "--dest-tls-verify=false", "--format", "v2s2", &format!("oci:{}:latest", work.path().join("in").display()), &v2s2]);
    let m: Value = serde_json::from_slice(&inspect_raw(&v2s2)).unwrap();
    assert_eq!(m["mediaType"], DOCKER_MANIFEST);

    // Delete by digest.
    skopeo(&["delete", "--tls-verify=false", &format!("docker://{}/skopeo/copy@{digest}", reg.addr)]);
    let out = Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &copy]).output().unwrap();
    assert!(!out.status.success(), "deleted manifest still served");
}

#[test]
fn skopeo_copy_all_of_an_index() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let reg = Registry::start();
    let work = TempDir::new().unwrap();
    make_image(work.path(), "unused", &[]);
    let digest = make_image(work.path(), "multi", &["--index", "linux/amd64=ROOTFS", "linux/arm64/v8=ROOTFS"]);
    let dest = format!("docker://{}/skopeo/multi:latest", reg.addr);
    skopeo(&["copy", "--all", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", work.path().join("multi").display()), &dest]);
    let raw = inspect_raw(&dest);
    assert_eq!(sha256(&raw), digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    for m in index["manifests"].as_array().unwrap() {
        let child = format!("docker://{}/skopeo/multi@{}", reg.addr, m["digest"].as_str().unwrap());
        assert_eq!(sha256(&inspect_raw(&child)), m["digest"].as_str().unwrap());
    }
    let out = work.path().join("out");
    skopeo(&["copy", "--all", "--src-tls-verify=false", "--preserve-digests", &dest, &format!("oci:{}:latest", out.display())]);
    assert_eq!(layout_digest(&out), digest);
}

#[test]
fn docker_push_and_pull() {
    if !have("python3", "python3") {
        return;
    }
    let reg = Registry::start();
    let Some(dockerd) = Dockerd::start(&[&reg.addr]) else { return };
    let work = TempDir::new().unwrap();
    let archive = work.path().join("busybox.tar");
    make_image(work.path(), "layout", &["--docker-archive", &archive.to_string_lossy(), "--repo-tag", "berth-test/busybox:src"]);
    dockerd.ok(&["load", "-i", &archive.to_string_lossy()]);
    let id = dockerd.ok(&["image", "inspect", "-f", "{{.Id}}", "berth-test/busybox:src"]).trim().to_string();

    let target = format!("{}/docker/busybox:v1", reg.addr);
    dockerd.ok(&["tag", "berth-test/busybox:src", &target]);
    let pushed = dockerd.ok(&["push", &target]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    // A second repository: the layer is mounted from the first.
    let second = format!("{}/docker/other:v2", reg.addr);
    dockerd.ok(&["tag", "berth-test/busybox:src", &second]);
    let pushed2 = dockerd.ok(&["push", &second]);
    assert!(pushed2.contains("Mounted from docker/busybox") || pushed2.contains("Layer already exists"), "{pushed2}");

    dockerd.ok(&["rmi", "berth-test/busybox:src", &target, &second]);
    assert!(!dockerd.docker(&["image", "inspect", &target]).status.success());
    let pulled = dockerd.ok(&["pull", &target]);
    assert!(pulled.contains("Digest: sha256:"), "{pulled}");
    let pulled_id = dockerd.ok(&["image", "inspect", "-f", "{{.Id}}", &target]).trim().to_string();
    assert_eq!(pulled_id, id);
    // The pushed manifest is what the registry serves.
    let repo_digest = dockerd.ok(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", &target]);
    let digest = repo_digest.trim().rsplit('@').next().unwrap().to_string();
    let raw = get_bytes(&reg.url(&format!("/v2/docker/busybox/manifests/{digest}")));
    assert_eq!(sha256(&raw), digest);
}

#[test]
fn podman_push_and_pull() {
    if !have("python3", "python3") {
        return;
    }
    let Some(podman) = Podman::new() else { return };
    let reg = Registry::start();
    let work = TempDir::new().unwrap();
    let archive = work.path().join("busybox.tar");
    make_image(work.path(), "layout", &["--docker-archive", &archive.to_string_lossy(), "--repo-tag", "berth-test/busybox:src"]);
    podman.ok(&["load", "-q", "-i", &archive.to_string_lossy()]);
    let id = podman.ok(&["image", "inspect", "-f", "{{.Id}}", "berth-test/busybox:src"]).trim().to_string();
    let target = format!("{}/podman/busybox:v1", reg.addr);
    podman.ok(&["tag", &id, &target]);
    podman.ok(&["push", "--tls-verify=false", &target]);
    podman.ok(&["rmi", "-af"]);
    assert!(!podman.cmd(&["image", "exists", &target]).status.success());
    podman.ok(&["pull", "--tls-verify=false", &target]);
    let pulled_id = podman.ok(&["image", "inspect", "-f", "{{.Id}}", &target]).trim().to_string();
    assert_eq!(pulled_id, id);
    let digest = podman.ok(&["image", "inspect", "-f", "{{.Digest}}", &target]).trim().to_string();
    let raw = get_bytes(&reg.url(&format!("/v2/podman/busybox/manifests/{digest}")));
    assert_eq!(sha256(&raw), digest);
}

