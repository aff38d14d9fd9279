//! Pushes to the reference registry, read back with skopeo; existence checks and mounts.

use std::process::Command;

use berth_distribution::manifest::media_type;
use berth_distribution::{ErrorKind, Reference, MONOLITHIC_PUSH_MAX};
use bytes::Bytes;
use futures_util::stream;

use crate::support::*;

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).expect("reference")
}

/// The blob as a stream of 64 KiB chunks.
fn chunks(
    data: Vec<u8>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let parts: Vec<std::io::Result<Bytes>> = data
        .chunks(65536)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(parts)
}

fn skopeo_inspect(addr: &str, name: &str, raw: bool) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if raw {
        cmd.arg("--raw");
    }
    let out = cmd
        .arg(format!("docker://{addr}/{name}"))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn pushed_image_reads_back_with_skopeo() {
    let reg = Registry::start();
    // One layer above the monolithic limit (streamed PATCH), one small (single PUT).
    let big = layer_dir(&[], MONOLITHIC_PUSH_MAX as usize + 300_000);
    let small = layer_dir(&[("etc/motd", "hello")], 0);
    let layout = make_image(&[
        "--layer",
        &big.path().display().to_string(),
        "--layer",
        &small.path().display().to_string(),
        "--compression",
        "none",
    ]);
    let manifest_bytes = layout.blob(&layout.digest);
    let manifest = layout.json(&layout.digest);
    let client = client();
    let r = reference(&format!("{}/pushed:v1", reg.addr));

    let mut blobs = vec![manifest["config"].clone()];
    blobs.extend(
        manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .cloned(),
    );
    assert!(blobs[1]["size"].as_u64().unwrap() > MONOLITHIC_PUSH_MAX);
    for b in &blobs {
        let (digest, size) = (b["digest"].as_str().unwrap(), b["size"].as_u64().unwrap());
        assert_eq!(
            client.blob_exists(&r, digest, None).await.expect("exists"),
            None
        );
        client
            .push_blob(&r, digest, size, chunks(layout.blob(digest)), None)
            .await
            .expect("push blob");
        assert_eq!(
            client.blob_exists(&r, digest, None).await.expect("exists"),
            Some(size)
        );
    }
    let digest = client
        .put_manifest(
            &r,
            media_type::OCI_MANIFEST,
            Bytes::from(manifest_bytes.clone()),
            None,
        )
        .await
        .expect("put manifest");
    assert_eq!(digest, layout.digest);

    let inspected: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(&reg.addr, "pushed:v1", false)).expect("json");
    assert_eq!(inspected["Digest"], layout.digest.as_str());
    let layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        [
            blobs[1]["digest"].as_str().unwrap(),
            blobs[2]["digest"].as_str().unwrap()
        ]
    );
    assert_eq!(skopeo_inspect(&reg.addr, "pushed:v1", true), manifest_bytes);

    // By digest, without a tag.
    let by_digest = reference(&format!("{}/pushed@{}", reg.addr, layout.digest));
    let other = reference(&format!("{}/other@{}", reg.addr, layout.digest));
    for b in &blobs {
        assert!(client
            .mount_blob(&other, b["digest"].as_str().unwrap(), "pushed", None)
            .await
            .expect("mount"));
    }
    assert_eq!(
        client
            .put_manifest(
                &other,
                media_type::OCI_MANIFEST,
                Bytes::from(manifest_bytes.clone()),
                None
            )
            .await
            .unwrap(),
        layout.digest
    );
    assert_eq!(
        client.get_manifest(&by_digest, None).await.unwrap().bytes,
        manifest_bytes
    );
    assert_eq!(
        client.get_manifest(&other, None).await.unwrap().bytes,
        manifest_bytes
    );
}

#[tokio::test]
async fn blob_exists_and_cross_repository_mount() {
    let reg = Registry::start();
    let client = client();
    let data = random_bytes(10_000, 7);
    let digest = sha256(&data);
    let (a, b, c) = (
        reference(&format!("{}/team/a", reg.addr)),
        reference(&format!("{}/team/b", reg.addr)),
        reference(&format!("{}/team/c", reg.addr)),
    );
    client
        .push_blob(&a, &digest, data.len() as u64, chunks(data.clone()), None)
        .await
        .expect("push");
    assert_eq!(
        client.blob_exists(&a, &digest, None).await.unwrap(),
        Some(10_000)
    );
    assert_eq!(client.blob_exists(&b, &digest, None).await.unwrap(), None);

    assert!(client
        .mount_blob(&b, &digest, "team/a", None)
        .await
        .expect("mount"));
    assert_eq!(
        client.blob_exists(&b, &digest, None).await.unwrap(),
        Some(10_000)
    );
    let endpoint = client.origin(&reg.addr).await;
    let fetched = client
        .fetch_blob_bytes(&endpoint, "team/b", &digest, Some(10_000), None)
        .await
        .expect("fetch mounted");
    assert_eq!(fetched.as_ref(), data.as_slice());

    // Mounting what the source lacks starts an upload instead; it is cancelled.
    let missing = sha256(b"missing");
    assert!(!client
        .mount_blob(&c, &missing, "team/a", None)
        .await
        .expect("mount of a missing blob"));
    assert_eq!(client.blob_exists(&c, &missing, None).await.unwrap(), None);
}

#[tokio::test]
async fn bad_pushes_fail_clearly_and_leave_nothing() {
    let reg = Registry::start();
    let client = client();
    let r = reference(&format!("{}/bad", reg.addr));
    let small = random_bytes(1000, 1);
    let big = random_bytes(MONOLITHIC_PUSH_MAX as usize + 1000, 2);

    for data in [&small, &big] {
        let digest = sha256(data);
        let size = data.len() as u64;
        // The body is longer or shorter than announced.
        let e = client
            .push_blob(&r, &digest, size - 1, chunks(data.clone()), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, berth_distribution::Error::PushSizeMismatch { .. }),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = client
            .push_blob(&r, &digest, size + 1, chunks(data.clone()), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, berth_distribution::Error::PushSizeMismatch { .. }),
            "{e}"
        );
        // The content does not match the digest: the registry refuses it.
        let wrong = sha256(b"something else");
        let e = client
            .push_blob(&r, &wrong, size, chunks(data.clone()), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("digest invalid"), "{e}");
        assert_eq!(client.blob_exists(&r, &wrong, None).await.unwrap(), None);
        assert_eq!(client.blob_exists(&r, &digest, None).await.unwrap(), None);
    }
    // A stream that fails is reported as the source's error.
    let failing = stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(std::io::Error::other("disk on fire")),
    ]);
    let e = client
        .push_blob(&r, &sha256(b"abcdef"), 6, failing, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("disk on fire"), "{e}");

    // A manifest whose blobs are missing, and bytes that do not match the reference's digest.
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        sha256(b"{}")
    );
    let e = client
        .put_manifest(
            &reference(&format!("{}/bad:v1", reg.addr)),
            media_type::OCI_MANIFEST,
            Bytes::from(manifest.clone()),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("manifest blob unknown"), "{e}");
    let wrong = reference(&format!("{}/bad@{}", reg.addr, sha256(b"x")));
    let e = client
        .put_manifest(
            &wrong,
            media_type::OCI_MANIFEST,
            Bytes::from(manifest),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("digest mismatch for {}/bad@", reg.addr)),
        "{e}"
    );
    let e = client
        .put_manifest(
            &reference(&format!("{}/bad:v2", reg.addr)),
            "text/plain",
            Bytes::from_static(b"{}"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}
