//! Blob GET over plain HTTP of random blobs larger than the 4 MiB windows the bodies are
//! mapped and sent in: they arrive exact and match their digest, whole and by ranges
//! across window boundaries, also to many clients at once and to a slow reader.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;

const MIB: usize = 1 << 20;

#[tokio::test]
async fn a_large_random_blob_arrives_whole_and_by_ranges_across_windows() {
    let reg = Registry::start();
    let data = random_bytes(9 * MIB + 1);
    let digest = push_blob(&reg, "big/random", &data).await;
    assert_eq!(digest, sha256(&data));
    let url = reg.url(&format!("/v2/big/random/blobs/{digest}"));

    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), data.len().to_string());
    assert_eq!(header(&r, "docker-content-digest"), digest);
    let body = r.bytes().await.unwrap();
    assert_eq!(sha256(&body), digest, "the whole blob does not match its digest");
    assert!(body == data, "the whole blob differs");

    let w = 4 * MIB;
    for (start, end) in [
        // Across two window boundaries.
        (w - 1, 2 * w + 1),
        // From an offset within a page to the last byte, the one after the last window.
        (4097, data.len()),
        // The last byte of a window and the byte after it.
        (2 * w - 1, 2 * w + 1),
    ] {
        let range = format!("bytes={start}-{}", end - 1);
        let r = client().get(&url).header("range", &range).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&r, "content-range"), format!("bytes {start}-{}/{}", end - 1, data.len()), "{range}");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), end - start, "{range}");
        assert_eq!(sha256(&body), sha256(&data[start..end]), "{range}: the bytes differ");
    }
}

/// Several clients at once and one that reads a little at a time: writes often find the
/// socket full, stop part-way and go on once it drains, while the next window waits.
#[tokio::test]
async fn concurrent_and_slow_readers_get_exact_blobs() {
    let reg = Registry::start();
    let data = random_bytes(9 * MIB + 1);
    let digest = push_blob(&reg, "big/shared", &data).await;
    let path = format!("/v2/big/shared/blobs/{digest}");

    let addr = reg.addr.clone();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let slow = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let mut socket = std::net::TcpStream::connect(&addr)?;
        socket.write_all(request.as_bytes())?;
        let mut all = Vec::new();
        let mut buf = vec![0; 256 << 10];
        loop {
            let n = socket.read(&mut buf)?;
            if n == 0 {
                return Ok(all);
            }
            all.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_millis(2));
        }
    });

    let downloads = (0..6).map(|_| {
        let url = reg.url(&path);
        async move {
            let r = client().get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.bytes().await.unwrap()
        }
    });
    for body in futures_util::future::join_all(downloads).await {
        assert_eq!(sha256(&body), digest, "a concurrent download differs");
    }

    let answer = slow.join().unwrap().unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("the end of the response head") + 4;
    let head = String::from_utf8_lossy(&answer[..split]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!("content-length: {}\r\n", data.len())), "{head}");
    assert_eq!(sha256(&answer[split..]), digest, "the slow download differs");
}
