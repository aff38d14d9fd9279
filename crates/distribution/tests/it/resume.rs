//! A blob download cut mid-stream resumes with a Range request and yields the whole blob.

use std::sync::atomic::Ordering;

use berth_distribution::manifest::Platform;
use berth_distribution::Reference;

use crate::support::*;

#[tokio::test]
async fn a_cut_download_resumes_to_the_whole_blob() {
    let reg = Registry::start();
    let layer = layer_dir(&[], 3 << 20);
    let layout = make_image(&[
        "--layer",
        &layer.path().display().to_string(),
        "--compression",
        "none",
    ]);
    layout.push(&reg.addr, "big:v1", &[]);
    // The proxy cuts the first connection that carries more than 512 KiB: the blob's.
    let proxy = CutProxy::start(&reg.addr, 512 << 10).await;
    let client = client();
    let r = Reference::parse_normalized(&format!("{}/big:v1", proxy.addr)).unwrap();
    let resolved = client
        .resolve(&r, None, &Platform::host())
        .await
        .expect("resolve through the proxy");
    let layer = &resolved.manifest.layers[0];
    assert!(layer.size > 3 << 20);
    let connections = proxy.connections.load(Ordering::SeqCst);

    let stream = client
        .fetch_blob(
            &resolved.endpoint,
            "big",
            &layer.digest,
            Some(layer.size),
            0,
            None,
        )
        .await
        .expect("fetch");
    let (data, digest) = drain(stream).await.expect("the stream survives the cut");
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy cut a connection"
    );
    assert!(
        proxy.connections.load(Ordering::SeqCst) > connections,
        "a new connection resumed the download"
    );
    assert_eq!(data.len() as u64, layer.size);
    assert_eq!(digest, layer.digest);
}
