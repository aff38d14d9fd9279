//! The listener: plain HTTP or TLS, one task per connection, and the background task that
//! expires idle upload sessions. Access control and webhooks are wired in from the config.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use axum::Router;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::Auth;
use crate::config::{Config, Tls};
use crate::error::{Error, Result};
use crate::http::PeerAddr;
use crate::registry::Registry;
use crate::webhook::Webhooks;

/// How long a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A bound, not yet serving registry.
pub struct Server {
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    registry: Arc<Registry>,
    router: Router,
    upload_expiry: Duration,
    gc: crate::config::Gc,
    admin: Option<tokio::net::UnixListener>,
}

fn tls_acceptor(tls: &Tls) -> Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|i| i.collect::<std::result::Result<_, _>>())
        .map_err(|e| Error::Config(format!("reading TLS certificate {}: {e}", tls.cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("TLS certificate {} holds no certificate", tls.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| Error::Config(format!("reading TLS key {}: {e}", tls.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(format!("TLS certificate {} and key {}: {e}", tls.cert.display(), tls.key.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Server {
    /// Opens the storage, binds the listening socket, and sets up access control (reading
    /// the htpasswd file and the token key) and webhooks.
    pub async fn bind(config: &Config) -> Result<Server> {
        let acceptor = config.tls.as_ref().map(tls_acceptor).transpose()?;
        let (root, expiry) = (config.root.clone(), config.upload_expiry);
        let mut registry = tokio::task::spawn_blocking(move || Registry::open(&root, expiry))
            .await
            .map_err(|e| Error::Internal(format!("opening storage: {e}")))??;
        registry = registry.with_mirrors(&config.mirrors)?;
        let listener = TcpListener::bind(&config.addr)
            .await
            .map_err(|e| Error::Config(format!("listening on {}: {e}", config.addr)))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener address: {e}")))?.to_string();
        let mut token_routes = None;
        if let Some(auth_config) = &config.auth {
            let (auth_config, root, tls, addr) = (auth_config.clone(), config.root.clone(), acceptor.is_some(), addr.clone());
            let auth = tokio::task::spawn_blocking(move || Auth::new(&auth_config, &root, tls, addr))
                .await
                .map_err(|e| Error::Internal(format!("setting up access control: {e}")))??;
            let auth = Arc::new(auth);
            if auth.tokens().is_some() {
                token_routes = Some(auth.clone().router());
            }
            registry = registry.with_access(auth);
        }
        if !config.webhooks.is_empty() {
            let webhooks = Webhooks::start(&config.webhooks, &addr, registry.metrics_handle())?;
            registry = registry.with_events(Arc::new(webhooks));
        }
        let registry = Arc::new(registry);
        let mut router = crate::search::router(registry.clone()).merge(crate::ui::router(registry.clone())).merge(crate::http::router(registry.clone()));
        if let Some(tokens) = token_routes {
            router = tokens.merge(router);
        }
        router = crate::metrics::router(registry.clone(), &config.metrics)
            .merge(router)
            .layer(axum::middleware::from_fn_with_state(registry.metrics_handle(), crate::metrics::track));
        let admin = match crate::admin::bind(&config.root) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "no admin socket: `berth-registry gc` cannot reach this registry");
                None
            }
        };
        Ok(Server { listener, acceptor, registry, router, upload_expiry: config.upload_expiry, gc: config.gc.clone(), admin })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| Error::Internal(format!("listener address: {e}")))
    }

    pub fn is_tls(&self) -> bool {
        self.acceptor.is_some()
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Serves until `shutdown` completes. Every write is crash-safe, so stopping does not
    /// wait for requests in flight: an interrupted upload resumes after a restart.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let expiry = tokio::spawn(expire_uploads(self.registry.clone(), self.upload_expiry));
        let sweeps = self.gc.enabled.then(|| tokio::spawn(collect_garbage(self.registry.clone(), self.gc.interval, self.gc.grace)));
        let admin = self.admin.map(|l| tokio::spawn(crate::admin::serve(l, self.registry.clone(), self.gc.grace)));
        let router = self.router;
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone().map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                request
            }));
            let acceptor = self.acceptor.clone();
            tokio::spawn(async move {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
                let result = match acceptor {
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => http.serve_connection(TokioIo::new(tls), service).await,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    },
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
            });
        }
        expiry.abort();
        sweeps.inspect(|t| t.abort());
        if let Some(admin) = admin {
            admin.abort();
            let _ = std::fs::remove_file(crate::admin::socket_path(self.registry.storage().root()));
        }
        Ok(())
    }
}

/// Sweeps unreferenced content every `interval` (the first sweep one interval after start).
async fn collect_garbage(registry: Arc<Registry>, interval: Duration, grace: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match registry.collect_garbage(grace, false).await {
            Ok(r) if r.manifests.is_empty() && r.blobs.is_empty() => tracing::debug!("garbage collection: nothing to delete"),
            Ok(r) => tracing::info!(manifests = r.manifests.len(), blobs = r.blobs.len(), bytes = r.bytes, "garbage collection"),
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }
}

/// Removes expired upload sessions, checking a few times per expiry period.
async fn expire_uploads(registry: Arc<Registry>, expiry: Duration) {
    let period = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match registry.expire_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired upload sessions"),
            Err(e) => tracing::warn!(error = %e, "expiring upload sessions"),
        }
    }
}
