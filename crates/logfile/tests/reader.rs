//! The reader: files docker wrote, `--tail` across rotated and compressed files,
//! `--since`/`--until`, torn and corrupt records, and the `none` driver.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use berth_logfile::{read, ContainerInfo, Error, LogConfig, ReadOptions, Stream, Writer};
use common::*;

const DOCKER_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/docker-20.10-json.log"
);
const DOCKER_ID: &str = "bbeab18c63c5ae3262ca4bb417e0879c3d76d4d5a565010a286bf7e6e213e7d7";

/// The container of `tests/data/docker-20.10-json.log`, which dockerd 20.10 wrote for
/// `docker run --label app=web --label other=x -e FOO=bar -e BAZ=qux --log-opt labels=app
/// --log-opt env=FOO --log-opt env-regex=^BA --log-opt tag={{.Name}}/{{.ID}} ... sh -c
/// 'printf "hello\n"; printf "\001\033[31mred\342\200\250x\377\376y\n";
/// printf "tab\there <b>&amp; \"q\" back\\slash\r\n" >&2; printf "no newline"'`.
fn docker_container() -> (LogConfig, ContainerInfo) {
    let config = config(
        "json-file",
        &[
            ("labels", "app"),
            ("env", "FOO"),
            ("env-regex", "^BA"),
            ("tag", "{{.Name}}/{{.ID}}"),
        ],
    );
    let container = ContainerInfo {
        id: DOCKER_ID.to_string(),
        name: "/angry_chatterjee".to_string(),
        labels: HashMap::from([
            ("app".to_string(), "web".to_string()),
            ("other".to_string(), "x".to_string()),
        ]),
        env: vec!["BAZ=qux".to_string(), "FOO=bar".to_string()],
        ..ContainerInfo::default()
    };
    (config, container)
}

fn docker_time(s: &str) -> std::time::SystemTime {
    let (secs, nanos) = s.split_once('.').expect("fraction");
    assert!(secs.starts_with("2026-11-22T22:52:"));
    let sec: u64 = secs[17..19].parse().expect("seconds");
    let nanos: u64 = format!("{:0<9}", nanos.trim_end_matches('Z'))
        .parse()
        .expect("nanos");
    at((12 * 3600 + 52 * 60 + sec) * 1_000_000_000 + nanos)
}

#[test]
fn reads_a_file_dockerd_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(DOCKER_FILE, dir.path().join("c1-json.log")).expect("copy fixture");
    let entries = read_all(dir.path(), &LogConfig::default(), &ReadOptions::default());
    let attrs: Vec<(String, String)> = [
        ("BAZ", "qux"),
        ("FOO", "bar"),
        ("app", "web"),
        ("tag", "angry_chatterjee/bbeab18c63c5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let got: Vec<(Stream, String, bool)> = entries
        .iter()
        .map(|e| {
            (
                e.stream,
                String::from_utf8_lossy(&e.line).into_owned(),
                e.partial,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Stream::Stdout, "hello\n".to_string(), false),
            (
                Stream::Stdout,
                "\u{1}\u{1b}[31mred\u{2028}x\u{fffd}\u{fffd}y\n".to_string(),
                false
            ),
            (
                Stream::Stderr,
                "tab\there <b>&amp; \"q\" back\\slash\r\n".to_string(),
                false
            ),
            (Stream::Stdout, "no newline".to_string(), true),
        ]
    );
    assert!(entries.iter().all(|e| e.attrs == attrs));
    assert_eq!(
        entries[0].time,
        docker_time("2026-11-22T22:52:08.392018223Z")
    );
    // dockerd drops trailing zeros of the fraction (Go's RFC3339Nano).
    assert_eq!(
        entries[1].time,
        docker_time("2026-11-22T22:52:08.39203678Z")
    );
}

#[test]
fn writes_the_same_bytes_as_dockerd() {
    let (config, container) = docker_container();
    let attrs = config.attributes(&container).expect("attributes");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = Writer::open(dir.path(), "c1", &config, attrs).expect("open");
    w.write(
        Stream::Stdout,
        b"hello\n",
        docker_time("2026-11-22T22:52:08.392018223Z"),
    )
    .expect("write");
    w.write(
        Stream::Stdout,
        b"\x01\x1b[31mred\xe2\x80\xa8x\xff\xfey\n",
        docker_time("2026-11-22T22:52:08.39203678Z"),
    )
    .expect("write");
    w.write(
        Stream::Stderr,
        b"tab\there <b>&amp; \"q\" back\\slash\r\n",
        docker_time("2026-11-22T22:52:08.392053335Z"),
    )
    .expect("write");
    w.write(
        Stream::Stdout,
        b"no newline",
        docker_time("2026-11-22T22:52:08.432962885Z"),
    )
    .expect("write");
    w.flush_partial().expect("flush");
    drop(w);
    let ours = std::fs::read_to_string(dir.path().join("c1-json.log")).expect("read ours");
    let dockers = std::fs::read_to_string(DOCKER_FILE).expect("read docker's");
    assert_eq!(ours, dockers);
}

#[test]
fn reads_rotated_and_compressed_files_dockerd_wrote() {
    // dockerd 20.10, --log-opt max-size=1k max-file=3 compress=true, after a 20000-byte
    // line and a 16384-byte line: .2.gz holds the end of the first, .1.gz a 16 KiB piece
    // of the second, the current file its newline. The gzip headers carry lastTime.
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/docker-rotated"
    ));
    let config = config(
        "json-file",
        &[("max-size", "1k"), ("max-file", "3"), ("compress", "true")],
    );
    let entries: Vec<_> = read(dir, "rotated", &config, &ReadOptions::default(), &|| true)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("read");
    let shape: Vec<(usize, bool)> = entries.iter().map(|e| (e.line.len(), e.partial)).collect();
    assert_eq!(
        shape,
        vec![(20_000 - 16_384 + 1, false), (16_384, true), (1, false)]
    );
    assert!(entries[0].line[..3616].iter().all(|b| *b == b'a'));
    assert!(entries[1].line.iter().all(|b| *b == b'b'));
    let tail: Vec<_> = read(
        dir,
        "rotated",
        &config,
        &ReadOptions {
            tail: Some(2),
            ..Default::default()
        },
        &|| true,
    )
    .expect("open")
    .collect::<Result<_, _>>()
    .expect("read");
    assert_eq!(tail, entries[1..].to_vec());
}

fn tail_matches_full_read(driver: &str, opts: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(driver, opts);
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..150);
    drop(w);
    let all = numbers(&read_all(dir.path(), &config, &ReadOptions::default()));
    assert!(
        all.len() > 40 && all.len() < 150,
        "{driver}: rotation dropped the oldest ({} kept)",
        all.len()
    );
    assert_eq!(all.last(), Some(&149));
    let current = std::fs::read(config.log_path(dir.path(), "c1").expect("path")).expect("read");
    let in_current = match driver {
        "json-file" => current.iter().filter(|b| **b == b'\n').count(),
        _ => 0,
    };
    for n in [
        0,
        1,
        2,
        5,
        in_current,
        in_current + 1,
        33,
        all.len() - 1,
        all.len(),
        all.len() + 10,
    ] {
        let got = numbers(&read_all(
            dir.path(),
            &config,
            &ReadOptions {
                tail: Some(n),
                ..Default::default()
            },
        ));
        assert_eq!(
            got,
            all[all.len().saturating_sub(n)..].to_vec(),
            "{driver} {opts:?}: tail {n}"
        );
    }
}

#[test]
fn tail_across_rotated_files() {
    tail_matches_full_read("json-file", &[("max-size", "1k"), ("max-file", "5")]);
    tail_matches_full_read(
        "json-file",
        &[("max-size", "1k"), ("max-file", "5"), ("compress", "true")],
    );
    tail_matches_full_read("local", &[("max-size", "1k"), ("max-file", "5")]);
    tail_matches_full_read(
        "local",
        &[("max-size", "1k"), ("max-file", "5"), ("compress", "false")],
    );
}

#[test]
fn since_and_until() {
    for (driver, opts) in [
        ("json-file", vec![]),
        (
            "json-file",
            vec![("max-size", "1k"), ("max-file", "20"), ("compress", "true")],
        ),
        ("local", vec![("max-size", "1k"), ("max-file", "20")]),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(driver, &opts);
        let mut w = writer(dir.path(), &config);
        write_numbered(&mut w, 0..100);
        drop(w);
        let read = |since: Option<u64>, until: Option<u64>, tail: Option<usize>| {
            let opts = ReadOptions {
                since: since.map(|i| at(i * 1000)),
                until: until.map(|i| at(i * 1000)),
                tail,
                follow: false,
            };
            numbers(&read_all(dir.path(), &config, &opts))
        };
        assert_eq!(
            read(Some(50), Some(60), None),
            (50..=60).collect::<Vec<_>>(),
            "{driver} {opts:?}"
        );
        assert_eq!(
            read(Some(95), None, None),
            (95..100).collect::<Vec<_>>(),
            "{driver} {opts:?}"
        );
        assert_eq!(
            read(None, Some(3), None),
            (0..=3).collect::<Vec<_>>(),
            "{driver} {opts:?}"
        );
        assert_eq!(read(Some(200), None, None), Vec::<usize>::new());
        // docker applies --tail first, then the time filters.
        assert_eq!(read(Some(90), None, Some(5)), (95..100).collect::<Vec<_>>());
        assert_eq!(read(Some(97), None, Some(5)), (97..100).collect::<Vec<_>>());
    }
}

#[test]
fn torn_last_record_is_skipped() {
    for driver in ["json-file", "local"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(driver, &[]);
        let path = config.log_path(dir.path(), "c1").expect("path");
        let mut w = writer(dir.path(), &config);
        write_numbered(&mut w, 0..10);
        drop(w);
        let whole = std::fs::metadata(&path).expect("stat").len();
        let mut w = writer(dir.path(), &config);
        write_numbered(&mut w, 10..11);
        drop(w);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(whole + 9)
            .expect("truncate");

        assert_eq!(
            numbers(&read_all(dir.path(), &config, &ReadOptions::default())),
            (0..10).collect::<Vec<_>>(),
            "{driver}"
        );
        let tail = ReadOptions {
            tail: Some(3),
            ..Default::default()
        };
        assert_eq!(
            numbers(&read_all(dir.path(), &config, &tail)),
            vec![7, 8, 9],
            "{driver}"
        );
    }
}

fn expect_corrupt(result: Result<Vec<berth_logfile::Entry>, Error>, path: &Path, line: u64) {
    match result {
        Err(Error::Corrupt {
            path: p,
            line: l,
            reason,
        }) => {
            assert_eq!((p.as_path(), l), (path, line), "{reason}");
            let message = Error::Corrupt {
                path: p,
                line: l,
                reason,
            }
            .to_string();
            assert!(
                message.contains(&format!("{} at line {line}", path.display())),
                "{message}"
            );
        }
        other => panic!("expected a corrupt-line error, got {other:?}"),
    }
}

#[test]
fn corrupt_json_line_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default();
    let path = dir.path().join("c1-json.log");
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..2);
    drop(w);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open")
        .write_all(b"{\"log\":\"x\"\n")
        .expect("write");
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 2..6);
    drop(w);

    let mut reader =
        read(dir.path(), "c1", &config, &ReadOptions::default(), &|| true).expect("open");
    assert_eq!(
        numbers(&[
            reader.next().expect("one").expect("ok"),
            reader.next().expect("two").expect("ok")
        ]),
        vec![0, 1]
    );
    expect_corrupt(reader.next().expect("an error").map(|e| vec![e]), &path, 3);
    assert!(reader.next().is_none(), "the reader ends after an error");

    // Starting from the end, the line number is still counted from the start of the file.
    let tail = |n| {
        read(
            dir.path(),
            "c1",
            &config,
            &ReadOptions {
                tail: Some(n),
                ..Default::default()
            },
            &|| true,
        )
        .expect("open")
        .collect::<Result<Vec<_>, _>>()
    };
    assert_eq!(
        numbers(&tail(4).expect("the last four are fine")),
        vec![2, 3, 4, 5]
    );
    expect_corrupt(tail(5), &path, 3);
}

#[test]
fn corrupt_local_record_names_file_and_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("local", &[]);
    let path = dir.path().join("c1-local.log");
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..2);
    drop(w);
    let before = std::fs::metadata(&path).expect("stat").len();
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 2..6);
    drop(w);
    // Damage the stream byte of the third record.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&file, &[9], before + 4).expect("write");
    drop(file);

    let all = read(dir.path(), "c1", &config, &ReadOptions::default(), &|| true)
        .expect("open")
        .collect::<Result<Vec<_>, _>>();
    expect_corrupt(all, &path, 3);
    let tail = |n| {
        read(
            dir.path(),
            "c1",
            &config,
            &ReadOptions {
                tail: Some(n),
                ..Default::default()
            },
            &|| true,
        )
        .expect("open")
        .collect::<Result<Vec<_>, _>>()
    };
    assert_eq!(
        numbers(&tail(3).expect("the last three are fine")),
        vec![3, 4, 5]
    );
    expect_corrupt(tail(4), &path, 3);
}

#[test]
fn none_driver_cannot_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("none", &[]);
    let err = read(dir.path(), "c1", &config, &ReadOptions::default(), &|| true)
        .err()
        .expect("an error");
    assert!(matches!(err, Error::ReadNotSupported));
    assert_eq!(
        err.to_string(),
        "configured logging driver does not support reading"
    );
}

#[test]
fn no_logs_yet_reads_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for driver in ["json-file", "local"] {
        let config = config(driver, &[]);
        assert!(read_all(dir.path(), &config, &ReadOptions::default()).is_empty());
        assert!(read_all(
            dir.path(),
            &config,
            &ReadOptions {
                tail: Some(5),
                ..Default::default()
            }
        )
        .is_empty());
    }
}

#[test]
fn tail_does_not_read_the_history() {
    // Garbage at the start of the current file and in the oldest rotated file: a tail
    // that ends before them never looks at them (a full read reports them).
    for driver in ["json-file", "local"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(
            driver,
            &[("max-size", "1k"), ("max-file", "3"), ("compress", "false")],
        );
        let mut w = writer(dir.path(), &config);
        write_numbered(&mut w, 0..40);
        drop(w);
        let base = config.log_path(dir.path(), "c1").expect("path");
        let oldest = dir.path().join(format!(
            "{}.2",
            base.file_name().expect("name").to_string_lossy()
        ));
        let damage = |path: &Path, at: u64| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            std::os::unix::fs::FileExt::write_all_at(&file, b"\x07\x07\x07\x07\x07\x07\x07", at)
                .expect("damage");
        };
        damage(&oldest, 0);
        let whole = read(dir.path(), "c1", &config, &ReadOptions::default(), &|| true)
            .expect("open")
            .collect::<Result<Vec<_>, _>>();
        assert!(
            matches!(whole, Err(Error::Corrupt { .. })),
            "{driver}: {whole:?}"
        );
        let tail = read_all(
            dir.path(),
            &config,
            &ReadOptions {
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(numbers(&tail), vec![38, 39], "{driver}");
        // Damage the first record of the current file too (after the local header).
        let header = if driver == "local" { 12 } else { 0 };
        damage(&base, header);
        let tail = read_all(
            dir.path(),
            &config,
            &ReadOptions {
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(numbers(&tail), vec![38, 39], "{driver}");
    }
}
