//! The snapshot directory: paths, metadata, listing, removal, bundle users, garbage collection.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{self as rfs, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::lock::Lock;
use crate::{digest_hex, io_error, Error};

/// What a snapshot was built from (`meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub chain_id: String,
    pub diff_id: String,
    /// The chain ID of the snapshot below, `None` for a bottom layer.
    pub parent: Option<String>,
    /// The layer blob it was unpacked from (the first one; another image may carry the same
    /// diff_id compressed differently).
    pub layer: LayerMeta,
    /// Bytes of the uncompressed layer.
    pub tar_bytes: u64,
    /// Archive members applied.
    pub entries: u64,
    /// When it was committed, seconds since the epoch.
    pub created_unix: u64,
}

/// The layer blob a snapshot was unpacked from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMeta {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// One committed snapshot, as [`Snapshots::list`] shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub chain_id: String,
    /// The `fs` directory (the overlay lowerdir).
    pub path: PathBuf,
    pub meta: Option<Meta>,
    /// Bundle ids that use it.
    pub users: Vec<String>,
}

/// What [`Snapshots::gc`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Chain IDs removed.
    pub removed: Vec<String>,
    /// Chain IDs no image needs but some bundle still uses.
    pub in_use: Vec<String>,
    /// Leftover temporary directories removed (from crashed builds or removals).
    pub temporaries: usize,
}

/// The snapshots under `<root>/snapshots`.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A bundle id is one path component: `[A-Za-z0-9._-]{1,128}`, not starting with `.`.
pub(crate) fn check_bundle_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidBundleId(id.to_string()))
    }
}

impl Snapshots {
    /// Opens (creating when missing) the snapshot directory of the store root `root`
    /// (`/var/lib/berth` by default), i.e. `<root>/snapshots`.
    pub fn open(root: &Path) -> Result<Snapshots, Error> {
        let dir = root.join("snapshots");
        for sub in ["sha256", "tmp", "locks"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_error(format!("creating {}", p.display())))?;
        }
        Ok(Snapshots { dir })
    }

    /// `<root>/snapshots`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn snapshot_dir(&self, chain_id: &str) -> Result<PathBuf, Error> {
        Ok(self.dir.join("sha256").join(digest_hex(chain_id)?))
    }

    pub(crate) fn lock_path(&self, chain_id: &str) -> Result<PathBuf, Error> {
        Ok(self.dir.join("locks").join(digest_hex(chain_id)?))
    }

    pub(crate) fn temp_dir(&self, purpose: &str, chain_id: &str) -> Result<PathBuf, Error> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(self.dir.join("tmp").join(format!(
            "{purpose}-{}-{}-{n}",
            digest_hex(chain_id)?,
            std::process::id()
        )))
    }

    /// True when the snapshot of `chain_id` is committed.
    pub fn exists(&self, chain_id: &str) -> Result<bool, Error> {
        Ok(self.snapshot_dir(chain_id)?.join("fs").is_dir())
    }

    /// The `fs` directory of a committed snapshot: the directory to give overlayfs as a
    /// lowerdir. [`Error::NotFound`] when it has not been unpacked.
    pub fn path(&self, chain_id: &str) -> Result<PathBuf, Error> {
        let p = self.snapshot_dir(chain_id)?.join("fs");
        if p.is_dir() {
            Ok(p)
        } else {
            Err(Error::NotFound(chain_id.to_string()))
        }
    }

    /// The `meta.json` of a committed snapshot.
    pub fn meta(&self, chain_id: &str) -> Result<Meta, Error> {
        let p = self.snapshot_dir(chain_id)?.join("meta.json");
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(chain_id.to_string()))
            }
            Err(e) => return Err(io_error(format!("reading {}", p.display()))(e)),
        };
        serde_json::from_slice(&data).map_err(|source| Error::Meta {
            path: p.display().to_string(),
            source,
        })
    }

    /// Every committed snapshot, ordered by chain ID.
    pub fn list(&self) -> Result<Vec<Info>, Error> {
        let mut out = Vec::new();
        for chain_id in self.chain_ids()? {
            let path = self.snapshot_dir(&chain_id)?.join("fs");
            let meta = self.meta(&chain_id).ok();
            let users = self.users(&chain_id)?;
            out.push(Info {
                chain_id,
                path,
                meta,
                users,
            });
        }
        Ok(out)
    }

    fn chain_ids(&self) -> Result<Vec<String>, Error> {
        let base = self.dir.join("sha256");
        let mut ids = Vec::new();
        for ent in fs::read_dir(&base).map_err(io_error(format!("listing {}", base.display())))? {
            let ent = ent.map_err(io_error(format!("listing {}", base.display())))?;
            let id = format!("sha256:{}", ent.file_name().to_string_lossy());
            if digest_hex(&id).is_ok() {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Bundle ids recorded as users of a snapshot.
    pub fn users(&self, chain_id: &str) -> Result<Vec<String>, Error> {
        let p = self.snapshot_dir(chain_id)?.join("users");
        let mut users = Vec::new();
        match fs::read_dir(&p) {
            Ok(rd) => {
                for ent in rd {
                    let ent = ent.map_err(io_error(format!("listing {}", p.display())))?;
                    users.push(ent.file_name().to_string_lossy().into_owned());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(format!("listing {}", p.display()))(e)),
        }
        users.sort();
        Ok(users)
    }

    /// Records that bundle `bundle_id` (at `bundle_path`, kept for humans) uses the snapshots
    /// `chain_ids`, so [`Snapshots::gc`] and [`Snapshots::remove`] keep them. Writes
    /// `sha256/<hex>/users/<bundle_id>` under each chain ID's lock. Every snapshot must be
    /// committed ([`Error::NotFound`] otherwise, and nothing is recorded). Idempotent.
    pub fn acquire(
        &self,
        bundle_id: &str,
        bundle_path: &Path,
        chain_ids: &[impl AsRef<str>],
    ) -> Result<(), Error> {
        check_bundle_id(bundle_id)?;
        let mut done: Vec<&str> = Vec::new();
        for id in chain_ids {
            let id = id.as_ref();
            let r = (|| {
                let _lock = Lock::exclusive(&self.lock_path(id)?)?;
                let dir = self.snapshot_dir(id)?;
                if !dir.join("fs").is_dir() {
                    return Err(Error::NotFound(id.to_string()));
                }
                let users = dir.join("users");
                fs::create_dir_all(&users)
                    .map_err(io_error(format!("creating {}", users.display())))?;
                let p = users.join(bundle_id);
                let mut f =
                    fs::File::create(&p).map_err(io_error(format!("writing {}", p.display())))?;
                writeln!(f, "{}", bundle_path.display())
                    .map_err(io_error(format!("writing {}", p.display())))?;
                Ok(())
            })();
            if let Err(e) = r {
                for d in done {
                    let _ = self.release_one(bundle_id, d, &mut Vec::new());
                }
                return Err(e);
            }
            done.push(id);
        }
        Ok(())
    }

    fn release_one(
        &self,
        bundle_id: &str,
        chain_id: &str,
        held: &mut Vec<OwnedFd>,
    ) -> Result<bool, Error> {
        let _lock = Lock::exclusive(&self.lock_path(chain_id)?)?;
        let p = self.snapshot_dir(chain_id)?.join("users").join(bundle_id);
        // Opened before the unlink, so the caller may keep the inode: its block is freed at
        // the last close (on a disk mounted with `discard` that waits for the device).
        if let Ok(fd) = rfs::open(
            &p,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            held.push(fd);
        }
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(format!("removing {}", p.display()))(e)),
        }
    }

    /// Forgets every use recorded for bundle `bundle_id`; returns the chain IDs it used.
    /// Idempotent.
    pub fn release(&self, bundle_id: &str) -> Result<Vec<String>, Error> {
        self.release_holding(bundle_id, &mut Vec::new())
    }

    /// [`Snapshots::release`], with each removed `users/` file pushed to `held`, still open:
    /// the caller decides where the last close (which frees the file's block) happens.
    pub fn release_holding(
        &self,
        bundle_id: &str,
        held: &mut Vec<OwnedFd>,
    ) -> Result<Vec<String>, Error> {
        check_bundle_id(bundle_id)?;
        let mut released = Vec::new();
        for id in self.chain_ids()? {
            if self
                .snapshot_dir(&id)?
                .join("users")
                .join(bundle_id)
                .exists()
                && self.release_one(bundle_id, &id, held)?
            {
                released.push(id);
            }
        }
        Ok(released)
    }

    /// Removes one snapshot. Refused ([`Error::InUse`]) while a bundle uses it.
    pub fn remove(&self, chain_id: &str) -> Result<(), Error> {
        let _lock = Lock::exclusive(&self.lock_path(chain_id)?)?;
        self.remove_locked(chain_id)
    }

    fn remove_locked(&self, chain_id: &str) -> Result<(), Error> {
        let dir = self.snapshot_dir(chain_id)?;
        if !dir.exists() {
            return Err(Error::NotFound(chain_id.to_string()));
        }
        let users = self.users(chain_id)?;
        if !users.is_empty() {
            return Err(Error::InUse {
                chain_id: chain_id.to_string(),
                users: users.join(", "),
            });
        }
        // Out of sight first (atomic), then deleted at leisure.
        let tmp = self.temp_dir("rm", chain_id)?;
        fs::rename(&dir, &tmp).map_err(io_error(format!("moving {} away", dir.display())))?;
        fs::remove_dir_all(&tmp).map_err(io_error(format!("removing {}", tmp.display())))
    }

    /// Removes every snapshot not in `keep` (the chain IDs the images in the store need)
    /// that no bundle uses, and leftover temporary directories of crashed builds. A snapshot
    /// being built or locked by another process right now is left alone.
    pub fn gc(&self, keep: &HashSet<String>) -> Result<GcReport, Error> {
        let mut report = GcReport::default();
        for id in self.chain_ids()? {
            if keep.contains(&id) {
                continue;
            }
            let Some(_lock) = Lock::try_exclusive(&self.lock_path(&id)?)? else {
                continue;
            };
            if !self.users(&id)?.is_empty() {
                report.in_use.push(id);
                continue;
            }
            match self.remove_locked(&id) {
                Ok(()) => report.removed.push(id),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        report.temporaries = self.clean_temporaries()?;
        Ok(report)
    }

    /// Removes temporaries whose owner is gone: a build's chain ID lock is free, or a
    /// removal's process no longer exists.
    fn clean_temporaries(&self) -> Result<usize, Error> {
        let base = self.dir.join("tmp");
        let mut n = 0;
        for ent in fs::read_dir(&base).map_err(io_error(format!("listing {}", base.display())))? {
            let ent = ent.map_err(io_error(format!("listing {}", base.display())))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let mut parts = name.splitn(4, '-');
            let (Some(purpose), Some(hex), Some(pid)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let chain_id = format!("sha256:{hex}");
            if digest_hex(&chain_id).is_err() {
                continue;
            }
            let stale = match purpose {
                "build" => {
                    let lock = Lock::try_exclusive(&self.lock_path(&chain_id)?)?;
                    lock.is_some()
                }
                "rm" => {
                    !Path::new("/proc").join(pid).exists() || pid == std::process::id().to_string()
                }
                _ => false,
            };
            if stale {
                match fs::remove_dir_all(ent.path()) {
                    Ok(()) => n += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(io_error(format!("removing {}", ent.path().display()))(e))
                    }
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn fake_commit(s: &Snapshots, chain_id: &str) {
        let d = s.snapshot_dir(chain_id).unwrap();
        fs::create_dir_all(d.join("fs/etc")).unwrap();
    }

    #[test]
    fn path_is_not_found_until_committed() {
        let root = tempfile::tempdir().unwrap();
        let s = Snapshots::open(root.path()).unwrap();
        assert!(matches!(s.path(&id('a')), Err(Error::NotFound(_))));
        fake_commit(&s, &id('a'));
        assert_eq!(
            s.path(&id('a')).unwrap(),
            root.path()
                .join("snapshots/sha256")
                .join("a".repeat(64))
                .join("fs")
        );
        assert!(matches!(
            s.path("sha256:../x"),
            Err(Error::InvalidDigest(_))
        ));
    }

    #[test]
    fn users_keep_a_snapshot_from_removal_and_gc() {
        let root = tempfile::tempdir().unwrap();
        let s = Snapshots::open(root.path()).unwrap();
        fake_commit(&s, &id('a'));
        fake_commit(&s, &id('b'));
        s.acquire("bundle-1", Path::new("/tmp/b1"), &[id('a')])
            .unwrap();
        assert_eq!(s.users(&id('a')).unwrap(), vec!["bundle-1".to_string()]);
        assert!(matches!(s.remove(&id('a')), Err(Error::InUse { .. })));
        let report = s.gc(&HashSet::new()).unwrap();
        assert_eq!(report.removed, vec![id('b')]);
        assert_eq!(report.in_use, vec![id('a')]);
        assert_eq!(s.release("bundle-1").unwrap(), vec![id('a')]);
        s.remove(&id('a')).unwrap();
        assert!(!s.exists(&id('a')).unwrap());
        assert!(fs::read_dir(s.dir().join("tmp")).unwrap().next().is_none());
    }

    #[test]
    fn release_holding_keeps_the_unlinked_users_files_open() {
        let root = tempfile::tempdir().unwrap();
        let s = Snapshots::open(root.path()).unwrap();
        fake_commit(&s, &id('a'));
        fake_commit(&s, &id('b'));
        s.acquire("bundle-2", Path::new("/tmp/b2"), &[id('a'), id('b')])
            .unwrap();
        let mut held = Vec::new();
        let released = s.release_holding("bundle-2", &mut held).unwrap();
        assert_eq!(released, vec![id('a'), id('b')]);
        assert!(s.users(&id('a')).unwrap().is_empty());
        assert_eq!(held.len(), 2);
        for fd in &held {
            // The users file, unlinked but still open: its data is not freed yet.
            let st = rfs::fstat(fd).unwrap();
            assert_eq!(st.st_nlink, 0);
            assert_eq!(st.st_size, "/tmp/b2\n".len() as i64);
        }
        // Idempotent: nothing more to release, nothing held.
        let mut again = Vec::new();
        assert!(s
            .release_holding("bundle-2", &mut again)
            .unwrap()
            .is_empty());
        assert!(again.is_empty());
    }

    #[test]
    fn acquire_is_all_or_nothing() {
        let root = tempfile::tempdir().unwrap();
        let s = Snapshots::open(root.path()).unwrap();
        fake_commit(&s, &id('a'));
        let err = s
            .acquire("b", Path::new("/x"), &[id('a'), id('c')])
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        assert!(s.users(&id('a')).unwrap().is_empty());
        assert!(matches!(
            s.acquire("../x", Path::new("/x"), &[id('a')]),
            Err(Error::InvalidBundleId(_))
        ));
    }

    #[test]
    fn gc_keeps_what_images_need_and_removes_stale_builds() {
        let root = tempfile::tempdir().unwrap();
        let s = Snapshots::open(root.path()).unwrap();
        fake_commit(&s, &id('a'));
        let stale = s.temp_dir("build", &id('d')).unwrap();
        fs::create_dir_all(stale.join("fs")).unwrap();
        let keep: HashSet<String> = [id('a')].into_iter().collect();
        let report = s.gc(&keep).unwrap();
        assert!(report.removed.is_empty());
        assert_eq!(report.temporaries, 1);
        assert!(s.exists(&id('a')).unwrap());
        assert!(!stale.exists());
    }
}
