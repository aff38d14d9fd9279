//! The daemon's image storage: content-addressed blobs and the metadata database.
//!
//! Blobs are immutable files named by their digest; writing one goes through an ingest file
//! that can be resumed, is verified against the expected size and digest, fsynced and then
//! renamed into place, so a blob that exists is always complete. The metadata database
//! (redb, one file, transactions fsynced on commit) records images, tags, repo digests and
//! layers; a record there means its content is complete on disk.

pub mod blobs;
pub mod digest;
mod error;
pub mod meta;

pub use blobs::{BlobStore, Ingest};
pub use digest::Digest;
pub use error::{Error, ErrorKind, Result};
pub use meta::{ImageRecord, LayerBlob, LayerRecord, Meta, ReadTx, WriteTx};
