//! The OCI image layout files: `oci-layout` and `index.json`, the latter rewritten atomically
//! under `<root>/ingest/index.lock`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::lock::Guard;
use crate::oci::{media_type, Descriptor, Index, REF_NAME};
use crate::{io_err, Error, Store};

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Creates the layout files and directories that are missing.
pub(crate) fn init(content: &Path, ingest: &Path) -> Result<(), Error> {
    fs::create_dir_all(ingest).map_err(io_err(ingest))?;
    let _lock = Guard::exclusive(&ingest.join("index.lock"))?;
    let blobs = content.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let layout = content.join("oci-layout");
    if !layout.exists() {
        write_atomic(content, "oci-layout", OCI_LAYOUT.as_bytes())?;
    }
    if !content.join("index.json").exists() {
        let empty = empty_index();
        write_atomic(
            content,
            "index.json",
            &serde_json::to_vec(&empty).expect("index serialises"),
        )?;
    }
    Ok(())
}

fn empty_index() -> Index {
    Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_string()),
        manifests: Vec::new(),
        annotations: None,
        extra: Default::default(),
    }
}

/// Writes `dir/name` atomically: a temporary file beside it, fsync, rename, fsync of `dir`.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        let dest = dir.join(name);
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Store {
    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<Index, Error> {
        let path = self.content.join("index.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(empty_index()),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::InvalidJson {
            what: path.display().to_string(),
            source: e,
        })
    }

    /// Runs `edit` on `index.json` under the index lock and writes the result atomically.
    fn edit_index<T>(&self, edit: impl FnOnce(&mut Index) -> Result<T, Error>) -> Result<T, Error> {
        fs::create_dir_all(&self.ingest).map_err(io_err(&self.ingest))?;
        let _lock = Guard::exclusive(&self.ingest.join("index.lock"))?;
        let mut index = self.read_index()?;
        let out = edit(&mut index)?;
        let bytes = serde_json::to_vec(&index).expect("index serialises");
        write_atomic(&self.content, "index.json", &bytes)?;
        Ok(out)
    }

    /// Names `descriptor` (a manifest or index already in the store) `name` in `index.json`,
    /// replacing any entry with the same name. Other annotations of the descriptor are kept.
    pub fn set_name(&self, name: &str, mut descriptor: Descriptor) -> Result<(), Error> {
        if !self.has_blob(&descriptor.digest) {
            return Err(Error::BlobNotFound(descriptor.digest));
        }
        descriptor
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REF_NAME.to_string(), name.to_string());
        self.edit_index(|index| {
            index.manifests.retain(|d| d.ref_name() != Some(name));
            index.manifests.push(descriptor);
            Ok(())
        })
    }

    /// Removes the entries whose `ref.name` is one of `names`; returns the removed entries.
    pub(crate) fn unname(&self, names: &[String]) -> Result<Vec<Descriptor>, Error> {
        self.edit_index(|index| {
            let (removed, kept) = index
                .manifests
                .drain(..)
                .partition(|d| d.ref_name().is_some_and(|n| names.iter().any(|x| x == n)));
            index.manifests = kept;
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    #[test]
    fn create_writes_a_valid_empty_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let layout = fs::read_to_string(dir.path().join("content/oci-layout")).unwrap();
        assert_eq!(layout, OCI_LAYOUT);
        assert!(store.read_index().unwrap().manifests.is_empty());
        assert!(dir.path().join("content/blobs/sha256").is_dir());
        // Idempotent, and open finds it.
        Store::create(dir.path()).unwrap();
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn open_without_a_layout_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::NotFound);
    }

    #[test]
    fn set_name_replaces_the_entry_of_the_same_name_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        testutil::image(&store, "example.com/a:1", b"one");
        testutil::image(&store, "example.com/b:1", b"two");
        let d3 = testutil::image(&store, "example.com/a:1", b"three");
        let index = store.read_index().unwrap();
        assert_eq!(index.manifests.len(), 2);
        let a = index
            .manifests
            .iter()
            .find(|d| d.ref_name() == Some("example.com/a:1"))
            .unwrap();
        assert_eq!(a.digest, d3.digest);
        // No temporary files are left in the layout.
        let names: Vec<_> = fs::read_dir(dir.path().join("content"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn naming_a_missing_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let d = Descriptor::new(media_type::OCI_MANIFEST, crate::Digest::sha256_of(b"x"), 1);
        assert!(matches!(
            store.set_name("x", d),
            Err(Error::BlobNotFound(_))
        ));
        assert!(store.read_index().unwrap().manifests.is_empty());
    }

    #[test]
    fn unknown_fields_of_index_json_survive_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let d = testutil::image(&store, "a", b"x");
        let mut index = store.read_index().unwrap();
        index.extra.insert("vendor".into(), serde_json::json!(1));
        index.manifests[0]
            .extra
            .insert("artifactType".into(), serde_json::json!("t"));
        fs::write(
            dir.path().join("content/index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        store.set_name("b", d).unwrap();
        let again = store.read_index().unwrap();
        assert_eq!(again.extra.get("vendor"), Some(&serde_json::json!(1)));
        assert_eq!(
            again.manifests[0].extra.get("artifactType"),
            Some(&serde_json::json!("t"))
        );
    }
}
