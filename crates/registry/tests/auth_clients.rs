//! Real clients logging in and pushing and pulling under access control, with Basic
//! authentication and with the token flow: skopeo, podman, dockerd with the docker CLI,
//! and berthd with the berth CLI (when built: `cargo build -p berth-daemon -p berth-cli`).
//! Each test skips with a message when its tool is missing.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::peers::*;
use common::*;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Basic,
    Token,
}

const MODES: [Mode; 2] = [Mode::Basic, Mode::Token];

/// A registry with the test users and rules in `mode`, and its directory.
fn start(mode: Mode) -> Option<(Registry, TempDir)> {
    let dir = TempDir::new().unwrap();
    if !write_htpasswd(&dir.path().join("htpasswd"), USERS) {
        return None;
    }
    let extra = match mode {
        Mode::Basic => "",
        Mode::Token => "token = { service = \"berth-test\" }",
    };
    let reg = Registry::start_with_config(dir.path(), &auth_toml(dir.path(), extra));
    Some((reg, dir))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn expect_ok(what: &str, out: Output) -> String {
    assert!(out.status.success(), "{what}: {}", text(&out));
    text(&out)
}

fn expect_fail(what: &str, out: Output, needles: &[&str]) {
    let all = text(&out);
    assert!(!out.status.success(), "{what} should have failed: {all}");
    assert!(needles.iter().any(|n| all.to_lowercase().contains(n)), "{what}: expected one of {needles:?} in: {all}");
}

fn skopeo_cmd(auth_file: &Path, args: &[&str]) -> Output {
    Command::new("skopeo").arg("--debug").env("REGISTRY_AUTH_FILE", auth_file).args(args).output().expect("running skopeo")
}

#[test]
fn skopeo_login_push_pull() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    for mode in MODES {
        let Some((reg, dir)) = start(mode) else { return };
        let auth = dir.path().join("auth.json");
        let layout = format!("oci:{}:latest", dir.path().join("in").display());
        let digest = make_image(dir.path(), "in", &[]);
        let at = |r: &str| format!("docker://{}/{r}", reg.addr);
        let what = |w: &str| format!("{mode:?}: {w}");

        expect_fail(&what("login with a wrong password"), skopeo_cmd(&auth, &["login", "--tls-verify=false", "-u", "alice", "-p", "nope", &reg.addr]), &["unauthorized", "invalid"]);
        expect_ok(&what("login"), skopeo_cmd(&auth, &["login", "--tls-verify=false", "-u", "alice", "-p", "wonderland", &reg.addr]));
        expect_ok(&what("push"), skopeo_cmd(&auth, &["copy", "--dest-tls-verify=false", "--preserve-digests", &layout, &at("library/busybox:v1")]));
        expect_ok(&what("push private"), skopeo_cmd(&auth, &["copy", "--dest-tls-verify=false", "--preserve-digests", &layout, &at("alice/private:v1")]));
        expect_ok(&what("logout"), skopeo_cmd(&auth, &["logout", &reg.addr]));

        // Anonymous: the public repository only.
        let info = expect_ok(&what("anonymous inspect"), skopeo_cmd(&auth, &["inspect", "--tls-verify=false", &at("library/busybox:v1")]));
        assert!(info.contains(&digest), "{info}");
        let out = dir.path().join("out");
        expect_ok(&what("anonymous pull"), skopeo_cmd(&auth, &["copy", "--src-tls-verify=false", &at("library/busybox:v1"), &format!("oci:{}:latest", out.display())]));
        expect_fail(&what("anonymous pull of a private repository"), skopeo_cmd(&auth, &["inspect", "--tls-verify=false", &at("alice/private:v1")]), &["unauthorized", "authentication required"]);
        // Another user: denied.
        expect_fail(&what("bob pulls alice's"), skopeo_cmd(&auth, &["inspect", "--tls-verify=false", "--creds", "bob:builder", &at("alice/private:v1")]), &["denied", "unauthorized"]);
        expect_fail(&what("bob pushes to library"), skopeo_cmd(&auth, &["copy", "--dest-tls-verify=false", "--dest-creds", "bob:builder", &layout, &at("library/busybox:bob")]), &["denied"]);
        expect_ok(&what("alice with --creds"), skopeo_cmd(&auth, &["inspect", "--tls-verify=false", "--creds", "alice:wonderland", &at("alice/private:v1")]));
        // Registry to registry in one: blobs are mounted from a repository alice may pull.
        expect_ok(&what("copy between repositories"), skopeo_cmd(&auth, &["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", "alice:wonderland", "--dest-creds", "alice:wonderland", &at("library/busybox:v1"), &at("alice/copy:v1")]));
    }
}

#[test]
fn podman_login_push_pull() {
    if !have("python3", "python3") {
        return;
    }
    let Some(podman) = Podman::new() else { return };
    for mode in MODES {
        let Some((reg, dir)) = start(mode) else { return };
        let auth = dir.path().join("auth.json").to_string_lossy().into_owned();
        let archive = dir.path().join("busybox.tar");
        make_image(dir.path(), "layout", &["--docker-archive", &archive.to_string_lossy(), "--repo-tag", "berth-test/busybox:src"]);
        podman.ok(&["load", "-q", "-i", &archive.to_string_lossy()]);
        let public = format!("{}/library/busybox:v1", reg.addr);
        let private = format!("{}/alice/private:v1", reg.addr);
        let what = |w: &str| format!("{mode:?}: {w}");
        // The subcommand, then its own auth file, then the rest.
        let p = |args: &[&str]| {
            let mut all = vec![args[0], "--authfile", auth.as_str()];
            all.extend_from_slice(&args[1..]);
            podman.cmd(&all)
        };

        expect_fail(&what("podman login, wrong password"), p(&["login", "--tls-verify=false", "-u", "alice", "-p", "nope", &reg.addr]), &["unauthorized", "invalid"]);
        expect_ok(&what("podman login"), p(&["login", "--tls-verify=false", "-u", "alice", "-p", "wonderland", &reg.addr]));
        podman.ok(&["tag", "berth-test/busybox:src", &public, &private]);
        expect_ok(&what("podman push"), p(&["push", "--tls-verify=false", &public]));
        expect_ok(&what("podman push private"), p(&["push", "--tls-verify=false", &private]));
        expect_ok(&what("podman logout"), p(&["logout", &reg.addr]));
        podman.ok(&["rmi", "-af"]);

        expect_ok(&what("anonymous pull"), p(&["pull", "--tls-verify=false", &public]));
        expect_fail(&what("anonymous pull of a private repository"), p(&["pull", "--tls-verify=false", &private]), &["unauthorized", "authentication required"]);
        expect_ok(&what("podman login bob"), p(&["login", "--tls-verify=false", "-u", "bob", "-p", "builder", &reg.addr]));
        expect_fail(&what("bob pulls alice's"), p(&["pull", "--tls-verify=false", &private]), &["denied", "unauthorized"]);
        podman.ok(&["tag", &public, &format!("{}/library/busybox:bob", reg.addr)]);
        expect_fail(&what("bob pushes to library"), p(&["push", "--tls-verify=false", &format!("{}/library/busybox:bob", reg.addr)]), &["denied"]);
        podman.ok(&["rmi", "-af"]);
    }
}

#[test]
fn docker_login_push_pull() {
    if !have("python3", "python3") {
        return;
    }
    let Some((basic, basic_dir)) = start(Mode::Basic) else { return };
    let Some((token, token_dir)) = start(Mode::Token) else { return };
    let Some(dockerd) = Dockerd::start(&[&basic.addr, &token.addr]) else { return };
    let work = TempDir::new().unwrap();
    let archive = work.path().join("busybox.tar");
    make_image(work.path(), "layout", &["--docker-archive", &archive.to_string_lossy(), "--repo-tag", "berth-test/busybox:src"]);
    dockerd.ok(&["load", "-i", &archive.to_string_lossy()]);

    for (mode, reg, _dir) in [(Mode::Basic, &basic, &basic_dir), (Mode::Token, &token, &token_dir)] {
        let what = |w: &str| format!("{mode:?}: {w}");
        let public = format!("{}/library/busybox:v1", reg.addr);
        let private = format!("{}/alice/private:v1", reg.addr);
        expect_fail(&what("docker login, wrong password"), dockerd.docker_with_input(&["login", "-u", "alice", "--password-stdin", &reg.addr], b"nope\n"), &["unauthorized", "incorrect"]);
        let out = expect_ok(&what("docker login"), dockerd.docker_with_input(&["login", "-u", "alice", "--password-stdin", &reg.addr], b"wonderland\n"));
        assert!(out.contains("Login Succeeded"), "{out}");
        let config = std::fs::read_to_string(dockerd.config_dir().join("config.json")).unwrap();
        if mode == Mode::Token {
            // docker asked for a refresh token (offline_token) and keeps it instead of the password.
            assert!(config.contains("identitytoken"), "{config}");
        }
        dockerd.ok(&["tag", "berth-test/busybox:src", &public]);
        dockerd.ok(&["tag", "berth-test/busybox:src", &private]);
        expect_ok(&what("docker push"), dockerd.docker(&["push", &public]));
        expect_ok(&what("docker push private"), dockerd.docker(&["push", &private]));
        if mode == Mode::Token {
            // With the refresh token, dockerd gets access tokens by the OAuth2 POST.
            assert!(reg.log().contains("grant=\"refresh_token\"") || reg.log().contains("grant=refresh_token"), "{}", reg.log());
        }
        expect_ok(&what("docker logout"), dockerd.docker(&["logout", &reg.addr]));
        dockerd.ok(&["rmi", &public, &private]);

        if mode == Mode::Token {
            expect_ok(&what("anonymous pull"), dockerd.docker(&["pull", &public]));
        } else {
            // docker sends nothing without a login once /v2/ asks for Basic credentials:
            // anonymous docker pulls need the token flow.
            expect_fail(&what("anonymous pull"), dockerd.docker(&["pull", &public]), &["no basic auth credentials"]);
            expect_ok(&what("docker login"), dockerd.docker_with_input(&["login", "-u", "bob", "--password-stdin", &reg.addr], b"builder\n"));
            expect_ok(&what("pull as bob"), dockerd.docker(&["pull", &public]));
            dockerd.ok(&["logout", &reg.addr]);
        }
        expect_fail(&what("anonymous pull of a private repository"), dockerd.docker(&["pull", &private]), &["denied", "unauthorized", "authentication required", "no basic auth credentials"]);
        expect_ok(&what("docker login bob"), dockerd.docker_with_input(&["login", "-u", "bob", "--password-stdin", &reg.addr], b"builder\n"));
        let bobs = format!("{}/library/busybox:bob", reg.addr);
        dockerd.ok(&["tag", &public, &bobs]);
        expect_fail(&what("bob pushes to library"), dockerd.docker(&["push", &bobs]), &["denied"]);
        expect_fail(&what("bob pulls alice's"), dockerd.docker(&["pull", &private]), &["denied", "unauthorized"]);
        dockerd.ok(&["logout", &reg.addr]);
        dockerd.ok(&["rmi", &public, &bobs]);
    }
}


#[test]
fn berth_login_push_pull() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let Some((berthd_bin, berth_bin)) = berth_binaries() else { return };
    let Some((basic, basic_dir)) = start(Mode::Basic) else { return };
    let Some((token, token_dir)) = start(Mode::Token) else { return };
    let daemon = Berthd::start(&berthd_bin, &berth_bin, &[&basic.addr, &token.addr]);
    for (mode, reg, dir) in [(Mode::Basic, &basic, &basic_dir), (Mode::Token, &token, &token_dir)] {
        let what = |w: &str| format!("{mode:?}: {w}");
        // The images, pushed with skopeo as alice.
        let layout = format!("oci:{}:latest", dir.path().join("in").display());
        make_image(dir.path(), "in", &[]);
        let auth = dir.path().join("auth.json");
        std::fs::write(&auth, "{}").unwrap();
        for repo in ["library/busybox:v1", "alice/private:v1"] {
            expect_ok(&what("skopeo push"), skopeo_cmd(&auth, &["copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland", &layout, &format!("docker://{}/{repo}", reg.addr)]));
        }
        let public = format!("{}/library/busybox:v1", reg.addr);
        let private = format!("{}/alice/private:v1", reg.addr);

        expect_fail(&what("berth login, wrong password"), daemon.berth(&["login", "-u", "alice", "--password-stdin", &reg.addr], b"nope\n"), &["unauthorized", "incorrect"]);
        expect_ok(&what("anonymous berth pull"), daemon.berth(&["pull", &public], b""));
        expect_fail(&what("anonymous berth pull of a private repository"), daemon.berth(&["pull", &private], b""), &["denied", "unauthorized", "authentication", "not found"]);
        let out = expect_ok(&what("berth login"), daemon.berth(&["login", "-u", "alice", "--password-stdin", &reg.addr], b"wonderland\n"));
        assert!(out.contains("Login Succeeded"), "{out}");
        expect_ok(&what("berth pull private"), daemon.berth(&["pull", &private], b""));
        let copy = format!("{}/alice/copy:v1", reg.addr);
        expect_ok(&what("berth tag"), daemon.berth(&["tag", &public, &copy], b""));
        expect_ok(&what("berth push"), daemon.berth(&["push", &copy], b""));
        expect_ok(&what("berth logout"), daemon.berth(&["logout", &reg.addr], b""));
    }
}
