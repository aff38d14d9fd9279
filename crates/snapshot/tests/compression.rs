//! Plain, gzip and zstd blobs through decompress, checked against the gzip and zstd tools.

mod common;

use std::io::{BufReader, Read, Write};
use std::process::{Command, Stdio};

use berth_snapshot::{apply_layer, decompress, detect_compression, gzip_writer, Compression, ErrorKind};
use common::*;

fn layer() -> Vec<u8> {
    let mut layer = Layer::new();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    layer.file("big", &big, &Meta::mode(0o644)).file("etc/small", b"small\n", &Meta::mode(0o600));
    layer.bytes()
}

/// Runs a compression tool over `input`.
fn tool(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

fn apply_blob(blob: &[u8]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    apply_layer(tmp.path(), decompress(blob).unwrap()).unwrap();
    assert_eq!(std::fs::read(tmp.path().join("etc/small")).unwrap(), b"small\n");
    assert_eq!(std::fs::metadata(tmp.path().join("big")).unwrap().len(), 3_000_000);
    tmp
}

#[test]
fn detects_by_magic() {
    assert_eq!(detect_compression(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
    assert_eq!(detect_compression(b"etc/"), Compression::None);
    assert_eq!(detect_compression(&[0x1f]), Compression::None);
    assert_eq!(detect_compression(&[]), Compression::None);
}

#[test]
fn plain_gzip_and_zstd_blobs_apply() {
    require_root();
    let tar = layer();
    apply_blob(&tar);
    apply_blob(&tool("gzip", &["-c", "-6"], &tar));
    apply_blob(&tool("zstd", &["-c", "-3", "-q"], &tar));
}

#[test]
fn concatenated_members_and_frames_are_read_through() {
    let tar = layer();
    let (head, tail) = tar.split_at(1_000_000);
    let gz = [tool("gzip", &["-c"], head), tool("gzip", &["-c"], tail)].concat();
    assert!(read_all(decompress(&gz[..]).unwrap()) == tar);
    let zst = [tool("zstd", &["-c", "-q"], head), tool("zstd", &["-c", "-q"], tail)].concat();
    assert!(read_all(decompress(&zst[..]).unwrap()) == tar);
}

#[test]
fn short_first_reads_still_sniff_the_magic() {
    let tar = layer();
    let gz = tool("gzip", &["-c"], &tar);
    // A one-byte buffer hands out the magic one byte at a time.
    let out = read_all(decompress(BufReader::with_capacity(1, &gz[..])).unwrap());
    assert!(out == tar);
    let out = read_all(decompress(BufReader::with_capacity(1, &b"ab"[..])).unwrap());
    assert_eq!(out, b"ab");
}

#[test]
fn corrupt_gzip_is_an_error() {
    require_root();
    let mut gz = tool("gzip", &["-c"], &layer());
    let middle = gz.len() / 2;
    gz[middle] ^= 0xff;
    let tmp = tempfile::tempdir().unwrap();
    let err = apply_layer(tmp.path(), decompress(&gz[..]).unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn gzip_writer_output_is_read_by_gzip() {
    let tar = layer();
    let mut writer = gzip_writer(Vec::new());
    writer.write_all(&tar).unwrap();
    let gz = writer.finish().unwrap();
    assert_eq!(detect_compression(&gz), Compression::Gzip);
    assert!(gz.len() < tar.len() / 4, "compressed {} of {}", gz.len(), tar.len());
    assert!(tool("gzip", &["-d", "-c"], &gz) == tar);
    let mut back = Vec::new();
    decompress(&gz[..]).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == tar);
}

#[test]
fn the_stream_is_read_to_its_end() {
    require_root();
    // A reader that counts what was taken from it.
    struct Counting<'a>(&'a [u8], usize);
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n;
            Ok(n)
        }
    }
    let mut tar = layer();
    tar.extend_from_slice(&[0u8; 10240]);
    let tmp = tempfile::tempdir().unwrap();
    let mut counting = Counting(&tar, 0);
    apply_layer(tmp.path(), &mut counting).unwrap();
    assert_eq!(counting.1, tar.len(), "padding after the end of the archive was left unread");

    // A gzip trailer with a wrong CRC is only seen at the very end of the stream.
    let mut gz = tool("gzip", &["-c"], &layer());
    let crc = gz.len() - 8;
    gz[crc] ^= 0xff;
    let tmp = tempfile::tempdir().unwrap();
    let err = apply_layer(tmp.path(), decompress(&gz[..]).unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}
