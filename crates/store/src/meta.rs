//! The metadata database: images, tags, repo digests and layers, in one redb file.
//!
//! Records are JSON values under string keys; every change happens in a write transaction
//! that redb fsyncs on commit, so a crash leaves either all of an operation or none of it.
//! The invariant the engine keeps: a record here means its content is complete on disk
//! (blobs committed, layer directories synced and renamed into place before the record).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers");
/// Full reference (`docker.io/library/busybox:latest`) to image id.
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
/// Canonical reference (`docker.io/library/busybox@sha256:...`) to image id.
const DIGESTS: TableDefinition<&str, &str> = TableDefinition::new("digests");

/// An image: its config blob digest is its id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    pub id: String,
    /// Chain ids of its layers, bottom first.
    pub layers: Vec<String>,
    /// Unpacked size of all its layers.
    pub size: u64,
    /// Unix time (seconds) the image arrived here.
    pub added: i64,
    /// Unix time (nanoseconds) of the last tag, as docker reports `Metadata.LastTagTime`.
    #[serde(default)]
    pub last_tag_time: Option<i64>,
    /// Manifest blobs known for this image, by repository name: (manifest digest, media type).
    #[serde(default)]
    pub manifests: BTreeMap<String, (String, String)>,
}

/// One compressed form of a layer, as a registry or an import gave it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerBlob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// Repositories (`registry/path`) known to have this blob, for cross-repository mounts.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// An unpacked layer, shared by every image whose chain contains it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerRecord {
    pub chain_id: String,
    pub diff_id: String,
    pub parent: Option<String>,
    /// Directory name under the store's layer root.
    pub dir: String,
    /// Bytes the layer takes unpacked.
    pub size: u64,
    #[serde(default)]
    pub blobs: Vec<LayerBlob>,
    /// How many images list this layer.
    pub refs: u64,
}

pub struct Meta {
    db: redb::Database,
    path: PathBuf,
}

fn db_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
    move |e| Error::Db { path: path.to_path_buf(), message: e.to_string() }
}

macro_rules! db {
    ($self:expr, $e:expr) => {
        $e.map_err(|e| db_err(&$self.path)(&e))
    };
}

impl Meta {
    /// Opens or creates the database file. A small page cache keeps the daemon's memory low;
    /// the database is small (one record per image, tag and layer).
    pub fn open(path: &Path) -> Result<Meta> {
        let db = redb::Builder::new()
            .set_cache_size(4 << 20)
            .create(path)
            .map_err(|e| db_err(path)(&e))?;
        let meta = Meta { db, path: path.to_path_buf() };
        let tx = db!(meta, meta.db.begin_write())?;
        {
            db!(meta, tx.open_table(IMAGES))?;
            db!(meta, tx.open_table(LAYERS))?;
            db!(meta, tx.open_table(TAGS))?;
            db!(meta, tx.open_table(DIGESTS))?;
        }
        db!(meta, tx.commit())?;
        Ok(meta)
    }

    pub fn read(&self) -> Result<ReadTx<'_>> {
        Ok(ReadTx { tx: db!(self, self.db.begin_read())?, path: &self.path })
    }

    pub fn write(&self) -> Result<WriteTx<'_>> {
        Ok(WriteTx { tx: db!(self, self.db.begin_write())?, path: &self.path })
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Record { key: key.to_string(), source })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Record { key: key.to_string(), source })
}

/// Shared read operations of read and write transactions.
macro_rules! reads {
    () => {
        pub fn image(&self, id: &str) -> Result<Option<ImageRecord>> {
            self.get_json(IMAGES, id)
        }
        pub fn layer(&self, chain_id: &str) -> Result<Option<LayerRecord>> {
            self.get_json(LAYERS, chain_id)
        }
        pub fn images(&self) -> Result<Vec<ImageRecord>> {
            self.all_json(IMAGES)
        }
        pub fn layers(&self) -> Result<Vec<LayerRecord>> {
            self.all_json(LAYERS)
        }
        /// Image id for a full tagged reference.
        pub fn tag(&self, reference: &str) -> Result<Option<String>> {
            self.get_str(TAGS, reference)
        }
        /// Image id for a canonical digest reference.
        pub fn digest_ref(&self, reference: &str) -> Result<Option<String>> {
            self.get_str(DIGESTS, reference)
        }
        /// All (reference, image id) tags.
        pub fn tags(&self) -> Result<Vec<(String, String)>> {
            self.all_str(TAGS)
        }
        pub fn digest_refs(&self) -> Result<Vec<(String, String)>> {
            self.all_str(DIGESTS)
        }

        fn get_json<T: DeserializeOwned>(&self, def: TableDefinition<&str, &[u8]>, key: &str) -> Result<Option<T>> {
            let table = db!(self, self.tx.open_table(def))?;
            let value = db!(self, table.get(key))?;
            value.map(|v| decode(key, v.value())).transpose()
        }
        fn all_json<T: DeserializeOwned>(&self, def: TableDefinition<&str, &[u8]>) -> Result<Vec<T>> {
            let table = db!(self, self.tx.open_table(def))?;
            let mut out = Vec::new();
            for item in db!(self, table.iter())? {
                let (k, v) = db!(self, item)?;
                out.push(decode(k.value(), v.value())?);
            }
            Ok(out)
        }
        fn get_str(&self, def: TableDefinition<&str, &str>, key: &str) -> Result<Option<String>> {
            let table = db!(self, self.tx.open_table(def))?;
            let value = db!(self, table.get(key))?.map(|v| v.value().to_string());
            Ok(value)
        }
        fn all_str(&self, def: TableDefinition<&str, &str>) -> Result<Vec<(String, String)>> {
            let table = db!(self, self.tx.open_table(def))?;
            let mut out = Vec::new();
            for item in db!(self, table.iter())? {
                let (k, v) = db!(self, item)?;
                out.push((k.value().to_string(), v.value().to_string()));
            }
            Ok(out)
        }
    };
}

pub struct ReadTx<'a> {
    tx: redb::ReadTransaction,
    path: &'a Path,
}

impl ReadTx<'_> {
    reads!();
}

/// A write transaction; nothing is visible or durable until [`WriteTx::commit`].
pub struct WriteTx<'a> {
    tx: redb::WriteTransaction,
    path: &'a Path,
}

impl WriteTx<'_> {
    reads!();

    pub fn put_image(&self, image: &ImageRecord) -> Result<()> {
        self.put_json(IMAGES, &image.id, image)
    }
    pub fn delete_image(&self, id: &str) -> Result<()> {
        self.delete(IMAGES, id)
    }
    pub fn put_layer(&self, layer: &LayerRecord) -> Result<()> {
        self.put_json(LAYERS, &layer.chain_id, layer)
    }
    pub fn delete_layer(&self, chain_id: &str) -> Result<()> {
        self.delete(LAYERS, chain_id)
    }
    pub fn set_tag(&self, reference: &str, id: &str) -> Result<()> {
        let mut table = db!(self, self.tx.open_table(TAGS))?;
        db!(self, table.insert(reference, id))?;
        Ok(())
    }
    pub fn delete_tag(&self, reference: &str) -> Result<()> {
        let mut table = db!(self, self.tx.open_table(TAGS))?;
        db!(self, table.remove(reference))?;
        Ok(())
    }
    pub fn set_digest_ref(&self, reference: &str, id: &str) -> Result<()> {
        let mut table = db!(self, self.tx.open_table(DIGESTS))?;
        db!(self, table.insert(reference, id))?;
        Ok(())
    }
    pub fn delete_digest_ref(&self, reference: &str) -> Result<()> {
        let mut table = db!(self, self.tx.open_table(DIGESTS))?;
        db!(self, table.remove(reference))?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        db!(self, self.tx.commit())
    }

    fn put_json<T: Serialize>(&self, def: TableDefinition<&str, &[u8]>, key: &str, value: &T) -> Result<()> {
        let bytes = encode(key, value)?;
        let mut table = db!(self, self.tx.open_table(def))?;
        db!(self, table.insert(key, bytes.as_slice()))?;
        Ok(())
    }
    fn delete(&self, def: TableDefinition<&str, &[u8]>, key: &str) -> Result<()> {
        let mut table = db!(self, self.tx.open_table(def))?;
        db!(self, table.remove(key))?;
        Ok(())
    }
}
