//! `system check`: verifies every blob, layer and record, and repairs what can be repaired
//! (re-unpacking a damaged layer from its stored blob, dropping records of content that is
//! gone, removing unreferenced leftovers), so a broken store never means starting over.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;

use berth_store::Digest;
use serde::Serialize;

use super::{hex_of, Images};
use crate::error::{Error, Result};

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub blobs: usize,
    pub layers: usize,
    pub images: usize,
    /// Partial downloads kept for resuming.
    pub partial_downloads: usize,
    pub problems: Vec<Problem>,
    /// Bytes of unreferenced content removed (with repair).
    pub reclaimed: u64,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub what: String,
    pub repaired: bool,
}

impl Images {
    /// Checks the whole store; with `repair`, fixes what it finds.
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let note = |report: &mut CheckReport, what: String, repaired: bool| report.problems.push(Problem { what, repaired });

        // Blobs: every stored blob must hash to its name.
        let mut corrupt = BTreeSet::new();
        for digest in self.blobs.list()? {
            report.blobs += 1;
            if let Err(e) = self.blobs.verify(&digest) {
                corrupt.insert(digest.to_string());
                if repair {
                    self.blobs.delete(&digest)?;
                }
                note(&mut report, format!("blob {digest}: {e}"), repair);
            }
        }
        report.partial_downloads = self.blobs.ingests()?.len();

        let tx = self.meta.write()?;
        let images = tx.images()?;
        let mut layers: BTreeMap<String, berth_store::LayerRecord> =
            tx.layers()?.into_iter().map(|l| (l.chain_id.clone(), l)).collect();
        report.images = images.len();
        report.layers = layers.len();

        // Layers: the directory must be there; rebuild it from a good blob when it is not.
        let mut lost_layers = BTreeSet::new();
        for layer in layers.values_mut() {
            let dir = self.layer_dir(layer);
            let usable_blob = layer
                .blobs
                .iter()
                .find(|b| !corrupt.contains(&b.digest) && b.digest.parse().is_ok_and(|d: Digest| self.blobs.contains(&d)));
            let missing_blobs: Vec<&str> =
                layer.blobs.iter().filter(|b| corrupt.contains(&b.digest) || b.digest.parse().is_ok_and(|d: Digest| !self.blobs.contains(&d))).map(|b| b.digest.as_str()).collect();
            if !missing_blobs.is_empty() {
                // Only push needs the compressed blob; the next pull of the image brings it back.
                note(&mut report, format!("layer {}: compressed blob {} missing", layer.chain_id, missing_blobs.join(", ")), false);
            }
            if dir.is_dir() {
                continue;
            }
            match (repair, usable_blob) {
                (true, Some(blob)) => {
                    let rebuilt = self.rebuild_layer(layer, &blob.digest);
                    let ok = rebuilt.is_ok();
                    note(&mut report, format!("layer {}: directory missing{}", layer.chain_id, rebuilt.err().map(|e| format!(", rebuild failed: {e}")).unwrap_or_default()), ok);
                    if !ok {
                        lost_layers.insert(layer.chain_id.clone());
                    }
                }
                (true, None) => {
                    lost_layers.insert(layer.chain_id.clone());
                    note(&mut report, format!("layer {}: directory missing and no blob to rebuild it from; images using it are removed, pull them again", layer.chain_id), true);
                }
                (false, _) => note(&mut report, format!("layer {}: directory missing", layer.chain_id), false),
            }
        }

        // Images: config blob present and good, every layer recorded and intact.
        let mut refs: BTreeMap<String, u64> = BTreeMap::new();
        let mut dropped_images = BTreeSet::new();
        for image in &images {
            let config_ok = !corrupt.contains(&image.id) && image.id.parse().is_ok_and(|d: Digest| self.blobs.contains(&d));
            let missing: Vec<&String> = image.layers.iter().filter(|c| !layers.contains_key(*c) || lost_layers.contains(*c)).collect();
            if config_ok && missing.is_empty() {
                for c in &image.layers {
                    *refs.entry(c.clone()).or_default() += 1;
                }
                continue;
            }
            let why = if !config_ok { "config blob missing or corrupt".to_string() } else { format!("layers missing: {}", missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) };
            if repair {
                tx.delete_image(&image.id)?;
                dropped_images.insert(image.id.clone());
            }
            note(&mut report, format!("image {}: {why}{}", image.id, if repair { "; removed, pull it again" } else { "" }), repair);
        }
        for (reference, id) in tx.tags()?.into_iter().chain(tx.digest_refs()?) {
            let dangling = dropped_images.contains(&id) || !images.iter().any(|i| i.id == id);
            if dangling {
                if repair {
                    super::remove_ref(&tx, &reference)?;
                }
                if !dropped_images.contains(&id) {
                    note(&mut report, format!("reference {reference} points to missing image {id}"), repair);
                }
            }
        }

        // Reference counts must equal the number of images using each layer.
        for layer in layers.values_mut() {
            let want = refs.get(&layer.chain_id).copied().unwrap_or(0);
            if layer.refs != want || lost_layers.contains(&layer.chain_id) {
                if layer.refs != want {
                    note(&mut report, format!("layer {}: reference count {} should be {want}", layer.chain_id, layer.refs), repair);
                }
                if repair {
                    layer.refs = want;
                    if want == 0 {
                        tx.delete_layer(&layer.chain_id)?;
                    } else {
                        tx.put_layer(layer)?;
                    }
                }
            }
        }
        if repair {
            tx.commit()?;
        } else {
            drop(tx);
        }

        // Leftovers nobody references.
        let recorded: BTreeSet<String> = self.meta.read()?.layers()?.into_iter().map(|l| l.dir).collect();
        for entry in std::fs::read_dir(&self.layers_root).map_err(Error::io("read dir", &self.layers_root))? {
            let entry = entry.map_err(Error::io("read dir", &self.layers_root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !recorded.contains(&name) && !self.leased(&format!("sha256:{name}")) {
                if repair {
                    berth_snapshot::remove_tree(&entry.path())?;
                }
                note(&mut report, format!("layer directory {name} is not recorded"), repair);
            }
        }
        if repair {
            report.reclaimed = self.collect_garbage()?;
        }
        Ok(report)
    }

    /// Unpacks a layer again from its stored blob into its directory.
    fn rebuild_layer(&self, layer: &berth_store::LayerRecord, blob: &str) -> Result<()> {
        let digest: Digest = blob.parse()?;
        let diff_id: Digest = layer.diff_id.parse()?;
        let tmp = self.tmp_dir()?;
        let path = self.blobs.path(&digest);
        let file = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
        super::pull::unpack(BufReader::with_capacity(1 << 20, file), tmp.path(), &diff_id)?;
        berth_snapshot::sync_filesystem(tmp.path())?;
        let dest = self.layers_root.join(hex_of(&layer.chain_id));
        std::fs::rename(tmp.keep(), &dest).map_err(Error::io("rename into", &dest))?;
        Ok(())
    }
}
