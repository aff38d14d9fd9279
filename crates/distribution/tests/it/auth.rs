//! Authentication against the real registry: htpasswd basic auth and the token flow with
//! a token issuer whose JWTs the registry verifies.

use std::sync::atomic::Ordering;

use base64::Engine;
use berth_distribution::manifest::Platform;
use berth_distribution::{AuthConfig, Error, ErrorKind, Reference};
use bytes::Bytes;
use futures_util::stream;

use crate::support::*;

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).expect("reference")
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let reg = Registry::start_with(&["--htpasswd", "alice:wonderland"]);
    let layer = layer_dir(&[("f", "basic")], 0);
    let layout = make_image(&["--layer", &layer.path().display().to_string()]);
    layout.push(&reg.addr, "app:v1", &["--dest-creds", "alice:wonderland"]);
    let client = client();
    let r = reference(&format!("{}/app:v1", reg.addr));

    let e = client
        .resolve(&r, None, &Platform::host())
        .await
        .unwrap_err();
    // Reported as not found, as dockerd does, so clients do not prompt for a login.
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        format!(
            "pull access denied for {}/app, repository does not exist or may require 'docker login': \
             unauthorized: authentication required",
            reg.addr
        )
    );
    let e = client
        .resolve(&r, Some(&user("alice", "wrong")), &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PullDenied { .. }), "{e}");

    let alice = user("alice", "wonderland");
    let resolved = client
        .resolve(&r, Some(&alice), &Platform::host())
        .await
        .expect("alice pulls");
    assert_eq!(resolved.digest, layout.digest);
    // The same credentials as config.json's `auth` field, through an X-Registry-Auth header.
    let header = AuthConfig {
        auth: base64::engine::general_purpose::STANDARD.encode("alice:wonderland"),
        ..AuthConfig::default()
    }
    .to_header();
    let decoded = AuthConfig::from_header(&header).unwrap().unwrap();
    let layer = &resolved.manifest.layers[0];
    let (_, digest) = drain(
        client
            .fetch_blob(
                &resolved.endpoint,
                "app",
                &layer.digest,
                Some(layer.size),
                0,
                Some(&decoded),
            )
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(digest, layer.digest);

    // Pushing needs the credentials too.
    let data = b"pushed with basic auth".to_vec();
    let blob = sha256(&data);
    let body = || stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
    let e = client
        .push_blob(&r, &blob, data.len() as u64, body(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("push to {}/app denied: ", reg.addr)),
        "{e}"
    );
    client
        .push_blob(&r, &blob, data.len() as u64, body(), Some(&alice))
        .await
        .expect("push with auth");

    assert_eq!(
        client
            .login(&format!("http://{}/", reg.addr), &alice)
            .await
            .expect("login"),
        None
    );
    let e = client
        .login(&reg.addr, &user("alice", "nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(
        e.to_string(),
        format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.addr
        )
    );
}

#[tokio::test]
async fn bearer_token_flow() {
    let issuer = TokenIssuer::start();
    let reg = Registry::start_with(&["--token", &issuer.registry_arg()]);
    let layer = layer_dir(&[("f", "token")], 0);
    let layout = make_image(&["--layer", &layer.path().display().to_string()]);
    // skopeo, a real client, gets its tokens from the issuer too.
    layout.push(&reg.addr, "app:v1", &["--dest-creds", "alice:wonderland"]);
    layout.push(
        &reg.addr,
        "public/app:v1",
        &["--dest-creds", "alice:wonderland"],
    );
    let client = client();
    let r = reference(&format!("{}/app:v1", reg.addr));
    let alice = user(ALICE.0, ALICE.1);

    let e = client
        .resolve(&r, None, &Platform::host())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("pull access denied for {}/app", reg.addr)),
        "{e}"
    );
    let e = client
        .resolve(&r, Some(&user("alice", "nope")), &Platform::host())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(
        e.to_string().contains("incorrect username or password"),
        "{e}"
    );

    // Anonymous tokens serve public repositories.
    let public = client
        .resolve(
            &reference(&format!("{}/public/app:v1", reg.addr)),
            None,
            &Platform::host(),
        )
        .await;
    assert_eq!(
        public.expect("anonymous pull of public/app").digest,
        layout.digest
    );

    let before = issuer.gets.load(Ordering::SeqCst);
    let resolved = client
        .resolve(&r, Some(&alice), &Platform::host())
        .await
        .unwrap_or_else(|e| panic!("alice pulls: {e}\nregistry log:\n{}", reg.log()));
    assert_eq!(resolved.digest, layout.digest);
    let layer = &resolved.manifest.layers[0];
    let (_, digest) = drain(
        client
            .fetch_blob(
                &resolved.endpoint,
                "app",
                &layer.digest,
                Some(layer.size),
                0,
                Some(&alice),
            )
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(digest, layer.digest);
    client
        .resolve(&r, Some(&alice), &Platform::host())
        .await
        .expect("again");
    assert_eq!(
        issuer.gets.load(Ordering::SeqCst),
        before + 1,
        "one token serves the pull scope until it expires"
    );

    // A push asks for pull,push and the registry accepts the token's grant.
    let data = b"pushed with a bearer token".to_vec();
    let blob = sha256(&data);
    let body = stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
    let pushed = reference(&format!("{}/pushed:v1", reg.addr));
    client
        .push_blob(&pushed, &blob, data.len() as u64, body, Some(&alice))
        .await
        .expect("push with token");
    assert_eq!(
        client
            .blob_exists(&pushed, &blob, Some(&alice))
            .await
            .unwrap(),
        Some(data.len() as u64)
    );
    assert!(client
        .mount_blob(
            &reference(&format!("{}/mounted", reg.addr)),
            &blob,
            "pushed",
            Some(&alice)
        )
        .await
        .unwrap());

    // Login returns the refresh token; it then stands in for the password (OAuth2 POST).
    let identity = client
        .login(&format!("https://{}", reg.addr), &alice)
        .await
        .expect("login");
    assert_eq!(identity.as_deref(), Some(ALICE_REFRESH));
    let by_token = AuthConfig {
        identity_token: ALICE_REFRESH.into(),
        ..AuthConfig::default()
    };
    let posts = issuer.posts.load(Ordering::SeqCst);
    let again = client
        .resolve(&r, Some(&by_token), &Platform::host())
        .await
        .expect("pull with the identity token");
    assert_eq!(again.digest, layout.digest);
    assert_eq!(issuer.posts.load(Ordering::SeqCst), posts + 1);
    let e = client
        .login(&reg.addr, &user("alice", "nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
}
