//! berthd: reads its configuration, opens the engine, serves the Docker Engine API on its
//! sockets and shuts down cleanly on SIGTERM or SIGINT.

mod config;
mod listen;

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use config::{Config, Flags};

fn main() {
    let flags = Flags::parse();
    let config = match Config::load(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            std::process::exit(1);
        }
    };
    init_logs(&config);
    // Two workers: the daemon mostly waits; heavy work runs on blocking threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build();
    let result = runtime.context("starting the async runtime").and_then(|rt| rt.block_on(run(config)));
    if let Err(e) = result {
        tracing::error!("{e:#}");
        eprintln!("berthd: {e:#}");
        std::process::exit(1);
    }
}

fn init_logs(config: &Config) {
    let level = match config.log_level.as_str() {
        "fatal" => "error",
        other => other,
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,reqwest=warn,h2=warn,rustls=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives once the socket answers must stop us cleanly.
    let signals = Signals::install()?;
    for (dir, mode) in [(&config.data_root, 0o711), (&config.exec_root, 0o700)] {
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _pidfile = PidFile::create(&config.pidfile)?;
    ensure_engine_id(&config.data_root)?;

    let engine_config = berth_engine::EngineConfig {
        data_root: config.data_root.clone(),
        exec_root: config.exec_root.clone(),
        registry: berth_distribution::RegistryConfig {
            mirrors: config.registry_mirrors.clone(),
            registry_mirrors: config.registry_host_mirrors.clone(),
            insecure: config.insecure_registries.clone(),
            ..Default::default()
        },
        max_concurrent_downloads: config.max_concurrent_downloads,
        max_concurrent_uploads: config.max_concurrent_uploads,
        debug: config.debug,
        live_restore: config.live_restore,
        insecure_registries: config.insecure_registries.clone(),
        registry_mirrors: config.registry_mirrors.clone(),
    };
    let engine = tokio::task::spawn_blocking(move || berth_engine::Engine::open(engine_config))
        .await
        .context("opening the engine")?
        .context("opening the engine")?;
    let engine = Arc::new(engine);
    // Containers outlive berthd: take them over again before serving.
    engine.restore().await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for host in &config.hosts {
        servers.push(listen::serve(host, &config, Arc::clone(&engine), stop_rx.clone()).await?);
    }
    tracing::info!(version = berth_api::ENGINE_VERSION, hosts = ?config.hosts, data_root = %config.data_root.display(), "daemon has completed initialization");

    signals.wait().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for server in servers {
        // Long-lived streams (attach, wait, logs -f, events) would hold the shutdown up:
        // they get a moment, then end with the process; containers keep running.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
    }
    for host in &config.hosts {
        if let Some(path) = host.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
        }
    }
    tracing::info!("daemon shutdown complete");
    Ok(())
}

/// SIGTERM and SIGINT, both meaning a clean shutdown.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}

/// A stable id for this daemon's state, reported by `/info`.
fn ensure_engine_id(data_root: &Path) -> anyhow::Result<()> {
    let path = data_root.join("engine-id");
    if path.exists() {
        return Ok(());
    }
    let id: [u8; 16] = rand::random();
    let text: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = data_root.join("engine-id.tmp");
    std::fs::write(&tmp, format!("{text}\n")).and_then(|_| std::fs::rename(&tmp, &path)).with_context(|| format!("writing {}", path.display()))
}

/// The pid file, locked while the daemon runs so a second daemon on the same state refuses
/// to start; removed on exit.
struct PidFile {
    path: std::path::PathBuf,
    _file: std::fs::File,
}

impl PidFile {
    fn create(path: &Path) -> anyhow::Result<PidFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .with_context(|| format!("opening pid file {}", path.display()))?;
        if nix::fcntl::Flock::lock(file.try_clone()?, nix::fcntl::FlockArg::LockExclusiveNonblock).map(std::mem::forget).is_err() {
            let other = std::fs::read_to_string(path).unwrap_or_default();
            anyhow::bail!("pid file found, ensure berthd is not running or delete {} (pid {})", path.display(), other.trim());
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(PidFile { path: path.to_path_buf(), _file: file })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
