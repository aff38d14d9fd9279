//! berth-distribution: the client side of the OCI distribution / Docker registry protocol.
//!
//! [`Reference`] parses and normalises image names as docker does; [`Client`] resolves
//! them to manifests (trying mirrors before the origin), streams blobs with resume,
//! pushes blobs and manifests, lists tags, searches and logs in, handling basic and
//! bearer-token authentication with [`AuthConfig`] credentials. See docs/distribution.md.

pub mod auth;
mod blob;
mod client;
pub mod config;
pub mod digest;
mod error;
pub mod manifest;
pub mod reference;
pub mod search;

pub use auth::{auth_key, AuthConfig};
pub use blob::BlobStream;
pub use client::{Client, ManifestHead, RawManifest, Resolved, MONOLITHIC_PUSH_MAX};
pub use config::{Endpoint, RegistryConfig, Scheme};
pub use error::{Error, ErrorKind};
pub use manifest::{Descriptor, Index, Manifest, Platform};
pub use reference::Reference;
pub use search::{SearchResult, SearchResults};
