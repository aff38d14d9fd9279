//! Blob ingest and metadata transactions on a real filesystem.

use berth_store::{BlobStore, Digest, ErrorKind, ImageRecord, Meta};

fn sample(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn interrupted_ingest_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let data = sample(300_000);
    let digest = Digest::sha256_of(&data);
    {
        let mut ingest = store.ingest(&digest, Some(data.len() as u64)).unwrap();
        ingest.write_all(&data[..100_000]).unwrap();
        // dropped without commit: a crash mid-download
    }
    assert!(!store.contains(&digest));
    let mut ingest = store.ingest(&digest, Some(data.len() as u64)).unwrap();
    assert_eq!(ingest.offset(), 100_000);
    ingest.write_all(&data[100_000..]).unwrap();
    ingest.commit().unwrap();
    assert_eq!(store.read(&digest).unwrap(), data);
    store.verify(&digest).unwrap();
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn wrong_content_is_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let data = sample(1000);
    let digest = Digest::sha256_of(&data);

    let mut ingest = store.ingest(&digest, Some(1000)).unwrap();
    ingest.write_all(&sample(999)).unwrap();
    ingest.write_all(b"x").unwrap();
    let err = ingest.commit().unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(!store.contains(&digest));
    assert!(store.ingests().unwrap().is_empty(), "bad data must not be kept for resume");

    let mut ingest = store.ingest(&digest, Some(1000)).unwrap();
    assert_eq!(ingest.offset(), 0);
    let err = ingest.write_all(&sample(1001)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = ingest.commit().unwrap_err();
    assert!(err.to_string().contains("size mismatch"), "{err}");
    assert!(!store.contains(&digest));
}

#[test]
fn one_writer_per_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let digest = Digest::sha256_of(b"abc");
    let _first = store.ingest(&digest, None).unwrap();
    assert!(store.ingest(&digest, None).is_err());
}

#[test]
fn corrupt_blob_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let digest = store.put(b"hello").unwrap();
    store.verify(&digest).unwrap();
    std::fs::write(store.path(&digest), b"hellO").unwrap();
    assert!(store.verify(&digest).is_err());
    assert_eq!(store.list().unwrap(), vec![digest]);
}

#[test]
fn uncommitted_transaction_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Meta::open(&dir.path().join("meta.redb")).unwrap();
    let image = ImageRecord {
        id: "sha256:aa".into(),
        layers: vec!["sha256:l1".into()],
        size: 10,
        added: 1,
        last_tag_time: None,
        manifests: Default::default(),
    };
    {
        let tx = meta.write().unwrap();
        tx.put_image(&image).unwrap();
        tx.set_tag("docker.io/library/a:latest", "sha256:aa").unwrap();
        // dropped: aborted
    }
    assert!(meta.read().unwrap().image("sha256:aa").unwrap().is_none());
    let tx = meta.write().unwrap();
    tx.put_image(&image).unwrap();
    tx.set_tag("docker.io/library/a:latest", "sha256:aa").unwrap();
    tx.commit().unwrap();
    drop(meta);
    let meta = Meta::open(&dir.path().join("meta.redb")).unwrap();
    let read = meta.read().unwrap();
    assert_eq!(read.image("sha256:aa").unwrap(), Some(image));
    assert_eq!(read.tags().unwrap(), vec![("docker.io/library/a:latest".to_string(), "sha256:aa".to_string())]);
}
