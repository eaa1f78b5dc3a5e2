//! The ingest protocol: the only way blobs enter the store (see the crate docs).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use berth_digest::Sha256;
use berth_reference::Digest;
use serde::{Deserialize, Serialize};

use crate::layout::sync_dir;
use crate::lock::Guard;
use crate::{io_err, Error, Store};

/// What `<hex>.json` beside a partial download records.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Meta {
    digest: Digest,
    size: u64,
}

/// The outcome of [`Store::begin_ingest`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum IngestStart {
    /// The blob is already in the store (possibly written by another process meanwhile).
    Present,
    /// This process holds the blob's ingest lock and writes it.
    Writer(Ingest),
}

/// A blob being written. Holds the blob's ingest lock until committed or dropped; dropping
/// it keeps the partial file, so the next ingest of the same blob resumes from it.
pub struct Ingest {
    store: Store,
    digest: Digest,
    size: u64,
    data_path: PathBuf,
    meta_path: PathBuf,
    lock_path: PathBuf,
    file: BufWriter<File>,
    hasher: Sha256,
    written: u64,
    _lock: Guard,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("written", &self.written)
            .finish()
    }
}

impl Store {
    /// Starts (or resumes) writing the blob `digest` of `size` bytes. Blocks while another
    /// process writes the same blob; returns [`IngestStart::Present`] if the blob exists.
    pub fn begin_ingest(&self, digest: &Digest, size: u64) -> Result<IngestStart, Error> {
        if self.has_blob(digest) {
            return Ok(IngestStart::Present);
        }
        fs::create_dir_all(&self.ingest).map_err(io_err(&self.ingest))?;
        let hex = digest.hex();
        let lock_path = self.ingest.join(format!("{hex}.lock"));
        let lock = Guard::exclusive(&lock_path)?;
        if self.has_blob(digest) {
            return Ok(IngestStart::Present);
        }
        let data_path = self.ingest.join(format!("{hex}.data"));
        let meta_path = self.ingest.join(format!("{hex}.json"));
        let want = Meta {
            digest: digest.clone(),
            size,
        };
        let resumable = fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
            .is_some_and(|m| m == want);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)
            .map_err(io_err(&data_path))?;
        let mut hasher = Sha256::new();
        let mut written = 0;
        let len = file.metadata().map_err(io_err(&data_path))?.len();
        if resumable && len <= size {
            written = rehash(&mut file, &mut hasher).map_err(io_err(&data_path))?;
        } else {
            file.set_len(0).map_err(io_err(&data_path))?;
            fs::write(
                &meta_path,
                serde_json::to_vec(&want).expect("meta serialises"),
            )
            .map_err(io_err(&meta_path))?;
        }
        file.seek(SeekFrom::Start(written))
            .map_err(io_err(&data_path))?;
        Ok(IngestStart::Writer(Ingest {
            store: self.clone(),
            digest: digest.clone(),
            size,
            data_path,
            meta_path,
            lock_path,
            file: BufWriter::with_capacity(256 * 1024, file),
            hasher,
            written,
            _lock: lock,
        }))
    }

    /// Writes a small blob held in memory (a manifest or config) through the ingest protocol.
    pub fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), Error> {
        match self.begin_ingest(digest, bytes.len() as u64)? {
            IngestStart::Present => Ok(()),
            IngestStart::Writer(mut w) => {
                w.restart()?;
                w.write(bytes)?;
                w.commit()
            }
        }
    }
}

/// Hashes what a partial file already holds; returns its length.
fn rehash(file: &mut File, hasher: &mut Sha256) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

impl Ingest {
    /// How many bytes are already written: where a ranged download resumes.
    pub fn offset(&self) -> u64 {
        self.written
    }

    /// The expected digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The expected size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `buf`, hashing it. More bytes than the expected size discard the partial file
    /// and fail with [`Error::SizeMismatch`].
    pub fn write(&mut self, buf: &[u8]) -> Result<(), Error> {
        let after = self.written + buf.len() as u64;
        if after > self.size {
            self.discard();
            return Err(Error::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: after,
            });
        }
        self.file.write_all(buf).map_err(io_err(&self.data_path))?;
        self.hasher.update(buf);
        self.written = after;
        Ok(())
    }

    /// Throws away what was written and starts again from byte 0 (when a server ignored a
    /// range request and sends the whole blob).
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.written == 0 {
            return Ok(());
        }
        self.file.flush().map_err(io_err(&self.data_path))?;
        let f = self.file.get_mut();
        f.set_len(0).map_err(io_err(&self.data_path))?;
        f.seek(SeekFrom::Start(0))
            .map_err(io_err(&self.data_path))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// Flushes what was written so far to the partial file (for a later resume).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.file.flush().map_err(io_err(&self.data_path))
    }

    /// Checks size and digest, then makes the blob visible: fsync, rename into `blobs/`,
    /// fsync the directory. A short blob keeps its partial file (the next ingest resumes);
    /// a wrong digest discards it.
    pub fn commit(self) -> Result<(), Error> {
        self.verify()?.publish()
    }

    /// The first half of [`Ingest::commit`]: flush, check size and digest, fsync. The blob
    /// stays in `<root>/ingest/` (still locked) until [`Verified::publish`]; dropping the
    /// result keeps the verified file there, and the next ingest finds it complete.
    pub fn verify(mut self) -> Result<Verified, Error> {
        self.flush()?;
        if self.written != self.size {
            return Err(Error::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: self.written,
            });
        }
        let sum = std::mem::take(&mut self.hasher).finish();
        let actual = Digest::from_sha256(sum);
        if actual != self.digest {
            self.discard();
            return Err(Error::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        self.file
            .get_ref()
            .sync_data()
            .map_err(io_err(&self.data_path))?;
        Ok(Verified { ingest: self })
    }

    /// Removes the partial file and its record (its content is known to be wrong).
    fn discard(&mut self) {
        let _ = fs::remove_file(&self.data_path);
        let _ = fs::remove_file(&self.meta_path);
    }
}

/// A blob whose size and digest are checked, waiting to be published.
#[derive(Debug)]
pub struct Verified {
    ingest: Ingest,
}

impl Verified {
    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.ingest.digest
    }

    /// Renames the blob into `blobs/sha256/` and fsyncs the directory.
    pub fn publish(self) -> Result<(), Error> {
        Verified::publish_all(vec![self])
    }

    /// Publishes several blobs with one fsync of `blobs/sha256/` after all the renames.
    pub fn publish_all(blobs: Vec<Verified>) -> Result<(), Error> {
        let Some(first) = blobs.first() else {
            return Ok(());
        };
        let dir = first
            .ingest
            .store
            .blob_path(&first.ingest.digest)
            .parent()
            .expect("blob path has a parent")
            .to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for v in &blobs {
            let i = &v.ingest;
            let dest = i.store.blob_path(&i.digest);
            fs::rename(&i.data_path, &dest).map_err(io_err(&dest))?;
        }
        sync_dir(&dir)?;
        for v in &blobs {
            let i = &v.ingest;
            let _ = fs::remove_file(&i.meta_path);
            // Waiters that opened this lock file re-check the blob after they get the lock
            // and find it present, so the lock file can go once the blob is in place.
            let _ = fs::remove_file(&i.lock_path);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        (dir, store)
    }

    fn writer(s: &Store, d: &Digest, size: u64) -> Ingest {
        match s.begin_ingest(d, size).unwrap() {
            IngestStart::Writer(w) => w,
            IngestStart::Present => panic!("unexpectedly present"),
        }
    }

    fn ingest_dir_entries(dir: &tempfile::TempDir) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_blob_is_visible_only_after_commit() {
        let (dir, s) = store();
        let data = b"hello world";
        let d = Digest::sha256_of(data);
        let mut w = writer(&s, &d, data.len() as u64);
        w.write(&data[..5]).unwrap();
        assert!(!s.has_blob(&d));
        w.write(&data[5..]).unwrap();
        w.commit().unwrap();
        assert_eq!(fs::read(s.blob_path(&d)).unwrap(), data);
        assert!(ingest_dir_entries(&dir).is_empty());
        assert!(matches!(
            s.begin_ingest(&d, 11).unwrap(),
            IngestStart::Present
        ));
    }

    #[test]
    fn an_interrupted_ingest_resumes_from_its_offset() {
        let (_dir, s) = store();
        let data = vec![7u8; 300_000];
        let d = Digest::sha256_of(&data);
        let mut w = writer(&s, &d, data.len() as u64);
        w.write(&data[..100_000]).unwrap();
        w.flush().unwrap();
        drop(w); // as if the process died
        let mut w = writer(&s, &d, data.len() as u64);
        assert_eq!(w.offset(), 100_000);
        w.write(&data[100_000..]).unwrap();
        w.commit().unwrap();
        assert!(s.has_blob(&d));
    }

    #[test]
    fn a_partial_recorded_for_another_size_starts_over() {
        let (_dir, s) = store();
        let d = Digest::sha256_of(b"abc");
        let mut w = writer(&s, &d, 10);
        w.write(b"abcdef").unwrap();
        w.flush().unwrap();
        drop(w);
        let w = writer(&s, &d, 3);
        assert_eq!(w.offset(), 0);
    }

    #[test]
    fn wrong_digest_leaves_nothing_behind() {
        let (dir, s) = store();
        let d = Digest::sha256_of(b"expected");
        let mut w = writer(&s, &d, 8);
        w.write(b"imposter").unwrap();
        let e = w.commit().unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::Corrupt);
        assert!(!s.has_blob(&d));
        assert!(ingest_dir_entries(&dir).is_empty());
    }

    #[test]
    fn too_many_bytes_are_refused_at_once() {
        let (dir, s) = store();
        let d = Digest::sha256_of(b"abc");
        let mut w = writer(&s, &d, 3);
        let e = w.write(b"abcd").unwrap_err();
        assert!(
            matches!(
                e,
                Error::SizeMismatch {
                    expected: 3,
                    actual: 4,
                    ..
                }
            ),
            "{e}"
        );
        drop(w);
        assert!(ingest_dir_entries(&dir).is_empty());
    }

    #[test]
    fn a_short_blob_is_not_committed_but_kept_for_resume() {
        let (_dir, s) = store();
        let d = Digest::sha256_of(b"abcdef");
        let mut w = writer(&s, &d, 6);
        w.write(b"abc").unwrap();
        assert!(matches!(w.commit(), Err(Error::SizeMismatch { .. })));
        assert!(!s.has_blob(&d));
        assert_eq!(writer(&s, &d, 6).offset(), 3);
    }

    #[test]
    fn restart_forgets_the_partial_content() {
        let (_dir, s) = store();
        let d = Digest::sha256_of(b"right");
        let mut w = writer(&s, &d, 5);
        w.write(b"wro").unwrap();
        w.restart().unwrap();
        w.write(b"right").unwrap();
        w.commit().unwrap();
        assert_eq!(fs::read(s.blob_path(&d)).unwrap(), b"right");
    }

    #[test]
    fn a_second_writer_waits_and_then_finds_the_blob() {
        let (_dir, s) = store();
        let d = Digest::sha256_of(b"shared");
        let mut w = writer(&s, &d, 6);
        let (s2, d2) = (s.clone(), d.clone());
        let waiter = std::thread::spawn(move || {
            matches!(s2.begin_ingest(&d2, 6).unwrap(), IngestStart::Present)
        });
        w.write(b"shared").unwrap();
        w.commit().unwrap();
        assert!(waiter.join().unwrap());
    }
}
