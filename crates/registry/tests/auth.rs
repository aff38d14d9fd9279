//! Access control over HTTP: Basic authentication against an htpasswd file made by
//! `htpasswd -B`, per-repository rules (public pulls, push and delete lists, first match
//! wins, no match denies), catalog filtering, mounts limited to what the caller may pull,
//! and the token flow (the `/token` realm, JWT scopes, tampered, expired and foreign
//! tokens, the OAuth2 POST with refresh tokens). The reference registry (distribution
//! 2.8) is checked to accept the tokens too.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A registry with the test users and rules, storing under `dir/data` (which outlives a
/// restart); `None` when htpasswd is not installed.
fn start(extra: &str) -> Option<(Registry, TempDir)> {
    let dir = TempDir::new().unwrap();
    if !write_htpasswd(&dir.path().join("htpasswd"), USERS) {
        return None;
    }
    let reg = restart(dir.path(), &auth_toml(dir.path(), extra));
    Some((reg, dir))
}

/// Starts a registry on `dir/data` with `toml` as its config.
fn restart(dir: &Path, toml: &str) -> Registry {
    let config = dir.join("registry.toml");
    std::fs::write(&config, toml).unwrap();
    Registry::start_at(&dir.join("data"), &["--config", &config.to_string_lossy()])
}

async fn status(r: reqwest::RequestBuilder) -> StatusCode {
    r.send().await.unwrap().status()
}

async fn catalog(c: &reqwest::Client, reg: &Registry) -> Vec<String> {
    let r = c.get(reg.url("/v2/_catalog")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["repositories"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn basic_auth_and_rules() {
    let Some((reg, _dir)) = start("") else { return };
    let anon = client();
    let alice = client_as("alice", "wonderland");
    let bob = client_as("bob", "builder");
    let liar = client_as("alice", "looking-glass");
    // Empty Basic credentials (what containers/image sends without a login) are anonymous.
    let empty = client_as("", "");

    // The ping: 401 with a Basic challenge unless the credentials are right.
    let r = anon.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!(header(&r, "www-authenticate"), "Basic realm=\"berth-registry\"");
    expect_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    assert_eq!(status(alice.get(reg.url("/v2/"))).await, StatusCode::OK);
    expect_error(liar.get(reg.url("/v2/")).send().await.unwrap(), StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    expect_error(client_as("nobody", "x").get(reg.url("/v2/")).send().await.unwrap(), StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // Public repository: alice pushes, everyone pulls, bob may not push, a wrong password is 401.
    let manifest = try_push_image(&alice, &reg, "library/busybox", "v1", "lib").await.unwrap();
    let r = anon.get(reg.url("/v2/library/busybox/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
    assert_eq!(status(empty.get(reg.url("/v2/library/busybox/manifests/v1"))).await, StatusCode::OK);
    assert_eq!(status(empty.get(reg.url("/v2/"))).await, StatusCode::UNAUTHORIZED);
    let (_, lib_layer) = image_parts("lib");
    assert_eq!(status(anon.head(reg.url(&format!("/v2/library/busybox/blobs/{}", sha256(&lib_layer))))).await, StatusCode::OK);
    let (s, body) = try_push_image(&bob, &reg, "library/busybox", "bob", "bob").await.unwrap_err();
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("DENIED") && body.contains("user bob may not push to repository library/busybox"), "{body}");
    let (s, _) = try_push_image(&liar, &reg, "library/busybox", "v2", "liar").await.unwrap_err();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = try_push_image(&anon, &reg, "library/busybox", "v2", "anon").await.unwrap_err();
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Private repository: anonymous 401 with a challenge, another user 403, the owner 200.
    try_push_image(&alice, &reg, "alice/private", "v1", "secret").await.unwrap();
    let r = anon.get(reg.url("/v2/alice/private/manifests/v1")).send().await.unwrap();
    assert!(header(&r, "www-authenticate").starts_with("Basic "));
    expect_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    expect_error(bob.get(reg.url("/v2/alice/private/manifests/v1")).send().await.unwrap(), StatusCode::FORBIDDEN, "DENIED").await;
    expect_error(bob.get(reg.url("/v2/alice/private/tags/list")).send().await.unwrap(), StatusCode::FORBIDDEN, "DENIED").await;
    assert_eq!(status(alice.get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::OK);
    // HEAD answers carry no body but the same status and challenge.
    let r = anon.head(reg.url("/v2/alice/private/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!header(&r, "www-authenticate").is_empty());

    // No rule matches: denied even to alice.
    let (s, _) = try_push_image(&alice, &reg, "elsewhere/app", "v1", "x").await.unwrap_err();
    assert_eq!(s, StatusCode::FORBIDDEN);

    // team/*: every user pulls, bob pushes, nobody deletes.
    try_push_image(&bob, &reg, "team/app", "v1", "team").await.unwrap();
    assert_eq!(status(alice.get(reg.url("/v2/team/app/manifests/v1"))).await, StatusCode::OK);
    assert_eq!(status(anon.get(reg.url("/v2/team/app/manifests/v1"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(try_push_image(&alice, &reg, "team/app", "v2", "a").await.unwrap_err().0, StatusCode::FORBIDDEN);
    expect_error(bob.delete(reg.url("/v2/team/app/manifests/v1")).send().await.unwrap(), StatusCode::FORBIDDEN, "DENIED").await;

    // Catalog: only for users, and only what each may pull.
    expect_error(anon.get(reg.url("/v2/_catalog")).send().await.unwrap(), StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    assert_eq!(catalog(&bob, &reg).await, ["library/busybox", "team/app"]);
    assert_eq!(catalog(&alice, &reg).await, ["alice/private", "library/busybox", "team/app"]);

    // Mounts: from a repository the caller may not pull, an upload starts instead.
    let (_, secret_layer) = image_parts("secret");
    let secret = sha256(&secret_layer);
    let r = bob.post(reg.url(&format!("/v2/team/app/blobs/uploads/?mount={secret}&from=alice/private"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status(bob.head(reg.url(&format!("/v2/team/app/blobs/{secret}")))).await, StatusCode::NOT_FOUND);
    let lib = sha256(&lib_layer);
    let r = bob.post(reg.url(&format!("/v2/team/app/blobs/uploads/?mount={lib}&from=library/busybox"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // By digest alone: only from repositories the caller may pull.
    let r = bob.post(reg.url(&format!("/v2/team/app/blobs/uploads/?mount={secret}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status(bob.head(reg.url(&format!("/v2/team/app/blobs/{secret}")))).await, StatusCode::NOT_FOUND);
    let r = alice.post(reg.url(&format!("/v2/alice/copy/blobs/uploads/?mount={secret}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // alice may delete in library (push implies delete there).
    assert_eq!(status(alice.delete(reg.url("/v2/library/busybox/manifests/v1"))).await, StatusCode::ACCEPTED);
    assert_eq!(status(bob.delete(reg.url(&format!("/v2/library/busybox/blobs/{lib}")))).await, StatusCode::FORBIDDEN);
}

#[test]
fn bad_htpasswd_and_token_key_refused_at_start() {
    if !have("htpasswd", "apache2-utils") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("htpasswd");
    let bcrypt = run(Command::new("htpasswd").args(["-Bbn", "alice", "a"]));
    let md5 = run(Command::new("htpasswd").args(["-mbn", "bob", "b"]));
    std::fs::write(&path, format!("{}\n{}\n", bcrypt.trim(), md5.trim())).unwrap();
    std::fs::write(dir.path().join("registry.toml"), auth_toml(dir.path(), "")).unwrap();
    let config = dir.path().join("registry.toml").to_string_lossy().into_owned();
    let root = dir.path().join("data");
    let e = Registry::spawn(&root, &["serve", "--addr", "127.0.0.1:0", "--root", &root.to_string_lossy(), "--config", &config]).err().unwrap();
    assert!(e.contains("line 2: user bob: not a bcrypt hash"), "{e}");

    std::fs::write(&path, bcrypt).unwrap();
    std::fs::write(dir.path().join("bad.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let key = dir.path().join("bad.key");
    std::fs::write(dir.path().join("registry.toml"), auth_toml(dir.path(), &format!("token = {{ key = \"{}\" }}", key.display()))).unwrap();
    let e = Registry::spawn(&root, &["serve", "--addr", "127.0.0.1:0", "--root", &root.to_string_lossy(), "--config", &config]).err().unwrap();
    assert!(e.contains(&format!("token key {}", key.display())), "{e}");
}

// ---- tokens ----

const SERVICE: &str = "berth-test";

fn token_settings() -> String {
    format!("token = {{ service = \"{SERVICE}\", expiry = \"5m\" }}")
}

fn decode_segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("token segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// GETs a token; returns the status and body.
async fn fetch_token(reg: &Registry, c: &reqwest::Client, query: &str) -> (StatusCode, Value) {
    let r = c.get(reg.url(&format!("/token?{query}"))).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn token_for(reg: &Registry, c: &reqwest::Client, scope: &str) -> String {
    let (s, body) = fetch_token(reg, c, &format!("service={SERVICE}&scope={scope}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_string()
}

fn challenge(r: &reqwest::Response) -> String {
    header(r, "www-authenticate").to_string()
}

/// The PKCS#8 document of a PEM key file.
fn key_der(key_file: &Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(key_file).unwrap().secret_pkcs8_der().to_vec()
}

/// Signs `claims` with a P-256 key, as a token issuer holding the key would.
fn sign(pkcs8: &[u8], header: Value, claims: Value) -> String {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn token_flow_and_scopes() {
    let Some((reg, dir)) = start(&token_settings()) else { return };
    let anon = client();
    let alice = client_as("alice", "wonderland");
    let bob = client_as("bob", "builder");
    let realm = format!("http://{}/token", reg.addr);

    // The ping challenges with the realm the registry serves itself.
    let r = anon.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!(challenge(&r), format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\""));
    expect_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let r = anon.get(reg.url("/v2/alice/private/manifests/v1")).send().await.unwrap();
    assert_eq!(challenge(&r), format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\",scope=\"repository:alice/private:pull\""));
    let r = anon.post(reg.url("/v2/alice/private/blobs/uploads/")).send().await.unwrap();
    assert!(challenge(&r).ends_with(",scope=\"repository:alice/private:pull,push\""), "{}", challenge(&r));

    // The key was made at first start, readable by its owner only.
    let key_file = reg.root().join("token.key");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Anonymous tokens: public pulls only.
    let (s, body) = fetch_token(&reg, &anon, &format!("service={SERVICE}&scope=repository:library/busybox:pull,push&scope=repository:alice/private:pull")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(humantime::parse_rfc3339(body["issued_at"].as_str().unwrap()).is_ok(), "{body}");
    assert!(body.get("refresh_token").is_none());
    let token = body["token"].as_str().unwrap();
    let head = decode_segment(token, 0);
    assert_eq!(head["alg"], "ES256");
    assert_eq!(head["typ"], "JWT");
    assert_eq!(head["kid"].as_str().unwrap().split(':').count(), 12);
    let claims = decode_segment(token, 1);
    assert_eq!((claims["iss"].as_str(), claims["sub"].as_str(), claims["aud"].as_str()), (Some("berth-registry"), Some(""), Some(SERVICE)));
    assert_eq!(
        claims["access"],
        json!([
            { "type": "repository", "name": "library/busybox", "actions": ["pull"] },
            { "type": "repository", "name": "alice/private", "actions": [] },
        ])
    );
    for claim in ["exp", "nbf", "iat", "jti"] {
        assert!(!claims[claim].is_null(), "{claim} missing: {claims}");
    }

    // alice pushes with a token for pull,push.
    let push_token = token_for(&reg, &alice, "repository:alice/private:pull,push").await;
    assert_eq!(decode_segment(&push_token, 1)["access"][0]["actions"], json!(["pull", "push"]));
    assert_eq!(decode_segment(&push_token, 1)["sub"], "alice");
    let as_alice = client_bearer(&push_token);
    try_push_image(&as_alice, &reg, "alice/private", "v1", "secret").await.unwrap();
    assert_eq!(status(as_alice.get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::OK);
    assert_eq!(status(as_alice.get(reg.url("/v2/"))).await, StatusCode::OK);

    // The token for repository a does not work on repository b, even one alice may use.
    let r = as_alice.get(reg.url("/v2/alice/other/tags/list")).send().await.unwrap();
    assert_eq!(challenge(&r), format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\",scope=\"repository:alice/other:pull\",error=\"insufficient_scope\""));
    expect_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // A pull-only token cannot push.
    let pull_token = token_for(&reg, &alice, "repository:alice/private:pull").await;
    let pull_only = client_bearer(&pull_token);
    assert_eq!(status(pull_only.get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::OK);
    let (s, body) = try_push_image(&pull_only, &reg, "alice/private", "v2", "more").await.unwrap_err();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(status(pull_only.delete(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::UNAUTHORIZED);

    // bob gets nothing on alice's repository; using the token is 403: the rules refuse him.
    let bob_token = token_for(&reg, &bob, "repository:alice/private:pull").await;
    assert_eq!(decode_segment(&bob_token, 1)["access"][0]["actions"], json!([]));
    expect_error(client_bearer(&bob_token).get(reg.url("/v2/alice/private/manifests/v1")).send().await.unwrap(), StatusCode::FORBIDDEN, "DENIED").await;

    // A tampered token: more actions, same signature.
    let parts: Vec<&str> = pull_token.split('.').collect();
    let mut claims = decode_segment(&pull_token, 1);
    claims["access"][0]["actions"] = json!(["pull", "push"]);
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let r = client_bearer(&tampered).post(reg.url("/v2/alice/private/blobs/uploads/")).send().await.unwrap();
    assert!(challenge(&r).ends_with(",error=\"invalid_token\""), "{}", challenge(&r));
    expect_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    // `alg: none` without a signature.
    let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#), parts[1]);
    assert_eq!(status(client_bearer(&unsigned).get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::UNAUTHORIZED);

    // Expired (signed with the right key), another issuer, another key.
    let header = decode_segment(&pull_token, 0);
    let mut expired = decode_segment(&pull_token, 1);
    expired["exp"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 7200);
    let expired = sign(&key_der(&key_file), header.clone(), expired);
    let r = client_bearer(&expired).get(reg.url("/v2/alice/private/manifests/v1")).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("token expired"), "{body}");
    let mut valid = decode_segment(&pull_token, 1);
    valid["exp"] = json!(now() + 600);
    let resigned = sign(&key_der(&key_file), header.clone(), valid.clone());
    assert_eq!(status(client_bearer(&resigned).get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::OK, "the test signs like the registry");
    let mut foreign_issuer = valid.clone();
    foreign_issuer["iss"] = json!("someone-else");
    let t = sign(&key_der(&key_file), header.clone(), foreign_issuer);
    assert_eq!(status(client_bearer(&t).get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::UNAUTHORIZED);
    let rng = ring::rand::SystemRandom::new();
    let other_key = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let t = sign(other_key.as_ref(), json!({"typ": "JWT", "alg": "ES256"}), valid);
    assert_eq!(status(client_bearer(&t).get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::UNAUTHORIZED);

    // Token requests: wrong password, another service, a malformed scope, another account.
    let (s, _) = fetch_token(&reg, &client_as("alice", "nope"), &format!("service={SERVICE}")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = fetch_token(&reg, &alice, "service=elsewhere").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = fetch_token(&reg, &alice, "scope=repository").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = fetch_token(&reg, &alice, "scope=repository:Bad:pull").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = fetch_token(&reg, &alice, "account=bob").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Catalog: needs registry:catalog:* and a user; lists only what the user may pull.
    try_push_image(&client_bearer(&token_for(&reg, &alice, "repository:library/busybox:push").await), &reg, "library/busybox", "v1", "lib")
        .await
        .unwrap();
    let r = as_alice.get(reg.url("/v2/_catalog")).send().await.unwrap();
    assert!(challenge(&r).contains("scope=\"registry:catalog:*\",error=\"insufficient_scope\""), "{}", challenge(&r));
    let bob_catalog = client_bearer(&token_for(&reg, &bob, "registry:catalog:*").await);
    assert_eq!(catalog(&bob_catalog, &reg).await, ["library/busybox"]);
    let alice_catalog = client_bearer(&token_for(&reg, &alice, "registry:catalog:*").await);
    assert_eq!(catalog(&alice_catalog, &reg).await, ["alice/private", "library/busybox"]);
    let anon_catalog = token_for(&reg, &anon, "registry:catalog:*").await;
    assert_eq!(decode_segment(&anon_catalog, 1)["access"][0]["actions"], json!([]));
    assert_eq!(status(client_bearer(&anon_catalog).get(reg.url("/v2/_catalog"))).await, StatusCode::UNAUTHORIZED);

    // Basic credentials work in token mode too (for scripts).
    assert_eq!(status(alice.get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::OK);

    // Restarted on the same root: the same key, so earlier tokens stay valid.
    drop(reg);
    let again = restart(dir.path(), &auth_toml(dir.path(), &token_settings()));
    let r = client_bearer(&pull_token).get(again.url("/v2/alice/private/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap_or_default());
}

async fn post_token(reg: &Registry, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = client().post(reg.url("/token")).form(form).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn token_refresh_via_post() {
    let Some((reg, dir)) = start(&token_settings()) else { return };
    let scope = "repository:alice/private:pull";

    // The password grant; `access_type=offline` adds a refresh token.
    let (s, body) = post_token(&reg, &[("grant_type", "password"), ("username", "alice"), ("password", "wonderland"), ("service", SERVICE), ("scope", scope), ("client_id", "test")]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none());
    let (s, body) = post_token(&reg, &[("grant_type", "password"), ("username", "alice"), ("password", "wonderland"), ("service", SERVICE), ("scope", scope), ("access_type", "offline"), ("client_id", "test")]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(decode_segment(body["access_token"].as_str().unwrap(), 1)["access"][0]["actions"], json!(["pull"]));
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let (s, _) = post_token(&reg, &[("grant_type", "password"), ("username", "alice"), ("password", "x"), ("service", SERVICE)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The refresh grant: a new access token for another scope (two, space-separated).
    let (s, body) = post_token(&reg, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("service", SERVICE), ("scope", "repository:alice/private:pull,push repository:library/x:pull"), ("client_id", "test")]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(decode_segment(token, 1)["sub"], "alice");
    assert_eq!(decode_segment(token, 1)["access"][0]["actions"], json!(["pull", "push"]));
    try_push_image(&client_bearer(token), &reg, "alice/private", "v1", "refreshed").await.unwrap();

    // An access token is no refresh token; a refresh token is no access token; tampering fails.
    let (s, _) = post_token(&reg, &[("grant_type", "refresh_token"), ("refresh_token", token), ("service", SERVICE)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(status(client_bearer(&refresh).get(reg.url("/v2/alice/private/manifests/v1"))).await, StatusCode::UNAUTHORIZED);
    let mut claims = decode_segment(&refresh, 1);
    claims["sub"] = json!("bob");
    let parts: Vec<&str> = refresh.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let (s, _) = post_token(&reg, &[("grant_type", "refresh_token"), ("refresh_token", &forged), ("service", SERVICE)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post_token(&reg, &[("grant_type", "client_credentials"), ("service", SERVICE)]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // GET with offline_token=true (what docker login asks) also returns a refresh token.
    let (s, body) = fetch_token(&reg, &client_as("alice", "wonderland"), &format!("service={SERVICE}&offline_token=true&client_id=docker")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body["refresh_token"].is_string(), "{body}");

    // A new password (the file is read again when it changes) revokes refresh tokens.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(write_htpasswd(&dir.path().join("htpasswd"), &[("alice", "new-password"), ("bob", "builder")]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = post_token(&reg, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("service", SERVICE)]).await;
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "refresh token still accepted after the password changed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(status(client_as("alice", "wonderland").get(reg.url("/v2/"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(client_as("alice", "new-password").get(reg.url("/v2/"))).await, StatusCode::OK);
}

/// A free loopback port (bound and released; the peer binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The reference registry (distribution 2.8) configured to trust berth-registry's tokens
/// through a certificate for the token key; killed on drop.
struct Reference {
    child: std::process::Child,
    addr: String,
    _dir: TempDir,
}

impl Reference {
    fn start(realm: &str, cert: &Path) -> Reference {
        let dir = TempDir::new().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nlog:\n  level: debug\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nauth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: berth-registry\n    rootcertbundle: {}\n",
            dir.path().join("data").display(),
            cert.display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start: {}", std::fs::read_to_string(dir.path().join("log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        }
        Reference { child, addr, _dir: dir }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an upload on the reference registry with `token`: 202 when the token is trusted
/// and grants push.
async fn reference_push(reference: &Reference, token: &str) -> StatusCode {
    let url = format!("http://{}/v2/alice/private/blobs/uploads/", reference.addr);
    client_bearer(token).post(url).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_registry_trusts_the_tokens() {
    if !have("docker-registry", "docker-registry") || !have("openssl", "openssl") {
        return;
    }
    let Some((reg, dir)) = start(&token_settings()) else { return };
    // A certificate for the token key, made by openssl: the reference registry's roots.
    let cert = dir.path().join("token.crt");
    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-subj", "/CN=berth-registry token", "-days", "2", "-key"])
        .arg(reg.root().join("token.key"))
        .arg("-out")
        .arg(&cert));
    let reference = Reference::start(&format!("http://{}/token", reg.addr), &cert);
    let r = client().get(format!("http://{}/v2/", reference.addr)).send().await.unwrap();
    assert_eq!(challenge(&r), format!("Bearer realm=\"http://{}/token\",service=\"{SERVICE}\"", reg.addr));

    // Found by `kid` (its libtrust key id) among the certificate's keys.
    let token = token_for(&reg, &client_as("alice", "wonderland"), "repository:alice/private:pull,push").await;
    assert_eq!(reference_push(&reference, &token).await, StatusCode::ACCEPTED);
    let pull_only = token_for(&reg, &client_as("alice", "wonderland"), "repository:alice/private:pull").await;
    assert_eq!(reference_push(&reference, &pull_only).await, StatusCode::UNAUTHORIZED);

    // With the certificate configured, tokens carry it (`x5c`) and verify by chain.
    drop(reference);
    drop(reg);
    let reg = restart(dir.path(), &auth_toml(dir.path(), &format!("token = {{ service = \"{SERVICE}\", cert = \"{}\" }}", cert.display())));
    let reference = Reference::start(&format!("http://{}/token", reg.addr), &cert);
    let token = token_for(&reg, &client_as("alice", "wonderland"), "repository:alice/private:pull,push").await;
    assert!(decode_segment(&token, 0)["x5c"].is_array());
    assert_eq!(reference_push(&reference, &token).await, StatusCode::ACCEPTED);
    let mut tampered = decode_segment(&token, 1);
    tampered["sub"] = json!("bob");
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(tampered.to_string()), parts[2]);
    assert_eq!(reference_push(&reference, &tampered).await, StatusCode::UNAUTHORIZED);
}
