//! Unpacking an image's layers into snapshots, in parallel.
//!
//! Each layer is independent in overlay form, so layers are handed to `jobs` worker threads
//! bottom first. The one dependency is a layer that needs its lower snapshots (a hardlink to
//! a lower file, a parent directory it does not carry): it waits until every layer below it
//! is committed. Since workers take layers in order, every lower layer is already being
//! worked on or done when a higher one waits, so this cannot deadlock.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use berth_layer::{Form, Layer, Lowers};
use rustix::fs::{self as rfs, Mode, OFlags};

use crate::lock::Lock;
use crate::store::{LayerMeta, Meta, Snapshots};
use crate::{chain_ids, io_error, Error};

/// One layer of an image: its blob on disk and what the image says about it.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// Blob digest (`sha256:…`).
    pub digest: String,
    pub media_type: String,
    /// Blob size from the manifest.
    pub size: u64,
    /// The config's diff_id for this layer.
    pub diff_id: String,
    /// Where the blob is (in the content store).
    pub blob: PathBuf,
}

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Layers unpacked at the same time (at least 1).
    pub jobs: usize,
    /// `syncfs(2)` each snapshot before committing it, so a crash right after the commit
    /// cannot leave a committed snapshot with missing data. On by default.
    pub sync: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        let jobs = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        UnpackOptions { jobs, sync: true }
    }
}

/// What happened to one layer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub chain_id: String,
    pub diff_id: String,
    pub digest: String,
    /// The snapshot's `fs` directory.
    pub path: PathBuf,
    /// False when the snapshot was already there (nothing was done).
    pub created: bool,
    pub tar_bytes: u64,
    pub entries: u64,
    pub seconds: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Done,
    Failed,
}

struct Board {
    states: Mutex<Vec<State>>,
    changed: Condvar,
}

impl Board {
    fn set(&self, i: usize, s: State) {
        let mut st = self.states.lock().unwrap_or_else(|e| e.into_inner());
        st[i] = s;
        self.changed.notify_all();
    }

    /// Waits until every layer below `i` is settled; returns the first that failed.
    fn wait_below(&self, i: usize) -> Option<usize> {
        let mut st = self.states.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(f) = st[..i].iter().position(|s| *s == State::Failed) {
                return Some(f);
            }
            if st[..i].iter().all(|s| *s == State::Done) {
                return None;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct Below<'a> {
    snapshots: &'a Snapshots,
    board: &'a Board,
    index: usize,
    chain: &'a [String],
    layers: &'a [LayerSource],
}

impl Lowers for Below<'_> {
    fn open(&self) -> Result<Vec<OwnedFd>, berth_layer::Error> {
        if let Some(f) = self.board.wait_below(self.index) {
            let e = format!("layer {} below failed", self.layers[f].digest);
            return Err(berth_layer::Error::Lowers(e.into()));
        }
        let mut fds = Vec::new();
        for id in self.chain[..self.index].iter().rev() {
            let p = self
                .snapshots
                .path(id)
                .map_err(|e| berth_layer::Error::Lowers(Box::new(e)))?;
            let fd = rfs::open(
                &p,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| berth_layer::Error::Lowers(Box::new(std::io::Error::from(e))))?;
            fds.push(fd);
        }
        Ok(fds)
    }
}

impl Snapshots {
    /// Makes sure every layer of an image (bottom first) is a committed snapshot, unpacking
    /// the missing ones in parallel. Returns one outcome per layer, in order, or the error of
    /// the lowest layer that failed; a failed layer leaves no snapshot and no temporary.
    pub fn unpack(
        &self,
        layers: &[LayerSource],
        opts: &UnpackOptions,
    ) -> Result<Vec<Outcome>, Error> {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let chain = chain_ids(&diff_ids)?;
        let board = Board {
            states: Mutex::new(vec![State::Pending; layers.len()]),
            changed: Condvar::new(),
        };
        let next = AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<Outcome, Error>>>> =
            Mutex::new((0..layers.len()).map(|_| None).collect());
        let workers = opts.jobs.max(1).min(layers.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= layers.len() {
                        break;
                    }
                    let r = if abort.load(Ordering::SeqCst) {
                        Err(Error::LowerFailed {
                            digest: layers[i].digest.clone(),
                            reason: "another layer of the image failed".into(),
                        })
                    } else {
                        let below = Below {
                            snapshots: self,
                            board: &board,
                            index: i,
                            chain: &chain,
                            layers,
                        };
                        self.unpack_one(&layers[i], &chain, i, &below, opts)
                    };
                    if r.is_err() {
                        abort.store(true, Ordering::SeqCst);
                    }
                    board.set(
                        i,
                        if r.is_ok() {
                            State::Done
                        } else {
                            State::Failed
                        },
                    );
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(layers.len());
        let mut first_err: Option<Error> = None;
        for r in results {
            match r {
                Some(Ok(o)) => out.push(o),
                // The lowest real failure explains the ones that only followed from it.
                Some(Err(e)) => match &first_err {
                    None => first_err = Some(e),
                    Some(prev) if is_secondary(prev) && !is_secondary(&e) => first_err = Some(e),
                    Some(_) => {}
                },
                None => {}
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn unpack_one(
        &self,
        layer: &LayerSource,
        chain: &[String],
        i: usize,
        below: &Below<'_>,
        opts: &UnpackOptions,
    ) -> Result<Outcome, Error> {
        let started = Instant::now();
        let chain_id = &chain[i];
        let dir = self.snapshot_dir(chain_id)?;
        let outcome = |created: bool, tar_bytes: u64, entries: u64| Outcome {
            chain_id: chain_id.clone(),
            diff_id: layer.diff_id.clone(),
            digest: layer.digest.clone(),
            path: dir.join("fs"),
            created,
            tar_bytes,
            entries,
            seconds: started.elapsed().as_secs_f64(),
        };
        if dir.join("fs").is_dir() {
            return Ok(outcome(false, 0, 0));
        }
        let _lock = Lock::exclusive(&self.lock_path(chain_id)?)?;
        if dir.join("fs").is_dir() {
            // Another process built it while we waited.
            return Ok(outcome(false, 0, 0));
        }
        let tmp = self.temp_dir("build", chain_id)?;
        let r = self.build(layer, chain, i, below, opts, &tmp, &dir);
        match r {
            Ok((tar_bytes, entries)) => Ok(outcome(true, tar_bytes, entries)),
            Err(e) => {
                if let Err(rm) = fs::remove_dir_all(&tmp) {
                    if rm.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %tmp.display(), error = %rm, "could not remove a failed build");
                    }
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        layer: &LayerSource,
        chain: &[String],
        i: usize,
        below: &Below<'_>,
        opts: &UnpackOptions,
        tmp: &std::path::Path,
        dir: &std::path::Path,
    ) -> Result<(u64, u64), Error> {
        let fs_dir = tmp.join("fs");
        fs::create_dir(tmp).map_err(io_error(format!("creating {}", tmp.display())))?;
        fs::create_dir(&fs_dir).map_err(io_error(format!("creating {}", fs_dir.display())))?;
        let root =
            fs::File::open(&fs_dir).map_err(io_error(format!("opening {}", fs_dir.display())))?;
        let blob = fs::File::open(&layer.blob)
            .map_err(io_error(format!("opening blob {}", layer.blob.display())))?;
        let spec = Layer {
            digest: &layer.digest,
            media_type: &layer.media_type,
            diff_id: &layer.diff_id,
        };
        let stats = berth_layer::apply(blob, &spec, root.as_fd(), Form::Overlay, below).map_err(
            |source| Error::Layer {
                digest: layer.digest.clone(),
                source,
            },
        )?;
        let meta = Meta {
            chain_id: chain[i].clone(),
            diff_id: layer.diff_id.clone(),
            parent: i.checked_sub(1).map(|p| chain[p].clone()),
            layer: LayerMeta {
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
                size: layer.size,
            },
            tar_bytes: stats.tar_bytes,
            entries: stats.entries,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let meta_path = tmp.join("meta.json");
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| io_error("encoding meta.json")(e.into()))?;
        fs::write(&meta_path, json)
            .map_err(io_error(format!("writing {}", meta_path.display())))?;
        if opts.sync {
            rfs::syncfs(&root)
                .map_err(|e| io_error(format!("syncing {}", fs_dir.display()))(e.into()))?;
        }
        drop(root);
        fs::rename(tmp, dir).map_err(io_error(format!("committing {}", dir.display())))?;
        if opts.sync {
            if let Some(parent) = dir.parent() {
                let d = fs::File::open(parent)
                    .map_err(io_error(format!("opening {}", parent.display())))?;
                d.sync_all()
                    .map_err(io_error(format!("syncing {}", parent.display())))?;
            }
        }
        Ok((stats.tar_bytes, stats.entries))
    }
}

fn is_secondary(e: &Error) -> bool {
    matches!(e, Error::LowerFailed { .. })
        || matches!(
            e,
            Error::Layer {
                source: berth_layer::Error::Lowers(_),
                ..
            }
        )
}

#[cfg(test)]
mod tests {
    //! Needs root, as unpacking does (owners, device nodes, trusted xattrs).
    use super::*;
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;

    fn layer(dir: &std::path::Path, f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> LayerSource {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        let data = b.into_inner().unwrap();
        let hex = hex::encode(Sha256::digest(&data));
        let blob = dir.join(&hex);
        fs::write(&blob, &data).unwrap();
        LayerSource {
            digest: format!("sha256:{hex}"),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            size: data.len() as u64,
            diff_id: format!("sha256:{hex}"),
            blob,
        }
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, content: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, content).unwrap();
    }

    fn hardlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, path, target).unwrap();
    }

    #[test]
    fn layers_unpack_in_parallel_and_a_lower_hardlink_waits_for_its_lower() {
        let blobs = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let big = vec![5u8; 4 << 20];
        let layers = vec![
            layer(blobs.path(), |b| file(b, "data/big", &big)),
            layer(blobs.path(), |b| hardlink(b, "alias", "data/big")),
            layer(blobs.path(), |b| file(b, "top", b"t")),
        ];
        let snaps = Snapshots::open(root.path()).unwrap();
        let opts = UnpackOptions {
            jobs: 3,
            sync: false,
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| snaps.unpack(&layers, &opts));
            let b = s.spawn(|| snaps.unpack(&layers, &opts));
            (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
        });
        for i in 0..3 {
            assert_eq!(a[i].chain_id, b[i].chain_id);
            // Exactly one of the two built each snapshot.
            assert!(a[i].created ^ b[i].created, "layer {i}");
        }
        let upper = snaps.path(&a[1].chain_id).unwrap();
        assert_eq!(
            fs::metadata(upper.join("alias")).unwrap().ino(),
            fs::metadata(upper.join("data/big")).unwrap().ino()
        );
        assert_eq!(fs::read(upper.join("alias")).unwrap(), big);
        let meta = snaps.meta(&a[1].chain_id).unwrap();
        assert_eq!(meta.parent.as_deref(), Some(a[0].chain_id.as_str()));
        assert_eq!(meta.diff_id, layers[1].diff_id);
        assert_eq!(
            fs::read_dir(root.path().join("snapshots/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_failed_layer_commits_nothing_and_leaves_no_temporary() {
        let blobs = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let good = layer(blobs.path(), |b| file(b, "a", b"a"));
        let mut bad = layer(blobs.path(), |b| file(b, "b", b"b"));
        bad.diff_id = format!("sha256:{}", "3".repeat(64));
        let above = layer(blobs.path(), |b| hardlink(b, "c", "a"));
        let snaps = Snapshots::open(root.path()).unwrap();
        let err = snaps
            .unpack(
                &[good, bad.clone(), above],
                &UnpackOptions {
                    jobs: 1,
                    sync: true,
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::Layer { digest, source: berth_layer::Error::DiffId { .. } } if *digest == bad.digest),
            "{err}"
        );
        let committed = fs::read_dir(root.path().join("snapshots/sha256"))
            .unwrap()
            .count();
        assert_eq!(committed, 1, "only the good bottom layer");
        assert_eq!(
            fs::read_dir(root.path().join("snapshots/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
