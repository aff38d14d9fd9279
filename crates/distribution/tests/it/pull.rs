//! Pulls from the reference registry: by tag, by digest, from an index, blob streams.

use berth_distribution::manifest::{media_type, Platform};
use berth_distribution::{ErrorKind, Reference};
use futures_util::StreamExt;

use crate::support::*;

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).expect("reference")
}

#[tokio::test]
async fn pull_by_tag_and_by_digest_with_verified_blobs() {
    let reg = Registry::start();
    let (a, b) = (
        layer_dir(&[("etc/a.txt", "first layer")], 0),
        layer_dir(&[("b.txt", "second")], 200_000),
    );
    let layout = make_image(&[
        "--layer",
        &a.path().display().to_string(),
        "--layer",
        &b.path().display().to_string(),
        "--config-json",
        r#"{"Cmd":["sh"]}"#,
    ]);
    layout.push(&reg.addr, "app:v1", &[]);
    let client = client();

    let by_tag = client
        .resolve(
            &reference(&format!("{}/app:v1", reg.addr)),
            None,
            &Platform::host(),
        )
        .await
        .expect("resolve by tag");
    assert_eq!(by_tag.digest, layout.digest);
    assert_eq!(by_tag.manifest_digest, layout.digest);
    assert_eq!(by_tag.media_type, media_type::OCI_MANIFEST);
    assert!(by_tag.index.is_none());
    assert!(!by_tag.endpoint.is_mirror());
    assert_eq!(by_tag.endpoint.host(), reg.addr);
    assert_eq!(by_tag.manifest.layers.len(), 2);
    assert_eq!(sha256(&by_tag.bytes), layout.digest);

    let by_digest = client
        .resolve(
            &reference(&format!("{}/app@{}", reg.addr, layout.digest)),
            None,
            &Platform::host(),
        )
        .await
        .expect("resolve by digest");
    assert_eq!(by_digest.digest, layout.digest);
    assert_eq!(by_digest.bytes, by_tag.bytes);

    let raw = client
        .get_manifest(&reference(&format!("{}/app:v1", reg.addr)), None)
        .await
        .expect("get_manifest");
    assert_eq!(
        (raw.digest.as_str(), raw.media_type.as_str()),
        (layout.digest.as_str(), media_type::OCI_MANIFEST)
    );

    // Every layer streams whole and hashes to its digest; the config is verified bytes.
    for layer in &by_tag.manifest.layers {
        let stream = client
            .fetch_blob(
                &by_tag.endpoint,
                "app",
                &layer.digest,
                Some(layer.size),
                0,
                None,
            )
            .await
            .expect("fetch");
        assert_eq!(stream.size(), Some(layer.size));
        let (data, digest) = drain(stream).await.expect("stream");
        assert_eq!(digest, layer.digest);
        assert_eq!(data, layout.blob(&layer.digest));
    }
    let config = &by_tag.manifest.config;
    let bytes = client
        .fetch_blob_bytes(
            &by_tag.endpoint,
            "app",
            &config.digest,
            Some(config.size),
            None,
        )
        .await
        .expect("config");
    let config: serde_json::Value = serde_json::from_slice(&bytes).expect("config JSON");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(config["config"]["Cmd"][0], "sh");

    // A partial download kept on disk is resumed from its offset; no size known works too.
    let big = &by_tag.manifest.layers[1];
    let whole = layout.blob(&big.digest);
    let offset = whole.len() as u64 / 3;
    let stream = client
        .fetch_blob(&by_tag.endpoint, "app", &big.digest, None, offset, None)
        .await
        .expect("fetch at offset");
    assert_eq!(stream.size(), Some(big.size));
    let (tail, _) = drain(stream).await.expect("tail");
    assert_eq!(tail, whole[offset as usize..]);
    let done = client
        .fetch_blob(
            &by_tag.endpoint,
            "app",
            &big.digest,
            Some(big.size),
            big.size,
            None,
        )
        .await
        .expect("empty");
    assert_eq!(drain(done).await.expect("empty").0.len(), 0);
    let e = client
        .fetch_blob(
            &by_tag.endpoint,
            "app",
            &big.digest,
            Some(big.size),
            big.size + 1,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[tokio::test]
async fn index_picks_the_platform() {
    let reg = Registry::start();
    let (amd, arm) = (
        layer_dir(&[("arch", "amd64")], 0),
        layer_dir(&[("arch", "arm64")], 0),
    );
    let layout = make_image(&[
        "--index",
        &format!("linux/amd64={}", amd.path().display()),
        &format!("linux/arm64/v8={}", arm.path().display()),
    ]);
    layout.push(&reg.addr, "multi:latest", &[]);
    let index = layout.json(&layout.digest);
    let entry = |arch: &str| {
        index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .expect("entry")["digest"]
            .as_str()
            .expect("digest")
            .to_string()
    };
    let client = client();
    let r = reference(&format!("{}/multi", reg.addr));

    let amd64 = client
        .resolve(&r, None, &Platform::parse("linux/amd64").unwrap())
        .await
        .expect("amd64");
    assert_eq!(
        amd64.digest, layout.digest,
        "the repo digest is the index's"
    );
    assert_eq!(amd64.manifest_digest, entry("amd64"));
    assert_eq!(
        amd64.platform.as_ref().map(|p| p.architecture.as_str()),
        Some("amd64")
    );
    let index_raw = amd64.index.as_ref().expect("index kept");
    assert_eq!(index_raw.media_type, media_type::OCI_INDEX);
    assert_eq!(sha256(&index_raw.bytes), layout.digest);

    let arm64 = client
        .resolve(&r, None, &Platform::parse("linux/arm64/v8").unwrap())
        .await
        .expect("arm64");
    assert_eq!(arm64.manifest_digest, entry("arm64"));
    assert_eq!(
        arm64.platform.as_ref().map(|p| p.variant.as_str()),
        Some("v8")
    );
    let layer = &arm64.manifest.layers[0];
    let (_, digest) = drain(
        client
            .fetch_blob(
                &arm64.endpoint,
                "multi",
                &layer.digest,
                Some(layer.size),
                0,
                None,
            )
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(digest, layer.digest);

    let e = client
        .resolve(&r, None, &Platform::parse("linux/s390x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn docker_schema2_images_and_tag_lists() {
    let reg = Registry::start();
    let layer = layer_dir(&[("hello", "docker media types")], 0);
    let layout = make_image(&["--layer", &layer.path().display().to_string()]);
    layout.push(&reg.addr, "dock:one", &["--format", "v2s2"]);
    layout.push(&reg.addr, "dock:two", &["--format", "v2s2"]);
    let client = client();
    let resolved = client
        .resolve(
            &reference(&format!("{}/dock:one", reg.addr)),
            None,
            &Platform::host(),
        )
        .await
        .expect("resolve");
    assert_eq!(resolved.media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(
        resolved.manifest.config.media_type,
        media_type::DOCKER_CONFIG
    );
    assert_eq!(
        resolved.manifest.layers[0].media_type,
        media_type::DOCKER_LAYER_GZIP
    );
    assert_eq!(sha256(&resolved.bytes), resolved.digest);

    let mut tags = client
        .list_tags(&reference(&format!("{}/dock", reg.addr)), None)
        .await
        .expect("tags");
    tags.sort();
    assert_eq!(tags, ["one", "two"]);
}

#[tokio::test]
async fn missing_things_are_not_found_with_docker_messages() {
    let reg = Registry::start();
    let layer = layer_dir(&[("x", "x")], 0);
    make_image(&["--layer", &layer.path().display().to_string()]).push(&reg.addr, "app:v1", &[]);
    let client = client();

    let r = reference(&format!("{}/app:nope", reg.addr));
    let e = client
        .resolve(&r, None, &Platform::host())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        format!(
            "manifest for {}/app:nope not found: manifest unknown: manifest unknown",
            reg.addr
        )
    );

    let e = client
        .resolve(
            &reference(&format!("{}/nothing/here", reg.addr)),
            None,
            &Platform::host(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "manifest for {}/nothing/here:latest not found: ",
            reg.addr
        )),
        "{e}"
    );

    let endpoint = client.origin(&reg.addr).await;
    let missing = sha256(b"not there");
    let e = client
        .fetch_blob(&endpoint, "app", &missing, None, 0, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().starts_with(&format!(
            "blob {missing} not found in app on {}: blob unknown",
            reg.addr
        )),
        "{e}"
    );

    let e = client
        .list_tags(&reference(&format!("{}/nothing", reg.addr)), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let e = client.search(&reg.addr, "app", 10, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        format!("registry {} does not support search", reg.addr)
    );
}

#[tokio::test]
async fn blob_stream_feeds_readers() {
    // The stream's error converts to io::Error, so it plugs into byte readers directly.
    let reg = Registry::start();
    let layer = layer_dir(&[], 50_000);
    let layout = make_image(&[
        "--layer",
        &layer.path().display().to_string(),
        "--compression",
        "none",
    ]);
    layout.push(&reg.addr, "raw:v1", &[]);
    let client = client();
    let resolved = client
        .resolve(
            &reference(&format!("{}/raw:v1", reg.addr)),
            None,
            &Platform::host(),
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.manifest.layers[0].media_type,
        media_type::OCI_LAYER
    );
    let layer = &resolved.manifest.layers[0];
    let stream = client
        .fetch_blob(
            &resolved.endpoint,
            "raw",
            &layer.digest,
            Some(layer.size),
            0,
            None,
        )
        .await
        .unwrap();
    let mut io_stream = stream.map(|r| r.map_err(std::io::Error::from));
    let mut total = 0;
    while let Some(chunk) = io_stream.next().await {
        total += chunk.expect("chunk").len();
    }
    assert_eq!(total as u64, layer.size);
}

#[tokio::test]
async fn zstd_layers_and_docker_archives_from_the_fixture() {
    let reg = Registry::start();
    let layer = layer_dir(&[("usr/share/zstd.txt", "compressed with zstd")], 10_000);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("save.tar");
    let layout = make_image(&[
        "--layer",
        &layer.path().display().to_string(),
        "--compression",
        "zstd",
        "--docker-archive",
        &archive.display().to_string(),
        "--repo-tag",
        "test/zstd:v1",
    ]);
    layout.push(&reg.addr, "zstd:v1", &[]);
    let client = client();
    let resolved = client
        .resolve(
            &reference(&format!("{}/zstd:v1", reg.addr)),
            None,
            &Platform::host(),
        )
        .await
        .unwrap();
    let layer = &resolved.manifest.layers[0];
    assert_eq!(layer.media_type, media_type::OCI_LAYER_ZSTD);
    let (data, digest) = drain(
        client
            .fetch_blob(
                &resolved.endpoint,
                "zstd",
                &layer.digest,
                Some(layer.size),
                0,
                None,
            )
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(digest, layer.digest);
    assert_eq!(&data[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");

    // The docker-save tarball holds the same image: its layer.tar hashes to the diff_id.
    let config = client
        .fetch_blob_bytes(
            &resolved.endpoint,
            "zstd",
            &resolved.manifest.config.digest,
            None,
            None,
        )
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let extract = |member: &str| {
        let out = std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&archive)
            .arg(member)
            .output()
            .unwrap();
        assert!(out.status.success(), "tar {member}");
        out.stdout
    };
    let manifest: serde_json::Value = serde_json::from_slice(&extract("manifest.json")).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "test/zstd:v1");
    let layer_tar = extract(manifest[0]["Layers"][0].as_str().unwrap());
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&layer_tar).as_str());
    assert_eq!(
        extract(manifest[0]["Config"].as_str().unwrap()).len(),
        resolved.manifest.config.size as usize
    );
}

/// The reference registry's "response completed" log lines for `method uri`.
fn logged_requests(reg: &Registry, method: &str, uri: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("response completed"))
        .filter(|l| l.contains(&format!("http.request.method={method} ")))
        .filter(|l| l.contains(&format!("http.request.uri={uri} ")))
        .count()
}

#[tokio::test]
async fn head_manifest_tells_digest_type_and_size_without_a_get() {
    let reg = Registry::start();
    let layer = layer_dir(&[("etc/head", "head")], 0);
    let layout = make_image(&["--layer", &layer.path().display().to_string()]);
    layout.push(&reg.addr, "head:oci", &[]);
    layout.push(&reg.addr, "head:docker", &["--format", "v2s2"]);
    let client = client();

    let oci = client
        .head_manifest(&reference(&format!("{}/head:oci", reg.addr)), None)
        .await
        .expect("head by tag");
    assert_eq!(oci.digest, layout.digest);
    assert_eq!(oci.media_type, media_type::OCI_MANIFEST);
    assert_eq!(oci.size, layout.blob(&layout.digest).len() as u64);

    // The same as what a GET returns, for the docker media type too; by digest as well.
    let r = reference(&format!("{}/head:docker", reg.addr));
    let head = client.head_manifest(&r, None).await.expect("head docker");
    let raw = client.get_manifest(&r, None).await.expect("get docker");
    assert_eq!(head.digest, raw.digest);
    assert_eq!(head.media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(head.size, raw.bytes.len() as u64);
    let by_digest = reference(&format!("{}/head@{}", reg.addr, raw.digest));
    assert_eq!(
        client
            .head_manifest(&by_digest, None)
            .await
            .expect("head by digest"),
        head
    );

    // Only HEADs reached the registry for the OCI tag: no body was fetched.
    assert_eq!(
        logged_requests(&reg, "HEAD", "/v2/head/manifests/oci"),
        1,
        "{}",
        reg.log()
    );
    assert_eq!(
        logged_requests(&reg, "GET", "/v2/head/manifests/oci"),
        0,
        "{}",
        reg.log()
    );

    // Missing tags and repositories are not found, as with GET.
    let e = client
        .head_manifest(&reference(&format!("{}/head:nope", reg.addr)), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("manifest for {}/head:nope not found", reg.addr)),
        "{e}"
    );
    let e = client
        .head_manifest(&reference(&format!("{}/nothing:here", reg.addr)), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}
