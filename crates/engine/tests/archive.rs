//! save, load and import against real archives: our own, docker's (a private dockerd),
//! skopeo's OCI archives, and hand-made malicious ones that must change nothing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine::{ErrorKind, Images};
use common::*;
use sha2::{Digest as _, Sha256};

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

async fn save_to(images: &Arc<Images>, names: &[&str], path: &Path) {
    let file = std::fs::File::create(path).expect("create archive");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    images.save(&names, file).await.expect("save");
}

async fn load_from(images: &Arc<Images>, path: &Path) -> berth_engine::Result<Vec<String>> {
    let file = std::fs::File::open(path).expect("open archive");
    let (progress, _rx) = progress();
    images.load(file, true, &progress).await
}

fn tar_list(path: &Path) -> Vec<String> {
    run(Command::new("tar").arg("-tf").arg(path)).lines().map(str::to_string).collect()
}

fn tar_read(path: &Path, entry: &str) -> Vec<u8> {
    let output = Command::new("tar").arg("-xOf").arg(path).arg(entry).output().expect("tar -x");
    assert!(output.status.success(), "tar -xOf {entry}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn save_writes_docker_and_oci_layouts_and_load_gives_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    let id = import_busybox(&engine.images, dir.path(), "saved/bb:1").await;
    engine.images.tag("saved/bb:1", "saved/bb:2").unwrap();
    let view = engine.images.inspect(&id).unwrap();
    let diff_id = view.parsed.rootfs.diff_ids[0].clone();

    // A bare repository name saves every tag of it.
    let archive = dir.path().join("saved.tar");
    save_to(&engine.images, &["saved/bb"], &archive).await;
    let entries = tar_list(&archive);
    let id_hex = id.trim_start_matches("sha256:");
    let diff_hex = diff_id.trim_start_matches("sha256:");
    for want in ["manifest.json", "index.json", "oci-layout", "repositories", "blobs/sha256/"] {
        assert!(entries.iter().any(|e| e == want), "{want} missing from {entries:?}");
    }
    assert!(entries.contains(&format!("blobs/sha256/{id_hex}")));
    assert!(entries.contains(&format!("blobs/sha256/{diff_hex}")));
    // The layer is the uncompressed tar whose digest is the diff id.
    assert_eq!(sha256_hex(&tar_read(&archive, &format!("blobs/sha256/{diff_hex}"))), diff_hex);

    let manifest: serde_json::Value = serde_json::from_slice(&tar_read(&archive, "manifest.json")).unwrap();
    assert_eq!(manifest[0]["Config"], format!("blobs/sha256/{id_hex}"));
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["saved/bb:1", "saved/bb:2"]));
    assert_eq!(manifest[0]["Layers"], serde_json::json!([format!("blobs/sha256/{diff_hex}")]));
    let index: serde_json::Value = serde_json::from_slice(&tar_read(&archive, "index.json")).unwrap();
    let names: Vec<&str> = index["manifests"].as_array().unwrap().iter().map(|m| m["annotations"]["io.containerd.image.name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docker.io/saved/bb:1", "docker.io/saved/bb:2"]);
    let oci_manifest_hex = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let oci_manifest: serde_json::Value = serde_json::from_slice(&tar_read(&archive, &format!("blobs/sha256/{oci_manifest_hex}"))).unwrap();
    assert_eq!(oci_manifest["layers"][0]["digest"], diff_id);

    // Into a second engine: the same id, both tags, the layer unpacked.
    let other = open_engine(&dir.path().join("two"));
    let lines = load_from(&other.images, &archive).await.unwrap();
    assert_eq!(lines, ["Loaded image: saved/bb:1", "Loaded image: saved/bb:2"]);
    let loaded = other.images.inspect("saved/bb:2").unwrap();
    assert_eq!(loaded.record.id, id);
    assert_eq!(loaded.repo_tags, ["saved/bb:1", "saved/bb:2"]);
    assert!(loaded.layer_dirs[0].join("bin/busybox").is_file());
    // Loading again changes nothing but says the same.
    let before = store_state(&other);
    assert_eq!(load_from(&other.images, &archive).await.unwrap(), lines);
    assert_eq!(store_state(&other), before);
    let (past, _) = other.events.subscribe(Some(0));
    assert!(past.iter().any(|e| e.action == "load" && e.actor.id == id));

    // A gzip-compressed archive loads as well.
    let gz = dir.path().join("saved.tar.gz");
    run(Command::new("sh").arg("-c").arg(format!("gzip -c {} > {}", archive.display(), gz.display())));
    let third = open_engine(&dir.path().join("three"));
    assert_eq!(load_from(&third.images, &gz).await.unwrap(), lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn save_by_id_has_no_names_and_shared_layers_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    // The same tarball twice: two images (different creation times) sharing one layer.
    let first = import_busybox(&engine.images, dir.path(), "shared/a:1").await;
    let second = import_busybox(&engine.images, dir.path(), "shared/b:1").await;
    assert_ne!(first, second);
    let archive = dir.path().join("two.tar");
    save_to(&engine.images, &[&first[7..19], "shared/b:1"], &archive).await;
    let entries = tar_list(&archive);
    let diff_hex = engine.images.inspect(&first).unwrap().parsed.rootfs.diff_ids[0].trim_start_matches("sha256:").to_string();
    assert_eq!(entries.iter().filter(|e| e.ends_with(&diff_hex)).count(), 1, "{entries:?}");
    let manifest: serde_json::Value = serde_json::from_slice(&tar_read(&archive, "manifest.json")).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::Value::Null);
    assert_eq!(manifest[1]["RepoTags"], serde_json::json!(["shared/b:1"]));

    let other = open_engine(&dir.path().join("two"));
    let lines = load_from(&other.images, &archive).await.unwrap();
    assert_eq!(lines, [format!("Loaded image ID: {first}"), "Loaded image: shared/b:1".to_string()]);
    let state = store_state(&other);
    assert_eq!(state.images.len(), 2);
    assert_eq!(state.layers, [(format!("sha256:{diff_hex}"), 2)]);

    // The streamed form (for an HTTP body) writes the same bytes: saving is deterministic.
    let names = vec![first[7..19].to_string(), "shared/b:1".to_string()];
    let mut rx = engine.images.save_stream(&names).await.unwrap();
    let mut streamed = Vec::new();
    while let Some(chunk) = rx.recv().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(streamed, std::fs::read(&archive).unwrap());

    // Unknown names fail before anything is written.
    let names = vec!["shared/nope:missing".to_string()];
    let err = engine.images.save(&names, Vec::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(engine.images.save_stream(&names).await.unwrap_err().kind(), ErrorKind::NotFound);
}

/// A private dockerd with its own roots and socket, stopped and cleaned up on drop.
struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
    cli: PathBuf,
}

impl Dockerd {
    fn start() -> Option<Dockerd> {
        let cli = [Path::new("/usr/bin/docker"), Path::new("/usr/local/bin/docker")].into_iter().find(|p| p.exists())?.to_path_buf();
        if !have("dockerd") {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("berth-dockerd-").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--log-level=warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let dockerd = Dockerd { dir, child, cli };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if dockerd.docker_status(&["version"]).0 {
                return Some(dockerd);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("dockerd did not start: {}", std::fs::read_to_string(dockerd.dir.path().join("dockerd.log")).unwrap_or_default());
    }

    fn docker_status(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(&self.cli)
            .arg("-H")
            .arg(format!("unix://{}", self.dir.path().join("docker.sock").display()))
            .args(args)
            .output()
            .expect("run docker");
        (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    fn docker(&self, args: &[&str]) -> String {
        let (ok, out) = self.docker_status(args);
        assert!(ok, "docker {args:?}: {out}");
        out
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let dir = self.dir.path().to_string_lossy().into_owned();
        // Its containerd carries this run's private paths on its command line.
        let helpers = Command::new("pgrep").arg("-f").arg(format!("{dir}/")).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in helpers.split_whitespace() {
            if pid != std::process::id().to_string() {
                let _ = Command::new("kill").arg("-KILL").arg(pid).stderr(Stdio::null()).status();
            }
        }
        // dockerd bind-mounts its data root; deepest mounts first.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|m| m.starts_with(&dir)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_loads_our_archives_and_we_load_docker_archives() {
    let Some(dockerd) = Dockerd::start() else {
        eprintln!("skipping: dockerd or the docker CLI is not installed (apt-get install docker.io)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    let id = import_busybox(&engine.images, dir.path(), "roundtrip/bb:1").await;

    // berth save -> docker load
    let ours = dir.path().join("ours.tar");
    save_to(&engine.images, &["roundtrip/bb:1"], &ours).await;
    let out = dockerd.docker(&["load", "-i", ours.to_str().unwrap()]);
    assert!(out.contains("Loaded image: roundtrip/bb:1"), "{out}");
    assert_eq!(dockerd.docker(&["image", "inspect", "-f", "{{.Id}}", "roundtrip/bb:1"]).trim(), id);

    // docker save -> berth load: the same id and tag.
    let theirs = dir.path().join("theirs.tar");
    dockerd.docker(&["save", "-o", theirs.to_str().unwrap(), "roundtrip/bb:1"]);
    let other = open_engine(&dir.path().join("two"));
    let lines = load_from(&other.images, &theirs).await.unwrap();
    assert_eq!(lines, ["Loaded image: roundtrip/bb:1"]);
    assert_eq!(other.images.inspect("roundtrip/bb:1").unwrap().record.id, id);

    // An image docker made itself, in docker 20.10's `<id>/layer.tar` layout.
    let tar = dir.path().join("rootfs.tar");
    let out = dockerd.docker(&["import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), "dockermade/bb:7"]);
    let docker_id = out.trim().to_string();
    let made = dir.path().join("made.tar");
    dockerd.docker(&["save", "-o", made.to_str().unwrap(), "dockermade/bb:7"]);
    assert!(tar_list(&made).iter().any(|e| e.ends_with("/layer.tar")));
    assert_eq!(load_from(&other.images, &made).await.unwrap(), ["Loaded image: dockermade/bb:7"]);
    let view = other.images.inspect("dockermade/bb:7").unwrap();
    assert_eq!(view.record.id, docker_id);
    assert!(view.layer_dirs[0].join("bin/busybox").is_file());

    // And back: berth save of the docker-made image -> docker load keeps its id.
    let back = dir.path().join("back.tar");
    save_to(&other.images, &["dockermade/bb:7"], &back).await;
    dockerd.docker(&["rmi", "dockermade/bb:7"]);
    assert!(dockerd.docker(&["load", "-i", back.to_str().unwrap()]).contains("Loaded image: dockermade/bb:7"));
    assert_eq!(dockerd.docker(&["image", "inspect", "-f", "{{.Id}}", "dockermade/bb:7"]).trim(), docker_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_archives_from_skopeo_load() {
    if !have("skopeo") {
        eprintln!("skipping: skopeo is not installed (apt-get install skopeo)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    let id = import_busybox(&engine.images, dir.path(), "oci/bb:1").await;
    let diff_ids = engine.images.inspect(&id).unwrap().parsed.rootfs.diff_ids;
    let ours = dir.path().join("ours.tar");
    save_to(&engine.images, &["oci/bb:1"], &ours).await;

    // skopeo gzips layers for OCI by default, and can write zstd.
    let mut variants = vec![("gzip", vec![])];
    variants.push(("zstd", vec!["--dest-compress-format", "zstd"]));
    let other = open_engine(&dir.path().join("two"));
    for (i, (name, flags)) in variants.into_iter().enumerate() {
        let oci = dir.path().join(format!("oci-{name}.tar"));
        let target = format!("oci-archive:{}:skopeo/bb:{i}", oci.display());
        let output = Command::new("skopeo").arg("copy").args(&flags).arg(format!("docker-archive:{}", ours.display())).arg(&target).output().unwrap();
        if !output.status.success() {
            let err = String::from_utf8_lossy(&output.stderr);
            assert!(name == "zstd", "skopeo copy: {err}");
            eprintln!("note: this skopeo cannot write zstd: {err}");
            continue;
        }
        assert!(!tar_list(&oci).iter().any(|e| e == "manifest.json"));
        let lines = load_from(&other.images, &oci).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(lines, [format!("Loaded image: skopeo/bb:{i}")]);
        let view = other.images.inspect(&format!("skopeo/bb:{i}")).unwrap();
        assert_eq!(view.parsed.rootfs.diff_ids, diff_ids);
        assert!(view.layer_dirs[0].join("bin/busybox").is_file());
    }

    // Saving an image whose layer is stored compressed decompresses it for the archive.
    let resaved = dir.path().join("resaved.tar");
    save_to(&other.images, &["skopeo/bb:0"], &resaved).await;
    let diff_hex = diff_ids[0].trim_start_matches("sha256:");
    assert_eq!(sha256_hex(&tar_read(&resaved, &format!("blobs/sha256/{diff_hex}"))), diff_hex);
    let third = open_engine(&dir.path().join("three"));
    assert_eq!(load_from(&third.images, &resaved).await.unwrap(), ["Loaded image: skopeo/bb:0"]);
}

// --- malicious archives ---------------------------------------------------------------

enum Item {
    File(Vec<u8>),
    Symlink(&'static str),
    Hardlink(&'static str),
}

/// Writes a tar with names taken as they are (the tar crate's path checks would refuse the
/// hostile ones).
fn write_raw_tar(path: &Path, entries: &[(&str, Item)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, item) in entries {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        let (kind, data, link): (tar::EntryType, &[u8], &str) = match item {
            Item::File(data) => (tar::EntryType::Regular, data, ""),
            Item::Symlink(target) => (tar::EntryType::Symlink, &[], target),
            Item::Hardlink(target) => (tar::EntryType::Link, &[], target),
        };
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(kind);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().flush().unwrap();
}

/// A layer tar with the given files (raw names).
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let path = tempfile::NamedTempFile::new().unwrap();
    let entries: Vec<(&str, Item)> = files.iter().map(|(n, d)| (*n, Item::File(d.to_vec()))).collect();
    write_raw_tar(path.path(), &entries);
    std::fs::read(path.path()).unwrap()
}

fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap()
}

fn manifest_json(config: &str, layers: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([{"Config": config, "RepoTags": ["evil/x:1"], "Layers": layers}])).unwrap()
}

/// A valid docker archive's entries, with a big layer (so it streams into the blob store).
fn good_entries() -> (Vec<(&'static str, Item)>, Vec<u8>) {
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let layer = layer_tar(&[("hello.txt", b"hello"), ("big.bin", &big)]);
    let diff = format!("sha256:{}", sha256_hex(&layer));
    let config = config_json(&[diff]);
    let entries = vec![
        ("layer.tar", Item::File(layer.clone())),
        ("config.json", Item::File(config)),
        ("manifest.json", Item::File(manifest_json("config.json", &["layer.tar"]))),
    ];
    (entries, layer)
}

#[tokio::test(flavor = "multi_thread")]
async fn malicious_archives_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    import_busybox(&engine.images, dir.path(), "present/bb:1").await;
    let outside = engine.config.data_root.join("image/escape");

    // The unmodified archive loads (so each case below fails for its own reason).
    {
        let (entries, _) = good_entries();
        let path = dir.path().join("good.tar");
        write_raw_tar(&path, &entries);
        let scratch = open_engine(&dir.path().join("scratch"));
        assert_eq!(load_from(&scratch.images, &path).await.unwrap(), ["Loaded image: evil/x:1"]);
        // Older docker reached a shared layer through a relative symlink; that is fine.
        let (mut linked, _) = good_entries();
        linked.retain(|(n, _)| *n != "manifest.json");
        linked.push(("b/layer.tar", Item::Symlink("../layer.tar")));
        linked.push(("manifest.json", Item::File(manifest_json("config.json", &["b/layer.tar"]))));
        let path = dir.path().join("linked.tar");
        write_raw_tar(&path, &linked);
        let scratch = open_engine(&dir.path().join("scratch-linked"));
        assert_eq!(load_from(&scratch.images, &path).await.unwrap(), ["Loaded image: evil/x:1"]);
    }

    let (mut dotdot, _) = good_entries();
    dotdot.push(("../escape", Item::File(b"x".to_vec())));
    let (mut absolute, _) = good_entries();
    absolute.insert(0, ("/tmp/berth-absolute-escape", Item::File(b"x".to_vec())));
    let (mut symlink_out, _) = good_entries();
    symlink_out.retain(|(n, _)| *n != "manifest.json");
    symlink_out.push(("evil.tar", Item::Symlink("../../../../etc/passwd")));
    symlink_out.push(("manifest.json", Item::File(manifest_json("config.json", &["evil.tar"]))));
    let (mut hardlink_out, _) = good_entries();
    hardlink_out.push(("evil.tar", Item::Hardlink("../etc/passwd")));
    let (mut outside_manifest, _) = good_entries();
    outside_manifest.retain(|(n, _)| *n != "manifest.json");
    outside_manifest.push(("manifest.json", Item::File(manifest_json("config.json", &["../layer.tar"]))));
    let (mut missing, _) = good_entries();
    missing.retain(|(n, _)| *n != "manifest.json");
    missing.push(("manifest.json", Item::File(manifest_json("config.json", &["nope/layer.tar"]))));
    let (mut wrong_diff, _) = good_entries();
    wrong_diff.retain(|(n, _)| *n != "config.json");
    wrong_diff.push(("config.json", Item::File(config_json(&[format!("sha256:{}", "ab".repeat(32))]))));
    let (mut malformed, _) = good_entries();
    malformed.retain(|(n, _)| *n != "manifest.json");
    malformed.push(("manifest.json", Item::File(b"[{\"Config\": ".to_vec())));
    let (mut huge, _) = good_entries();
    huge.retain(|(n, _)| *n != "manifest.json");
    let mut big_json = vec![b' '; 9 << 20];
    big_json.extend_from_slice(b"[]");
    huge.push(("manifest.json", Item::File(big_json)));
    let escaping_layer = layer_tar(&[("../../escape", b"owned")]);
    let escaping_diff = format!("sha256:{}", sha256_hex(&escaping_layer));
    let escaping = vec![
        ("layer.tar", Item::File(escaping_layer)),
        ("config.json", Item::File(config_json(&[escaping_diff]))),
        ("manifest.json", Item::File(manifest_json("config.json", &["layer.tar"]))),
    ];
    let bad_tag = {
        let (mut entries, _) = good_entries();
        entries.retain(|(n, _)| *n != "manifest.json");
        let m = serde_json::json!([{"Config": "config.json", "RepoTags": ["Evil/UPPER:1"], "Layers": ["layer.tar"]}]);
        entries.push(("manifest.json", Item::File(serde_json::to_vec(&m).unwrap())));
        entries
    };
    // An OCI layout whose manifest blob is not what its name says.
    let wrong_oci_digest = {
        let config = config_json(&[]);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len()},
            "layers": []
        }))
        .unwrap();
        let lie = "cd".repeat(32);
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{lie}"), "size": manifest.len()}
        ]}))
        .unwrap();
        let lie_path: &'static str = Box::leak(format!("blobs/sha256/{lie}").into_boxed_str());
        let config_path: &'static str = Box::leak(format!("blobs/sha256/{}", sha256_hex(&config)).into_boxed_str());
        vec![
            ("oci-layout", Item::File(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())),
            (lie_path, Item::File(manifest)),
            (config_path, Item::File(config)),
            ("index.json", Item::File(index)),
        ]
    };
    let not_an_archive = vec![("hello.txt", Item::File(b"hi".to_vec()))];

    // (case, archive entries, what the error must say)
    type Case<'a> = (&'a str, Vec<(&'a str, Item)>, &'a str);
    let cases: Vec<Case> = vec![
        ("dotdot", dotdot, "\"../escape\""),
        ("absolute", absolute, "\"/tmp/berth-absolute-escape\""),
        ("symlink out", symlink_out, "\"evil.tar\""),
        ("hardlink out", hardlink_out, "\"evil.tar\""),
        ("manifest names outside", outside_manifest, "../layer.tar"),
        ("missing layer", missing, "\"nope/layer.tar\": missing"),
        ("wrong diff id", wrong_diff, "\"layer.tar\""),
        ("malformed json", malformed, "\"manifest.json\": invalid JSON"),
        ("huge json", huge, "\"manifest.json\": too large"),
        ("escaping layer", escaping, "\"layer.tar\""),
        ("bad tag", bad_tag, "Evil/UPPER:1"),
        ("lying oci digest", wrong_oci_digest, "content has digest"),
        ("not an image archive", not_an_archive, "neither manifest.json nor index.json"),
    ];
    for (name, entries, expected) in cases {
        let path = dir.path().join(format!("{}.tar", name.replace(' ', "-")));
        write_raw_tar(&path, &entries);
        let before = store_state(&engine);
        let err = load_from(&engine.images, &path).await.expect_err(name);
        let message = err.to_string();
        assert!(message.contains(expected), "{name}: {message:?} should contain {expected:?}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name}: {message}");
        assert_eq!(store_state(&engine), before, "{name} left something behind");
        assert!(!outside.exists(), "{name} wrote outside its layer");
        assert!(!Path::new("/tmp/berth-absolute-escape").exists());
    }
}

// --- import ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn import_reads_plain_gzip_and_zstd_tarballs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    let tar = rootfs_tar(dir.path());
    let diff_id = format!("sha256:{}", sha256_hex(&std::fs::read(&tar).unwrap()));
    let mut inputs = vec![(tar.clone(), "plain")];
    let gz = dir.path().join("rootfs.tar.gz");
    run(Command::new("sh").arg("-c").arg(format!("gzip -c {} > {}", tar.display(), gz.display())));
    inputs.push((gz, "gzip"));
    if have("zstd") {
        let zst = dir.path().join("rootfs.tar.zst");
        run(Command::new("zstd").arg("-q").arg(&tar).arg("-o").arg(&zst));
        inputs.push((zst, "zstd"));
    } else {
        eprintln!("note: zstd CLI missing, zstd import not tested");
    }
    let mut ids = Vec::new();
    for (path, name) in inputs {
        let id = engine.images.import(std::fs::File::open(&path).unwrap(), Some(&format!("imp/{name}")), &[], None, None).await.unwrap();
        let view = engine.images.inspect(&format!("imp/{name}:latest")).unwrap();
        assert_eq!(view.parsed.rootfs.diff_ids, std::slice::from_ref(&diff_id), "{name}");
        assert_eq!(view.config["comment"], "Imported from -", "docker's default message");
        assert!(view.layer_dirs[0].join("bin/busybox").is_file());
        ids.push(id);
    }
    // One layer, shared by all, with one gzip blob to push.
    let state = store_state(&engine);
    assert_eq!(state.layers, [(diff_id.clone(), ids.len() as u64)]);
    let layer = engine.images.meta().read().unwrap().layer(&diff_id).unwrap().unwrap();
    assert_eq!(layer.blobs.len(), 1);
    assert_eq!(layer.blobs[0].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    let (past, _) = engine.events.subscribe(Some(0));
    assert!(past.iter().any(|e| e.action == "import" && e.actor.id == ids[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn import_applies_changes_message_and_platform() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    let tar = rootfs_tar(dir.path());
    let changes: Vec<String> = ["ENV PATH=/usr/bin:/bin GREETING=\"hello world\"", "CMD [\"sh\", \"-c\", \"echo $GREETING\"]", "WORKDIR /srv", "EXPOSE 8080/tcp", "LABEL org.test=yes", "USER 1000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let id = engine.images.import(std::fs::File::open(&tar).unwrap(), Some("changed:1"), &changes, Some("made by a test"), Some("linux/arm64")).await.unwrap();
    let view = engine.images.inspect(&id).unwrap();
    let c = &view.config;
    assert_eq!(c["architecture"], "arm64");
    assert_eq!(c["os"], "linux");
    assert_eq!(c["comment"], "made by a test");
    assert_eq!(c["history"][0]["comment"], "made by a test");
    assert_eq!(c["history"][0]["created_by"], "");
    assert_eq!(c["config"]["Env"], serde_json::json!(["PATH=/usr/bin:/bin", "GREETING=hello world"]));
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["sh", "-c", "echo $GREETING"]));
    assert_eq!(c["config"]["WorkingDir"], "/srv");
    assert_eq!(c["config"]["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert_eq!(c["config"]["Labels"], serde_json::json!({"org.test": "yes"}));
    assert_eq!(c["config"]["User"], "1000");
    assert_eq!(view.repo_tags, ["changed:1"]);
    assert!(view.parsed.created_unix() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn import_refuses_escaping_tarballs_and_bad_changes_leaving_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("one"));
    import_busybox(&engine.images, dir.path(), "present/bb:1").await;
    let before = store_state(&engine);

    let evil = dir.path().join("evil.tar");
    write_raw_tar(&evil, &[("ok.txt", Item::File(b"fine".to_vec())), ("../../escape", Item::File(b"owned".to_vec()))]);
    let err = engine.images.import(std::fs::File::open(&evil).unwrap(), Some("evil:1"), &[], None, None).await.unwrap_err();
    assert!(err.to_string().contains("escape"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(store_state(&engine), before);
    assert!(!engine.config.data_root.join("image/escape").exists());

    let tar = rootfs_tar(dir.path());
    for (change, expected) in [("FOO bar", "dockerfile parse error line 1: unknown instruction: FOO"), ("RUN make", "run is not a valid change command"), ("EXPOSE", "EXPOSE requires at least one argument")] {
        let err = engine.images.import(std::fs::File::open(&tar).unwrap(), Some("bad:1"), &[change.to_string()], None, None).await.unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
    let err = engine.images.import(std::fs::File::open(&tar).unwrap(), Some("Bad/Name"), &[], None, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(store_state(&engine), before);

    // A symlink to / and a file beneath it: whatever the import makes of it, nothing lands
    // outside the layer.
    let evil_link = dir.path().join("evil-link.tar");
    let escape = format!("tmp/berth-import-escape-{}", std::process::id());
    let beneath: &'static str = Box::leak(format!("evil/{escape}").into_boxed_str());
    write_raw_tar(&evil_link, &[("evil", Item::Symlink("/")), (beneath, Item::File(b"owned".to_vec()))]);
    let result = engine.images.import(std::fs::File::open(&evil_link).unwrap(), None, &[], None, None).await;
    assert!(!Path::new("/").join(&escape).exists(), "import wrote through a symlink to the host");
    if result.is_err() {
        assert_eq!(store_state(&engine), before);
    }
}
