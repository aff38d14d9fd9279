//! The real docker CLI against berthd: every image command a docker user types.

mod common;

use common::*;

fn setup() -> Option<(Daemon, Registry, tempfile::TempDir)> {
    if !have(&["docker", "skopeo", "docker-registry"]) {
        return None;
    }
    let work = tempfile::Builder::new().prefix("images-").tempdir_in("/var/tmp").unwrap();
    Some((Daemon::start(&[]), Registry::start(&[]), work))
}

#[test]
fn version_info_and_ping() {
    if !have(&["docker"]) {
        return;
    }
    let daemon = Daemon::start(&[]);
    let version = ok(daemon.docker(&["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}"]));
    assert_eq!(version.trim(), format!("{} 1.45 linux", env!("CARGO_PKG_VERSION")));
    let info = ok(daemon.docker(&["info", "--format", "{{.Driver}} {{.Images}} {{.DockerRootDir}}"]));
    assert_eq!(info.trim(), format!("overlay2 0 {}", daemon.data_root.display()));
    let df = ok(daemon.docker(&["system", "df"]));
    assert!(df.contains("Images") && df.contains("0B"), "{df}");
}

#[test]
fn pull_list_inspect_history_tag_rmi() {
    let Some((daemon, registry, work)) = setup() else { return };
    let rootfs = busybox_rootfs(work.path());
    let extra = work.path().join("extra");
    std::fs::create_dir_all(extra.join("data")).unwrap();
    std::fs::write(extra.join("data/hello.txt"), "hello\n").unwrap();
    let digest = push_test_image(&registry, &[&rootfs, &extra], "tools/busybox:1.0", &["--config-json", r#"{"Cmd":["sh"],"Labels":{"team":"core"}}"#]);
    let image = format!("{}/tools/busybox:1.0", registry.addr);

    let out = ok(daemon.docker(&["pull", &image]));
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains(&format!("Status: Downloaded newer image for {image}")), "{out}");
    let again = ok(daemon.docker(&["pull", &image]));
    assert!(again.contains("Image is up to date"), "{again}");

    let list = ok(daemon.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}", "--digests"]));
    assert_eq!(list.trim(), format!("{}/tools/busybox:1.0 {digest}", registry.addr));
    let by_label = ok(daemon.docker(&["images", "-q", "--filter", "label=team=core"]));
    assert_eq!(by_label.lines().count(), 1, "{by_label}");
    assert!(ok(daemon.docker(&["images", "-q", "--filter", "label=team=other"])).trim().is_empty());

    let layers = ok(daemon.docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}} {{.Config.Labels.team}} {{.Os}}", &image]));
    assert_eq!(layers.trim(), "2 core linux");
    let history = ok(daemon.docker(&["history", "-q", &image]));
    assert_eq!(history.lines().count(), 2, "{history}");

    ok(daemon.docker(&["tag", &image, "mine:v1"]));
    let out = ok(daemon.docker(&["rmi", "mine:v1"]));
    assert_eq!(out.trim(), "Untagged: mine:v1");
    ok(daemon.docker(&["tag", &image, "mine:v1"]));
    let id = ok(daemon.docker(&["images", "-q", "mine:v1"])).trim().to_string();
    let err = fails(daemon.docker(&["rmi", &id]));
    assert!(err.contains("must be forced") && err.contains("referenced in multiple repositories"), "{err}");
    let out = ok(daemon.docker(&["rmi", "-f", &id]));
    assert!(out.contains("Untagged: mine:v1") && out.contains("Deleted: sha256:"), "{out}");
    assert!(ok(daemon.docker(&["images", "-q"])).trim().is_empty());
    let df = ok(daemon.docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}"]));
    assert!(df.contains("Images 0 0B"), "{df}");
    // Nothing is left on disk: no layer directory and no blob.
    let layers_dir = daemon.data_root.join("image/layers");
    assert_eq!(std::fs::read_dir(&layers_dir).unwrap().count(), 0);
}

#[test]
fn pull_errors_are_clear() {
    let Some((daemon, registry, _work)) = setup() else { return };
    let err = fails(daemon.docker(&["pull", &format!("{}/nothing/here:1", registry.addr)]));
    assert!(err.contains("not found") || err.contains("manifest unknown"), "{err}");
    let err = fails(daemon.docker(&["pull", "Upper/Case"]));
    assert!(err.contains("invalid reference format"), "{err}");
    let err = fails(daemon.docker(&["image", "inspect", "nosuchimage"]));
    assert!(err.contains("No such image"), "{err}");
    let err = fails(daemon.docker(&["rmi", "nosuchimage"]));
    assert!(err.contains("No such image"), "{err}");
}

#[test]
fn events_report_image_actions() {
    let Some((daemon, registry, work)) = setup() else { return };
    let rootfs = busybox_rootfs(work.path());
    push_test_image(&registry, &[&rootfs], "ev:1", &[]);
    let image = format!("{}/ev:1", registry.addr);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 1;
    ok(daemon.docker(&["pull", &image]));
    ok(daemon.docker(&["tag", &image, "ev2:latest"]));
    ok(daemon.docker(&["rmi", "ev2:latest"]));
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let out = ok(daemon.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=image",
        "--format",
        "{{.Action}}",
    ]));
    let actions: Vec<&str> = out.lines().collect();
    assert_eq!(actions, vec!["pull", "tag", "untag"], "{out}");
}

#[test]
fn sigterm_is_a_clean_shutdown() {
    let mut daemon = Daemon::start(&[]);
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    assert!(!daemon.socket.exists(), "socket removed");
    assert!(!daemon.dir.path().join("berthd.pid").exists(), "pid file removed");
    daemon.spawn();
}

#[test]
fn a_second_daemon_on_the_same_pidfile_refuses() {
    let daemon = Daemon::start(&[]);
    let out = run(
        std::process::Command::new(berthd_bin())
            .arg("--pidfile")
            .arg(daemon.dir.path().join("berthd.pid"))
            .arg("--data-root")
            .arg(daemon.dir.path().join("other"))
            .arg("-H")
            .arg(format!("unix://{}/other.sock", daemon.dir.path().display())),
        None,
    );
    let err = fails(out);
    assert!(err.contains("pid file found"), "{err}");
}

#[test]
fn tcp_without_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        std::process::Command::new(berthd_bin())
            .arg("--config-file")
            .arg("/dev/null")
            .arg("--pidfile")
            .arg(dir.path().join("pid"))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("-H")
            .arg("tcp://127.0.0.1:0"),
        None,
    );
    let err = fails(out);
    assert!(err.contains("needs TLS with client certificate verification"), "{err}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
fn make_certs(dir: &std::path::Path) {
    let sh = |script: &str| ok(run(std::process::Command::new("sh").arg("-ec").arg(script).current_dir(dir), None));
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj /CN=127.0.0.1 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile server.ext 2>/dev/null
        mkdir -p client && openssl req -newkey rsa:2048 -nodes -keyout client/key.pem -out client.csr -subj /CN=client 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client/cert.pem -days 2 -extfile client.ext 2>/dev/null
        cp ca.pem client/ca.pem
        openssl req -x509 -newkey rsa:2048 -nodes -keyout other-key.pem -out other.pem -days 2 -subj /CN=other 2>/dev/null
        mkdir -p stranger && cp other.pem stranger/cert.pem && cp other-key.pem stranger/key.pem && cp ca.pem stranger/ca.pem");
}

#[test]
fn tcp_with_tls_requires_a_client_certificate() {
    if !have(&["docker", "openssl"]) {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = |f: &str| certs.path().join(f).display().to_string();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let daemon = Daemon::start(&["-H", &tcp, "--tlsverify", "--tlscacert", &p("ca.pem"), "--tlscert", &p("cert.pem"), "--tlskey", &p("key.pem")]);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let with = |dir: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new(docker_cli());
        cmd.env("DOCKER_CONFIG", daemon.dir.path().join("docker-config")).env("DOCKER_CERT_PATH", certs.path().join(dir)).env("DOCKER_TLS_VERIFY", "1").args(["-H", &tcp]).args(args);
        run(&mut cmd, None)
    };
    let out = ok(with("client", &["version", "--format", "{{.Server.Version}}"]));
    assert_eq!(out.trim(), env!("CARGO_PKG_VERSION"));
    // A certificate the daemon's CA did not sign is refused during the handshake.
    fails(with("stranger", &["version", "--format", "{{.Server.Version}}"]));
    // And plain HTTP gets nothing.
    let plain = run(std::process::Command::new("curl").args(["-s", "-m", "5", &format!("http://127.0.0.1:{port}/_ping")]), None);
    assert_ne!(stdout(&plain).trim(), "OK");
}

#[test]
fn login_and_private_pull() {
    if !have(&["docker", "skopeo", "docker-registry", "htpasswd"]) {
        return;
    }
    let registry = Registry::start(&["--htpasswd", "alice:s3cret"]);
    let work = tempfile::Builder::new().prefix("login-").tempdir_in("/var/tmp").unwrap();
    let rootfs = busybox_rootfs(work.path());
    let layout = work.path().join("layout");
    ok(run(std::process::Command::new(repo_root().join("tests/make-image.py")).arg(&layout).arg("--layer").arg(&rootfs), None));
    ok(run(
        std::process::Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/private/app:1", registry.addr)),
        None,
    ));
    let daemon = Daemon::start(&[]);
    let image = format!("{}/private/app:1", registry.addr);
    let err = fails(daemon.docker(&["pull", &image]));
    assert!(err.contains("no basic auth credentials") || err.contains("denied") || err.contains("unauthorized"), "{err}");
    let err = fails(daemon.docker_with(docker_cli(), &["login", "-u", "alice", "--password-stdin", &registry.addr], Some(b"wrong\n")));
    assert!(err.contains("401 Unauthorized") || err.contains("incorrect"), "{err}");
    let out = ok(daemon.docker_with(docker_cli(), &["login", "-u", "alice", "--password-stdin", &registry.addr], Some(b"s3cret\n")));
    assert!(out.contains("Login Succeeded"), "{out}");
    let out = ok(daemon.docker(&["pull", &image]));
    assert!(out.contains("Downloaded newer image"), "{out}");
    ok(daemon.docker(&["logout", &registry.addr]));
}

#[test]
fn mirrors_serve_docker_hub_names_and_other_registries() {
    let Some((_, origin, work)) = setup() else { return };
    let mirror = Registry::start(&[]);
    let rootfs = busybox_rootfs(work.path());
    // docker.io/library/busybox exists only on the mirror (there is no Docker Hub here).
    push_test_image(&mirror, &[&rootfs], "library/busybox:latest", &[]);
    // origin/team/app exists only on the mirror configured for the origin's host.
    push_test_image(&mirror, &[&rootfs], "team/app:2", &[]);
    let config = serde_json::json!({
        "registry-mirrors": [format!("http://{}", mirror.addr)],
        "registry-host-mirrors": { origin.addr.clone(): [format!("http://{}", mirror.addr)] },
    });
    let daemon = Daemon::start_with_config(&config.to_string(), &[]);
    let out = ok(daemon.docker(&["pull", "busybox"]));
    assert!(out.contains("Downloaded newer image for busybox:latest"), "{out}");
    let out = ok(daemon.docker(&["pull", &format!("{}/team/app:2", origin.addr)]));
    assert!(out.contains("Downloaded newer image"), "{out}");
    let names = ok(daemon.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(names.contains("busybox:latest") && names.contains("/team/app:2"), "{names}");
    let mirrors = ok(daemon.docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"]));
    assert!(mirrors.contains(&mirror.addr), "{mirrors}");
}

#[test]
fn push_save_load_and_platforms() {
    let Some((daemon, registry, work)) = setup() else { return };
    let rootfs = busybox_rootfs(work.path());
    let tarball = work.path().join("rootfs.tar");
    ok(run(std::process::Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg("."), None));
    let image = format!("{}/cli/imported:v1", registry.addr);
    let id = ok(daemon.docker(&["import", "-c", "CMD [\"sh\"]", "-m", "from a tarball", tarball.to_str().unwrap(), &image])).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");

    let out = ok(daemon.docker(&["push", &image]));
    assert!(out.contains("Pushed") && out.contains("v1: digest: sha256:"), "{out}");
    let again = ok(daemon.docker(&["push", &image]));
    assert!(again.contains("Layer already exists"), "{again}");
    let inspect = ok(run(std::process::Command::new("skopeo").args(["inspect", "--tls-verify=false"]).arg(format!("docker://{image}")), None));
    assert!(inspect.contains("\"Architecture\": \"amd64\""), "{inspect}");

    // save | load through the docker CLI, by name, then by a file.
    let archive = work.path().join("saved.tar");
    ok(daemon.docker(&["save", "-o", archive.to_str().unwrap(), &image]));
    ok(daemon.docker(&["rmi", &image]));
    let out = ok(daemon.docker(&["load", "-i", archive.to_str().unwrap()]));
    assert!(out.contains(&format!("Loaded image: {image}")), "{out}");
    let loaded = ok(daemon.docker(&["image", "inspect", "-f", "{{.Id}} {{.Comment}}", &image]));
    assert_eq!(loaded.trim(), format!("{id} from a tarball"));

    // An index with two platforms: the host's by default, another with --platform.
    let arm = work.path().join("arm");
    std::fs::create_dir_all(&arm).unwrap();
    std::fs::write(arm.join("arch"), "arm64\n").unwrap();
    let layout = work.path().join("multi");
    ok(run(
        std::process::Command::new(repo_root().join("tests/make-image.py"))
            .arg(&layout)
            .arg("--index")
            .arg(format!("linux/amd64={}", rootfs.display()))
            .arg(format!("linux/arm64/v8={}", arm.display())),
        None,
    ));
    ok(run(
        std::process::Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false", "--preserve-digests"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/multi/arch:1", registry.addr)),
        None,
    ));
    let multi = format!("{}/multi/arch:1", registry.addr);
    ok(daemon.docker(&["pull", &multi]));
    assert_eq!(ok(daemon.docker(&["image", "inspect", "-f", "{{.Architecture}}", &multi])).trim(), "amd64");
    ok(daemon.docker(&["pull", "--platform", "linux/arm64", &multi]));
    assert_eq!(ok(daemon.docker(&["image", "inspect", "-f", "{{.Architecture}}", &multi])).trim(), "arm64");
}

#[test]
fn a_full_disk_leaves_nothing_behind() {
    let Some((mut daemon, registry, work)) = setup() else { return };
    let big = work.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    ok(run(std::process::Command::new("dd").args(["if=/dev/urandom", "bs=1M", "count=48", "status=none"]).arg(format!("of={}/blob", big.display())), None));
    push_test_image(&registry, &[&big], "full/disk:1", &[]);
    // The data root on a 40 MiB tmpfs: the blob fits, unpacking it does not.
    daemon.kill9();
    std::fs::create_dir_all(&daemon.data_root).unwrap();
    ok(run(std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=40m", "tmpfs"]).arg(&daemon.data_root), None));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(daemon.data_root.clone());
    daemon.spawn();
    let err = fails(daemon.docker(&["pull", &format!("{}/full/disk:1", registry.addr)]));
    assert!(err.contains("No space left on device") || err.contains("no space"), "{err}");
    assert!(ok(daemon.docker(&["images", "-q"])).trim().is_empty());
    assert_eq!(std::fs::read_dir(daemon.data_root.join("image/layers")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(daemon.data_root.join("image/tmp")).unwrap().count(), 0, "temporary layer directories are removed");
}

#[test]
fn a_registry_that_lies_about_diff_ids_gets_a_clear_error() {
    let Some((daemon, registry, work)) = setup() else { return };
    let rootfs = busybox_rootfs(work.path());
    let layout = work.path().join("liar");
    ok(run(std::process::Command::new(repo_root().join("tests/make-image.py")).arg(&layout).arg("--layer").arg(&rootfs), None));
    // Rewrite the config so its diff id does not match the layer, and re-link the manifest.
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let put = |bytes: &[u8]| {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        std::fs::write(blob(&digest), bytes).unwrap();
        digest
    };
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(&manifest_digest)).unwrap()).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap()).unwrap();
    config["rootfs"]["diff_ids"][0] = serde_json::json!(format!("sha256:{}", "1".repeat(64)));
    let config_bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = serde_json::json!(put(&config_bytes));
    manifest["config"]["size"] = serde_json::json!(config_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = serde_json::json!(put(&manifest_bytes));
    index["manifests"][0]["size"] = serde_json::json!(manifest_bytes.len());
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    ok(run(
        std::process::Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false", "--preserve-digests"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/liar/image:1", registry.addr)),
        None,
    ));
    let err = fails(daemon.docker(&["pull", &format!("{}/liar/image:1", registry.addr)]));
    assert!(err.contains("but the image config expects sha256:1111"), "{err}");
    assert!(ok(daemon.docker(&["images", "-q"])).trim().is_empty());
    assert_eq!(std::fs::read_dir(daemon.data_root.join("image/layers")).unwrap().count(), 0);
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = run(&mut std::process::Command::new("sha256sum"), Some(bytes));
    stdout(&out).split_whitespace().next().unwrap().to_string()
}
