//! Webhooks: each push, pull and delete of a manifest is POSTed as a JSON event to the
//! configured endpoints. Emitting only queues the event (a bounded queue per endpoint;
//! when full the event is dropped, counted and logged), so requests never wait for an
//! endpoint. One task per endpoint delivers in order, retrying failed deliveries with a
//! doubling wait. Blob events are not sent: manifests and tags are what receivers act on.
//!
//! The body has the shape of distribution's notifications, one event per request:
//! `{"events":[{"id","timestamp","action","target":{...},"request":{...},"actor":{...},"source":{...}}]}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use crate::config::Webhook;
use crate::error::{Error, Result};
use crate::hooks::{log_event, Event, Events, Object};
use crate::metrics::Metrics;

/// The media type of event bodies (distribution's).
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct Endpoint {
    config: Webhook,
    queue: mpsc::Sender<Bytes>,
    dropped: AtomicU64,
}

/// Delivers events to the configured endpoints (and logs every event at debug level).
pub struct Webhooks {
    endpoints: Vec<Arc<Endpoint>>,
    metrics: Arc<Metrics>,
    /// The registry's address, reported as the event source.
    source: String,
}

impl Webhooks {
    /// Starts one delivery task per endpoint on the current tokio runtime; deliveries and
    /// drops are counted in `metrics`.
    pub fn start(hooks: &[Webhook], source: &str, metrics: Arc<Metrics>) -> Result<Webhooks> {
        let mut endpoints = Vec::new();
        for hook in hooks {
            let mut headers = http::HeaderMap::new();
            for (name, value) in &hook.headers {
                let name = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::Config(format!("webhook {}: invalid header {name:?}", hook.url)))?;
                let value = http::HeaderValue::from_str(value)
                    .map_err(|_| Error::Config(format!("webhook {}: invalid value of header {name}", hook.url)))?;
                headers.insert(name, value);
            }
            let client = reqwest::Client::builder()
                .default_headers(headers)
                .timeout(hook.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::Config(format!("webhook {}: {e}", hook.url)))?;
            let (queue, receiver) = mpsc::channel(hook.queue);
            let endpoint = Arc::new(Endpoint { config: hook.clone(), queue, dropped: AtomicU64::new(0) });
            tokio::spawn(deliver(client, hook.clone(), receiver, metrics.clone()));
            endpoints.push(endpoint);
        }
        Ok(Webhooks { endpoints, metrics, source: source.to_string() })
    }

    /// Events dropped so far because an endpoint's queue was full.
    pub fn dropped(&self) -> u64 {
        self.endpoints.iter().map(|e| e.dropped.load(Ordering::Relaxed)).sum()
    }
}

/// The JSON body for one event.
pub fn payload(e: &Event, source: &str) -> serde_json::Value {
    let mut target = json!({
        "mediaType": e.media_type,
        "digest": e.digest,
        "size": e.size,
        "length": e.size,
        "repository": e.repository,
    });
    if let Some(tag) = &e.tag {
        target["tag"] = json!(tag);
    }
    let actor = match &e.actor {
        Some(name) => json!({ "name": name }),
        None => json!({}),
    };
    json!({ "events": [{
        "id": format!("{:032x}", rand::random::<u128>()),
        "timestamp": humantime::format_rfc3339_nanos(e.time).to_string(),
        "action": e.action.as_str(),
        "target": target,
        "request": {
            "addr": e.request.addr,
            "host": e.request.host,
            "method": e.request.method,
            "useragent": e.request.user_agent,
        },
        "actor": actor,
        "source": { "addr": source },
    }]})
}

impl Events for Webhooks {
    fn emit(&self, event: Event) {
        log_event(&event);
        if event.object != Object::Manifest {
            return;
        }
        let mut body: Option<Bytes> = None;
        for endpoint in &self.endpoints {
            if !endpoint.config.events.contains(&event.action) {
                continue;
            }
            let body = body.get_or_insert_with(|| Bytes::from(payload(&event, &self.source).to_string())).clone();
            if let Err(mpsc::error::TrySendError::Full(_)) = endpoint.queue.try_send(body) {
                let dropped = endpoint.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.metrics.webhook_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %endpoint.config.url, dropped, "webhook queue full, event dropped");
            }
        }
    }
}

/// Delivers the queued events of one endpoint, in order, each with its retries.
async fn deliver(client: reqwest::Client, hook: Webhook, mut queue: mpsc::Receiver<Bytes>, metrics: Arc<Metrics>) {
    while let Some(body) = queue.recv().await {
        let mut wait = hook.backoff;
        for attempt in 0..=hook.retries {
            let sent = client
                .post(&hook.url)
                .header(http::header::CONTENT_TYPE, EVENTS_MEDIA_TYPE)
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!(url = %hook.url, attempt, "webhook delivered");
                    metrics.webhook_delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => e.to_string(),
            };
            if attempt == hook.retries {
                metrics.webhook_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(url = %hook.url, attempts = attempt + 1, error = %failure, "webhook delivery failed, event dropped");
                break;
            }
            tracing::warn!(url = %hook.url, attempt, error = %failure, retry_in = ?wait, "webhook delivery failed");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{Action, RequestFacts};

    #[test]
    fn payload_shape() {
        let e = Event {
            action: Action::Push,
            object: Object::Manifest,
            repository: "a/b".into(),
            digest: "sha256:00".into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 7,
            tag: Some("v1".into()),
            time: std::time::SystemTime::UNIX_EPOCH,
            actor: Some("alice".into()),
            request: RequestFacts { addr: "127.0.0.1:9".into(), host: "h".into(), method: "PUT".into(), user_agent: "ua".into() },
        };
        let p = payload(&e, "127.0.0.1:5000");
        let ev = &p["events"][0];
        assert_eq!(ev["action"], "push");
        assert_eq!(ev["timestamp"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(ev["target"]["tag"], "v1");
        assert_eq!(ev["target"]["size"], 7);
        assert_eq!(ev["actor"]["name"], "alice");
        assert_eq!(ev["request"]["useragent"], "ua");
        assert_eq!(ev["id"].as_str().unwrap().len(), 32);
    }
}
