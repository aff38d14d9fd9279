//! Blob download streams that resume with `Range` requests after a broken connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use tracing::warn;

use crate::client::{backoff, error_chain, Client};
use crate::config::Endpoint;
use crate::{AuthConfig, Error};

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An answered blob request: its body, bytes to drop from its start (a registry that
/// ignored the Range header), and the blob's total size if known.
pub(crate) struct Opened {
    pub body: Body,
    pub skip: u64,
    pub total: Option<u64>,
}

/// The bytes of one blob, in order, as one stream across reconnections.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>,
    size: Option<u64>,
    offset: u64,
    endpoint: Endpoint,
}

impl BlobStream {
    pub(crate) fn empty(endpoint: Endpoint, size: u64) -> BlobStream {
        BlobStream {
            inner: Box::pin(futures_util::stream::empty()),
            size: Some(size),
            offset: size,
            endpoint,
        }
    }

    /// The blob's total size, when the caller or the registry told it.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Where in the blob the stream starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The endpoint that serves the blob (the origin when a mirror could not).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("endpoint", &self.endpoint)
            .field("size", &self.size)
            .field("offset", &self.offset)
            .finish()
    }
}

/// The download's progress, carried from chunk to chunk.
pub(crate) struct BlobState {
    client: Client,
    endpoint: Endpoint,
    repo: String,
    digest: String,
    auth: Option<AuthConfig>,
    /// Bytes of the blob delivered so far (from its start, offset included).
    position: u64,
    total: Option<u64>,
    body: Option<Body>,
    skip: u64,
    /// Failures since the last byte received; reset by progress.
    failures: u32,
    done: bool,
}

impl BlobState {
    pub(crate) fn new(
        client: Client,
        endpoint: Endpoint,
        repo: &str,
        digest: &str,
        auth: Option<AuthConfig>,
        offset: u64,
        opened: Opened,
    ) -> BlobState {
        BlobState {
            client,
            endpoint,
            repo: repo.to_string(),
            digest: digest.to_string(),
            auth,
            position: offset,
            total: opened.total,
            body: Some(opened.body),
            skip: opened.skip,
            failures: 0,
            done: false,
        }
    }

    pub(crate) fn into_stream(self) -> BlobStream {
        let (size, offset, endpoint) = (self.total, self.position, self.endpoint.clone());
        let inner = futures_util::stream::unfold(self, |mut state| async move {
            let item = state.next_chunk().await?;
            Some((item, state))
        });
        BlobStream {
            inner: Box::pin(inner),
            size,
            offset,
            endpoint,
        }
    }

    fn what(&self) -> String {
        format!("blob {} of {}", self.digest, self.repo)
    }

    /// Gives up or waits before the next reconnection.
    async fn after_failure(&mut self, reason: String) -> Option<Error> {
        self.body = None;
        if self.failures >= self.client.max_retries() {
            self.done = true;
            return Some(Error::Transfer {
                registry: self.endpoint.label(),
                what: self.what(),
                reason: format!("{reason} (gave up after {} retries)", self.failures),
            });
        }
        self.failures += 1;
        warn!(blob = %self.digest, position = self.position, error = %reason, "blob download broke, resuming");
        tokio::time::sleep(backoff(self.failures)).await;
        None
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                let opened = self
                    .client
                    .open_blob(
                        &self.endpoint,
                        &self.repo,
                        &self.digest,
                        self.total,
                        self.position,
                        self.auth.as_ref(),
                        false,
                    )
                    .await;
                match opened {
                    Ok(o) => {
                        self.body = Some(o.body);
                        self.skip = o.skip;
                        self.total = self.total.or(o.total);
                    }
                    Err(e) if e.is_transient() => {
                        if let Some(e) = self.after_failure(e.to_string()).await {
                            return Some(Err(e));
                        }
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            };
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let n = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(chunk.len());
                        chunk.advance(n);
                        self.skip -= n as u64;
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.position += chunk.len() as u64;
                    if let Some(total) = self.total.filter(|t| self.position > *t) {
                        self.done = true;
                        return Some(Err(Error::BadResponse {
                            registry: self.endpoint.label(),
                            request: format!("GET /v2/{}/blobs/{}", self.repo, self.digest),
                            reason: format!("more than the {total} bytes of the blob"),
                        }));
                    }
                    self.failures = 0;
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    let reason = format!(
                        "connection broke at byte {}: {}",
                        self.position,
                        error_chain(&e)
                    );
                    if let Some(e) = self.after_failure(reason).await {
                        return Some(Err(e));
                    }
                }
                None => match self.total {
                    Some(total) if self.position < total => {
                        let reason = format!("the body ended at byte {} of {total}", self.position);
                        if let Some(e) = self.after_failure(reason).await {
                            return Some(Err(e));
                        }
                    }
                    _ => {
                        self.done = true;
                        return None;
                    }
                },
            }
        }
    }
}
