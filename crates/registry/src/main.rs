//! `berth-registry`: the registry server's command line (`serve`, and `gc` for one
//! garbage collection sweep).

use std::path::PathBuf;

use anyhow::Context;
use berth_registry::config::{parse_duration, parse_duration_or_zero, Tls};
use berth_registry::{Config, Server};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-registry", version, about = "An OCI distribution registry")]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, global = true, default_value = "info", env = "BERTH_REGISTRY_LOG")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry API.
    Serve(ServeArgs),
    /// Delete unreferenced blobs and untagged manifests now (one sweep), on a stopped
    /// registry or through the admin socket of the running one.
    Gc(GcArgs),
}

#[derive(clap::Args)]
struct GcArgs {
    /// Configuration file (TOML): its root, mirrors and [gc] grace.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Storage root directory (default: the config's, else ./registry-data).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep content unreferenced for less than this (e.g. 0s, 30m; default: [gc] grace, 1h).
    #[arg(long)]
    grace: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML); flags override its values.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT (default 127.0.0.1:5000; port 0 picks a free one).
    #[arg(long)]
    addr: Option<String>,
    /// Storage root directory (default ./registry-data).
    #[arg(long)]
    root: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Remove upload sessions idle for this long (e.g. 30m, 1h; default 1h).
    #[arg(long)]
    upload_expiry: Option<String>,
}

fn config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    if let Some(root) = args.root {
        config.root = root;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(Tls { cert, key });
    }
    if let Some(expiry) = args.upload_expiry {
        config.upload_expiry = parse_duration(&expiry)?;
    }
    Ok(config)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// One sweep: by the running registry when one answers on the root's admin socket, else
/// here (the storage lock keeps a registry from starting meanwhile).
async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(root) = args.root {
        config.root = root;
    }
    let grace = match &args.grace {
        Some(g) => parse_duration_or_zero(g)?,
        None => config.gc.grace,
    };
    let root = config.root.clone();
    anyhow::ensure!(root.is_dir(), "storage root {} does not exist", root.display());
    let report = match berth_registry::admin::request_gc(&root, grace, args.dry_run).await? {
        Some(report) => {
            tracing::info!(root = %root.display(), "swept by the running registry");
            report
        }
        None => {
            let options = berth_registry::gc::SweepOptions {
                grace,
                dry_run: args.dry_run,
                keep_prefixes: config.mirrors.iter().map(|m| m.prefix()).collect(),
            };
            let evictions = berth_registry::gc::Eviction::for_mirrors(&config.mirrors);
            tokio::task::spawn_blocking(move || {
                let storage = berth_registry::storage::Storage::open(&root)?;
                berth_registry::gc::sweep_evicting(&storage, &options, &evictions)
            })
            .await
            .context("garbage collection task")??
        }
    };
    for line in report.lines() {
        println!("{line}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{},hyper=warn,rustls=warn", cli.log_level))
        .with_context(|| format!("invalid log level {:?}", cli.log_level))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Gc(args) => return runtime.block_on(gc(args)),
    };
    let config = config(args)?;
    runtime.block_on(async {
        let server = Server::bind(&config).await?;
        let addr = server.local_addr()?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        tracing::info!(root = %config.root.display(), "storage opened");
        // On stdout so scripts can learn the port when it was 0.
        println!("listening on {scheme}://{addr}");
        server.run(shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}
