//! Registry errors; the distribution-spec error code and HTTP status of each are decided here.

use std::path::PathBuf;

use http::StatusCode;

/// What kind of failure an error is, independent of the HTTP mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    InvalidArgument,
    Unauthorized,
    Unavailable,
    Internal,
}

/// The error codes of the distribution spec (plus `UNKNOWN` for server faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid repository name {name:?}: {reason}")]
    NameInvalid { name: String, reason: &'static str },
    #[error("repository {0} not found")]
    NameUnknown(String),
    #[error("invalid tag {0:?}: a tag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    TagInvalid(String),
    #[error("invalid digest {digest:?}: {reason}")]
    DigestMalformed { digest: String, reason: String },
    #[error("digest mismatch: the content has digest {actual}, not {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {digest} not found in repository {repository}")]
    BlobUnknown { repository: String, digest: String },
    #[error("upload {0} not found")]
    UploadUnknown(String),
    #[error("upload {uuid}: {reason}")]
    UploadInvalid { uuid: String, reason: String },
    #[error("upload {uuid}: chunk starts at byte {start}, the upload has {offset} bytes")]
    UploadOutOfOrder { uuid: String, start: u64, offset: u64 },
    #[error("upload {uuid}: {declared} declared but {received} bytes received")]
    SizeInvalid { uuid: String, declared: u64, received: u64 },
    #[error("manifest {reference} not found in repository {repository}")]
    ManifestUnknown { repository: String, reference: String },
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    #[error("manifest is larger than the limit of {limit} bytes")]
    ManifestTooLarge { limit: u64 },
    #[error("manifest references {digest}, which is not in repository {repository}")]
    ManifestBlobUnknown { repository: String, digest: String },
    #[error("invalid query parameter {name}={value:?}: {reason}")]
    QueryInvalid { name: &'static str, value: String, reason: &'static str },
    #[error("range {range:?} is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { range: String, size: u64 },
    #[error("no endpoint {method} {path}")]
    UnknownEndpoint { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("authentication required: {reason}")]
    Unauthorized { challenge: String, reason: String },
    #[error("access denied: user {user} may not {what}")]
    Denied { user: String, what: String },
    #[error("htpasswd file {path} line {line}: {reason}")]
    Htpasswd { path: PathBuf, line: usize, reason: String },
    #[error("token key {path}: {reason}")]
    TokenKey { path: PathBuf, reason: String },
    #[error("token request: {0}")]
    TokenRequest(String),
    #[error("reading the request body: {0}")]
    Body(String),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("repository {repository} is a pull-through mirror of {namespace}: {operation} is not supported")]
    MirrorReadOnly { repository: String, namespace: String, operation: &'static str },
    #[error("upstream {upstream}: {reason}")]
    Upstream { upstream: String, reason: String },
    #[error("registry configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NameUnknown(_)
            | Error::BlobUnknown { .. }
            | Error::UploadUnknown(_)
            | Error::ManifestUnknown { .. }
            | Error::UnknownEndpoint { .. } => ErrorKind::NotFound,
            Error::NameInvalid { .. }
            | Error::TagInvalid(_)
            | Error::DigestMalformed { .. }
            | Error::DigestMismatch { .. }
            | Error::UploadInvalid { .. }
            | Error::SizeInvalid { .. }
            | Error::ManifestInvalid(_)
            | Error::ManifestTooLarge { .. }
            | Error::ManifestBlobUnknown { .. }
            | Error::QueryInvalid { .. }
            | Error::RangeNotSatisfiable { .. }
            | Error::MethodNotAllowed { .. }
            | Error::Body(_)
            | Error::Htpasswd { .. }
            | Error::TokenKey { .. }
            | Error::TokenRequest(_)
            | Error::Config(_) => ErrorKind::InvalidArgument,
            Error::UploadOutOfOrder { .. } => ErrorKind::Conflict,
            Error::MirrorReadOnly { .. } => ErrorKind::InvalidArgument,
            Error::Upstream { .. } => ErrorKind::Unavailable,
            Error::Unauthorized { .. } | Error::Denied { .. } => ErrorKind::Unauthorized,
            Error::Io { source, .. } if is_out_of_space(source) => ErrorKind::Unavailable,
            Error::Io { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The spec's error code for the JSON body.
    pub fn code(&self) -> Code {
        match self {
            Error::NameInvalid { .. } => Code::NameInvalid,
            Error::NameUnknown(_) => Code::NameUnknown,
            Error::TagInvalid(_) | Error::ManifestInvalid(_) | Error::ManifestTooLarge { .. } => Code::ManifestInvalid,
            Error::DigestMalformed { .. } | Error::DigestMismatch { .. } => Code::DigestInvalid,
            Error::BlobUnknown { .. } | Error::RangeNotSatisfiable { .. } => Code::BlobUnknown,
            Error::UploadUnknown(_) => Code::BlobUploadUnknown,
            Error::UploadInvalid { .. } | Error::UploadOutOfOrder { .. } | Error::Body(_) => Code::BlobUploadInvalid,
            Error::SizeInvalid { .. } => Code::SizeInvalid,
            Error::ManifestUnknown { .. } => Code::ManifestUnknown,
            Error::ManifestBlobUnknown { .. } => Code::ManifestBlobUnknown,
            Error::QueryInvalid { .. }
            | Error::UnknownEndpoint { .. }
            | Error::MethodNotAllowed { .. }
            | Error::TokenRequest(_)
            | Error::MirrorReadOnly { .. } => Code::Unsupported,
            Error::Unauthorized { .. } => Code::Unauthorized,
            Error::Denied { .. } => Code::Denied,
            Error::Io { .. }
            | Error::Config(_)
            | Error::Htpasswd { .. }
            | Error::TokenKey { .. }
            | Error::Upstream { .. }
            | Error::Internal(_) => {
                Code::Unknown
            }
        }
    }

    /// The HTTP status: the one place where errors meet HTTP.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::UploadOutOfOrder { .. } | Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::ManifestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::MethodNotAllowed { .. } | Error::MirrorReadOnly { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Denied { .. } => StatusCode::FORBIDDEN,
            _ => match self.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::AlreadyExists | ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// Structured detail for the JSON body, naming what was wrong.
    pub fn detail(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Error::NameInvalid { name, .. } | Error::NameUnknown(name) => json!({ "name": name }),
            Error::TagInvalid(tag) => json!({ "tag": tag }),
            Error::DigestMalformed { digest, .. } => json!({ "digest": digest }),
            Error::DigestMismatch { expected, actual } => json!({ "expected": expected, "actual": actual }),
            Error::BlobUnknown { digest, .. } | Error::ManifestBlobUnknown { digest, .. } => json!({ "digest": digest }),
            Error::UploadUnknown(uuid) | Error::UploadInvalid { uuid, .. } => json!({ "uuid": uuid }),
            Error::UploadOutOfOrder { uuid, offset, .. } => json!({ "uuid": uuid, "offset": offset }),
            Error::SizeInvalid { declared, received, .. } => json!({ "declared": declared, "received": received }),
            Error::ManifestUnknown { reference, .. } => json!({ "reference": reference }),
            Error::ManifestTooLarge { limit } => json!({ "limit": limit }),
            Error::QueryInvalid { name, value, .. } => json!({ "parameter": name, "value": value }),
            Error::RangeNotSatisfiable { size, .. } => json!({ "size": size }),
            Error::Denied { user, .. } => json!({ "user": user }),
            Error::MirrorReadOnly { namespace, .. } => json!({ "namespace": namespace }),
            Error::Upstream { upstream, .. } => json!({ "upstream": upstream }),
            _ => serde_json::Value::Null,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let e = Error::UploadOutOfOrder { uuid: "u".into(), start: 5, offset: 3 };
        assert_eq!((e.code(), e.status()), (Code::BlobUploadInvalid, StatusCode::RANGE_NOT_SATISFIABLE));
        let e = Error::NameInvalid { name: "A".into(), reason: "uppercase" };
        assert_eq!((e.code().as_str(), e.status()), ("NAME_INVALID", StatusCode::BAD_REQUEST));
        let e = Error::ManifestTooLarge { limit: 4 };
        assert_eq!((e.code().as_str(), e.status()), ("MANIFEST_INVALID", StatusCode::PAYLOAD_TOO_LARGE));
        let e = Error::Io { op: "write", path: "/x".into(), source: std::io::Error::from_raw_os_error(28) };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
