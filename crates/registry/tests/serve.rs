//! The `serve` command: configuration file, flags overriding it, refusal of bad
//! configuration, and TLS (checked with reqwest and with skopeo verifying the certificate).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn config_file_with_flags_overriding_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("from-file");
    let config = dir.path().join("registry.toml");
    // The file's address is unusable: the flag must win.
    std::fs::write(&config, format!("addr = \"192.0.2.1:1\"\nroot = \"{}\"\nupload_expiry = \"5m\"\n", root.display())).unwrap();
    let reg = Registry::spawn(&root, &["serve", "--config", &config.to_string_lossy(), "--addr", "127.0.0.1:0"]).unwrap();
    let digest = push_blob(&reg, "conf", b"stored where the file says").await;
    assert!(root.join("blobs/sha256").join(&digest[7..]).is_file());
}

fn refused(args: &[&str], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    match Registry::spawn(dir.path(), args) {
        Ok(_) => panic!("{args:?} started"),
        Err(log) => assert!(log.contains(expect), "{args:?}: expected {expect:?} in:\n{log}"),
    }
}

#[test]
fn bad_configuration_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let unknown = write("unknown.toml", "adress = \"127.0.0.1:0\"\n");
    refused(&["serve", "--config", &unknown], "adress");
    let expiry = write("expiry.toml", "upload_expiry = \"soon\"\n");
    refused(&["serve", "--config", &expiry, "--addr", "127.0.0.1:0"], "soon");
    refused(&["serve", "--config", "/nonexistent/registry.toml"], "/nonexistent/registry.toml");
    refused(&["serve", "--addr", "127.0.0.1:0", "--upload-expiry", "0s", "--root", &dir.path().join("r").to_string_lossy()], "0s");
    refused(&["serve", "--addr", "not-an-address", "--root", &dir.path().join("r").to_string_lossy()], "not-an-address");
    refused(&["serve", "--addr", "127.0.0.1:0", "--tls-cert", "/nonexistent/cert.pem"], "--tls-key");
    refused(
        &["serve", "--addr", "127.0.0.1:0", "--root", &dir.path().join("r").to_string_lossy(), "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"],
        "/nonexistent/c.pem",
    );
}

/// A test CA and a server certificate it signed for 127.0.0.1; returns (ca, cert, key).
fn certificates(dir: &Path) -> (String, String, String) {
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    run(Command::new("openssl").args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=berth-test-ca"])
        .args(["-keyout", &p("ca.key"), "-out", &p("ca.pem")]));
    run(Command::new("openssl").args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
        .args(["-keyout", &p("key.pem"), "-out", &p("server.csr")]));
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    run(Command::new("openssl").args(["x509", "-req", "-days", "1", "-in", &p("server.csr"), "-CA", &p("ca.pem"), "-CAkey", &p("ca.key")])
        .args(["-CAcreateserial", "-extfile", &p("ext.cnf"), "-out", &p("cert.pem")]));
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

#[tokio::test]
async fn serves_tls_with_the_given_certificate() {
    if !have("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert, key) = certificates(dir.path());
    let root = dir.path().join("data");
    let reg = Registry::start_at(&root, &["--tls-cert", &cert, "--tls-key", &key]);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_pem).unwrap()).unwrap();
    let tls = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let r = tls.get(format!("https://{}/v2/", reg.addr)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
    // Plain HTTP on the TLS port gets no API answer.
    let plain = client().get(reg.url("/v2/")).send().await;
    assert!(plain.map(|r| r.status() != StatusCode::OK).unwrap_or(true));
    // A client without the test CA refuses the certificate.
    assert!(reqwest::get(format!("https://{}/v2/", reg.addr)).await.is_err());

    // skopeo verifies the certificate against a certs.d style directory.
    if have("skopeo", "skopeo") {
        let certs = dir.path().join("certs.d");
        std::fs::create_dir(&certs).unwrap();
        std::fs::copy(&ca_pem, certs.join("ca.crt")).unwrap();
        let work = tempfile::tempdir().unwrap();
        let rootfs = work.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        std::fs::write(rootfs.join("hello"), "tls").unwrap();
        let layout = work.path().join("layout");
        run(Command::new("python3").arg(repo_root().join("tests/make-image.py")).arg(&layout).arg("--layer").arg(&rootfs));
        run(Command::new("skopeo")
            .args(["copy", "--dest-cert-dir"])
            .arg(&certs)
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/tls/hello:latest", reg.addr)));
        let out = run(Command::new("skopeo").args(["inspect", "--cert-dir"]).arg(&certs).arg(format!("docker://{}/tls/hello:latest", reg.addr)));
        assert!(out.contains("\"Digest\""), "{out}");
    }
}

/// Over TLS, blob bodies are encrypted from the mapped windows: a random blob of several
/// windows arrives exact, whole and by a range across two windows.
#[tokio::test]
async fn tls_sends_large_blobs_exactly() {
    if !have("openssl", "openssl") {
        return;
    }
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let data = random_bytes(9 * MIB + 1);
    let digest = {
        let plain = Registry::start_at(&root, &[]);
        push_blob(&plain, "big/tls", &data).await
    };
    let (ca_pem, cert, key) = certificates(dir.path());
    let reg = Registry::start_at(&root, &["--tls-cert", &cert, "--tls-key", &key]);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_pem).unwrap()).unwrap();
    let tls = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let url = format!("https://{}/v2/big/tls/blobs/{digest}", reg.addr);

    let r = tls.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    assert_eq!(sha256(&body), digest, "the whole blob differs");

    let (start, end) = (4 * MIB - 10, 8 * MIB + 10);
    let r = tls.get(&url).header("range", format!("bytes={start}-{}", end - 1)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let body = r.bytes().await.unwrap();
    assert!(body == data[start..end], "the range differs");
}

#[test]
fn a_second_process_on_the_same_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let _first = Registry::start_at(&root, &[]);
    let root_arg = root.to_string_lossy().into_owned();
    match Registry::spawn(&root, &["serve", "--addr", "127.0.0.1:0", "--root", &root_arg]) {
        Ok(_) => panic!("two registries serve one root"),
        Err(log) => assert!(log.contains("in use by another process"), "{log}"),
    }
}
