//! Registries that misbehave (wrong digests, HTML pages, wrong lengths, cut bodies, 5xx)
//! give clear errors; Link pagination and search answers are followed.

use berth_distribution::manifest::{media_type, Platform};
use berth_distribution::{Error, ErrorKind, Reference, RegistryConfig};

use crate::support::*;

fn manifest_json(seed: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        sha256(seed.as_bytes())
    )
}

struct Liar {
    server: RawServer,
    /// A digest the server claims to serve, and the different manifest it sends for it.
    claimed: String,
    blob: Vec<u8>,
}

async fn liar() -> Liar {
    let claimed = sha256(manifest_json("claimed").as_bytes());
    let blob = random_bytes(1000, 3);
    let (c, b) = (claimed.clone(), blob.clone());
    let server = RawServer::start(move |req| {
        let manifest = |body: String| RawResponse::new(200, media_type::OCI_MANIFEST, body);
        let path = req.target.split('?').next().unwrap_or_default();
        let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        match path {
            "/v2/" => RawResponse::new(200, "application/json", "{}"),
            p if p == format!("/v2/lie/manifests/{c}") => manifest(manifest_json("something else")),
            "/v2/lie/manifests/tagged" => manifest(manifest_json("tagged")).header("Docker-Content-Digest", &c),
            "/v2/html/manifests/latest" => RawResponse::new(200, "text/html", "<html><body>Sign in to continue</body></html>"),
            "/v2/odd/manifests/latest" => RawResponse::new(
                200,
                "application/vnd.example.thing+json",
                r#"{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}"#,
            ),
            "/v2/broken/manifests/latest" => RawResponse::new(
                500,
                "application/json",
                r#"{"errors":[{"code":"UNKNOWN","message":"storage backend on fire"}]}"#,
            ),
            p if p.starts_with("/v2/lie/blobs/") => {
                // Its own digest gets a wrong Content-Length; any other digest gets its bytes.
                let mut r = RawResponse::new(200, "application/octet-stream", b.clone());
                if p.ends_with(&sha256(&b)) {
                    r.content_length = Some(b.len() + 100);
                    r.cut_after = Some(b.len());
                }
                r
            }
            "/v2/cut/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000" => {
                let mut r = RawResponse::new(200, "application/octet-stream", b.clone());
                r.cut_after = Some(500);
                r
            }
            "/v2/pages/tags/list" => {
                let (tags, next) = match query {
                    "" => (r#"["a","b"]"#, Some("/v2/pages/tags/list?last=b&n=2")),
                    "last=b&n=2" => (r#"["c","d"]"#, Some("/v2/pages/tags/list?last=d&n=2")),
                    _ => (r#"["e"]"#, None),
                };
                let body = format!(r#"{{"name":"pages","tags":{tags}}}"#);
                let r = RawResponse::new(200, "application/json", body);
                match next {
                    Some(n) => r.header("Link", &format!(r#"<{n}>; rel="next""#)),
                    None => r,
                }
            }
            "/v1/search" => RawResponse::new(
                200,
                "application/json",
                r#"{"num_results":1,"query":"app","results":[{"name":"team/app","description":"an app","star_count":3,"is_official":false,"is_automated":false}]}"#,
            ),
            _ => RawResponse::new(404, "application/json", r#"{"errors":[{"code":"NOT_FOUND","message":"nothing here"}]}"#),
        }
    })
    .await;
    Liar {
        server,
        claimed,
        blob,
    }
}

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).expect("reference")
}

#[tokio::test]
async fn lying_manifests_are_refused() {
    let liar = liar().await;
    let addr = &liar.server.addr;
    let client = client_with(RegistryConfig {
        max_retries: 1,
        ..RegistryConfig::default()
    });
    let host = Platform::host();

    let r = reference(&format!("{addr}/lie@{}", liar.claimed));
    let e = client.resolve(&r, None, &host).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "digest mismatch for {addr}/lie@{}: expected {}, got {}",
            liar.claimed,
            liar.claimed,
            sha256(manifest_json("something else").as_bytes())
        )
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);

    let e = client
        .get_manifest(&reference(&format!("{addr}/lie:tagged")), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::DigestMismatch { expected, .. } if *expected == liar.claimed),
        "{e}"
    );

    let e = client
        .resolve(&reference(&format!("{addr}/html")), None, &host)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("registry {addr} sent a bad response to GET /v2/html/manifests/latest: an HTML page (text/html) instead of a manifest")
    );

    let e = client
        .resolve(&reference(&format!("{addr}/odd")), None, &host)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.to_string(),
        format!("unsupported manifest for {addr}/odd:latest: unknown media type \"application/vnd.example.thing+json\"")
    );

    let e = client
        .resolve(&reference(&format!("{addr}/broken")), None, &host)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        e.to_string(),
        format!("GET /v2/broken/manifests/latest on {addr} failed with status 500: unknown: storage backend on fire")
    );
    assert_eq!(liar.server.count("GET", "/v2/broken/"), 2, "one retry");

    // HEAD answers are held to the same rules as far as headers go: a HEAD cannot check
    // the digest of a body it does not get.
    let head = client
        .head_manifest(&reference(&format!("{addr}/lie:tagged")), None)
        .await
        .expect("head");
    assert_eq!(head.digest, liar.claimed);
    assert_eq!(head.media_type, media_type::OCI_MANIFEST);
    assert_eq!(head.size, manifest_json("tagged").len() as u64);
    let e = client
        .head_manifest(&reference(&format!("{addr}/odd")), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("registry {addr} sent a bad response to HEAD /v2/odd/manifests/latest: no Docker-Content-Digest header")
    );
    let e = client
        .head_manifest(&reference(&format!("{addr}/html")), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("registry {addr} sent a bad response to HEAD /v2/html/manifests/latest: an HTML page instead of a manifest")
    );
    let e = client
        .head_manifest(&reference(&format!("{addr}/broken")), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("HEAD /v2/broken/manifests/latest on {addr} failed with status 500: 500 Internal Server Error")
    );
}

#[tokio::test]
async fn lying_blobs_are_refused() {
    let liar = liar().await;
    let addr = &liar.server.addr;
    let client = client_with(RegistryConfig {
        max_retries: 2,
        ..RegistryConfig::default()
    });
    let endpoint = client.origin(addr).await;
    let digest = sha256(&liar.blob);

    // Content-Length says 1100 where the manifest said 1000.
    let e = client
        .fetch_blob(&endpoint, "lie", &digest, Some(1000), 0, None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("registry {addr} sent a bad response to GET /v2/lie/blobs/{digest}: Content-Length 1100 does not match the blob size 1000")
    );

    // Announced 1000 bytes, sent 500 and hung up, every time: the stream gives up.
    let zero = format!("sha256:{}", "0".repeat(64));
    let stream = client
        .fetch_blob(&endpoint, "cut", &zero, Some(1000), 0, None)
        .await
        .expect("the answer starts well");
    let e = drain(stream).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let message = e.to_string();
    assert!(
        message.starts_with(&format!(
            "transfer of blob {zero} of cut from {addr} failed: "
        )),
        "{message}"
    );
    assert!(message.ends_with("(gave up after 2 retries)"), "{message}");
    let ranges: Vec<Option<String>> = {
        let requests = liar.server.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.target.starts_with("/v2/cut/"))
            .map(|r| r.headers.get("range").cloned())
            .collect()
    };
    let resumed = Some("bytes=500-".to_string());
    assert_eq!(
        ranges,
        [None, resumed.clone(), resumed],
        "each retry resumes where the data stopped"
    );

    // The content is not what the digest says.
    let other = sha256(b"other");
    let e = client
        .fetch_blob_bytes(&endpoint, "lie", &other, None, None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("digest mismatch for lie@{other}: expected {other}, got {digest}")
    );
}

#[tokio::test]
async fn tag_pages_and_search_results() {
    let liar = liar().await;
    let addr = &liar.server.addr;
    let client = client();
    let tags = client
        .list_tags(&reference(&format!("{addr}/pages")), None)
        .await
        .expect("tags");
    assert_eq!(tags, ["a", "b", "c", "d", "e"]);
    assert_eq!(liar.server.count("GET", "/v2/pages/tags/list"), 3);

    let found = client.search(addr, "app", 5, None).await.expect("search");
    assert_eq!(found.num_results, 1);
    assert_eq!(found.results[0].name, "team/app");
    assert_eq!(found.results[0].star_count, 3);
    assert_eq!(liar.server.count("GET", "/v1/search?q=app&n=5"), 1);
}
