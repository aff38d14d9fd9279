//! Extension points: access control, asked before every operation, and events, told
//! after every push, pull and delete. The defaults allow everything and log events.

use std::time::SystemTime;

use serde::Deserialize;

use crate::error::Result;

/// What a request wants to do with a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    /// The name used in token scopes, configuration and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// What a request touches.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The `/v2/` ping: may the caller use the registry at all.
    Base,
    /// Listing every repository (`/v2/_catalog`).
    Catalog,
    Repository { name: &'a str, actions: &'a [Action] },
}

/// Decides whether a request may act on a scope. An error (`Error::Unauthorized` with
/// its challenge, or `Error::Denied`) becomes the response.
pub trait Access: Send + Sync {
    /// On success, the caller's user name (`None` when anonymous), for events.
    fn authorize(&self, request: &http::request::Parts, scope: Scope<'_>) -> Result<Option<String>>;

    /// Keeps the repositories of `names` the caller may pull: the catalog shows only those,
    /// and a mount by digest alone takes blobs only from them.
    fn pullable(&self, _request: &http::request::Parts, names: Vec<String>) -> Vec<String> {
        names
    }
}

/// Lets everyone do everything.
pub struct AllowAll;

impl Access for AllowAll {
    fn authorize(&self, _request: &http::request::Parts, _scope: Scope<'_>) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The request facts events report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The client's address (`IP:PORT`), empty when unknown.
    pub addr: String,
    /// The `Host` the client addressed.
    pub host: String,
    pub method: String,
    pub user_agent: String,
}

/// Who asked for an operation: the user access control established, and the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The authenticated user; `None` for anonymous requests.
    pub actor: Option<String>,
    pub request: RequestFacts,
}

/// Whether an event is about a manifest (or tag) or a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Manifest,
    Blob,
}

/// What happened to which content.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: Action,
    pub object: Object,
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// The tag a manifest was pushed, pulled or deleted by.
    pub tag: Option<String>,
    pub time: SystemTime,
    /// The authenticated user who did it; `None` for anonymous requests.
    pub actor: Option<String>,
    pub request: RequestFacts,
}

/// Receives events; must return quickly (queue slow work), as it runs inside the request.
pub trait Events: Send + Sync {
    fn emit(&self, event: Event);
}

/// Writes events to the debug log.
pub struct LogEvents;

impl Events for LogEvents {
    fn emit(&self, e: Event) {
        log_event(&e);
    }
}

pub(crate) fn log_event(e: &Event) {
    tracing::debug!(action = ?e.action, object = ?e.object, repository = %e.repository, digest = %e.digest,
        media_type = %e.media_type, size = e.size, tag = ?e.tag, actor = ?e.actor, addr = %e.request.addr, "event");
}
