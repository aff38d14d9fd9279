//! The daemon's sockets: unix sockets (mode 0660, owned by the configured group) and TCP,
//! which is only ever served with TLS and verified client certificates.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_engine::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Tls};

pub async fn serve(host: &str, config: &Config, engine: Arc<Engine>, stop: watch::Receiver<bool>) -> anyhow::Result<JoinHandle<()>> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = Path::new(if path.is_empty() { "/run/berth/berth.sock" } else { path });
        return serve_unix(path, config.group.as_deref(), engine, stop);
    }
    if let Some(addr) = host.strip_prefix("tcp://") {
        let Some(tls) = &config.tls else {
            bail!("refusing to listen on {host}: a TCP socket needs TLS with client certificate verification (--tlsverify, --tlscacert, --tlscert, --tlskey)");
        };
        return serve_tls(addr, tls, engine, stop).await;
    }
    bail!("invalid host {host:?}: use unix:///path or tcp://host:port")
}

fn serve_unix(path: &Path, group: Option<&str>, engine: Arc<Engine>, mut stop: watch::Receiver<bool>) -> anyhow::Result<JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket file left by a daemon that died is stale; the pid file lock already proved
    // no other daemon runs.
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).with_context(|| format!("chmod {}", path.display()))?;
    if let Some(gid) = group_id(group.unwrap_or("docker"), group.is_some())? {
        std::os::unix::fs::chown(path, Some(0), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    }
    let app = berth_api::service(engine);
    Ok(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "unix socket server failed");
        }
    }))
}

/// The gid of `name`; a missing default group is not an error (the socket stays root's).
fn group_id(name: &str, required: bool) -> anyhow::Result<Option<u32>> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(Some(g.gid.as_raw())),
        _ if !required => Ok(None),
        _ => match name.parse::<u32>() {
            Ok(gid) => Ok(Some(gid)),
            Err(_) => bail!("group {name:?} not found"),
        },
    }
}

async fn serve_tls(addr: &str, tls: &Tls, engine: Arc<Engine>, mut stop: watch::Receiver<bool>) -> anyhow::Result<JoinHandle<()>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .with_context(|| format!("reading TLS certificate {}", tls.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).with_context(|| format!("reading TLS key {}", tls.key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&tls.ca_cert).with_context(|| format!("reading TLS CA {}", tls.ca_cert.display()))? {
        roots.add(ca.with_context(|| format!("reading TLS CA {}", tls.ca_cert.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the client certificate verifier")?;
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("TLS certificate and key")?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on tcp://{addr}"))?;
    let router = berth_api::router_with_versions(engine);
    Ok(tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => { tracing::warn!(error = %e, "accept"); continue; }
                },
                _ = stop.wait_for(|s| *s) => break,
            };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(stream).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                };
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
            });
        }
    }))
}
