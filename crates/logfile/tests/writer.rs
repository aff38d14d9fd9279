//! The writer: docker's json-file lines byte for byte, message splitting, rotation,
//! compression and recovery from a torn last record.

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use berth_logfile::{LogConfig, ReadOptions, Stream, Writer, MAX_MESSAGE};
use common::*;

fn json_file(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("c1-json.log")).expect("read log file")
}

#[test]
fn json_lines_are_dockers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default();
    let mut w = writer(dir.path(), &config);
    w.write(Stream::Stdout, b"hello\n", at(123_456_789))
        .expect("write");
    w.write(Stream::Stderr, b"oops\r\n", at(1_000_000_000))
        .expect("write");
    w.write(
        Stream::Stdout,
        b"tab\t<b>&\"q\"\\ \x01\xff\xe2\x80\xa8\n",
        at(1_500_000_000),
    )
    .expect("write");
    drop(w);
    assert_eq!(
        json_file(dir.path()),
        concat!(
            r#"{"log":"hello\n","stream":"stdout","time":"2026-11-22T10:00:00.123456789Z"}"#,
            "\n",
            r#"{"log":"oops\r\n","stream":"stderr","time":"2026-11-22T10:00:01Z"}"#,
            "\n",
            r#"{"log":"tab\u0009\u003cb\u003e\u0026\"q\"\\ \u0001\ufffd\u2028\n","stream":"stdout","time":"2026-11-22T10:00:01.5Z"}"#,
            "\n",
        )
    );
}

#[test]
fn json_attrs_are_dockers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let attrs: BTreeMap<String, String> = [("tag", "web/abc"), ("app", "a<b")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut w = Writer::open(dir.path(), "c1", &LogConfig::default(), attrs).expect("open");
    w.write(Stream::Stdout, b"x\n", at(10)).expect("write");
    drop(w);
    assert_eq!(
        json_file(dir.path()),
        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"attrs\":{\"app\":\"a\\u003cb\",\"tag\":\"web/abc\"},\"time\":\"2026-11-22T10:00:00.00000001Z\"}\n"
    );
    let entries = read_all(dir.path(), &LogConfig::default(), &ReadOptions::default());
    assert_eq!(
        entries[0].attrs,
        vec![
            ("app".into(), "a<b".into()),
            ("tag".into(), "web/abc".into())
        ]
    );
}

#[test]
fn chunks_are_joined_into_lines_per_stream() {
    for driver in ["json-file", "local"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(driver, &[]);
        let mut w = writer(dir.path(), &config);
        w.write(Stream::Stdout, b"hel", at(1)).expect("write");
        w.write(Stream::Stderr, b"err", at(2)).expect("write");
        w.write(Stream::Stdout, b"lo\nwor", at(3)).expect("write");
        w.write(Stream::Stderr, b"or\n", at(4)).expect("write");
        w.write(Stream::Stdout, b"ld\n\n", at(5)).expect("write");
        drop(w);
        let entries = read_all(dir.path(), &config, &ReadOptions::default());
        let got: Vec<(Stream, &[u8], u64, bool)> = entries
            .iter()
            .map(|e| {
                (
                    e.stream,
                    e.line.as_slice(),
                    e.time.duration_since(at(0)).expect("after").as_nanos() as u64,
                    e.partial,
                )
            })
            .collect();
        // A line takes the time of the write that completed it, as docker does.
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, &b"hello\n"[..], 3, false),
                (Stream::Stderr, &b"error\n"[..], 4, false),
                (Stream::Stdout, &b"world\n"[..], 5, false),
                (Stream::Stdout, &b"\n"[..], 5, false),
            ],
            "{driver}"
        );
    }
}

#[test]
fn long_lines_are_split_at_16k_like_docker() {
    for driver in ["json-file", "local"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(driver, &[]);
        let mut w = writer(dir.path(), &config);
        // 40000 bytes and a newline, in odd chunks.
        let long: Vec<u8> = (0..40_000)
            .map(|i| b'a' + (i % 26) as u8)
            .chain(std::iter::once(b'\n'))
            .collect();
        for (i, chunk) in long.chunks(999).enumerate() {
            w.write(Stream::Stdout, chunk, at(100 + i as u64))
                .expect("write");
        }
        // Exactly 16 KiB then a newline: a full piece, then the newline alone (docker's
        // copier does the same). One byte less fits one message.
        w.write(Stream::Stderr, &[b'x'; MAX_MESSAGE], at(500))
            .expect("write");
        w.write(Stream::Stderr, b"\n", at(501)).expect("write");
        let mut short = vec![b'y'; MAX_MESSAGE - 1];
        short.push(b'\n');
        w.write(Stream::Stderr, &short, at(600)).expect("write");
        drop(w);

        let entries = read_all(dir.path(), &config, &ReadOptions::default());
        let shape: Vec<(Stream, usize, bool)> = entries
            .iter()
            .map(|e| (e.stream, e.line.len(), e.partial))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Stream::Stdout, MAX_MESSAGE, true),
                (Stream::Stdout, MAX_MESSAGE, true),
                (Stream::Stdout, 40_000 - 2 * MAX_MESSAGE + 1, false),
                (Stream::Stderr, MAX_MESSAGE, true),
                (Stream::Stderr, 1, false),
                (Stream::Stderr, MAX_MESSAGE, false),
            ],
            "{driver}"
        );
        let joined: Vec<u8> = entries[..3].iter().flat_map(|e| e.line.clone()).collect();
        assert_eq!(joined, long);
        // Every piece of a split line carries the time of the first piece.
        let first_piece_time = entries[0].time;
        assert!(
            entries[..3].iter().all(|e| e.time == first_piece_time),
            "{driver}"
        );
        assert_eq!(entries[3].time, at(500));
        assert_eq!(entries[4].time, at(500));
    }
}

#[test]
fn incomplete_line_waits_for_flush_partial() {
    for driver in ["json-file", "local"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(driver, &[]);
        let mut w = writer(dir.path(), &config);
        w.write(Stream::Stdout, b"done\nno newline", at(1))
            .expect("write");
        assert_eq!(
            lines(&read_all(dir.path(), &config, &ReadOptions::default())),
            vec!["done\n"],
            "{driver}"
        );
        w.write(Stream::Stdout, b" yet", at(2)).expect("write");
        w.flush_partial().expect("flush");
        let entries = read_all(dir.path(), &config, &ReadOptions::default());
        assert_eq!(
            lines(&entries),
            vec!["done\n", "no newline yet"],
            "{driver}"
        );
        assert!(entries[1].partial);
        assert_eq!(entries[1].time, at(2));
        // Dropping the writer also writes what is pending.
        w.write(Stream::Stderr, b"bye", at(3)).expect("write");
        w.sync().expect("sync");
        drop(w);
        let entries = read_all(dir.path(), &config, &ReadOptions::default());
        assert_eq!(
            lines(&entries),
            vec!["done\n", "no newline yet", "bye"],
            "{driver}"
        );
    }
}

#[test]
fn json_file_rotates_by_size_and_keeps_max_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("json-file", &[("max-size", "1k"), ("max-file", "3")]);
    assert_eq!(config.max_size, Some(1000));
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..200);
    drop(w);

    assert_eq!(
        file_names(dir.path()),
        vec!["c1-json.log", "c1-json.log.1", "c1-json.log.2"]
    );
    let mut previous_last: Option<usize> = None;
    for name in ["c1-json.log.2", "c1-json.log.1", "c1-json.log"] {
        let text = std::fs::read_to_string(dir.path().join(name)).expect("read");
        assert!(text.len() <= 1000, "{name} is {} bytes", text.len());
        assert!(text.ends_with('\n'), "{name} ends mid-line");
        // Each file continues where the older one stopped.
        let first: usize = text[13..18].parse().expect("number");
        if let Some(last) = previous_last {
            assert_eq!(first, last + 1, "{name}");
        }
        let last_line = text.lines().last().expect("a line");
        previous_last = Some(last_line[13..18].parse().expect("number"));
    }
    assert_eq!(previous_last, Some(199));
    let entries = read_all(dir.path(), &config, &ReadOptions::default());
    let numbers = numbers(&entries);
    assert_eq!(numbers.last(), Some(&199));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

#[test]
fn compressed_rotation_keeps_docker_gzip_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(
        "json-file",
        &[("max-size", "2k"), ("max-file", "4"), ("compress", "true")],
    );
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..300);
    drop(w);

    assert_eq!(
        file_names(dir.path()),
        vec![
            "c1-json.log",
            "c1-json.log.1.gz",
            "c1-json.log.2.gz",
            "c1-json.log.3.gz"
        ]
    );
    for i in 1..=3 {
        let file =
            std::fs::File::open(dir.path().join(format!("c1-json.log.{i}.gz"))).expect("open");
        let mut decoder = flate2::read::GzDecoder::new(file);
        let mut text = String::new();
        decoder.read_to_string(&mut text).expect("gunzip");
        assert!(!text.is_empty() && text.len() <= 2000 && text.ends_with('\n'));
        // lastTime in the gzip header is the time of the file's last message.
        let last_line = text.lines().last().expect("line");
        let time = last_line
            .rsplit_once("\"time\":\"")
            .expect("time")
            .1
            .trim_end_matches("\"}");
        let extra = decoder
            .header()
            .and_then(|h| h.extra())
            .expect("gzip extra field");
        assert_eq!(
            std::str::from_utf8(extra).expect("utf-8"),
            format!("{{\"lastTime\":\"{time}\"}}")
        );
    }
    let entries = read_all(dir.path(), &config, &ReadOptions::default());
    let numbers = numbers(&entries);
    assert_eq!(numbers.last(), Some(&299));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(
        numbers.len() > 60,
        "four files of 2k hold more than {}",
        numbers.len()
    );
}

#[test]
fn max_file_one_starts_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("json-file", &[("max-size", "500")]);
    assert_eq!(config.max_file, 1, "a size alone keeps one file, as docker");
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..50);
    drop(w);
    assert_eq!(file_names(dir.path()), vec!["c1-json.log"]);
    let entries = read_all(dir.path(), &config, &ReadOptions::default());
    assert_eq!(numbers(&entries).last(), Some(&49));
    assert!(
        std::fs::metadata(dir.path().join("c1-json.log"))
            .expect("stat")
            .len()
            <= 500
    );
}

#[test]
fn local_rotates_and_compresses_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("local", &[("max-size", "2k"), ("max-file", "3")]);
    assert!(config.compress, "local compresses by default");
    let attrs: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let mut w = Writer::open(dir.path(), "c1", &config, attrs).expect("open");
    write_numbered(&mut w, 0..200);
    w.write(Stream::Stdout, b"end", at(1)).expect("write");
    w.flush_partial().expect("flush");
    drop(w);
    assert_eq!(
        file_names(dir.path()),
        vec!["c1-local.log", "c1-local.log.1.gz", "c1-local.log.2.gz"]
    );
    let entries = read_all(dir.path(), &config, &ReadOptions::default());
    let (last, numbered) = entries.split_last().expect("entries");
    assert_eq!((last.line.as_slice(), last.partial), (&b"end"[..], true));
    let numbers = numbers(numbered);
    assert_eq!(numbers.last(), Some(&199));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(entries
        .iter()
        .all(|e| e.attrs == vec![("app".to_string(), "web".to_string())]));
    for e in numbered {
        let n: usize = String::from_utf8_lossy(&e.line)[5..10]
            .parse()
            .expect("number");
        assert_eq!(e.time, at(n as u64 * 1000));
        assert_eq!(e.stream, stream_of(n));
    }
}

#[test]
fn reopening_cuts_off_a_torn_record() {
    for driver in ["json-file", "local"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(driver, &[]);
        let path = config.log_path(dir.path(), "c1").expect("path");
        let mut w = writer(dir.path(), &config);
        write_numbered(&mut w, 0..10);
        drop(w);
        // The writer was killed in the middle of a record.
        let whole = std::fs::metadata(&path).expect("stat").len();
        let mut w = writer(dir.path(), &config);
        write_numbered(&mut w, 10..11);
        drop(w);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(whole + 7).expect("truncate");
        drop(file);

        let mut w = writer(dir.path(), &config);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            whole,
            "{driver}: torn record cut off"
        );
        write_numbered(&mut w, 11..13);
        drop(w);
        let entries = read_all(dir.path(), &config, &ReadOptions::default());
        assert_eq!(
            numbers(&entries),
            (0..10).chain(11..13).collect::<Vec<_>>(),
            "{driver}"
        );
    }
}

#[test]
fn none_driver_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("none", &[("max-size", "10m")]);
    let mut w = writer(dir.path(), &config);
    assert!(w.path().is_none());
    w.write(Stream::Stdout, b"hello\n", at(0)).expect("write");
    w.flush_partial().expect("flush");
    w.sync().expect("sync");
    drop(w);
    assert!(file_names(dir.path()).is_empty());
}

#[test]
fn bad_container_ids_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for id in ["", "..", "a/b", "."] {
        let err = Writer::open(dir.path(), id, &LogConfig::default(), BTreeMap::new())
            .err()
            .expect("refused");
        assert_eq!(
            err.kind(),
            berth_logfile::ErrorKind::InvalidArgument,
            "{id:?}"
        );
    }
}

#[test]
fn remove_deletes_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(
        "json-file",
        &[("max-size", "1k"), ("max-file", "3"), ("compress", "true")],
    );
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..100);
    drop(w);
    std::fs::write(dir.path().join("other"), "x").expect("write");
    berth_logfile::remove(dir.path(), "c1", &config).expect("remove");
    assert_eq!(file_names(dir.path()), vec!["other"]);
    berth_logfile::remove(dir.path(), "c1", &config).expect("remove again");
}
