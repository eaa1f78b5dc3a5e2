//! Housekeeping: removing names and collecting blobs that no name reaches.

use std::collections::BTreeSet;
use std::fs;

use berth_reference::Digest;

use crate::lock::Guard;
use crate::oci::{self, media_type, Document};
use crate::resolve::Entry;
use crate::{io_err, Error, Store};

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GcReport {
    /// Blobs deleted from `blobs/sha256`.
    pub removed: Vec<Digest>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Abandoned partial downloads deleted from `<root>/ingest`.
    pub partials: usize,
}

impl Store {
    /// Removes `name` from `index.json` (resolved like [`Store::find_entry`]); its blobs stay
    /// until [`Store::gc`]. Returns the removed entry.
    pub fn remove(&self, name: &str) -> Result<Entry, Error> {
        let entry = self.find_entry(name)?;
        let removed = self.unname(std::slice::from_ref(&entry.name))?;
        if removed.is_empty() {
            // Removed by someone else between the lookup and the edit.
            return Err(Error::ImageNotFound(name.to_string()));
        }
        Ok(entry)
    }

    /// Deletes every blob that no entry of `index.json` reaches (through indexes, manifests,
    /// configs and layers) and every partial download no process is writing. Waits for
    /// running writers (see [`Store::writer_guard`]) and keeps new ones out meanwhile.
    pub fn gc(&self) -> Result<GcReport, Error> {
        fs::create_dir_all(&self.ingest).map_err(io_err(&self.ingest))?;
        let _gc = Guard::exclusive(&self.ingest.join("gc.lock"))?;
        let mut live = BTreeSet::new();
        let mut todo: Vec<(Digest, String)> = self
            .read_index()?
            .manifests
            .into_iter()
            .map(|d| (d.digest, d.media_type))
            .collect();
        while let Some((digest, mt)) = todo.pop() {
            if !live.insert(digest.clone()) {
                continue;
            }
            if !(media_type::is_manifest(&mt) || media_type::is_index(&mt)) {
                continue;
            }
            // A missing or unreadable document keeps itself but reaches nothing more.
            let Ok(bytes) = self.read_document(&digest) else {
                continue;
            };
            match oci::parse_document(&bytes, Some(&mt), digest.as_str()) {
                Ok((Document::Manifest(m), _)) => {
                    todo.push((m.config.digest, m.config.media_type));
                    todo.extend(m.layers.into_iter().map(|l| (l.digest, l.media_type)));
                }
                Ok((Document::Index(i), _)) => {
                    todo.extend(i.manifests.into_iter().map(|d| (d.digest, d.media_type)));
                }
                Err(_) => {}
            }
        }
        let mut report = GcReport::default();
        let blobs = self.content.join("blobs").join("sha256");
        let entries = match fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
            Err(e) => {
                return Err(Error::Io {
                    path: blobs,
                    source: e,
                })
            }
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&blobs))?;
            let name = entry.file_name();
            let Ok(digest) = format!("sha256:{}", name.to_string_lossy()).parse::<Digest>() else {
                continue; // not a blob name: leave foreign files alone
            };
            if live.contains(&digest) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(entry.path()).map_err(io_err(entry.path()))?;
            report.bytes += size;
            report.removed.push(digest);
        }
        report.removed.sort();
        report.partials = self.collect_partials()?;
        Ok(report)
    }

    /// Deletes partial downloads whose lock nobody holds.
    fn collect_partials(&self) -> Result<usize, Error> {
        let mut count = 0;
        let dir = fs::read_dir(&self.ingest).map_err(io_err(&self.ingest))?;
        for entry in dir {
            let entry = entry.map_err(io_err(&self.ingest))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".data") else {
                continue;
            };
            let lock_path = self.ingest.join(format!("{hex}.lock"));
            if let Some(_held) = Guard::try_exclusive(&lock_path)? {
                let _ = fs::remove_file(entry.path());
                let _ = fs::remove_file(self.ingest.join(format!("{hex}.json")));
                let _ = fs::remove_file(&lock_path);
                count += 1;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    #[test]
    fn gc_keeps_what_names_reach_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(dir.path()).unwrap();
        testutil::image(&s, "example.com/keep:1", b"shared-layer");
        let gone = testutil::image(&s, "example.com/gone:1", b"own-layer");
        let before = fs::read_dir(dir.path().join("content/blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(before, 6);
        let removed = s.remove("example.com/gone:1").unwrap();
        assert_eq!(removed.descriptor.digest, gone.digest);
        // Nothing is deleted until gc.
        assert!(s.has_blob(&gone.digest));
        let report = s.gc().unwrap();
        assert_eq!(report.removed.len(), 3, "{report:?}");
        assert!(report.removed.contains(&gone.digest));
        assert!(!s.has_blob(&gone.digest));
        s.resolve("example.com/keep:1").unwrap();
        // A second collection finds nothing.
        assert!(s.gc().unwrap().removed.is_empty());
    }

    #[test]
    fn removing_an_unknown_name_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(dir.path()).unwrap();
        let e = s.remove("nothing").unwrap_err();
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::NotFound);
    }

    #[test]
    fn gc_removes_abandoned_partials_but_not_ones_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(dir.path()).unwrap();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let crate::IngestStart::Writer(mut wa) = s.begin_ingest(&a, 1).unwrap() else {
            panic!()
        };
        wa.flush().unwrap();
        drop(wa);
        let crate::IngestStart::Writer(_wb) = s.begin_ingest(&b, 1).unwrap() else {
            panic!()
        };
        let report = s.gc().unwrap();
        assert_eq!(report.partials, 1);
        assert!(dir
            .path()
            .join("ingest")
            .join(format!("{}.data", b.hex()))
            .exists());
        assert!(!dir
            .path()
            .join("ingest")
            .join(format!("{}.data", a.hex()))
            .exists());
    }
}
