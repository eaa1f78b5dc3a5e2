//! A streaming tar reader with bounded memory.
//!
//! It reads ustar, GNU and PAX archives as layer producers write them: GNU long names and
//! links (`L`, `K`), PAX local and global headers (`x`, `g`) with `path`, `linkpath`, `size`,
//! `uid`, `gid`, `mtime`, `atime`, `SCHILY.xattr.*` and the GNU sparse keys (format 1.0),
//! old GNU sparse entries (`S`), base-256 numbers. Every piece of metadata that is read into
//! memory has a cap ([`META_LIMIT`]), so a hostile header cannot make it allocate more.
//! File data is never buffered here: the caller reads it with [`Reader::read_data`].

use std::io::{self, Read};

/// The most bytes of metadata (a long name, one PAX header, a sparse map) read into memory.
pub(crate) const META_LIMIT: u64 = 1 << 20;
/// The most segments a sparse map may have.
const SPARSE_LIMIT: usize = 1 << 16;
const BLOCK: u64 = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// One archive member with all of its metadata resolved (long names, PAX overrides).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: (i64, u32),
    pub atime: Option<(i64, u32)>,
    /// The logical size of a regular file (for sparse files, with the holes).
    pub real_size: u64,
    /// Data segments `(offset, length)` of a sparse file, in order; `None` for a dense one.
    pub sparse: Option<Vec<(u64, u64)>>,
    pub dev: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads entries one after another from an uncompressed tar stream.
pub(crate) struct Reader<R> {
    inner: R,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    pad: u64,
    /// Bytes consumed so far (for messages).
    offset: u64,
    globals: Vec<(Vec<u8>, Vec<u8>)>,
}

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Reader {
            inner,
            remaining: 0,
            pad: 0,
            offset: 0,
            globals: Vec::new(),
        }
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(format!(
                    "archive ends in the middle of an entry at byte {}",
                    self.offset
                ))
            } else {
                e
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact_counted(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads the current entry's data (at most what is left of it).
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let k = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.inner.read(&mut buf[..k])?;
        if n == 0 {
            return Err(corrupt(format!(
                "archive ends in the middle of an entry at byte {}",
                self.offset
            )));
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }

    /// Fills `buf` completely from the current entry's data.
    pub(crate) fn read_data_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_data(&mut buf[done..])?;
            if n == 0 {
                return Err(corrupt("entry data shorter than its sparse map says"));
            }
            done += n;
        }
        Ok(())
    }

    /// Data bytes of the current entry not yet read.
    #[cfg(test)]
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    fn read_meta(&mut self, size: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > META_LIMIT {
            return Err(corrupt(format!(
                "{what} of {size} bytes exceeds the {META_LIMIT}-byte limit"
            )));
        }
        let mut v = vec![0u8; size as usize];
        self.read_exact_counted(&mut v)?;
        self.skip(pad_of(size))?;
        Ok(v)
    }

    /// The next entry, or `None` at the end-of-archive marker (or a clean end of stream).
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        let (rem, pad) = (self.remaining, self.pad);
        self.remaining = 0;
        self.pad = 0;
        self.skip(rem + pad)?;

        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
        let mut header = [0u8; 512];
        loop {
            let start = self.offset;
            // A clean end of stream without the zero blocks is accepted, as GNU tar does.
            match read_first(&mut self.inner, &mut header)? {
                0 => return Ok(None),
                512 => self.offset += 512,
                _ => {
                    return Err(corrupt(format!(
                        "archive ends inside a header at byte {start}"
                    )))
                }
            }
            if header.iter().all(|&b| b == 0) {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(corrupt("extension header without the entry it describes"));
                }
                return Ok(None);
            }
            check_sum(&header).map_err(|e| corrupt(format!("header at byte {start}: {e}")))?;
            let typeflag = header[156];
            let size = number(&header[124..136])
                .map_err(|e| corrupt(format!("header at byte {start}: size: {e}")))?;
            match typeflag {
                b'L' => {
                    long_name = Some(trim_nul(self.read_meta(size, "GNU long name")?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(self.read_meta(size, "GNU long link")?));
                    continue;
                }
                b'x' | b'X' => {
                    let data = self.read_meta(size, "PAX header")?;
                    let mut records = parse_pax(&data)
                        .map_err(|e| corrupt(format!("PAX header at byte {start}: {e}")))?;
                    pax.get_or_insert_with(Vec::new).append(&mut records);
                    continue;
                }
                b'g' => {
                    let data = self.read_meta(size, "PAX global header")?;
                    let records = parse_pax(&data)
                        .map_err(|e| corrupt(format!("PAX global header at byte {start}: {e}")))?;
                    for (k, v) in records {
                        self.globals.retain(|(gk, _)| *gk != k);
                        if !v.is_empty() {
                            self.globals.push((k, v));
                        }
                        if self.globals.len() > 4096 {
                            return Err(corrupt("too many PAX global records"));
                        }
                    }
                    continue;
                }
                _ => {}
            }
            let mut records: Vec<(Vec<u8>, Vec<u8>)> = self.globals.clone();
            if let Some(local) = pax.take() {
                records.extend(local);
            }
            return self
                .finish_entry(&header, typeflag, size, long_name, long_link, records)
                .map(Some)
                .map_err(|e| io::Error::new(e.kind(), format!("entry at byte {start}: {e}")));
        }
    }

    fn finish_entry(
        &mut self,
        h: &[u8; 512],
        typeflag: u8,
        mut size: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        records: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> io::Result<Entry> {
        let ustar = &h[257..263] == b"ustar\0";
        let gnu = &h[257..263] == b"ustar ";
        let mut path = match long_name {
            Some(n) => n,
            None => {
                let name = cstr(&h[0..100]);
                let prefix = if ustar { cstr(&h[345..500]) } else { &[][..] };
                if prefix.is_empty() {
                    name.to_vec()
                } else {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(name);
                    p
                }
            }
        };
        let mut link = long_link.unwrap_or_else(|| cstr(&h[157..257]).to_vec());
        let mode = number(&h[100..108])? as u32 & 0o7777;
        let mut uid = number(&h[108..116])?;
        let mut gid = number(&h[116..124])?;
        let mut mtime = (number_signed(&h[136..148])?, 0u32);
        let mut atime = None;
        let dev = if ustar || gnu {
            (number(&h[329..337])? as u32, number(&h[337..345])? as u32)
        } else {
            (0, 0)
        };
        let mut xattrs = Vec::new();
        let mut sparse_major: Option<Vec<u8>> = None;
        let mut sparse_name: Option<Vec<u8>> = None;
        let mut sparse_realsize: Option<u64> = None;
        for (k, v) in records {
            match &k[..] {
                b"path" => path = v,
                b"linkpath" => link = v,
                b"size" => size = decimal(&v)?,
                b"uid" => uid = decimal(&v)?,
                b"gid" => gid = decimal(&v)?,
                b"mtime" => mtime = timestamp(&v)?,
                b"atime" => atime = Some(timestamp(&v)?),
                b"GNU.sparse.major" => sparse_major = Some(v),
                b"GNU.sparse.name" => sparse_name = Some(v),
                b"GNU.sparse.realsize" | b"GNU.sparse.size" => sparse_realsize = Some(decimal(&v)?),
                b"GNU.sparse.map" | b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "PAX sparse format 0.x is not supported (1.0 and old GNU are)",
                    ));
                }
                _ => {
                    if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((name.to_vec(), v));
                    }
                }
            }
        }
        let kind = match typeflag {
            b'0' | 0 | b'7' | b'S' => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::Char,
            b'4' => EntryKind::Block,
            b'5' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("entry type {:?} is not supported", other as char),
                ))
            }
        };
        // Old tars mark directories by a trailing slash on a regular entry.
        let kind = if kind == EntryKind::File && typeflag == 0 && path.ends_with(b"/") {
            EntryKind::Dir
        } else {
            kind
        };
        let data_size = match kind {
            EntryKind::File => size,
            // Links, devices, fifos and directories carry no data; skip any that is there.
            _ => size,
        };
        self.remaining = data_size;
        self.pad = pad_of(data_size);
        let mut real_size = if kind == EntryKind::File { size } else { 0 };
        let mut sparse = None;
        if typeflag == b'S' {
            if !gnu {
                return Err(corrupt("sparse entry without a GNU header"));
            }
            let (map, real) = self.gnu_sparse_map(h)?;
            sparse = Some(map);
            real_size = real;
        } else if kind == EntryKind::File && sparse_major.is_some() {
            if sparse_major.as_deref() != Some(b"1") {
                return Err(corrupt(
                    "PAX sparse formats other than 1.0 are not supported",
                ));
            }
            if let Some(name) = sparse_name {
                path = name;
            }
            let map = self.pax_sparse_map()?;
            sparse = Some(map);
            real_size = sparse_realsize
                .ok_or_else(|| corrupt("PAX sparse file without GNU.sparse.realsize"))?;
        }
        if let Some(map) = &sparse {
            check_sparse(map, real_size, self.remaining)?;
        }
        Ok(Entry {
            path,
            link,
            kind,
            mode,
            uid,
            gid,
            mtime,
            atime,
            real_size,
            sparse,
            dev,
            xattrs,
        })
    }

    /// The sparse map of an old GNU sparse entry: four slots in the header, then extension
    /// blocks of 21 while the "is extended" flag is set.
    fn gnu_sparse_map(&mut self, h: &[u8; 512]) -> io::Result<(Vec<(u64, u64)>, u64)> {
        let mut map = Vec::new();
        let push = |map: &mut Vec<(u64, u64)>, slot: &[u8]| -> io::Result<()> {
            if slot[0] == 0 {
                return Ok(());
            }
            map.push((number(&slot[0..12])?, number(&slot[12..24])?));
            Ok(())
        };
        for i in 0..4 {
            push(&mut map, &h[386 + i * 24..386 + (i + 1) * 24])?;
        }
        let real = number(&h[483..495])?;
        let mut extended = h[482] != 0;
        let mut block = [0u8; 512];
        while extended {
            // Extension blocks sit between the header and the data; they are not data.
            self.read_exact_counted(&mut block)?;
            for i in 0..21 {
                push(&mut map, &block[i * 24..(i + 1) * 24])?;
            }
            extended = block[504] != 0;
            if map.len() > SPARSE_LIMIT {
                return Err(corrupt("sparse map too long"));
            }
        }
        Ok((map, real))
    }

    /// The sparse map of a PAX 1.0 sparse file: decimal numbers one a line at the start of
    /// the data (count, then offset and length pairs), padded to a block.
    fn pax_sparse_map(&mut self) -> io::Result<Vec<(u64, u64)>> {
        let mut consumed = 0u64;
        let mut line = Vec::new();
        let mut next_number = |r: &mut Self, consumed: &mut u64| -> io::Result<u64> {
            line.clear();
            loop {
                let mut b = [0u8; 1];
                r.read_data_exact(&mut b)?;
                *consumed += 1;
                if b[0] == b'\n' {
                    break;
                }
                line.push(b[0]);
                if line.len() > 20 {
                    return Err(corrupt("malformed sparse map"));
                }
            }
            decimal(&line)
        };
        let count = next_number(self, &mut consumed)?;
        if count as usize > SPARSE_LIMIT {
            return Err(corrupt("sparse map too long"));
        }
        let mut map = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let off = next_number(self, &mut consumed)?;
            let len = next_number(self, &mut consumed)?;
            map.push((off, len));
        }
        let pad = pad_of(consumed);
        let mut skip = vec![0u8; pad as usize];
        self.read_data_exact(&mut skip)?;
        Ok(map)
    }
}

/// Reads a whole block, or nothing at a clean end of stream; returns how much was read.
fn read_first(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn check_sparse(map: &[(u64, u64)], real_size: u64, data: u64) -> io::Result<()> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(off, len) in map {
        if off < end {
            return Err(corrupt("sparse map segments overlap or are out of order"));
        }
        end = off
            .checked_add(len)
            .ok_or_else(|| corrupt("sparse map overflows"))?;
        total += len;
    }
    if end > real_size {
        return Err(corrupt("sparse map reaches past the file's size"));
    }
    if total != data {
        return Err(corrupt("sparse map does not match the entry's data size"));
    }
    Ok(())
}

fn pad_of(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

fn check_sum(h: &[u8; 512]) -> Result<(), String> {
    let stored = number(&h[148..156]).map_err(|e| format!("checksum field: {e}"))?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err("checksum mismatch (not a tar archive, or corrupt)".into())
    }
}

/// An octal field (space or NUL padded) or a GNU base-256 field (high bit set).
fn number(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] == 0xff {
            return Err(corrupt("negative number"));
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| corrupt("number overflows"))?;
        }
        return Ok(v);
    }
    let digits = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ');
    let mut v: u64 = 0;
    for b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return Err(corrupt(format!("bad octal digit {:?}", b as char)));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| corrupt("number overflows"))?;
    }
    Ok(v)
}

/// Like [`number`], but a base-256 field may be negative (times before 1970).
fn number_signed(field: &[u8]) -> io::Result<i64> {
    if field[0] == 0xff {
        let mut v: i64 = -1;
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(i64::from(b)).map(|x| x - 255))
                .ok_or_else(|| corrupt("number overflows"))?;
        }
        return Ok(v);
    }
    let v = number(field)?;
    i64::try_from(v).map_err(|_| corrupt("time overflows"))
}

fn decimal(v: &[u8]) -> io::Result<u64> {
    let s = std::str::from_utf8(v).map_err(|_| corrupt("non-decimal number"))?;
    s.trim()
        .parse::<u64>()
        .map_err(|_| corrupt(format!("bad decimal number {s:?}")))
}

/// A PAX time: seconds with an optional fraction, possibly negative.
fn timestamp(v: &[u8]) -> io::Result<(i64, u32)> {
    let s = std::str::from_utf8(v).map_err(|_| corrupt("bad PAX time"))?;
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let secs: i64 = int
        .parse()
        .map_err(|_| corrupt(format!("bad PAX time {s:?}")))?;
    let mut nanos: u32 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let d = c
            .to_digit(10)
            .ok_or_else(|| corrupt(format!("bad PAX time {s:?}")))?;
        nanos += d * 10u32.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        // "-1.5" means one and a half seconds before the epoch.
        return Ok((secs - 1, 1_000_000_000 - nanos));
    }
    Ok((secs, nanos))
}

/// A key and its value.
type Record = (Vec<u8>, Vec<u8>);

/// Parses PAX records: `LEN KEY=VALUE\n`, where LEN counts the whole record.
fn parse_pax(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad record length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("record length does not match".into());
        }
        let record = &data[sp + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("record without '='")?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(data: &[u8]) -> Vec<(Entry, Vec<u8>)> {
        let mut r = Reader::new(data);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut content = vec![0u8; r.remaining() as usize];
            r.read_data_exact(&mut content).unwrap();
            out.push((e, content));
        }
        out
    }

    #[test]
    fn reads_what_the_tar_crate_writes_including_long_names_and_pax() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o4755);
        h.set_uid(4_294_967_294);
        h.set_gid(7);
        h.set_mtime(1_700_000_000);
        let long = "d/".to_string() + &"ü".repeat(120);
        b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
        b.append_pax_extensions([
            ("SCHILY.xattr.user.k", &b"v\0x"[..]),
            ("mtime", &b"12.5"[..]),
        ])
        .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "l", "/target").unwrap();
        b.finish().unwrap();
        let data = b.into_inner().unwrap();
        let got = entries(&data);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.path, long.as_bytes());
        assert_eq!(got[0].0.mode, 0o4755);
        assert_eq!(got[0].0.uid, 4_294_967_294);
        assert_eq!(got[0].1, b"hello");
        assert_eq!(got[1].0.kind, EntryKind::Symlink);
        assert_eq!(got[1].0.link, b"/target");
        assert_eq!(
            got[1].0.xattrs,
            vec![(b"user.k".to_vec(), b"v\0x".to_vec())]
        );
        assert_eq!(got[1].0.mtime, (12, 500_000_000));
    }

    #[test]
    fn numbers_in_octal_and_base256() {
        assert_eq!(number(b"0000644\0").unwrap(), 0o644);
        assert_eq!(number(b"  755 \0\0").unwrap(), 0o755);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 1, 0]).unwrap(), 256);
        assert!(number(b"0009\0\0\0\0").is_err());
        assert_eq!(timestamp(b"-1.5").unwrap(), (-2, 500_000_000));
    }

    #[test]
    fn a_huge_pax_header_is_refused_without_allocating_it() {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(1 << 40);
        h.set_path("pax").unwrap();
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[0u8; 1024]);
        let err = Reader::new(&data[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn garbage_is_a_checksum_error() {
        let data = vec![b'x'; 1024];
        let err = Reader::new(&data[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn truncated_data_is_an_error() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2000);
        b.append_data(&mut h, "f", &vec![1u8; 2000][..]).unwrap();
        let data = b.into_inner().unwrap();
        let mut r = Reader::new(&data[..1000]);
        r.next_entry().unwrap().unwrap();
        let mut buf = vec![0u8; 2000];
        assert!(r.read_data_exact(&mut buf).is_err());
    }

    #[test]
    fn unknown_entry_types_are_unsupported_not_corrupt() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::new(b'V'));
        h.set_path("volume").unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[0u8; 1024]);
        let err = Reader::new(&data[..]).next_entry().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("entry type 'V'"), "{err}");
    }

    #[test]
    fn pax_records_parse() {
        let recs = parse_pax(b"12 path=abc\n11 uid=123\n").unwrap();
        assert_eq!(recs[0], (b"path".to_vec(), b"abc".to_vec()));
        assert_eq!(recs[1], (b"uid".to_vec(), b"123".to_vec()));
        assert!(parse_pax(b"99 path=abc\n").is_err());
    }
}
