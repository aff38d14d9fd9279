//! Helpers shared by the engine's integration tests: engines over temporary data roots, a
//! busybox rootfs tarball, snapshots of the store to compare before and after, and progress
//! collection. Tests run as root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use berth_engine::{Engine, EngineConfig, Images, Progress, ProgressMessage, RegistryConfig};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// An engine with its own data root under `dir`.
pub fn open_engine(dir: &Path) -> Engine {
    let config = EngineConfig {
        data_root: dir.join("data"),
        exec_root: dir.join("exec"),
        registry: RegistryConfig::default(),
        max_concurrent_downloads: 3,
        max_concurrent_uploads: 2,
        debug: false,
        live_restore: false,
        insecure_registries: Vec::new(),
        registry_mirrors: Vec::new(),
    };
    Engine::open(config).expect("open engine")
}

/// Runs a command, panicking with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A busybox root filesystem tarball (`tests/make-rootfs.sh`), written to `dir/rootfs.tar`.
pub fn rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    run(Command::new(repo_root().join("tests/make-rootfs.sh")).arg(&rootfs));
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg("."));
    tar
}

/// Imports the busybox rootfs as `tag` and returns the image id.
pub async fn import_busybox(images: &Arc<Images>, dir: &Path, tag: &str) -> String {
    let tar = rootfs_tar(dir);
    let file = std::fs::File::open(&tar).expect("open rootfs tar");
    images.import(file, Some(tag), &["CMD [\"sh\"]".to_string()], Some("test image"), None).await.expect("import")
}

/// What a test compares to prove an operation left nothing behind.
#[derive(Debug, PartialEq)]
pub struct StoreState {
    pub images: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub digests: Vec<(String, String)>,
    pub layers: Vec<(String, u64)>,
    pub layer_dirs: Vec<String>,
    pub blobs: Vec<String>,
    pub tmp: Vec<String>,
}

fn list(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

pub fn store_state(engine: &Engine) -> StoreState {
    let tx = engine.images.meta().read().expect("read meta");
    let mut images: Vec<String> = tx.images().expect("images").into_iter().map(|i| i.id).collect();
    images.sort();
    let mut layers: Vec<(String, u64)> = tx.layers().expect("layers").into_iter().map(|l| (l.chain_id, l.refs)).collect();
    layers.sort();
    let root = engine.config.data_root.join("image");
    StoreState {
        images,
        tags: tx.tags().expect("tags"),
        digests: tx.digest_refs().expect("digests"),
        layers,
        layer_dirs: list(&root.join("layers")),
        blobs: list(&root.join("content/blobs/sha256")),
        tmp: list(&root.join("tmp")),
    }
}

/// Every progress message sent so far.
pub fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ProgressMessage>) -> Vec<ProgressMessage> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        out.push(m);
    }
    out
}

/// Messages as docker prints them without a terminal: `id: status` or `status`.
pub fn progress_lines(messages: &[ProgressMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| {
            let status = m.status.clone()?;
            Some(match &m.id {
                Some(id) => format!("{id}: {status}"),
                None => status,
            })
        })
        .collect()
}

pub fn progress() -> (Progress, tokio::sync::mpsc::UnboundedReceiver<ProgressMessage>) {
    Progress::channel()
}

pub fn have(command: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {command}")).output().is_ok_and(|o| o.status.success())
}
