//! `berth-registry`: the registry server's command line.

use std::path::PathBuf;

use anyhow::Context;
use berth_registry::config::{parse_duration, Tls};
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{},hyper=warn,rustls=warn", cli.log_level))
        .with_context(|| format!("invalid log level {:?}", cli.log_level))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let Command::Serve(args) = cli.command;
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
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
