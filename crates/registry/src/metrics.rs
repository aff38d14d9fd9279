//! Metrics in the Prometheus text format at `GET /metrics`: requests by method, route kind
//! and status, response bytes, request durations, upload sessions, stored blobs, garbage
//! collection, the mirror cache and webhooks.
//!
//! Recording a request costs a few relaxed atomic additions into fixed tables (no lock, no
//! allocation); the text is built only when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::{header, Method, StatusCode};
use http_body_util::BodyExt;

use crate::config;
use crate::error::{Error, Result};
use crate::names::is_upload_id;
use crate::registry::Registry;

const METHODS: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OTHER"];
const ROUTES: [&str; 10] = ["base", "manifest", "blob", "upload", "tags", "catalog", "referrers", "token", "metrics", "other"];
/// Status codes counted in the fixed table; others go to a small locked map.
const CODES: [u16; 23] = [200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 409, 413, 416, 429, 500, 502, 503, 504];
/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

const fn zeros<const N: usize>() -> [AtomicU64; N] {
    [const { AtomicU64::new(0) }; N]
}

/// What the mirror cache counts: manifests and blobs separately.
#[derive(Debug, Clone, Copy)]
pub enum CacheKind {
    Manifest = 0,
    Blob = 1,
}

/// The registry's counters.
pub struct Metrics {
    requests: [AtomicU64; METHODS.len() * ROUTES.len() * CODES.len()],
    other_codes: Mutex<BTreeMap<(usize, usize, u16), u64>>,
    response_bytes: [AtomicU64; ROUTES.len()],
    /// Per route: one count per bucket plus the overflow, not cumulative.
    durations: [AtomicU64; ROUTES.len() * (BUCKETS.len() + 1)],
    duration_micros: [AtomicU64; ROUTES.len()],
    pub gc_runs: AtomicU64,
    pub gc_manifests_deleted: AtomicU64,
    pub gc_blobs_deleted: AtomicU64,
    pub gc_bytes_freed: AtomicU64,
    cache_hits: [AtomicU64; 2],
    cache_misses: [AtomicU64; 2],
    /// Cached manifests served because the upstream could not be asked.
    pub mirror_stale: AtomicU64,
    /// Cached manifests evicted by sweeps, unused for their mirror's `max_age`.
    pub mirror_evicted: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_failed: AtomicU64,
    pub webhook_dropped: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: zeros(),
            other_codes: Mutex::new(BTreeMap::new()),
            response_bytes: zeros(),
            durations: zeros(),
            duration_micros: zeros(),
            gc_runs: AtomicU64::new(0),
            gc_manifests_deleted: AtomicU64::new(0),
            gc_blobs_deleted: AtomicU64::new(0),
            gc_bytes_freed: AtomicU64::new(0),
            cache_hits: zeros(),
            cache_misses: zeros(),
            mirror_stale: AtomicU64::new(0),
            mirror_evicted: AtomicU64::new(0),
            webhook_delivered: AtomicU64::new(0),
            webhook_failed: AtomicU64::new(0),
            webhook_dropped: AtomicU64::new(0),
        }
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::POST => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        _ => 6,
    }
}

/// The kind of route a request path is, without validating it.
fn route_index(path: &str) -> usize {
    let kind = match path {
        "/v2" | "/v2/" => "base",
        "/v2/_catalog" => "catalog",
        "/token" => "token",
        "/metrics" => "metrics",
        p if p.starts_with("/v2/") => {
            let last = ["/blobs/", "/manifests/", "/tags/list", "/referrers/"]
                .iter()
                .filter_map(|m| p.rfind(m).map(|i| (i, *m)))
                .max();
            match last {
                Some((i, "/blobs/")) if p[i + "/blobs/".len()..].starts_with("uploads") => "upload",
                Some((_, "/blobs/")) => "blob",
                Some((_, "/manifests/")) => "manifest",
                Some((_, "/tags/list")) => "tags",
                Some((_, "/referrers/")) => "referrers",
                _ => "other",
            }
        }
        _ => "other",
    };
    ROUTES.iter().position(|r| *r == kind).unwrap_or(ROUTES.len() - 1)
}

impl Metrics {
    fn record(&self, method: usize, route: usize, status: u16, elapsed: Duration) {
        match CODES.iter().position(|c| *c == status) {
            Some(code) => {
                self.requests[(method * ROUTES.len() + route) * CODES.len() + code].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                if let Ok(mut map) = self.other_codes.lock() {
                    *map.entry((method, route, status)).or_insert(0) += 1;
                }
            }
        }
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.durations[route * (BUCKETS.len() + 1) + bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_micros[route].fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn cache_hit(&self, kind: CacheKind) {
        self.cache_hits[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_miss(&self, kind: CacheKind) {
        self.cache_misses[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted so far with this method, route kind and status.
    pub fn requests(&self, method: &str, route: &str, status: u16) -> u64 {
        let (Some(m), Some(r)) = (METHODS.iter().position(|x| *x == method), ROUTES.iter().position(|x| *x == route)) else {
            return 0;
        };
        match CODES.iter().position(|c| *c == status) {
            Some(c) => self.requests[(m * ROUTES.len() + r) * CODES.len() + c].load(Ordering::Relaxed),
            None => self.other_codes.lock().ok().and_then(|map| map.get(&(m, r, status)).copied()).unwrap_or(0),
        }
    }

    /// The text exposition; `uploads` and `blobs` (count, bytes) are read by the caller.
    pub fn render(&self, uploads: u64, blobs: (u64, u64)) -> String {
        let mut out = String::with_capacity(8192);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP berth_registry_{name} {help}\n# TYPE berth_registry_{name} {kind}");
        };

        family(&mut out, "http_requests_total", "counter", "HTTP requests by method, route kind and status code.");
        let mut rows: BTreeMap<(usize, usize, u16), u64> = BTreeMap::new();
        for m in 0..METHODS.len() {
            for r in 0..ROUTES.len() {
                for (c, code) in CODES.iter().enumerate() {
                    let n = load(&self.requests[(m * ROUTES.len() + r) * CODES.len() + c]);
                    if n > 0 {
                        rows.insert((m, r, *code), n);
                    }
                }
            }
        }
        if let Ok(map) = self.other_codes.lock() {
            rows.extend(map.iter().map(|(k, v)| (*k, *v)));
        }
        for ((m, r, code), n) in rows {
            let _ = writeln!(out, "berth_registry_http_requests_total{{method=\"{}\",route=\"{}\",code=\"{code}\"}} {n}", METHODS[m], ROUTES[r]);
        }

        family(&mut out, "http_response_bytes_total", "counter", "Bytes of response bodies by route kind.");
        for (r, route) in ROUTES.iter().enumerate() {
            let _ = writeln!(out, "berth_registry_http_response_bytes_total{{route=\"{route}\"}} {}", load(&self.response_bytes[r]));
        }

        family(&mut out, "http_request_duration_seconds", "histogram", "Time from a request's arrival to its response head, by route kind.");
        for (r, route) in ROUTES.iter().enumerate() {
            let counts: Vec<u64> = (0..=BUCKETS.len()).map(|b| load(&self.durations[r * (BUCKETS.len() + 1) + b])).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (b, le) in BUCKETS.iter().enumerate() {
                cumulative += counts[b];
                let _ = writeln!(out, "berth_registry_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "berth_registry_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}");
            let sum = load(&self.duration_micros[r]) as f64 / 1e6;
            let _ = writeln!(out, "berth_registry_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}");
            let _ = writeln!(out, "berth_registry_http_request_duration_seconds_count{{route=\"{route}\"}} {total}");
        }

        let gauges = [
            ("upload_sessions", "Upload sessions open.", uploads),
            ("blobs", "Blobs stored.", blobs.0),
            ("blob_bytes", "Bytes of the blobs stored.", blobs.1),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "berth_registry_{name} {value}");
        }
        let counters = [
            ("gc_runs_total", "Garbage collection sweeps run.", &self.gc_runs),
            ("gc_manifests_deleted_total", "Manifests deleted by garbage collection (untagged, or evicted from mirror caches).", &self.gc_manifests_deleted),
            ("gc_blobs_deleted_total", "Blobs deleted by garbage collection.", &self.gc_blobs_deleted),
            ("gc_bytes_freed_total", "Bytes of the blobs deleted by garbage collection.", &self.gc_bytes_freed),
            ("mirror_stale_served_total", "Cached manifests served because the upstream could not be asked.", &self.mirror_stale),
            ("mirror_evicted_total", "Cached manifests evicted by garbage collection, unused for their mirror's max_age.", &self.mirror_evicted),
            ("webhook_dropped_total", "Webhook events dropped because a queue was full.", &self.webhook_dropped),
        ];
        for (name, help, value) in counters {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "berth_registry_{name} {}", load(value));
        }
        family(&mut out, "webhook_deliveries_total", "counter", "Webhook events delivered, and lost after their last retry.");
        let _ = writeln!(out, "berth_registry_webhook_deliveries_total{{result=\"delivered\"}} {}", load(&self.webhook_delivered));
        let _ = writeln!(out, "berth_registry_webhook_deliveries_total{{result=\"failed\"}} {}", load(&self.webhook_failed));
        for (name, help, values) in [
            ("mirror_cache_hits_total", "Mirror requests answered from the cache.", &self.cache_hits),
            ("mirror_cache_misses_total", "Mirror requests that went to the upstream.", &self.cache_misses),
        ] {
            family(&mut out, name, "counter", help);
            for (i, kind) in ["manifest", "blob"].iter().enumerate() {
                let _ = writeln!(out, "berth_registry_{name}{{kind=\"{kind}\"}} {}", load(&values[i]));
            }
        }
        out
    }
}

/// Middleware counting every request of the router it wraps.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_index(request.method());
    let route = route_index(request.uri().path());
    let head = request.method() == Method::HEAD;
    let response = next.run(request).await;
    metrics.record(method, route, response.status().as_u16(), start.elapsed());
    if head {
        return response;
    }
    let length = response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match length {
        Some(n) => {
            metrics.response_bytes[route].fetch_add(n, Ordering::Relaxed);
            response
        }
        // A streamed body of unknown length is counted as it goes.
        None => response.map(|body| {
            Body::new(body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    metrics.response_bytes[route].fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                frame
            }))
        }),
    }
}

#[derive(Clone)]
struct Scrape {
    registry: Arc<Registry>,
    token: Option<String>,
}

/// `GET /metrics`, when enabled.
pub fn router(registry: Arc<Registry>, config: &config::Metrics) -> Router {
    if !config.enabled {
        return Router::new();
    }
    Router::new().route("/metrics", get(scrape)).with_state(Scrape { registry, token: config.token.clone() })
}

async fn scrape(State(s): State<Scrape>, request: Request) -> Response {
    if let Some(token) = &s.token {
        let sent = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let ok = sent.is_some_and(|t| subtle::ConstantTimeEq::ct_eq(t.as_bytes(), token.as_bytes()).into());
        if !ok {
            let e = Error::Unauthorized { challenge: "Bearer realm=\"metrics\"".into(), reason: "metrics need the configured token".into() };
            return crate::http::error_response(&Method::GET, &e);
        }
    }
    let uploads_dir = s.registry.storage().uploads_dir().to_path_buf();
    let storage_stats = s.registry.storage().blob_stats();
    let uploads = tokio::task::spawn_blocking(move || count_uploads(&uploads_dir)).await.unwrap_or(Ok(0)).unwrap_or(0);
    let text = s.registry.metrics().render(uploads, storage_stats);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(Body::from(text))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn count_uploads(dir: &std::path::Path) -> Result<u64> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("read directory", dir))?;
    Ok(entries.flatten().filter(|e| e.file_name().to_str().is_some_and(is_upload_id)).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        let kind = |p: &str| ROUTES[route_index(p)];
        assert_eq!(kind("/v2/"), "base");
        assert_eq!(kind("/v2/_catalog"), "catalog");
        assert_eq!(kind("/v2/a/b/manifests/latest"), "manifest");
        assert_eq!(kind("/v2/a/blobs/sha256:00"), "blob");
        assert_eq!(kind("/v2/a/blobs/uploads/"), "upload");
        assert_eq!(kind("/v2/blobs/blobs/uploads/x"), "upload");
        assert_eq!(kind("/v2/a/tags/list"), "tags");
        assert_eq!(kind("/v2/a/referrers/sha256:00"), "referrers");
        assert_eq!(kind("/token"), "token");
        assert_eq!(kind("/v1/search"), "other");
    }

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record(0, 1, 200, Duration::from_micros(300));
        m.record(0, 1, 200, Duration::from_millis(20));
        m.record(1, 2, 418, Duration::from_millis(2));
        m.cache_hit(CacheKind::Blob);
        assert_eq!(m.requests("GET", "manifest", 200), 2);
        assert_eq!(m.requests("HEAD", "blob", 418), 1);
        let text = m.render(3, (4, 5));
        assert!(text.contains("berth_registry_http_requests_total{method=\"GET\",route=\"manifest\",code=\"200\"} 2"), "{text}");
        assert!(text.contains("berth_registry_http_requests_total{method=\"HEAD\",route=\"blob\",code=\"418\"} 1"), "{text}");
        assert!(text.contains("berth_registry_http_request_duration_seconds_bucket{route=\"manifest\",le=\"0.0005\"} 1"), "{text}");
        assert!(text.contains("berth_registry_http_request_duration_seconds_bucket{route=\"manifest\",le=\"0.025\"} 2"), "{text}");
        assert!(text.contains("berth_registry_http_request_duration_seconds_count{route=\"manifest\"} 2"), "{text}");
        assert!(text.contains("berth_registry_upload_sessions 3"), "{text}");
        assert!(text.contains("berth_registry_blob_bytes 5"), "{text}");
        assert!(text.contains("berth_registry_mirror_cache_hits_total{kind=\"blob\"} 1"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
