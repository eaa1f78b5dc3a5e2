//! `bpf(2)` for cgroup device programs: load a program, attach it to a cgroup, list, replace
//! and detach the programs attached there. The instructions themselves are plain data built
//! elsewhere (`berth_cgroup`'s device program generator); this module only moves them in and
//! out of the kernel.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::check_long;

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach type of device programs.
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: several programs on one cgroup, all must allow (what runc uses).
pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
/// `BPF_F_REPLACE`: swap `replace` for the new program in one step (Linux 5.6+).
pub const BPF_F_REPLACE: u32 = 1 << 2;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

/// One eBPF instruction, `struct bpf_insn`, already encoded: `code`, the register byte
/// (destination in the low nibble, source in the high one), `off`, `imm`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[repr(C, align(8))]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C, align(8))]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    /// `relative_fd` (Linux 6.6+): zero. Every attr struct here spells out its tail so that
    /// no padding byte, which the kernel checks is zero, is left undefined.
    relative_fd: u32,
}

#[repr(C, align(8))]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C, align(8))]
#[derive(Default)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    _pad: u32,
}

#[repr(C, align(8))]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The first fields of `struct bpf_prog_info` (the kernel fills what fits).
#[repr(C, align(8))]
#[derive(Default)]
struct ProgInfoRaw {
    kind: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// What the kernel says about a loaded program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfProgInfo {
    pub id: u32,
    /// `BPF_PROG_TYPE_*`.
    pub kind: u32,
    /// The name given at load time (at most 15 bytes).
    pub name: String,
    /// The kernel's tag: a hash of the instructions.
    pub tag: [u8; 8],
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, correctly laid out `union bpf_attr` member of the stated size;
    // every pointer it carries (set by the callers below) points into memory that outlives
    // the call and is as large as the length stored beside it.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    })
}

fn owned(raw: libc::c_long) -> OwnedFd {
    // SAFETY: the bpf commands that return fds return a fresh fd owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(raw as RawFd) }
}

/// `BPF_PROG_LOAD`: loads `insns` as a program of `prog_type` (and `expected_attach_type`),
/// named `name` (up to 15 bytes of `[A-Za-z0-9_.]`). When `log` is given the verifier writes
/// its log there (level 1), which says why a program was refused.
pub fn bpf_prog_load(
    prog_type: u32,
    expected_attach_type: u32,
    insns: &[BpfInsn],
    license: &CStr,
    name: &str,
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    let mut prog_name = [0u8; 16];
    let n = name.len().min(15);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        expected_attach_type,
        ..Default::default()
    };
    if let Some(buf) = log {
        if let Some(first) = buf.first_mut() {
            *first = 0;
        }
        attr.log_level = 1;
        attr.log_size = buf.len().min(u32::MAX as usize) as u32;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    bpf(BPF_PROG_LOAD, &mut attr).map(owned)
}

/// `BPF_PROG_ATTACH`: attaches `prog` to the cgroup `target` (a directory fd) as
/// `attach_type`, with `flags`; with [`BPF_F_REPLACE`], `replace` is swapped out in the same
/// step.
pub fn bpf_prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
    replace: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: replace.map_or(0, |f| f.as_raw_fd() as u32),
        relative_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// `BPF_PROG_DETACH`: detaches `prog` (attached as `attach_type`) from the cgroup `target`.
pub fn bpf_prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// `BPF_PROG_QUERY`: the ids of the programs attached to the cgroup `target` as
/// `attach_type` (its own, not the inherited ones).
pub fn bpf_prog_query(target: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: target.as_raw_fd() as u32,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // ENOSPC: more programs than room; prog_cnt says how many.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 1 << 16 => {
                let want = (attr.prog_cnt as usize).max(ids.len() * 2);
                ids = vec![0u32; want];
            }
            Err(e) => return Err(e),
        }
    }
}

/// `BPF_PROG_GET_FD_BY_ID`: an fd for the loaded program `id`.
pub fn bpf_prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a program fd: its id, type, name and tag.
pub fn bpf_prog_info(prog: BorrowedFd<'_>) -> io::Result<BpfProgInfo> {
    let mut info = ProgInfoRaw::default();
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoRaw>() as u32,
        info: &mut info as *mut ProgInfoRaw as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let end = info.name.iter().position(|b| *b == 0).unwrap_or(16);
    Ok(BpfProgInfo {
        id: info.id,
        kind: info.kind,
        name: String::from_utf8_lossy(&info.name[..end]).into_owned(),
        tag: info.tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel_abi() {
        // Offsets from include/uapi/linux/bpf.h.
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(AttachAttr, replace_bpf_fd), 16);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(std::mem::offset_of!(ProgInfoRaw, name), 64);
        // no implicit padding (the kernel refuses non-zero bytes past the fields it knows)
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 24);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
        assert_eq!(std::mem::size_of::<GetIdAttr>(), 16);
        assert_eq!(std::mem::size_of::<InfoAttr>(), 16);
        assert_eq!(std::mem::size_of::<ProgInfoRaw>(), 80);
    }
}
