//! The layer byte stream: compression chosen by sniffing magic bytes and checked against the
//! media type, decompression and sha256 of the uncompressed stream on a second thread, the
//! result handed over in bounded chunks so memory stays small whatever the layer size.

use std::io::{self, Read};
use std::sync::mpsc::{channel as unbounded, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use crate::Error;

/// Size of one chunk handed from the decompressing thread to the extracting one.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads (memory bound: `CHUNK * (DEPTH + 2)`).
const DEPTH: usize = 4;
/// The largest zstd window accepted (2^25 = 32 MiB), so a frame cannot demand more memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// The compression a layer media type declares, or `None` for a type that is not a layer.
///
/// OCI (`application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`, also the non-distributable
/// variants) and Docker (`application/vnd.docker.image.rootfs.diff.tar[.gzip]`,
/// `…rootfs.foreign.diff.tar.gzip`) types are known.
pub fn declared_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// The compression the first bytes of a blob show.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// What the decompressing thread found when the stream ended.
pub(crate) struct Summary {
    pub digest: String,
    pub size: u64,
}

/// A chunk of the uncompressed stream, shared by the extracting and the hashing thread.
/// Whichever drops it last sends its buffer back to the pump, so the pump allocates (and
/// the kernel zeroes) only the few buffers in flight, not one per MiB of the layer.
pub(crate) struct Buf {
    data: Vec<u8>,
    home: Sender<Vec<u8>>,
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let _ = self.home.send(std::mem::take(&mut self.data));
    }
}

type Chunk = io::Result<Arc<Buf>>;

/// The reading end: the uncompressed stream, in order.
pub(crate) struct ChunkReader {
    rx: Receiver<Chunk>,
    cur: Option<Arc<Buf>>,
    pos: usize,
    done: bool,
}

impl ChunkReader {
    fn cur_len(&self) -> usize {
        self.cur.as_ref().map_or(0, |c| c.len())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur_len() {
            if self.done {
                return Ok(0);
            }
            // Dropped first: its buffer can go back to the pump before the next recv.
            self.cur = None;
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = Some(chunk);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let cur = self.cur.as_deref().map_or(&[][..], |c| &c[..]);
        let n = buf.len().min(cur.len() - self.pos);
        buf[..n].copy_from_slice(&cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ChunkReader {
    /// Reads and discards the rest of the stream (tar padding after the end marker), so the
    /// digest covers all of it; returns how many bytes that was.
    pub(crate) fn drain(&mut self) -> io::Result<u64> {
        let mut n = (self.cur_len() - self.pos) as u64;
        self.cur = None;
        self.pos = 0;
        while !self.done {
            match self.rx.recv() {
                Ok(Ok(chunk)) => n += chunk.len() as u64,
                Ok(Err(e)) => return Err(e),
                Err(_) => self.done = true,
            }
        }
        Ok(n)
    }
}

/// Checks the media type against the blob's magic bytes and returns a reader for its
/// decompressed content.
pub(crate) fn open<'a, R: Read + Send + 'a>(
    mut blob: R,
    media_type: &str,
) -> Result<Box<dyn Read + Send + 'a>, Error> {
    let declared = declared_compression(media_type).ok_or_else(|| Error::UnknownMediaType {
        media_type: media_type.to_string(),
    })?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match blob.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Stream(e)),
        }
    }
    let found = sniff(&head[..got]);
    if found != declared {
        return Err(Error::CompressionMismatch {
            media_type: media_type.to_string(),
            declared,
            found,
        });
    }
    let whole = io::Cursor::new(head[..got].to_vec()).chain(blob);
    let reader = io::BufReader::with_capacity(CHUNK, whole);
    Ok(match found {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => {
            let mut dec =
                zstd::stream::read::Decoder::with_buffer(reader).map_err(Error::Stream)?;
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(Error::Stream)?;
            Box::new(dec)
        }
    })
}

/// The sending end: chunks for the reader, spent chunks coming back.
pub(crate) struct Pump {
    tx: SyncSender<Chunk>,
    spent: Receiver<Vec<u8>>,
    home: Sender<Vec<u8>>,
}

/// Pumps `src` (already decompressing) into the channel in chunks; a third thread hashes
/// the same chunks, so decompressing, hashing and extracting overlap.
pub(crate) fn pump(mut src: impl Read, p: Pump) -> Option<Summary> {
    let Pump { tx, spent, home } = p;
    let (hash_tx, hash_rx) = sync_channel::<Arc<Buf>>(DEPTH);
    // `move`: on an early return the sender is dropped before the scope joins the hasher.
    std::thread::scope(move |s| {
        let hasher = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn_scoped(s, move || {
                let mut ctx = berth_digest::Sha256::new();
                let mut size = 0u64;
                for chunk in hash_rx {
                    ctx.update(&chunk);
                    size += chunk.len() as u64;
                }
                Summary {
                    digest: format!("sha256:{}", berth_digest::hex(&ctx.finish())),
                    size,
                }
            })
            .ok()?;
        loop {
            let mut chunk = spent.try_recv().unwrap_or_default();
            chunk.resize(CHUNK, 0);
            let mut filled = 0;
            let res = loop {
                match src.read(&mut chunk[filled..]) {
                    Ok(0) => break Ok(true),
                    Ok(n) => {
                        filled += n;
                        if filled == chunk.len() {
                            break Ok(false);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            chunk.truncate(filled);
            match res {
                Ok(eof) => {
                    if !chunk.is_empty() {
                        let chunk = Arc::new(Buf {
                            data: chunk,
                            home: home.clone(),
                        });
                        if hash_tx.send(chunk.clone()).is_err() || tx.send(Ok(chunk)).is_err() {
                            return None;
                        }
                    }
                    if eof {
                        drop(hash_tx);
                        return hasher.join().ok();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return None;
                }
            }
        }
    })
}

/// A channel for [`pump`] and the reader of its other end.
pub(crate) fn channel() -> (Pump, ChunkReader) {
    let (tx, rx) = sync_channel(DEPTH);
    let (spent_tx, spent_rx) = unbounded();
    (
        Pump {
            tx,
            spent: spent_rx,
            home: spent_tx,
        },
        ChunkReader {
            rx,
            cur: None,
            pos: 0,
            done: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"etc/"), Compression::None);
        assert_eq!(sniff(b""), Compression::None);
    }

    #[test]
    fn media_types_declare_compression() {
        assert_eq!(
            declared_compression("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            declared_compression("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            declared_compression("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(declared_compression("application/json"), None);
    }

    #[test]
    fn a_lying_media_type_is_refused() {
        let err = open(
            &b"plain tar bytes"[..],
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
        .err()
        .unwrap();
        assert!(
            matches!(
                err,
                Error::CompressionMismatch {
                    found: Compression::None,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        // 2^26 is above berth's 2^25 limit but below zstd's own default of 2^27.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(26))
            .unwrap();
        io::Write::write_all(&mut enc, &vec![1u8; 1 << 20]).unwrap();
        let data = enc.finish().unwrap();
        let mut r = open(&data[..], "application/vnd.oci.image.layer.v1.tar+zstd").unwrap();
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("too much memory"), "{err}");
    }

    #[test]
    fn pumping_hashes_everything_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (tx, mut rx) = channel();
        let summary = std::thread::scope(|s| {
            let h = s.spawn(|| pump(&data[..], tx));
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            assert_eq!(got, data);
            h.join().unwrap()
        })
        .unwrap();
        assert_eq!(summary.size, data.len() as u64);
        assert_eq!(
            summary.digest,
            format!("sha256:{}", hex::encode(Sha256::digest(&data)))
        );
    }
}
