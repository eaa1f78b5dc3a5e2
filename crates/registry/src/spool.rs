//! A blob's bytes written and hashed on a thread of their own.
//!
//! SHA-256 is most of a pull's CPU time (no SHA extensions on many servers: ~200–250 MB/s
//! per core). Hashing inside the async task that receives the bytes would put every blob of
//! an image on one core, since the layers of a pull are futures of one task. A [`Spool`]
//! hands the received chunks (reference-counted, not copied) to a blocking thread that owns
//! the [`Ingest`]: the blobs of an image hash on all cores at once, and receiving the next
//! chunk never waits for the hash of the last one.
//!
//! At most [`DEPTH`] chunks wait per blob (hyper hands out at most ~400 KiB at a time), so
//! memory stays bounded whatever the blob size.

use berth_content::Ingest;
use berth_reference::Digest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;

/// Chunks in flight between the receiving task and the writing thread.
const DEPTH: usize = 4;

/// A chunk of a blob as the HTTP client handed it over.
pub(crate) type Chunk = Box<dyn AsRef<[u8]> + Send>;

enum Cmd {
    Data(Chunk),
    /// Start the partial over from byte 0 (a server ignored a range request).
    Restart,
    /// Put what is buffered into the partial file (before waiting to retry).
    Flush,
}

/// The async side of a blob being written by its own thread.
pub(crate) struct Spool {
    tx: Option<mpsc::Sender<Cmd>>,
    worker: Option<JoinHandle<Result<Ingest, berth_content::Error>>>,
    digest: Digest,
    size: u64,
    /// Bytes handed to the worker so far (what the partial holds once they are written).
    offset: u64,
}

impl Spool {
    /// Moves `ingest` to a blocking thread that writes what [`Spool::write`] sends.
    pub(crate) fn start(mut ingest: Ingest) -> Spool {
        let (tx, mut rx) = mpsc::channel::<Cmd>(DEPTH);
        let digest = ingest.digest().clone();
        let size = ingest.size();
        let offset = ingest.offset();
        let worker = tokio::task::spawn_blocking(move || {
            while let Some(cmd) = rx.blocking_recv() {
                match cmd {
                    Cmd::Data(chunk) => ingest.write((*chunk).as_ref())?,
                    Cmd::Restart => ingest.restart()?,
                    Cmd::Flush => ingest.flush()?,
                }
            }
            Ok(ingest)
        });
        Spool {
            tx: Some(tx),
            worker: Some(worker),
            digest,
            size,
            offset,
        }
    }

    /// How many bytes the partial holds (or will, once the queued chunks are written).
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The writer is gone (it failed, or the spool was finished).
    pub(crate) fn is_stopped(&self) -> bool {
        self.tx.is_none()
    }

    /// Queues `chunk`; waits while [`DEPTH`] chunks are queued. Fails with the writer's
    /// error (too many bytes, I/O) as soon as it is known.
    pub(crate) async fn write(&mut self, chunk: Chunk) -> Result<(), Error> {
        let len = (*chunk).as_ref().len() as u64;
        self.send(Cmd::Data(chunk)).await?;
        self.offset += len;
        if self.offset > self.size {
            // The writer refuses it (and discards the partial): report that now.
            return Err(self.stop().await.err().unwrap_or_else(|| {
                Error::from(berth_content::Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected: self.size,
                    actual: self.offset,
                })
            }));
        }
        Ok(())
    }

    /// Throws away what was written; the blob starts again from byte 0.
    pub(crate) async fn restart(&mut self) -> Result<(), Error> {
        if self.offset == 0 {
            return Ok(());
        }
        self.send(Cmd::Restart).await?;
        self.offset = 0;
        Ok(())
    }

    /// Asks the writer to put what it buffers into the partial file.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        self.send(Cmd::Flush).await
    }

    /// Waits until every queued chunk is written and returns the ingest.
    pub(crate) async fn finish(mut self) -> Result<Ingest, Error> {
        self.stop().await
    }

    async fn send(&mut self, cmd: Cmd) -> Result<(), Error> {
        let tx = self.tx.as_ref().ok_or_else(|| self.stopped())?;
        if tx.send(cmd).await.is_err() {
            // The writer stopped on an error: that error is the one to report.
            return Err(self.stop().await.err().unwrap_or_else(|| self.stopped()));
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<Ingest, Error> {
        self.tx = None;
        let worker = self.worker.take().ok_or_else(|| self.stopped())?;
        match worker.await {
            Ok(r) => r.map_err(Error::from),
            Err(e) => Err(Error::Join(e.to_string())),
        }
    }

    fn stopped(&self) -> Error {
        Error::Join(format!("the writer of blob {} has stopped", self.digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_content::{IngestStart, Store};

    fn writer(s: &Store, data: &[u8]) -> Ingest {
        match s
            .begin_ingest(&Digest::sha256_of(data), data.len() as u64)
            .unwrap()
        {
            IngestStart::Writer(w) => w,
            IngestStart::Present => panic!("unexpectedly present"),
        }
    }

    fn chunk(b: &[u8]) -> Chunk {
        Box::new(b.to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_are_written_in_order_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut spool = Spool::start(writer(&store, &data));
        for c in data.chunks(7919) {
            spool.write(chunk(c)).await.unwrap();
        }
        assert_eq!(spool.offset(), data.len() as u64);
        let ingest = spool.finish().await.unwrap();
        ingest.commit().unwrap();
        assert_eq!(
            std::fs::read(store.blob_path(&Digest::sha256_of(&data))).unwrap(),
            data
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restart_forgets_what_was_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let mut spool = Spool::start(writer(&store, b"right"));
        spool.write(chunk(b"wro")).await.unwrap();
        spool.flush().await.unwrap();
        spool.restart().await.unwrap();
        assert_eq!(spool.offset(), 0);
        spool.write(chunk(b"right")).await.unwrap();
        spool.finish().await.unwrap().commit().unwrap();
        assert!(store.has_blob(&Digest::sha256_of(b"right")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn too_many_bytes_fail_at_once_with_the_writers_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let mut spool = Spool::start(writer(&store, b"abc"));
        let e = spool.write(chunk(b"abcd")).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Content(berth_content::Error::SizeMismatch { actual: 4, .. })
            ),
            "{e}"
        );
        // Nothing more is accepted.
        assert!(spool.write(chunk(b"x")).await.is_err());
    }
}
