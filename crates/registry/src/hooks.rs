//! Extension points: access control, asked before every operation, and events, told
//! after every push, pull and delete. The defaults allow everything and log events.

use std::time::SystemTime;

use crate::error::Result;

/// What a request wants to do with a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
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
    fn authorize(&self, request: &http::request::Parts, scope: Scope<'_>) -> Result<()>;
}

/// Lets everyone do everything.
pub struct AllowAll;

impl Access for AllowAll {
    fn authorize(&self, _request: &http::request::Parts, _scope: Scope<'_>) -> Result<()> {
        Ok(())
    }
}

/// What happened to which content.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: Action,
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// The tag a manifest was pushed, pulled or deleted by.
    pub tag: Option<String>,
    pub time: SystemTime,
}

/// Receives events; must return quickly (queue slow work), as it runs inside the request.
pub trait Events: Send + Sync {
    fn emit(&self, event: Event);
}

/// Writes events to the debug log.
pub struct LogEvents;

impl Events for LogEvents {
    fn emit(&self, e: Event) {
        tracing::debug!(action = ?e.action, repository = %e.repository, digest = %e.digest,
            media_type = %e.media_type, size = e.size, tag = ?e.tag, "event");
    }
}
