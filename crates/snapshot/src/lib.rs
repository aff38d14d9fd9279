//! berth-snapshot: image layers as directories and back.
//!
//! Layer tars (maybe compressed) are unpacked into directories that are stacked with overlayfs
//! ([`apply_layer`], [`mount_overlay`]); an upper directory is written back as a layer tar
//! ([`write_layer`]). Everything here is synchronous and never changes process-wide state (no
//! chdir, chroot or umask): several layers can be applied at once from different threads.
//! The on-disk format and the safety rules are described in docs/layers.md.

mod apply;
mod compress;
mod error;
mod fsutil;
mod mount;
mod write;

pub use apply::{apply_layer, apply_layer_merged, ApplyStats};
pub use compress::{decompress, detect_compression, gzip_writer, Compression, GzipWriter};
pub use error::{Error, ErrorKind, Result};
pub use fsutil::{disk_usage, remove_tree, sync_filesystem};
pub use mount::{mount_overlay, unmount};
pub use write::{write_layer, write_tree};
