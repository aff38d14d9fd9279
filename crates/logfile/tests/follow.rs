//! Following: a reader keeps up with a writer thread, through rotations (plain and
//! compressed), starting before the file exists, at the end with `--tail 0`, and ends when
//! the writer is done.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_logfile::{read, LogConfig, ReadOptions, Stream};
use common::*;

/// Past this a test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(60);

/// Writes lines `range` from a thread (pausing now and then so the reader catches up and
/// waits), while following with `opts`; returns the numbers read. `reader_pause` slows the
/// reader down so it falls several rotations behind.
fn follow_while_writing(
    config: &LogConfig,
    before: std::ops::Range<usize>,
    during: std::ops::Range<usize>,
    opts: ReadOptions,
    reader_pause: Option<Duration>,
) -> Vec<usize> {
    let dir = tempfile::tempdir().expect("tempdir");
    if !before.is_empty() {
        let mut w = writer(dir.path(), config);
        write_numbered(&mut w, before);
    }
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let stop = || done.load(Ordering::SeqCst) || started.elapsed() > DEADLINE;
    let reader = read(
        dir.path(),
        "c1",
        config,
        &ReadOptions {
            follow: true,
            ..opts
        },
        &stop,
    )
    .expect("open reader");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut w = writer(dir.path(), config);
            for chunk in during.collect::<Vec<_>>().chunks(25) {
                write_numbered(&mut w, chunk[0]..chunk[chunk.len() - 1] + 1);
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(w);
            done.store(true, Ordering::SeqCst);
        });
        let mut entries = Vec::new();
        for (i, entry) in reader.enumerate() {
            entries.push(entry.expect("entry"));
            if let Some(pause) = reader_pause {
                if i % 100 == 0 {
                    std::thread::sleep(pause);
                }
            }
        }
        assert!(started.elapsed() < DEADLINE, "following did not end");
        numbers(&entries)
    })
}

#[test]
fn follow_reads_lines_as_they_come_and_ends_with_the_writer() {
    for driver in ["json-file", "local"] {
        let config = config(driver, &[]);
        let got = follow_while_writing(&config, 0..20, 20..500, ReadOptions::default(), None);
        assert_eq!(got, (0..500).collect::<Vec<_>>(), "{driver}");
    }
}

#[test]
fn follow_survives_rotation() {
    // Enough files that nothing is dropped: every line must arrive exactly once.
    for opts in [
        vec![("max-size", "2k"), ("max-file", "150")],
        vec![
            ("max-size", "2k"),
            ("max-file", "150"),
            ("compress", "true"),
        ],
    ] {
        for driver in ["json-file", "local"] {
            let config = config(driver, &opts);
            let got = follow_while_writing(&config, 0..50, 50..2000, ReadOptions::default(), None);
            assert_eq!(got, (0..2000).collect::<Vec<_>>(), "{driver} {opts:?}");
        }
    }
}

#[test]
fn follow_catches_up_after_falling_several_rotations_behind() {
    for compress in ["false", "true"] {
        let config = config(
            "json-file",
            &[
                ("max-size", "1k"),
                ("max-file", "400"),
                ("compress", compress),
            ],
        );
        let got = follow_while_writing(
            &config,
            0..0,
            0..2000,
            ReadOptions::default(),
            Some(Duration::from_millis(150)),
        );
        assert_eq!(got, (0..2000).collect::<Vec<_>>(), "compress={compress}");
    }
}

#[test]
fn follow_with_tail_zero_reads_only_new_lines() {
    for driver in ["json-file", "local"] {
        let config = config(driver, &[("max-size", "2k"), ("max-file", "100")]);
        let got = follow_while_writing(
            &config,
            0..100,
            100..400,
            ReadOptions {
                tail: Some(0),
                ..Default::default()
            },
            None,
        );
        assert_eq!(got, (100..400).collect::<Vec<_>>(), "{driver}");
        let got = follow_while_writing(
            &config,
            0..100,
            100..200,
            ReadOptions {
                tail: Some(7),
                ..Default::default()
            },
            None,
        );
        assert_eq!(got, (93..200).collect::<Vec<_>>(), "{driver}");
    }
}

#[test]
fn follow_waits_for_the_file_to_appear() {
    let config = config("json-file", &[("max-size", "1k"), ("max-file", "100")]);
    let got = follow_while_writing(&config, 0..0, 0..300, ReadOptions::default(), None);
    assert_eq!(got, (0..300).collect::<Vec<_>>());
}

#[test]
fn follow_ends_at_until() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default();
    let mut w = writer(dir.path(), &config);
    // Times an hour ago, so that `until` lies in the past.
    let base = std::time::SystemTime::now() - Duration::from_secs(3600);
    let ms = |i: u64| base + Duration::from_millis(i);
    for i in 0..100 {
        w.write(Stream::Stdout, numbered(i).as_bytes(), ms(i as u64))
            .expect("write");
    }
    // The writer stays open: `until` ends following, not the stop callback.
    let started = Instant::now();
    let stop = || started.elapsed() > DEADLINE;
    let opts = ReadOptions {
        until: Some(ms(50)),
        follow: true,
        ..Default::default()
    };
    let got: Vec<_> = read(dir.path(), "c1", &config, &opts, &stop)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(numbers(&got), (0..=50).collect::<Vec<_>>());
    // Nothing later than `until` in the file: following ends once `until` has passed.
    let opts = ReadOptions {
        since: Some(ms(98)),
        until: Some(ms(1000)),
        follow: true,
        ..Default::default()
    };
    let got: Vec<_> = read(dir.path(), "c1", &config, &opts, &stop)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(numbers(&got), vec![98, 99]);
    assert!(started.elapsed() < DEADLINE);
    drop(w);
}

#[test]
fn follow_skips_a_torn_record_once_the_writer_is_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default();
    let mut w = writer(dir.path(), &config);
    write_numbered(&mut w, 0..5);
    drop(w);
    let path = dir.path().join("c1-json.log");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"log\":\"half"))
        .expect("append");
    let got: Vec<_> = read(
        dir.path(),
        "c1",
        &config,
        &ReadOptions {
            follow: true,
            ..Default::default()
        },
        &|| true,
    )
    .expect("open")
    .collect::<Result<_, _>>()
    .expect("read");
    assert_eq!(numbers(&got), (0..5).collect::<Vec<_>>());
}
