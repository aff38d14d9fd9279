//! berth-shim as berthd drives it: a busybox bundle, the config on stdin, the Ready
//! line, attach, start, exec, kill, and the exit record; also that the shim outlives the
//! process that started it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_shim_protocol::{from_line, to_line, ExitRecord, LogSettings, Ready, Reply, Request, ShimConfig, Streams};
use berth_testkit::bundle::Bundle;
use serde_json::json;

struct Shim {
    config: ShimConfig,
    pid: i32,
    _state: tempfile::TempDir,
}

fn shim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-shim"))
}

fn start_shim(bundle: &Bundle, tty: bool, stdin: bool) -> Result<Shim, (String, berth_shim_protocol::FailureKind)> {
    let state = tempfile::tempdir().unwrap();
    let id = format!("shimtest-{}-{}", std::process::id(), rand_suffix());
    let config = ShimConfig {
        id: id.clone(),
        bundle: bundle.path().to_path_buf(),
        runtime_root: state.path().join("runtime"),
        socket: state.path().join("shim.sock"),
        exit_file: state.path().join("exit.json"),
        stdin,
        stdin_once: stdin,
        tty,
        log: LogSettings { driver: "json-file".into(), dir: state.path().join("logs"), ..Default::default() },
    };
    std::fs::create_dir_all(&config.log.dir).unwrap();
    let mut child = Command::new(shim_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(state.path().join("shim.log")).unwrap())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&serde_json::to_vec(&config).unwrap()).unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    // The shim keeps running after we stop waiting for it; reap it in the background.
    std::thread::spawn(move || child.wait());
    match from_line::<Ready>(line.as_bytes()).unwrap_or_else(|e| panic!("ready line {line:?}: {e}")) {
        Ready::Created { shim_pid, .. } => Ok(Shim { config, pid: shim_pid, _state: state }),
        Ready::Failed { message, kind } => Err((message, kind)),
    }
}

fn exited(mut wait: UnixStream) -> ExitRecord {
    let mut line = Vec::new();
    wait.read_to_end(&mut line).unwrap();
    match from_line::<Reply>(&line).unwrap() {
        Reply::Exited(e) => e,
        other => panic!("wait: {other:?}"),
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
}

impl Shim {
    fn connect(&self, request: &Request) -> (UnixStream, Reply) {
        let mut s = UnixStream::connect(&self.config.socket).unwrap();
        s.write_all(&to_line(request)).unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while s.read(&mut byte).unwrap() == 1 {
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        let reply = from_line::<Reply>(&line).unwrap_or_else(|e| panic!("reply {:?}: {e}", String::from_utf8_lossy(&line)));
        (s, reply)
    }

    fn call(&self, request: Request) -> Reply {
        self.connect(&request).1
    }

    /// Asks to be told of the exit (as berthd does, before the start); `exited` reads it.
    fn wait(&self) -> UnixStream {
        let mut s = UnixStream::connect(&self.config.socket).unwrap();
        s.write_all(&to_line(&Request::Wait)).unwrap();
        s
    }

    fn gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !Path::new(&format!("/proc/{}", self.pid)).exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// Splits Docker's multiplexed stream into (stdout, stderr).
fn demux(mut data: &[u8]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        let payload = &data[8..8 + len];
        if data[0] == 1 { out.extend_from_slice(payload) } else { err.extend_from_slice(payload) }
        data = &data[8 + len..];
    }
    (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new().unwrap();
    b.set_args(args);
    b.save().unwrap();
    b
}

#[test]
fn attach_start_and_exit_code() {
    if !berth_testkit::require_root() {
        return;
    }
    let b = bundle(&["/bin/sh", "-c", "echo out; echo err >&2; exit 7"]);
    let shim = start_shim(&b, false, false).unwrap();
    let (mut attach, reply) = shim.connect(&Request::Attach(Streams { stdout: true, stderr: true, ..Default::default() }));
    assert!(matches!(reply, Reply::Ok), "{reply:?}");
    let wait = shim.wait();
    assert!(matches!(shim.call(Request::Start), Reply::Ok));
    let mut data = Vec::new();
    attach.read_to_end(&mut data).unwrap();
    assert_eq!(demux(&data), ("out\n".to_string(), "err\n".to_string()));
    let exit = exited(wait);
    assert_eq!(exit.code, 7);
    assert!(!exit.oom_killed);
    assert!(shim.gone(Duration::from_secs(10)), "the shim leaves after the container exited");
    let recorded: ExitRecord = from_line(&std::fs::read(&shim.config.exit_file).unwrap()).unwrap();
    assert_eq!(recorded, exit);
    assert!(!shim.config.runtime_root.join(&shim.config.id).exists(), "runtime state removed");
}

#[test]
fn stdin_once_and_exec() {
    if !berth_testkit::require_root() {
        return;
    }
    let b = bundle(&["/bin/sh", "-c", "read line; echo got $line; sleep 100"]);
    let shim = start_shim(&b, false, true).unwrap();
    let (mut attach, _) = shim.connect(&Request::Attach(Streams { stdin: true, stdout: true, stderr: true, ..Default::default() }));
    assert!(matches!(shim.call(Request::Start), Reply::Ok));
    attach.write_all(b"hello\n").unwrap();
    let mut header = [0u8; 8];
    attach.read_exact(&mut header).unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize];
    attach.read_exact(&mut payload).unwrap();
    assert_eq!(payload, b"got hello\n");

    let process = json!({"args": ["/bin/sh", "-c", "echo exec $X; exit 3"], "env": ["X=1", "PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
    let (mut exec, reply) = shim.connect(&Request::Exec { id: "e1".into(), process, tty: false, streams: Streams { stdout: true, stderr: true, ..Default::default() } });
    assert!(matches!(reply, Reply::Started { .. }), "{reply:?}");
    let mut data = Vec::new();
    exec.read_to_end(&mut data).unwrap();
    assert_eq!(demux(&data).0, "exec 1\n");
    match shim.call(Request::ExecWait { id: "e1".into() }) {
        Reply::Exited(e) => assert_eq!(e.code, 3),
        other => panic!("{other:?}"),
    }
    let missing = json!({"args": ["/nonexistent"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
    let (_, reply) = shim.connect(&Request::Exec { id: "e2".into(), process: missing, tty: false, streams: Streams::default() });
    assert!(matches!(reply, Reply::Error { kind: berth_shim_protocol::FailureKind::NotFound, .. }), "{reply:?}");

    let wait = shim.wait();
    assert!(matches!(shim.call(Request::Kill { signal: 9, all: false }), Reply::Ok));
    assert_eq!(exited(wait).code, 137);
    assert!(shim.gone(Duration::from_secs(10)));
}

#[test]
fn terminal_resize_and_input() {
    if !berth_testkit::require_root() {
        return;
    }
    let b = bundle(&["/bin/sh", "-c", "read line; stty size; echo got $line"]);
    let mut b = b;
    b.set("/process/terminal", json!(true)).unwrap();
    b.save().unwrap();
    let shim = start_shim(&b, true, true).unwrap();
    assert!(matches!(shim.call(Request::Resize { exec: None, height: 33, width: 111 }), Reply::Ok));
    let (mut attach, _) = shim.connect(&Request::Attach(Streams { stdin: true, stdout: true, stderr: true, ..Default::default() }));
    let wait = shim.wait();
    assert!(matches!(shim.call(Request::Start), Reply::Ok));
    attach.write_all(b"abc\r").unwrap();
    let mut data = Vec::new();
    attach.read_to_end(&mut data).unwrap();
    let text = String::from_utf8_lossy(&data);
    assert!(text.contains("33 111"), "{text:?}");
    assert!(text.contains("got abc"), "{text:?}");
    assert_eq!(exited(wait).code, 0);
}

#[test]
fn missing_program_fails_create_cleanly() {
    if !berth_testkit::require_root() {
        return;
    }
    let b = bundle(&["/no/such/program"]);
    let (message, kind) = start_shim(&b, false, false).err().expect("create must fail");
    assert_eq!(kind, berth_shim_protocol::FailureKind::NotFound, "{message}");
}

#[test]
fn survives_the_death_of_its_parent() {
    if !berth_testkit::require_root() {
        return;
    }
    // The shim is started from a process that then dies; the container runs on and its
    // exit is recorded.
    let b = bundle(&["/bin/sh", "-c", "sleep 0.5; exit 4"]);
    let shim = start_shim(&b, false, false).unwrap();
    assert!(matches!(shim.call(Request::Start), Reply::Ok));
    assert!(shim.gone(Duration::from_secs(10)));
    let recorded: ExitRecord = from_line(&std::fs::read(&shim.config.exit_file).unwrap()).unwrap();
    assert_eq!(recorded.code, 4);
}
