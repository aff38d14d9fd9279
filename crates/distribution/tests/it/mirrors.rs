//! Mirrors: a mirror that has the image serves it; a dead or incomplete one falls back to
//! the origin; Docker Hub names are served by a `registry-mirrors` entry without Hub.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_distribution::manifest::Platform;
use berth_distribution::{Reference, RegistryConfig};

use crate::support::*;

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).expect("reference")
}

/// An origin and a mirror that hold different images under the same name.
fn origin_and_mirror() -> (Registry, Layout, Registry, Layout) {
    let (origin, mirror) = (Registry::start(), Registry::start());
    let (a, b) = (
        layer_dir(&[("who", "origin")], 0),
        layer_dir(&[("who", "mirror")], 0),
    );
    let origin_image = make_image(&["--layer", &a.path().display().to_string()]);
    let mirror_image = make_image(&["--layer", &b.path().display().to_string()]);
    origin_image.push(&origin.addr, "app:v1", &[]);
    mirror_image.push(&mirror.addr, "app:v1", &[]);
    (origin, origin_image, mirror, mirror_image)
}

fn mirrored(domain: &str, mirrors: &[String]) -> RegistryConfig {
    RegistryConfig {
        registry_mirrors: HashMap::from([(domain.to_string(), mirrors.to_vec())]),
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn a_mirror_with_the_image_serves_it() {
    let (origin, origin_image, mirror, mirror_image) = origin_and_mirror();
    let client = client_with(mirrored(&origin.addr, &[format!("http://{}", mirror.addr)]));
    let resolved = client
        .resolve(
            &reference(&format!("{}/app:v1", origin.addr)),
            None,
            &Platform::host(),
        )
        .await
        .expect("resolve");
    assert!(resolved.endpoint.is_mirror());
    assert_eq!(resolved.endpoint.host(), mirror.addr);
    assert_eq!(resolved.endpoint.registry(), origin.addr);
    assert_eq!(resolved.digest, mirror_image.digest);

    let layer = &resolved.manifest.layers[0];
    let stream = client
        .fetch_blob(
            &resolved.endpoint,
            "app",
            &layer.digest,
            Some(layer.size),
            0,
            None,
        )
        .await
        .unwrap();
    assert!(stream.endpoint().is_mirror());
    assert_eq!(drain(stream).await.unwrap().1, layer.digest);

    // A blob only the origin has: the mirror answers 404 and the origin serves it.
    let origin_manifest = origin_image.json(&origin_image.digest);
    let (digest, size) = (
        origin_manifest["layers"][0]["digest"].as_str().unwrap(),
        origin_manifest["layers"][0]["size"].as_u64(),
    );
    let stream = client
        .fetch_blob(&resolved.endpoint, "app", digest, size, 0, None)
        .await
        .expect("fallback to origin");
    assert!(!stream.endpoint().is_mirror());
    assert_eq!(drain(stream).await.unwrap().1, digest);

    // A tag the mirror lacks comes from the origin; pushes never go to the mirror.
    let c = layer_dir(&[("who", "origin only")], 0);
    let only = make_image(&["--layer", &c.path().display().to_string()]);
    only.push(&origin.addr, "app:v2", &[]);
    let v2 = client
        .resolve(
            &reference(&format!("{}/app:v2", origin.addr)),
            None,
            &Platform::host(),
        )
        .await
        .expect("v2");
    assert!(!v2.endpoint.is_mirror());
    assert_eq!(v2.digest, only.digest);
    assert_eq!(client.origin(&origin.addr).await.host(), origin.addr);
}

#[tokio::test]
async fn a_dead_mirror_falls_back_quickly() {
    let (origin, origin_image, _mirror, _) = origin_and_mirror();
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let config = RegistryConfig {
        max_retries: 3,
        ..mirrored(&origin.addr, &[dead])
    };
    let client = client_with(config);
    let start = Instant::now();
    let resolved = client
        .resolve(
            &reference(&format!("{}/app:v1", origin.addr)),
            None,
            &Platform::host(),
        )
        .await
        .expect("resolve");
    assert!(!resolved.endpoint.is_mirror());
    assert_eq!(resolved.digest, origin_image.digest);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "mirrors get no retries: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn docker_hub_names_come_from_registry_mirrors() {
    let mirror = Registry::start();
    let layer = layer_dir(&[("bin/sh", "not really")], 0);
    let image = make_image(&["--layer", &layer.path().display().to_string()]);
    image.push(&mirror.addr, "library/busybox:latest", &[]);
    let client = client_with(RegistryConfig {
        mirrors: vec![format!("http://{}", mirror.addr)],
        ..RegistryConfig::default()
    });
    let r = reference("busybox");
    let resolved = client
        .resolve(&r, None, &Platform::host())
        .await
        .expect("busybox from the mirror");
    assert_eq!(resolved.digest, image.digest);
    assert_eq!(resolved.endpoint.registry(), "docker.io");
    assert!(resolved.endpoint.is_mirror());
    assert_eq!(client.list_tags(&r, None).await.expect("tags"), ["latest"]);
    assert_eq!(
        client
            .get_manifest(&r, None)
            .await
            .expect("manifest")
            .digest,
        image.digest
    );
}
