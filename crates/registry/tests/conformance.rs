//! HTTP-level conformance with the distribution spec v1.1: every endpoint, its headers and
//! status codes, and the error code of every kind of bad input (with nothing written).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn ping_answers_with_the_api_version() {
    let reg = Registry::start();
    for path in ["/v2/", "/v2"] {
        let r = client().get(reg.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
    }
    let r = client().get(reg.url("/v3/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Bodies are sent from 4 MiB windows mapped from the blob file: a blob of several
/// windows arrives whole, ranges across a window boundary are exact, and a blob whose file
/// is unlinked mid-download (as the garbage collector deletes) still arrives whole.
#[tokio::test]
async fn blobs_of_several_windows_and_ranges_across_them() {
    const MIB: usize = 1 << 20;
    let reg = Registry::start();
    let data: Vec<u8> = (0..9 * MIB + 123).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let digest = push_blob(&reg, "big/repo", &data).await;
    let url = reg.url(&format!("/v2/big/repo/blobs/{digest}"));

    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), data.len().to_string());
    assert!(r.bytes().await.unwrap().as_ref() == &data[..], "the whole blob differs");

    for (range, start, end) in [
        ("bytes=4194300-4194310", 4 * MIB - 4, 4 * MIB + 7),
        ("bytes=4194304-", 4 * MIB, data.len()),
        ("bytes=1-8388608", 1, 8 * MIB + 1),
        ("bytes=-5242881", data.len() - 5 * MIB - 1, data.len()),
        ("bytes=9437183-9999999", data.len() - 124, data.len()),
    ] {
        let r = client().get(&url).header("range", range).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&r, "content-length"), (end - start).to_string(), "{range}");
        assert_eq!(header(&r, "content-range"), format!("bytes {start}-{}/{}", end - 1, data.len()), "{range}");
        assert!(r.bytes().await.unwrap().as_ref() == &data[start..end], "{range}: the bytes differ");
    }

    // The first window is mapped when the answer starts; the blob's name goes before the
    // rest is read, and the rest still comes from the open file.
    let mut r = client().get(&url).send().await.unwrap();
    let mut got = r.chunk().await.unwrap().expect("a first chunk").to_vec();
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::remove_file(reg.root().join("blobs/sha256").join(hex)).unwrap();
    while let Some(chunk) = r.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert!(got == data, "a blob unlinked mid-download arrived with {} bytes, not its own", got.len());
    let r = client().get(&url).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn monolithic_post_then_head_get_and_ranges() {
    let reg = Registry::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = push_blob(&reg, "mono/repo", &data).await;

    let r = client().head(reg.url(&format!("/v2/mono/repo/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), data.len().to_string());
    assert_eq!(header(&r, "docker-content-digest"), digest);

    let r = client().get(reg.url(&format!("/v2/mono/repo/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    let get_range = |range: &'static str| {
        let url = reg.url(&format!("/v2/mono/repo/blobs/{digest}"));
        async move { client().get(url).header("range", range).send().await.unwrap() }
    };
    let r = get_range("bytes=10-19").await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&r, "content-range"), format!("bytes 10-19/{}", data.len()));
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[10..20]);
    let r = get_range("bytes=99990-").await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[99_990..]);
    let r = get_range("bytes=-5").await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[data.len() - 5..]);
    let r = get_range("bytes=100000-").await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "content-range"), format!("bytes */{}", data.len()));

    // Not visible in a repository it was never pushed to.
    let r = client().head(reg.url(&format!("/v2/other/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = client().get(reg.url(&format!("/v2/other/blobs/{digest}"))).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn post_then_put() {
    let reg = Registry::start();
    let c = client();
    let r = c.post(reg.url("/v2/pp/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location").to_string();
    assert!(location.starts_with("/v2/pp/blobs/uploads/"), "{location}");
    assert!(!header(&r, "docker-upload-uuid").is_empty());
    let data = b"post then put".to_vec();
    let digest = sha256(&data);
    let r = c.put(reg.url(&format!("{location}?digest={digest}"))).body(data.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/pp/blobs/{digest}"));
    assert_eq!(header(&r, "docker-content-digest"), digest);
    let got = c.get(reg.url(&format!("/v2/pp/blobs/{digest}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    // The session is gone once completed.
    let r = c.get(reg.url(&location)).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn chunked_upload_in_order_and_out_of_order() {
    let reg = Registry::start();
    let c = client();
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = sha256(&data);
    let r = c.post(reg.url("/v2/chunks/blobs/uploads/")).header("content-length", "0").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut location = header(&r, "location").to_string();
    let id = header(&r, "docker-upload-uuid").to_string();

    let patch = |location: String, range: String, body: Vec<u8>| {
        let url = reg.url(&location);
        async move {
            client()
                .patch(url)
                .header("content-type", "application/octet-stream")
                .header("content-range", range)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = patch(location.clone(), "0-999".into(), data[..1000].to_vec()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-999");
    location = header(&r, "location").to_string();

    // A chunk that skips bytes, or repeats them, is refused with 416; nothing changes.
    let r = patch(location.clone(), "1500-1999".into(), data[1500..2000].to_vec()).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = patch(location.clone(), "0-999".into(), data[..1000].to_vec()).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // A chunk whose body disagrees with its Content-Range is refused and not kept.
    let r = patch(location.clone(), "1000-1999".into(), data[1000..1500].to_vec()).await;
    expect_error(r, StatusCode::BAD_REQUEST, "SIZE_INVALID").await;

    let r = c.get(reg.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), "0-999");
    assert_eq!(header(&r, "docker-upload-uuid"), id);
    assert_eq!(header(&r, "location"), location);

    let r = patch(location.clone(), "1000-1999".into(), data[1000..2000].to_vec()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-1999");

    // The final chunk comes with the closing PUT; out of order there is also 416.
    let r = c
        .put(reg.url(&format!("{location}?digest={digest}")))
        .header("content-range", "2001-2999")
        .body(data[2001..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = c
        .put(reg.url(&format!("{location}?digest={digest}")))
        .header("content-range", "2000-2999")
        .body(data[2000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let got = c.get(reg.url(&format!("/v2/chunks/blobs/{digest}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), &data[..]);
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let reg = Registry::start();
    let c = client();
    let r = c.post(reg.url("/v2/stream/blobs/uploads/")).send().await.unwrap();
    let location = header(&r, "location").to_string();
    let chunks: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 64 * 1024]).collect();
    let all: Vec<u8> = chunks.concat();
    let stream = futures_stream(chunks);
    let r = c.patch(reg.url(&location)).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), format!("0-{}", all.len() - 1));
    let location = header(&r, "location").to_string();
    let digest = sha256(&all);
    let r = c.put(reg.url(&format!("{location}?digest={digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c.head(reg.url(&format!("/v2/stream/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(header(&r, "content-length"), all.len().to_string());
}

/// A body sent with chunked transfer encoding, frame by frame.
fn futures_stream(chunks: Vec<Vec<u8>>) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn digest_mismatch_stores_nothing() {
    let reg = Registry::start();
    let c = client();
    let wrong = sha256(b"something else");
    // Single POST.
    let r = c.post(reg.url(&format!("/v2/dm/blobs/uploads/?digest={wrong}"))).body("actual content").send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    // POST then PUT: the session ends, nothing becomes a blob.
    let r = c.post(reg.url("/v2/dm/blobs/uploads/")).send().await.unwrap();
    let location = header(&r, "location").to_string();
    let r = c.put(reg.url(&format!("{location}?digest={wrong}"))).body("actual content").send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let r = c.get(reg.url(&location)).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    for d in [wrong, sha256(b"actual content")] {
        let r = c.head(reg.url(&format!("/v2/dm/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let blobs: Vec<_> = reg.files().into_iter().filter(|p| p.starts_with(reg.root().join("blobs")) && p.is_file()).collect();
    assert!(blobs.is_empty(), "{blobs:?}");
    let uploads = std::fs::read_dir(reg.root().join("uploads")).unwrap().count();
    assert_eq!(uploads, 0);
    // PUT without a digest.
    let r = c.post(reg.url("/v2/dm/blobs/uploads/")).send().await.unwrap();
    let location = header(&r, "location").to_string();
    let r = c.put(reg.url(&location)).body("x").send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn sha512_blobs() {
    let reg = Registry::start();
    let c = client();
    let data = b"sha512 content".to_vec();
    let d512 = sha512(&data);
    let r = c.post(reg.url(&format!("/v2/s5/blobs/uploads/?digest={d512}"))).body(data.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c.get(reg.url(&format!("/v2/s5/blobs/{d512}"))).send().await.unwrap();
    assert_eq!(header(&r, "docker-content-digest"), d512);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);
    assert!(reg.root().join("blobs/sha512").join(&d512[7..]).is_file());

    // A session opened for sha512, and a sha256 session closed with a sha512 digest.
    for query in ["?digest-algorithm=sha512", ""] {
        let body = format!("chunked {query}").into_bytes();
        let r = c.post(reg.url(&format!("/v2/s5/blobs/uploads/{query}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let location = header(&r, "location").to_string();
        let r = c.patch(reg.url(&location)).body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let d = sha512(&body);
        let r = c.put(reg.url(&format!("{location}?digest={d}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    }
    let r = c.post(reg.url("/v2/s5/blobs/uploads/?digest-algorithm=md5")).send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn cancel_upload_and_foreign_sessions() {
    let reg = Registry::start();
    let c = client();
    let r = c.post(reg.url("/v2/cancel/blobs/uploads/")).send().await.unwrap();
    let location = header(&r, "location").to_string();
    let id = header(&r, "docker-upload-uuid").to_string();
    c.patch(reg.url(&location)).body("partial").send().await.unwrap();
    // The session belongs to its repository.
    let r = c.get(reg.url(&format!("/v2/elsewhere/blobs/uploads/{id}"))).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let r = c.delete(reg.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!reg.root().join("uploads").join(&id).exists());
    let r = c.get(reg.url(&location)).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let r = c.delete(reg.url(&location)).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn blob_delete_and_mounts() {
    let reg = Registry::start();
    let c = client();
    let data = b"mounted content".to_vec();
    let digest = push_blob(&reg, "src/repo", &data).await;

    let r = c.post(reg.url(&format!("/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/dst/repo/blobs/{digest}"));
    assert_eq!(header(&r, "docker-content-digest"), digest);
    let r = c.get(reg.url(&format!("/v2/dst/repo/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    // Source repository without the blob: an upload session starts instead.
    let r = c.post(reg.url(&format!("/v2/third/blobs/uploads/?mount={digest}&from=empty/repo"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "location").starts_with("/v2/third/blobs/uploads/"));
    let r = c.head(reg.url(&format!("/v2/third/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Without `from`: mounted when the registry has the content.
    let r = c.post(reg.url(&format!("/v2/anon/blobs/uploads/?mount={digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let unknown = sha256(b"never pushed");
    let r = c.post(reg.url(&format!("/v2/anon/blobs/uploads/?mount={unknown}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Delete removes the blob from one repository only.
    let r = c.delete(reg.url(&format!("/v2/src/repo/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.head(reg.url(&format!("/v2/src/repo/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.head(reg.url(&format!("/v2/dst/repo/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.delete(reg.url(&format!("/v2/src/repo/blobs/{digest}"))).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    // Mounting from a repository that no longer has it starts an upload.
    let r = c.post(reg.url(&format!("/v2/fourth/blobs/uploads/?mount={digest}&from=src/repo"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let reg = Registry::start();
    let c = client();
    let manifest = push_image(&reg, "img/app", "v1", "one").await;
    let digest = sha256(&manifest);

    for reference in ["v1", digest.as_str()] {
        let r = c.get(reg.url(&format!("/v2/img/app/manifests/{reference}"))).header("accept", OCI_MANIFEST).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), digest);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
        let r = c.head(reg.url(&format!("/v2/img/app/manifests/{reference}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), manifest.len().to_string());
        assert_eq!(header(&r, "docker-content-digest"), digest);
    }

    // Retagging moves the tag; the cache must not serve the old manifest.
    let second = push_image(&reg, "img/app", "v1", "two").await;
    let r = c.get(reg.url("/v2/img/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &second[..]);

    // Delete the tag: the manifest stays reachable by digest.
    let r = c.delete(reg.url("/v2/img/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.get(reg.url("/v2/img/app/manifests/v1")).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let r = c.get(reg.url(&format!("/v2/img/app/manifests/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Delete by digest removes the manifest and the tags pointing at it.
    let d2 = sha256(&second);
    let r = put_manifest(&reg, "img/app", "again", OCI_MANIFEST, &second).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c.delete(reg.url(&format!("/v2/img/app/manifests/{d2}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for reference in ["again", d2.as_str()] {
        let r = c.get(reg.url(&format!("/v2/img/app/manifests/{reference}"))).send().await.unwrap();
        expect_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
    let r = c.delete(reg.url(&format!("/v2/img/app/manifests/{d2}"))).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let tags: Value = c.get(reg.url("/v2/img/app/tags/list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["tags"], json!([]));

    // Unknown repository.
    let r = c.get(reg.url("/v2/no/such/manifests/latest")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn push_by_digest_with_tags() {
    let reg = Registry::start();
    let c = client();
    let manifest = push_image(&reg, "bydigest", "first", "x").await;
    let digest = sha256(&manifest);
    let r = c
        .put(reg.url(&format!("/v2/bydigest/manifests/{digest}?tag=1.0&tag=latest")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/bydigest/manifests/{digest}"));
    let tags: Vec<&str> = r.headers().get_all("oci-tag").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(tags, ["1.0", "latest"]);
    let list: Value = c.get(reg.url("/v2/bydigest/tags/list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list, json!({"name": "bydigest", "tags": ["1.0", "first", "latest"]}));
    // A body that does not hash to the digest in the path.
    let other = sha256(b"{}");
    let r = put_manifest(&reg, "bydigest", &other, OCI_MANIFEST, &manifest).await;
    expect_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let r = c.get(reg.url(&format!("/v2/bydigest/manifests/{other}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn docker_and_index_media_types() {
    let reg = Registry::start();
    let c = client();
    let config = br#"{"architecture":"arm64","os":"linux"}"#.to_vec();
    let layer = b"docker layer".to_vec();
    push_blob(&reg, "multi", &config).await;
    push_blob(&reg, "multi", &layer).await;
    let docker = json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", &config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer)],
    })
    .to_string()
    .into_bytes();
    let r = put_manifest(&reg, "multi", "docker", DOCKER_MANIFEST, &docker).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let oci = push_image(&reg, "multi", "oci", "amd").await;

    let list = json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": sha256(&docker), "size": docker.len(), "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    })
    .to_string()
    .into_bytes();
    let r = put_manifest(&reg, "multi", "list", DOCKER_LIST, &list).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256(&oci), "size": oci.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": sha256(&docker), "size": docker.len(), "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    })
    .to_string()
    .into_bytes();
    let r = put_manifest(&reg, "multi", "index", OCI_INDEX, &index).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for (tag, media_type, body) in [("docker", DOCKER_MANIFEST, &docker), ("list", DOCKER_LIST, &list), ("index", OCI_INDEX, &index)] {
        let r = c.get(reg.url(&format!("/v2/multi/manifests/{tag}"))).send().await.unwrap();
        assert_eq!(header(&r, "content-type"), media_type);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &body[..]);
    }

    // An index naming a manifest the repository does not have.
    let missing = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"absent"), "size": 6}],
    })
    .to_string()
    .into_bytes();
    let r = put_manifest(&reg, "multi", "broken", OCI_INDEX, &missing).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
    // The same index in another repository: the children are not there.
    let r = put_manifest(&reg, "elsewhere", "index", OCI_INDEX, &index).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn manifests_with_missing_blobs_are_refused() {
    let reg = Registry::start();
    let config = b"{}".to_vec();
    let layer = b"layer".to_vec();
    push_blob(&reg, "strict", &config).await;
    let before = reg.files();
    let manifest = |config: &[u8], layer: &[u8]| {
        json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        })
        .to_string()
        .into_bytes()
    };
    let r = put_manifest(&reg, "strict", "t", OCI_MANIFEST, &manifest(&config, &layer)).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
    let r = put_manifest(&reg, "strict", "t", OCI_MANIFEST, &manifest(b"missing config", &config)).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
    assert_eq!(reg.files(), before, "a refused manifest wrote something");
    // A layer with external URLs need not be present.
    let foreign = json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", &config),
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": sha256(b"win"), "size": 3, "urls": ["https://example.com/layer"]}],
    })
    .to_string()
    .into_bytes();
    let r = put_manifest(&reg, "strict", "foreign", DOCKER_MANIFEST, &foreign).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn invalid_and_oversized_manifests() {
    let reg = Registry::start();
    let before = reg.files();
    let r = put_manifest(&reg, "bad", "t", OCI_MANIFEST, b"not json").await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    let r = put_manifest(&reg, "bad", "t", OCI_MANIFEST, br#"{"schemaVersion":1,"name":"bad"}"#).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    let r = put_manifest(&reg, "bad", "t", "application/x-unknown", br#"{"schemaVersion":2}"#).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    // mediaType and Content-Type disagree.
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).to_string();
    let r = put_manifest(&reg, "bad", "t", OCI_MANIFEST, body.as_bytes()).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    // Bad descriptor digest.
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": "sha256:../../x", "size": 1}]}).to_string();
    let r = put_manifest(&reg, "bad", "t", OCI_INDEX, body.as_bytes()).await;
    expect_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    // Over 4 MiB, announced by Content-Length and streamed without one.
    let mut big = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"x":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 4 << 20));
    big.extend(br#""}}"#);
    let r = put_manifest(&reg, "bad", "big", OCI_INDEX, &big).await;
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID").await;
    let chunks: Vec<Vec<u8>> = big.chunks(256 << 10).map(|c| c.to_vec()).collect();
    let r = client()
        .put(reg.url("/v2/bad/manifests/big"))
        .header("content-type", OCI_INDEX)
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID").await;
    assert_eq!(reg.files(), before, "a refused manifest wrote something");

    // Exactly at the limit is fine.
    let mut at_limit = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"x":""#.to_vec();
    let pad = (4 << 20) - at_limit.len() - 3;
    at_limit.extend(std::iter::repeat_n(b'a', pad));
    at_limit.extend(br#""}}"#);
    assert_eq!(at_limit.len(), 4 << 20);
    let r = put_manifest(&reg, "bad", "limit", OCI_INDEX, &at_limit).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn tags_and_catalog_pagination() {
    let reg = Registry::start();
    let c = client();
    let manifest = push_image(&reg, "pages", "a", "p").await;
    for tag in ["e", "c", "B", "d", "b"] {
        let r = put_manifest(&reg, "pages", tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let list: Value = c.get(reg.url("/v2/pages/tags/list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["tags"], json!(["B", "a", "b", "c", "d", "e"]));

    // Follow the Link headers two at a time.
    let mut url = reg.url("/v2/pages/tags/list?n=2");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let link = header(&r, "link").to_string();
        let page: Value = r.json().await.unwrap();
        let tags: Vec<String> = serde_json::from_value(page["tags"].clone()).unwrap();
        assert!(tags.len() <= 2);
        seen.extend(tags);
        if link.is_empty() {
            break;
        }
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        let target = link.trim_start_matches('<').split('>').next().unwrap();
        url = reg.url(target);
    }
    assert_eq!(seen, ["B", "a", "b", "c", "d", "e"]);
    let page: Value = c.get(reg.url("/v2/pages/tags/list?n=2&last=c")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["tags"], json!(["d", "e"]));
    let r = c.get(reg.url("/v2/pages/tags/list?n=0")).send().await.unwrap();
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));
    let r = c.get(reg.url("/v2/pages/tags/list?n=many")).send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "UNSUPPORTED").await;
    let r = c.get(reg.url("/v2/nothing/here/tags/list")).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;

    for name in ["zeta", "alpha/one", "alpha/two", "mid"] {
        push_blob(&reg, name, b"catalog").await;
    }
    let all: Value = c.get(reg.url("/v2/_catalog")).send().await.unwrap().json().await.unwrap();
    assert_eq!(all["repositories"], json!(["alpha/one", "alpha/two", "mid", "pages", "zeta"]));
    let r = c.get(reg.url("/v2/_catalog?n=2")).send().await.unwrap();
    assert_eq!(header(&r, "link"), "</v2/_catalog?n=2&last=alpha%2Ftwo>; rel=\"next\"");
    assert_eq!(r.json::<Value>().await.unwrap()["repositories"], json!(["alpha/one", "alpha/two"]));
    let r = c.get(reg.url("/v2/_catalog?n=2&last=alpha%2Ftwo")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["repositories"], json!(["mid", "pages"]));
}

#[tokio::test]
async fn referrers_with_artifact_type_filter() {
    let reg = Registry::start();
    let c = client();
    let subject = push_image(&reg, "refs", "app", "subject").await;
    let subject_digest = sha256(&subject);
    let empty = b"{}".to_vec();
    push_blob(&reg, "refs", &empty).await;
    let artifact = |artifact_type: &str, note: &str| {
        json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&empty), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&empty), "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject.len()},
            "annotations": {"note": note},
        })
        .to_string()
        .into_bytes()
    };
    let sbom = artifact("application/vnd.example.sbom", "sbom");
    let sig = artifact("application/vnd.example.sig", "sig");
    for body in [&sbom, &sig] {
        let digest = sha256(body);
        let r = put_manifest(&reg, "refs", &digest, OCI_MANIFEST, body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(header(&r, "oci-subject"), subject_digest);
    }
    // An artifact whose config type stands in for a missing artifactType.
    let config_typed = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.config", "digest": sha256(&empty), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject.len()},
    })
    .to_string()
    .into_bytes();
    assert_eq!(put_manifest(&reg, "refs", &sha256(&config_typed), OCI_MANIFEST, &config_typed).await.status(), StatusCode::CREATED);

    let r = c.get(reg.url(&format!("/v2/refs/referrers/{subject_digest}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3);
    let by_digest = |d: &str| manifests.iter().find(|m| m["digest"] == d).cloned().unwrap_or(Value::Null);
    assert_eq!(by_digest(&sha256(&sbom))["artifactType"], "application/vnd.example.sbom");
    assert_eq!(by_digest(&sha256(&sbom))["annotations"], json!({"note": "sbom"}));
    assert_eq!(by_digest(&sha256(&sbom))["size"], sbom.len());
    assert_eq!(by_digest(&sha256(&config_typed))["artifactType"], "application/vnd.example.config");

    let r = c
        .get(reg.url(&format!("/v2/refs/referrers/{subject_digest}?artifactType=application/vnd.example.sig")))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], sha256(&sig));

    // A referrer pushed before its subject exists is accepted.
    let orphan_subject = sha256(b"not pushed yet");
    let early = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.early",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&empty), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": orphan_subject, "size": 14},
    })
    .to_string()
    .into_bytes();
    let r = put_manifest(&reg, "refs", &sha256(&early), OCI_MANIFEST, &early).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject"), orphan_subject);
    let index: Value = c.get(reg.url(&format!("/v2/refs/referrers/{orphan_subject}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(&early));

    // Deleting a referrer removes it from the list.
    let r = c.delete(reg.url(&format!("/v2/refs/manifests/{}", sha256(&sig)))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let index: Value = c.get(reg.url(&format!("/v2/refs/referrers/{subject_digest}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    // Nothing refers to this: an empty index, not 404. A malformed digest: 400.
    let index: Value = c.get(reg.url(&format!("/v2/refs/referrers/{}", sha256(b"lonely")))).send().await.unwrap().json().await.unwrap();
    assert_eq!(index["manifests"], json!([]));
    let r = c.get(reg.url("/v2/refs/referrers/sha256:abc")).send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn bad_names_tags_digests_and_traversal_write_nothing() {
    let reg = Registry::start();
    let good = sha256(b"x");
    let before = reg.files();
    let cases: Vec<(reqwest::Method, String, StatusCode, &str)> = vec![
        (reqwest::Method::GET, "/v2/UPPER/manifests/latest".into(), StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (reqwest::Method::POST, "/v2/a..b/blobs/uploads/".into(), StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (reqwest::Method::POST, "/v2/a/%2e%2e/b/blobs/uploads/".into(), StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (reqwest::Method::POST, "/v2/a%2f..%2f..%2fetc/blobs/uploads/".into(), StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (reqwest::Method::PUT, "/v2/_x/manifests/latest".into(), StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (reqwest::Method::PUT, format!("/v2/{}/manifests/latest", "a".repeat(256)), StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (reqwest::Method::PUT, "/v2/ok/manifests/-bad".into(), StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        (reqwest::Method::PUT, "/v2/ok/manifests/..".into(), StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        (reqwest::Method::PUT, format!("/v2/ok/manifests/{}", "t".repeat(129)), StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        (reqwest::Method::PUT, "/v2/ok/manifests/sha256:..%2f..%2fx".into(), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (reqwest::Method::GET, "/v2/ok/blobs/sha256:1234".into(), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (reqwest::Method::GET, format!("/v2/ok/blobs/md5:{}", "0".repeat(32)), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (reqwest::Method::GET, format!("/v2/ok/blobs/sha256:{}", "A".repeat(64)), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (reqwest::Method::POST, "/v2/ok/blobs/uploads/?digest=sha256:nothex".into(), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (reqwest::Method::POST, "/v2/ok/blobs/uploads/?mount=sha256:zz&from=x".into(), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (reqwest::Method::POST, format!("/v2/ok/blobs/uploads/?mount={good}&from=../x"), StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (reqwest::Method::PATCH, "/v2/ok/blobs/uploads/..%2f..%2fetc".into(), StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        (reqwest::Method::PUT, format!("/v2/ok/blobs/uploads/../../tmp?digest={good}"), StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        (reqwest::Method::GET, "/v2/ok/referrers/sha256:..".into(), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        (reqwest::Method::DELETE, "/v2/ok/blobs/uploads/00000000-0000-4000-8000-000000000000".into(), StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        (reqwest::Method::POST, "/v2/ok/manifests/latest".into(), StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
        (reqwest::Method::GET, "/v2/ok/nothing".into(), StatusCode::NOT_FOUND, "UNSUPPORTED"),
    ];
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    for (method, path, status, code) in cases {
        let (got, text) = raw_request(&reg.addr, method.as_str(), &path, OCI_INDEX, body);
        assert_eq!(got, status.as_u16(), "{method} {path}: {text}");
        let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {text}"));
        assert_eq!(parsed["errors"][0]["code"], code, "{method} {path}: {text}");
    }
    assert_eq!(reg.files(), before, "bad input wrote something");
}

#[tokio::test]
async fn idle_upload_sessions_expire() {
    let reg = Registry::start_with(&["--upload-expiry", "2s"]);
    let c = client();
    let r = c.post(reg.url("/v2/exp/blobs/uploads/")).send().await.unwrap();
    let location = header(&r, "location").to_string();
    let id = header(&r, "docker-upload-uuid").to_string();
    c.patch(reg.url(&location)).body("some bytes").send().await.unwrap();
    assert!(reg.root().join("uploads").join(&id).is_dir());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while reg.root().join("uploads").join(&id).exists() {
        assert!(std::time::Instant::now() < deadline, "upload session was not expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = c.get(reg.url(&location)).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn upload_status_answers_during_a_slow_patch() {
    let reg = Registry::start();
    let c = client();
    let r = c.post(reg.url("/v2/slow/blobs/uploads/")).send().await.unwrap();
    let location = header(&r, "location").to_string();
    let id = header(&r, "docker-upload-uuid").to_string();
    let (tx, body) = fed_body();
    let patch = tokio::spawn(client().patch(reg.url(&location)).body(body).send());
    tx.send(vec![1u8; 1 << 20]).await.unwrap();
    let data = reg.root().join("uploads").join(&id).join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::metadata(&data).is_ok_and(|m| m.len() == 1 << 20) {
        assert!(std::time::Instant::now() < deadline, "chunk never reached the disk");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(5), c.get(reg.url(&location)).send())
        .await
        .expect("status waited for the PATCH in flight")
        .unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), format!("0-{}", (1 << 20) - 1));
    let r = c.get(reg.url(&format!("/v2/other/blobs/uploads/{id}"))).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    drop(tx);
    let r = patch.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), format!("0-{}", (1 << 20) - 1));
}
