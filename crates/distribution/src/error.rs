//! Errors of the registry client and the kind each maps to.

/// What class of failure an [`Error`] is; the API maps each kind to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    InvalidArgument,
    Unauthorized,
    Unavailable,
    Internal,
}

/// Every failure of this crate. Messages of the pull-facing variants match docker's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference that does not follow the grammar; `message` is docker's text.
    #[error("{message}")]
    InvalidReference { input: String, message: String },

    #[error("{input:?}: unknown operating system or architecture")]
    InvalidPlatform { input: String },

    #[error("invalid digest {digest:?}: {message}")]
    InvalidDigest {
        digest: String,
        message: &'static str,
    },

    #[error("invalid X-Registry-Auth header: {reason}")]
    InvalidAuthHeader { reason: String },

    #[error("invalid registry configuration: {reason}")]
    InvalidConfig { reason: String },

    #[error("building the http client: {source}")]
    HttpClient { source: reqwest::Error },

    #[error("manifest for {reference} not found: {detail}")]
    ManifestNotFound { reference: String, detail: String },

    #[error("blob {digest} not found in {repository} on {registry}: {detail}")]
    BlobNotFound {
        registry: String,
        repository: String,
        digest: String,
        detail: String,
    },

    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { reference: String, platform: String },

    #[error("pull access denied for {name}, repository does not exist or may require 'docker login': {detail}")]
    PullDenied { name: String, detail: String },

    /// A write or a registry-level request the registry refused (401/403).
    #[error("{action} denied: {detail}")]
    Denied { action: String, detail: String },

    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed { url: String, status: String },

    #[error("getting a token from {realm} failed: {detail}")]
    Token {
        realm: String,
        status: Option<u16>,
        detail: String,
    },

    #[error("digest mismatch for {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },

    #[error("unsupported manifest for {reference}: {reason}")]
    UnsupportedManifest { reference: String, reason: String },

    #[error("invalid manifest for {reference}: {reason}")]
    InvalidManifest { reference: String, reason: String },

    /// The registry answered, but not in a way the protocol allows (HTML page, wrong length, ...).
    #[error("registry {registry} sent a bad response to {request}: {reason}")]
    BadResponse {
        registry: String,
        request: String,
        reason: String,
    },

    /// An error status not covered by a more specific variant.
    #[error("{request} on {registry} failed with status {status}: {detail}")]
    Status {
        registry: String,
        request: String,
        status: u16,
        detail: String,
    },

    #[error("cannot reach registry {registry} at {url}: {reason}")]
    Connect {
        registry: String,
        url: String,
        reason: String,
    },

    /// A body transfer broke and could not be resumed within the retry budget.
    #[error("transfer of {what} from {registry} failed: {reason}")]
    Transfer {
        registry: String,
        what: String,
        reason: String,
    },

    #[error("registry {registry} does not support search")]
    SearchUnsupported { registry: String },

    #[error("reading the content of blob {digest} to push: {source}")]
    PushSource {
        digest: String,
        source: std::io::Error,
    },

    #[error("offset {offset} is past the end of blob {digest} ({size} bytes)")]
    InvalidRange {
        digest: String,
        offset: u64,
        size: u64,
    },

    #[error("blob {digest} to push has {actual} bytes, expected {expected}")]
    PushSizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind::*;
        match self {
            Error::InvalidReference { .. }
            | Error::InvalidPlatform { .. }
            | Error::InvalidDigest { .. }
            | Error::InvalidAuthHeader { .. }
            | Error::InvalidConfig { .. }
            | Error::UnsupportedManifest { .. }
            | Error::InvalidRange { .. }
            | Error::PushSizeMismatch { .. } => InvalidArgument,
            Error::HttpClient { .. } | Error::PushSource { .. } => Internal,
            Error::ManifestNotFound { .. }
            | Error::BlobNotFound { .. }
            | Error::NoMatchingPlatform { .. }
            | Error::SearchUnsupported { .. } => NotFound,
            // dockerd answers a denied pull with 404, so clients do not prompt for a login.
            Error::PullDenied { .. } => NotFound,
            Error::Denied { .. } | Error::LoginFailed { .. } => Unauthorized,
            Error::Token { status, .. } => match status {
                Some(401 | 403) => Unauthorized,
                _ => Unavailable,
            },
            Error::DigestMismatch { .. }
            | Error::InvalidManifest { .. }
            | Error::BadResponse { .. }
            | Error::Connect { .. }
            | Error::Transfer { .. } => Unavailable,
            Error::Status { status, .. } => status_kind(*status),
        }
    }

    /// Whether trying again may succeed (network trouble, 5xx, 429, a cut body).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Transfer { .. } => true,
            Error::Status { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }
}

pub(crate) fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400..=499 => ErrorKind::InvalidArgument,
        _ => ErrorKind::Unavailable,
    }
}

pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Lets a blob stream feed readers that want `io::Error` (e.g. `tokio_util::io::StreamReader`).
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::NotFound => std::io::ErrorKind::NotFound,
            ErrorKind::Unauthorized => std::io::ErrorKind::PermissionDenied,
            ErrorKind::InvalidArgument => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
