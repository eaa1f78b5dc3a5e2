//! Writing file data (holes kept) and copying nodes up from a lower layer.

use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::fsops::{self, os};
use crate::merged;

/// Runs of zero blocks of this size (aligned) are left as holes.
const ZERO_BLOCK: usize = 4096;
/// What a zero block is compared with (`==` on slices is a vectorised `memcmp`, several
/// times faster than testing byte by byte).
static ZEROS: [u8; ZERO_BLOCK] = [0; ZERO_BLOCK];

fn is_zero(b: &[u8]) -> bool {
    b == &ZEROS[..b.len()]
}

/// A modification time and an optional access time.
pub(crate) type Times = ((i64, u32), Option<(i64, u32)>);

pub(crate) fn set_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rfs::fsetxattr(
        dir,
        os(merged::OPAQUE),
        b"y",
        rfs::XattrFlags::empty(),
    )?)
}

pub(crate) fn st_times(st: &rfs::Stat) -> Times {
    (
        (st.st_mtime, st.st_mtime_nsec as u32),
        Some((st.st_atime, st.st_atime_nsec as u32)),
    )
}

/// Writes `len` bytes from `read` at `offset` of `fd`, leaving aligned runs of zero blocks as
/// holes. Returns the end of the last byte written (or `offset` when all were zero).
pub(crate) fn write_dense(
    fd: &OwnedFd,
    offset: u64,
    len: u64,
    buf: &mut [u8],
    read: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<u64> {
    let mut pos = offset;
    let end = offset + len;
    let mut written_end = offset;
    while pos < end {
        let want = buf.len().min((end - pos) as usize);
        let mut filled = 0;
        while filled < want {
            let n = read(&mut buf[filled..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "entry data ends early",
                ));
            }
            filled += n;
        }
        let data = &buf[..filled];
        let mut i = 0;
        while i < data.len() {
            // Blocks are aligned to the file offset so holes fall on block boundaries.
            let block_end = |at: usize| -> usize {
                let abs = pos + at as u64;
                let next = (abs / ZERO_BLOCK as u64 + 1) * ZERO_BLOCK as u64;
                ((next - pos) as usize).min(data.len())
            };
            let be = block_end(i);
            if is_zero(&data[i..be]) {
                i = be;
                continue;
            }
            let start = i;
            let mut j = be;
            while j < data.len() {
                let nb = block_end(j);
                if is_zero(&data[j..nb]) {
                    break;
                }
                j = nb;
            }
            pwrite_all(fd, &data[start..j], pos + start as u64)?;
            written_end = pos + j as u64;
            i = j;
        }
        pos += filled as u64;
    }
    Ok(written_end)
}

pub(crate) fn pwrite_all(fd: &OwnedFd, mut data: &[u8], mut at: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = rustix::io::pwrite(fd, data, at)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        data = &data[n..];
        at += n as u64;
    }
    Ok(())
}

/// Owner, mode, xattrs (but overlayfs' own) and times from `st`/`src` onto `dst` (a file or
/// directory opened for reading or writing).
pub(crate) fn copy_attrs_fd(
    src: BorrowedFd<'_>,
    st: &rfs::Stat,
    dst: BorrowedFd<'_>,
) -> io::Result<()> {
    rfs::fchown(
        dst,
        Some(rfs::Uid::from_raw(st.st_uid)),
        Some(rfs::Gid::from_raw(st.st_gid)),
    )?;
    rfs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    for (k, v) in fsops::lxattrs_at(src, b".")? {
        if !k.starts_with(b"trusted.overlay.") {
            rfs::fsetxattr(dst, os(&k), &v, rfs::XattrFlags::empty())?;
        }
    }
    Ok(())
}

/// Copies the non-directory `name` of `src_dir` (a lower layer) to the same name in
/// `dst_dir` with its owner, mode, xattrs and times.
pub(crate) fn copy_node(
    src_dir: BorrowedFd<'_>,
    name: &[u8],
    st: &rfs::Stat,
    dst_dir: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<()> {
    let ft = fsops::file_type(st);
    match ft {
        FileType::RegularFile => {
            let src = rfs::openat(
                src_dir,
                os(name),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let dst = rfs::openat(
                dst_dir,
                os(name),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut file = std::fs::File::from(rustix::io::fcntl_dupfd_cloexec(&src, 0)?);
            let size = st.st_size as u64;
            let written = write_dense(&dst, 0, size, buf, &mut |b| file.read(b))?;
            if written < size {
                rfs::ftruncate(&dst, size)?;
            }
            rfs::fchown(
                &dst,
                Some(rfs::Uid::from_raw(st.st_uid)),
                Some(rfs::Gid::from_raw(st.st_gid)),
            )?;
            rfs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        }
        FileType::Symlink => {
            let target = rfs::readlinkat(src_dir, os(name), Vec::new())?;
            rfs::symlinkat(target.as_c_str(), dst_dir, os(name))?;
            fsops::chown_at(dst_dir, name, st.st_uid, st.st_gid)?;
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
            let dev = (rfs::major(st.st_rdev), rfs::minor(st.st_rdev));
            fsops::mknod(dst_dir, name, ft, 0o600, dev)?;
            fsops::chown_at(dst_dir, name, st.st_uid, st.st_gid)?;
            rfs::chmodat(
                dst_dir,
                os(name),
                Mode::from_raw_mode(st.st_mode & 0o7777),
                AtFlags::empty(),
            )?;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "cannot copy a socket",
            ))
        }
    }
    for (k, v) in fsops::lxattrs_at(src_dir, name)? {
        if !k.starts_with(b"trusted.overlay.") {
            fsops::lsetxattr_at(dst_dir, name, &k, &v)?;
        }
    }
    let (mtime, atime) = st_times(st);
    fsops::set_times(dst_dir, name, mtime, atime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_are_found_whatever_their_alignment() {
        assert!(is_zero(&[]));
        assert!(is_zero(&ZEROS[..17]));
        let mut b = [0u8; ZERO_BLOCK];
        b[ZERO_BLOCK - 1] = 1;
        assert!(!is_zero(&b));
        assert!(is_zero(&b[..ZERO_BLOCK - 1]));
    }

    #[test]
    fn dense_writes_keep_every_byte_at_an_unaligned_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fd: OwnedFd = std::fs::File::create(&path).unwrap().into();
        let mut data = vec![7u8; 10];
        data.extend(std::iter::repeat_n(0u8, 3 * ZERO_BLOCK));
        data.extend(std::iter::repeat_n(9u8, 5000));
        data.extend(std::iter::repeat_n(0u8, 100));
        let mut src = &data[..];
        let mut buf = vec![0u8; 3000];
        let end = write_dense(&fd, 100, data.len() as u64, &mut buf, &mut |b| src.read(b)).unwrap();
        rfs::ftruncate(&fd, 100 + data.len() as u64).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[100..], &data[..]);
        assert!(got[..100].iter().all(|&b| b == 0));
        // The last non-zero byte is written; zeros after it only up to its block's end.
        let last = 100 + 10 + 3 * ZERO_BLOCK as u64 + 5000;
        assert!((last..=100 + data.len() as u64).contains(&end), "{end}");
    }
}
