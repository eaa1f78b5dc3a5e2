//! The device allow-list on cgroup v2: `linux.resources.devices` (then the default rules)
//! become a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the container's cgroup.
//!
//! The rules are first run through an emulation of the v1 devices controller (a default,
//! allow or deny, and a list of exceptions keyed by type, major and minor, as the kernel's
//! `devcgroup_update_access` keeps them), so a spec means the same on a v1 and a v2 host. The
//! emulation starts from "deny everything", as runc's does on v2. The program then checks the
//! exceptions in turn and returns the default when none matches; with a deny default an
//! exception must cover every access asked for (the kernel's `match_exception`), with an allow
//! default any overlap denies (`match_exception_partial`). runc's generator checks "covers"
//! in both cases, so `deny c 1:3 w` under an allow default lets runc's containers open the
//! device read-write; berth follows the v1 kernel there (docs/security.md).
//!
//! The generated program is plain data ([`program`]) with unit tests; [`Cgroup::set_device_rules`]
//! loads and attaches it (berth_sys), replacing the program berth attached before.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use berth_sys::{self as sys, BpfInsn};

use crate::resources::DEFAULT_ALLOWED;
use crate::{Cgroup, DeviceRule, Error, Result};

/// The name berth gives its device programs: how `update` finds the one to replace.
pub const PROGRAM_NAME: &str = "berth_devices";
/// The license the kernel is told (no GPL-only helper is called).
const LICENSE: &std::ffi::CStr = c"Apache-2.0";

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: the type in the low
// 16 bits of access_type, the access in the high ones.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: u8 = 1;
const ACC_READ: u8 = 2;
const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One exception of the emulated v1 list: a device type, a major and minor (`None`: any),
/// and the access bits it grants (or, under an allow default, denies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exception {
    kind: char,
    major: Option<u32>,
    minor: Option<u32>,
    access: u8,
}

impl Exception {
    fn same_device(&self, other: &Exception) -> bool {
        self.kind == other.kind && self.major == other.major && self.minor == other.minor
    }
}

/// The state of a v1 devices cgroup: its default and its exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeviceList {
    default_allow: bool,
    exceptions: Vec<Exception>,
}

impl DeviceList {
    /// Deny everything, no exceptions (runc's starting point on v2).
    fn deny_all() -> DeviceList {
        DeviceList {
            default_allow: false,
            exceptions: Vec::new(),
        }
    }

    /// One rule, as a write to `devices.allow` (allow) or `devices.deny` (deny) would change a
    /// v1 cgroup: `a` resets the default and drops every exception; a rule of the default's
    /// kind removes access from the exception with the same key; the other kind adds it.
    fn apply(&mut self, rule: &DeviceRule) -> Result<()> {
        let Some(ex) = exception(rule)? else {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return Ok(());
        };
        if rule.allow != self.default_allow {
            match self.exceptions.iter_mut().find(|e| e.same_device(&ex)) {
                Some(e) => e.access |= ex.access,
                None => self.exceptions.push(ex),
            }
            return Ok(());
        }
        // Removing access: v1 silently ignores a removal that a wider (wildcard) exception
        // still covers; refuse it instead, as runc does, so nobody believes a hole was made.
        for wide in &self.exceptions {
            let wider = wide.kind == ex.kind
                && !wide.same_device(&ex)
                && (wide.major.is_none() || wide.major == ex.major)
                && (wide.minor.is_none() || wide.minor == ex.minor);
            if wider && wide.access & ex.access != 0 {
                return Err(Error::Invalid {
                    what: format!("devices rule {}", crate::resources::device_line(rule)),
                    why: format!(
                        "cannot {} part of the wider rule {}, which the kernel would keep",
                        if rule.allow { "allow" } else { "deny" },
                        rule_text(wide),
                    ),
                });
            }
        }
        for e in &mut self.exceptions {
            if e.same_device(&ex) {
                e.access &= !ex.access;
            }
        }
        self.exceptions.retain(|e| e.access != 0);
        Ok(())
    }
}

fn rule_text(e: &Exception) -> String {
    let num = |n: Option<u32>| n.map_or("*".to_string(), |v| v.to_string());
    let mut access = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if e.access & bit != 0 {
            access.push(c);
        }
    }
    format!("{} {}:{} {access}", e.kind, num(e.major), num(e.minor))
}

/// The exception a rule names, or `None` for an `a` (all devices) rule.
fn exception(rule: &DeviceRule) -> Result<Option<Exception>> {
    let invalid = |why: String| Error::Invalid {
        what: format!("devices rule {}", crate::resources::device_line(rule)),
        why,
    };
    let kind = match rule.kind.as_deref().unwrap_or("a") {
        "a" => return Ok(None),
        "b" => 'b',
        "c" => 'c',
        other => return Err(invalid(format!("type {other:?} is not a, b or c"))),
    };
    let number = |n: Option<i64>, what: &str| -> Result<Option<u32>> {
        match n {
            None => Ok(None),
            Some(v) if v < 0 => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| invalid(format!("{what} {v} is above {}", u32::MAX))),
        }
    };
    let mut access = 0;
    for c in rule
        .access
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm")
        .chars()
    {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => return Err(invalid(format!("access {other:?} is not r, w or m"))),
        };
    }
    Ok(Some(Exception {
        kind,
        major: number(rule.major, "major")?,
        minor: number(rule.minor, "minor")?,
        access,
    }))
}

/// A rule in the v1 file syntax (`c 1:3 rwm`, `b *:* m`, `a`), as the default list is kept.
pub(crate) fn parse_rule(allow: bool, line: &str) -> Option<DeviceRule> {
    let mut parts = line.split_whitespace();
    let kind = parts.next()?;
    if kind == "a" {
        return Some(DeviceRule {
            allow,
            kind: Some("a".into()),
            ..Default::default()
        });
    }
    let (major, minor) = parts.next()?.split_once(':')?;
    let num = |s: &str| -> Option<Option<i64>> {
        if s == "*" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    Some(DeviceRule {
        allow,
        kind: Some(kind.into()),
        major: num(major)?,
        minor: num(minor)?,
        access: Some(parts.next().unwrap_or("rwm").into()),
    })
}

/// The rules a container's cgroup enforces: `rules` in order, then the defaults every
/// container gets (runc's list: null, zero, full, tty, random, urandom, ptmx, /dev/pts/*, and
/// mknod of any device).
fn effective_list(rules: &[DeviceRule]) -> Result<DeviceList> {
    let mut list = DeviceList::deny_all();
    for rule in rules {
        list.apply(rule)?;
    }
    for line in DEFAULT_ALLOWED {
        list.apply(&parse_rule(true, line).expect("the default rules parse"))?;
    }
    Ok(list)
}

/// What `rules` (then the defaults) leave, as a v1 devices cgroup would hold it: whether
/// its default is allow (then the exceptions deny), and the exceptions, one rule each (`*`
/// as `None`, access in `rwm` order, `allow` the opposite of the default). For the
/// `--systemd-cgroup` driver's DevicePolicy/DeviceAllow properties on v1 hosts.
pub fn device_list(rules: &[DeviceRule]) -> Result<(bool, Vec<DeviceRule>)> {
    let list = effective_list(rules)?;
    let exceptions = list
        .exceptions
        .iter()
        .map(|e| {
            let mut access = String::new();
            for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
                if e.access & bit != 0 {
                    access.push(c);
                }
            }
            DeviceRule {
                allow: !list.default_allow,
                kind: Some(e.kind.to_string()),
                major: e.major.map(i64::from),
                minor: e.minor.map(i64::from),
                access: Some(access),
            }
        })
        .collect();
    Ok((list.default_allow, exceptions))
}

// --- instruction encoding (include/uapi/linux/bpf.h, bpf_common.h) --------------------------

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}
/// dst = *(u32 *)(src + off)
fn load_word(dst: u8, src: u8, off: i16) -> BpfInsn {
    insn(0x61, dst, src, off, 0) // BPF_LDX | BPF_MEM | BPF_W
}
/// (u32) dst &= imm
fn and32(dst: u8, imm: i32) -> BpfInsn {
    insn(0x54, dst, 0, 0, imm) // BPF_ALU | BPF_AND | BPF_K
}
/// (u32) dst >>= imm
fn rsh32(dst: u8, imm: i32) -> BpfInsn {
    insn(0x74, dst, 0, 0, imm) // BPF_ALU | BPF_RSH | BPF_K
}
/// (u32) dst = src
fn mov32_reg(dst: u8, src: u8) -> BpfInsn {
    insn(0xbc, dst, src, 0, 0) // BPF_ALU | BPF_MOV | BPF_X
}
/// (u32) dst = imm
fn mov32(dst: u8, imm: i32) -> BpfInsn {
    insn(0xb4, dst, 0, 0, imm) // BPF_ALU | BPF_MOV | BPF_K
}
/// if dst != imm goto +off
fn jne(dst: u8, imm: i32, off: i16) -> BpfInsn {
    insn(0x55, dst, 0, off, imm) // BPF_JMP | BPF_JNE | BPF_K
}
/// if dst != src goto +off
fn jne_reg(dst: u8, src: u8, off: i16) -> BpfInsn {
    insn(0x5d, dst, src, off, 0) // BPF_JMP | BPF_JNE | BPF_X
}
/// if dst == imm goto +off
fn jeq(dst: u8, imm: i32, off: i16) -> BpfInsn {
    insn(0x15, dst, 0, off, imm) // BPF_JMP | BPF_JEQ | BPF_K
}
fn exit() -> BpfInsn {
    insn(0x95, 0, 0, 0, 0) // BPF_JMP | BPF_EXIT
}

/// Where a jump goes before the block it sits in is complete: the next block.
const TO_NEXT: i16 = i16::MIN;

/// The program for a device list: load type (R2), access (R3), major (R4), minor (R5); one
/// block per exception that returns the opposite of the default when the device matches and
/// jumps to the next block otherwise; the default last.
fn compile(list: &DeviceList) -> Vec<BpfInsn> {
    let mut prog = vec![
        load_word(R2, R1, 0),
        and32(R2, 0xffff),
        load_word(R3, R1, 0),
        rsh32(R3, 16),
        load_word(R4, R1, 4),
        load_word(R5, R1, 8),
    ];
    for ex in &list.exceptions {
        let mut block = Vec::with_capacity(9);
        let kind = if ex.kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
        block.push(jne(R2, kind, TO_NEXT));
        if ex.access != ACC_ALL {
            block.push(mov32_reg(R1, R3));
            block.push(and32(R1, i32::from(ex.access)));
            if list.default_allow {
                // A deny exception: any access it names is refused.
                block.push(jeq(R1, 0, TO_NEXT));
            } else {
                // An allow exception: it must grant every access asked for.
                block.push(jne_reg(R1, R3, TO_NEXT));
            }
        }
        // A number above i32::MAX sign-extends and never equals the u32 the kernel passes:
        // no device has one (majors are 12 bits, minors 20).
        if let Some(major) = ex.major {
            block.push(jne(R4, major as i32, TO_NEXT));
        }
        if let Some(minor) = ex.minor {
            block.push(jne(R5, minor as i32, TO_NEXT));
        }
        block.push(mov32(R0, i32::from(!list.default_allow)));
        block.push(exit());
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.off == TO_NEXT {
                ins.off = (len - 1 - i) as i16;
            }
        }
        prog.extend(block);
    }
    prog.push(mov32(R0, i32::from(list.default_allow)));
    prog.push(exit());
    prog
}

/// The device program for `rules` (then the defaults).
pub fn program(rules: &[DeviceRule]) -> Result<Vec<BpfInsn>> {
    Ok(compile(&effective_list(rules)?))
}

impl Cgroup {
    /// Enforces `rules` (then the default rules) on a v2 cgroup with a device program:
    /// loads it, attaches it with `BPF_F_ALLOW_MULTI` (as runc) and detaches the program berth
    /// attached there before, if any (in one step with `BPF_F_REPLACE` where the kernel has
    /// it), so `update` calls this again with the new rules. Programs attached by others stay.
    ///
    /// `rules` are the spec's `linux.resources.devices`; as with runc, a `linux.devices` node
    /// is usable only when a rule allows it. Does nothing for a cgroup without a v2 directory.
    pub fn set_device_rules(&self, rules: &[DeviceRule]) -> Result<()> {
        let Some(dir) = &self.v2 else {
            return Ok(());
        };
        let insns = program(rules)?;
        attach_program(dir, &insns)
    }
}

fn attach_program(dir: &Path, insns: &[BpfInsn]) -> Result<()> {
    let io_err = |op: &'static str| {
        move |source: io::Error| Error::Io {
            op,
            path: dir.to_path_buf(),
            source,
        }
    };
    // Read-only, not O_PATH: bpf refuses O_PATH fds.
    let cgroup = File::open(dir).map_err(io_err("opening"))?;
    let load = |log: Option<&mut [u8]>| {
        sys::bpf_prog_load(
            sys::BPF_PROG_TYPE_CGROUP_DEVICE,
            sys::BPF_CGROUP_DEVICE,
            insns,
            LICENSE,
            PROGRAM_NAME,
            log,
        )
    };
    let prog = match load(None) {
        Ok(fd) => fd,
        Err(first) => {
            // Load again with the verifier's log, which says why.
            let mut log = vec![0u8; 64 * 1024];
            let source = load(Some(&mut log)).err().unwrap_or(first);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(Error::BpfLoad {
                path: dir.to_path_buf(),
                verifier: last.to_string(),
                source,
            });
        }
    };
    let old = ours_attached(&cgroup).map_err(io_err("listing the device programs of"))?;
    if let [only] = old.as_slice() {
        let replaced = sys::bpf_prog_attach(
            cgroup.as_fd(),
            prog.as_fd(),
            sys::BPF_CGROUP_DEVICE,
            sys::BPF_F_ALLOW_MULTI | sys::BPF_F_REPLACE,
            Some(only.as_fd()),
        );
        match replaced {
            Ok(()) => return Ok(()),
            // Before Linux 5.6 there is no BPF_F_REPLACE: attach, then detach.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(io_err("attaching the device program to")(e)),
        }
    }
    sys::bpf_prog_attach(
        cgroup.as_fd(),
        prog.as_fd(),
        sys::BPF_CGROUP_DEVICE,
        sys::BPF_F_ALLOW_MULTI,
        None,
    )
    .map_err(io_err("attaching the device program to"))?;
    for fd in &old {
        sys::bpf_prog_detach(cgroup.as_fd(), fd.as_fd(), sys::BPF_CGROUP_DEVICE)
            .map_err(io_err("detaching the old device program from"))?;
    }
    Ok(())
}

/// Fds of the device programs berth attached to a cgroup (by name), oldest first.
fn ours_attached(cgroup: &File) -> io::Result<Vec<std::os::fd::OwnedFd>> {
    let mut ours = Vec::new();
    for id in sys::bpf_prog_query(cgroup.as_fd(), sys::BPF_CGROUP_DEVICE)? {
        let fd = match sys::bpf_prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            // Detached and freed since the query.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if sys::bpf_prog_info(fd.as_fd())?.name == PROGRAM_NAME {
            ours.push(fd);
        }
    }
    Ok(ours)
}

/// The ids and names of the device programs attached to a v2 cgroup directory (for tests
/// and diagnostics).
pub fn attached_programs(dir: &Path) -> Result<Vec<(u32, String)>> {
    let err = |source| Error::Io {
        op: "listing the device programs of",
        path: dir.to_path_buf(),
        source,
    };
    let cgroup = File::open(dir).map_err(err)?;
    let mut out = Vec::new();
    for id in sys::bpf_prog_query(cgroup.as_fd(), sys::BPF_CGROUP_DEVICE).map_err(err)? {
        let fd = sys::bpf_prog_get_fd_by_id(id).map_err(err)?;
        out.push((id, sys::bpf_prog_info(fd.as_fd()).map_err(err)?.name));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, line: &str) -> DeviceRule {
        parse_rule(allow, line).unwrap()
    }

    /// The list `rules` make from "deny all", without the defaults.
    fn list_of(rules: &[DeviceRule]) -> DeviceList {
        let mut list = DeviceList::deny_all();
        for r in rules {
            list.apply(r).unwrap();
        }
        list
    }

    const PROLOGUE: usize = 6;

    /// Runs a program the way the kernel would for one access (the opcodes berth emits only).
    fn run(prog: &[BpfInsn], kind: i32, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm64 = i.imm as i64 as u64;
            let mut jump = false;
            match i.code {
                0x61 => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                0x54 => r[dst] = u64::from(r[dst] as u32 & i.imm as u32),
                0x74 => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                0xbc => r[dst] = u64::from(r[src] as u32),
                0xb4 => r[dst] = u64::from(i.imm as u32),
                0x55 => jump = r[dst] != imm64,
                0x5d => jump = r[dst] != r[src],
                0x15 => jump = r[dst] == imm64,
                0x95 => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
            if jump {
                pc = (pc as i64 + i64::from(i.off)) as usize;
            }
        }
        panic!("the program did not end");
    }

    /// The v1 kernel's decision for the same list (devcgroup_legacy_check_permission).
    fn v1_allows(list: &DeviceList, kind: char, access: u8, major: u32, minor: u32) -> bool {
        let matches = |e: &&Exception| {
            e.kind == kind
                && e.major.is_none_or(|m| m == major)
                && e.minor.is_none_or(|m| m == minor)
        };
        if list.default_allow {
            !list
                .exceptions
                .iter()
                .filter(matches)
                .any(|e| e.access & access != 0)
        } else {
            list.exceptions
                .iter()
                .filter(matches)
                .any(|e| access & !e.access == 0)
        }
    }

    fn allowed(prog: &[BpfInsn], kind: char, access: &str, major: u32, minor: u32) -> bool {
        let bits = access.chars().fold(0, |b, c| {
            b | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => ACC_MKNOD,
            }
        });
        let t = if kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
        run(prog, t, bits, major, minor) == 1
    }

    #[test]
    fn an_allow_rule_under_deny_all_is_one_block_of_exact_checks() {
        let prog = compile(&list_of(&[rule(false, "a"), rule(true, "c 1:3 rwm")]));
        assert_eq!(
            prog[PROLOGUE..],
            [
                jne(R2, DEV_CHAR, 4),
                jne(R4, 1, 3),
                jne(R5, 3, 2),
                mov32(R0, 1),
                exit(),
                mov32(R0, 0),
                exit(),
            ]
        );
        // type and access from access_type, major, minor
        assert_eq!(
            prog[..PROLOGUE],
            [
                load_word(R2, R1, 0),
                and32(R2, 0xffff),
                load_word(R3, R1, 0),
                rsh32(R3, 16),
                load_word(R4, R1, 4),
                load_word(R5, R1, 8),
            ]
        );
    }

    #[test]
    fn wildcard_numbers_are_not_checked_and_partial_access_is() {
        let prog = compile(&list_of(&[rule(true, "b *:* m"), rule(true, "c 136:* rw")]));
        assert_eq!(
            prog[PROLOGUE..],
            [
                // b *:* m: type, then "asked access within m"
                jne(R2, DEV_BLOCK, 5),
                mov32_reg(R1, R3),
                and32(R1, i32::from(ACC_MKNOD)),
                jne_reg(R1, R3, 2),
                mov32(R0, 1),
                exit(),
                // c 136:* rw: type, access, major only
                jne(R2, DEV_CHAR, 6),
                mov32_reg(R1, R3),
                and32(R1, i32::from(ACC_READ | ACC_WRITE)),
                jne_reg(R1, R3, 3),
                jne(R4, 136, 2),
                mov32(R0, 1),
                exit(),
                mov32(R0, 0),
                exit(),
            ]
        );
    }

    #[test]
    fn a_deny_rule_under_allow_all_denies_on_any_overlap() {
        let prog = compile(&list_of(&[rule(true, "a"), rule(false, "b 8:* w")]));
        assert_eq!(
            prog[PROLOGUE..],
            [
                jne(R2, DEV_BLOCK, 6),
                mov32_reg(R1, R3),
                and32(R1, i32::from(ACC_WRITE)),
                jeq(R1, 0, 3),
                jne(R4, 8, 2),
                mov32(R0, 0),
                exit(),
                mov32(R0, 1),
                exit(),
            ]
        );
        // read-write asks for w too: denied, where runc's generator would allow it
        assert!(!allowed(&prog, 'b', "rw", 8, 1));
        assert!(allowed(&prog, 'b', "r", 8, 1));
        assert!(allowed(&prog, 'b', "rw", 9, 0));
        assert!(allowed(&prog, 'c', "w", 8, 0));
    }

    #[test]
    fn runc_default_spec_allows_the_default_devices_only() {
        // runc spec: deny everything; then berth's (runc's) default allow list.
        let prog = program(&[DeviceRule {
            allow: false,
            access: Some("rwm".into()),
            ..Default::default()
        }])
        .unwrap();
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 7),
        ] {
            assert!(allowed(&prog, 'c', "rw", major, minor), "c {major}:{minor}");
        }
        assert!(!allowed(&prog, 'b', "r", 8, 0), "a disk");
        assert!(!allowed(&prog, 'c', "rw", 10, 200), "/dev/net/tun");
        assert!(!allowed(&prog, 'c', "rw", 1, 1), "/dev/mem");
        assert!(allowed(&prog, 'b', "m", 8, 0), "mknod of any device");
        assert!(!allowed(&prog, 'b', "rm", 8, 0), "but not open it");
    }

    #[test]
    fn no_rules_is_deny_all_plus_the_defaults() {
        assert_eq!(program(&[]).unwrap(), program(&[rule(false, "a")]).unwrap());
    }

    #[test]
    fn the_program_decides_as_the_v1_controller_for_every_access() {
        let cases: Vec<Vec<DeviceRule>> = vec![
            vec![rule(false, "a"), rule(true, "c 1:3 rw")],
            vec![
                rule(true, "a"),
                rule(false, "c 1:* w"),
                rule(false, "b *:* m"),
            ],
            vec![
                rule(true, "c *:* r"),
                rule(true, "c *:* w"),
                rule(true, "b 8:0 m"),
            ],
            vec![
                rule(true, "a"),
                rule(false, "c 1:3 rwm"),
                rule(true, "c 1:3 r"),
            ],
            vec![
                rule(false, "a"),
                rule(true, "c 4:* rwm"),
                rule(false, "c 4:* w"),
            ],
        ];
        let accesses = ["r", "w", "m", "rw", "rm", "wm", "rwm"];
        for rules in &cases {
            let list = list_of(rules);
            let prog = compile(&list);
            for kind in ['b', 'c'] {
                for (major, minor) in [(1, 3), (1, 4), (4, 0), (8, 0), (136, 2)] {
                    for a in accesses {
                        let bits = a.chars().fold(0, |b, c| {
                            b | match c {
                                'r' => ACC_READ,
                                'w' => ACC_WRITE,
                                _ => ACC_MKNOD,
                            }
                        });
                        assert_eq!(
                            allowed(&prog, kind, a, major, minor),
                            v1_allows(&list, kind, bits, major, minor),
                            "{rules:?}: {kind} {major}:{minor} {a}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_emulation_keeps_v1_exception_lists() {
        // allow then deny on the same key removes access bits; an emptied exception goes
        let list = list_of(&[rule(true, "c 1:3 rwm"), rule(false, "c 1:3 w")]);
        assert_eq!(list.exceptions.len(), 1);
        assert_eq!(list.exceptions[0].access, ACC_READ | ACC_MKNOD);
        let list = list_of(&[rule(true, "c 1:3 rw"), rule(false, "c 1:3 rw")]);
        assert!(list.exceptions.is_empty());
        // two allows on one key merge
        let list = list_of(&[rule(true, "c 1:3 r"), rule(true, "c 1:3 w")]);
        assert_eq!(list.exceptions.len(), 1);
        assert_eq!(list.exceptions[0].access, ACC_READ | ACC_WRITE);
        // "a" resets the default and drops every exception
        let list = list_of(&[rule(true, "c 1:3 r"), rule(true, "a")]);
        assert!(list.default_allow && list.exceptions.is_empty());
        assert_eq!(compile(&list)[PROLOGUE..], [mov32(R0, 1), exit()]);
    }

    #[test]
    fn a_hole_in_a_wildcard_rule_is_refused() {
        let mut list = list_of(&[rule(true, "c 136:* rwm")]);
        let err = list.apply(&rule(false, "c 136:2 w")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cgroup devices rule c 136:2 w: cannot deny part of the wider rule c 136:* rwm, \
             which the kernel would keep"
        );
        // no overlap in access: fine
        let mut list = list_of(&[rule(true, "c 136:* r")]);
        list.apply(&rule(false, "c 136:2 w")).unwrap();
    }

    #[test]
    fn bad_rules_name_what_is_wrong() {
        let bad = |r: DeviceRule| program(&[r]).unwrap_err().to_string();
        let mut r = rule(true, "c 1:3 rwm");
        r.kind = Some("p".into());
        assert!(bad(r).contains("type \"p\" is not a, b or c"));
        let mut r = rule(true, "c 1:3 rwm");
        r.access = Some("rx".into());
        assert!(bad(r).contains("access 'x' is not r, w or m"));
        let mut r = rule(true, "c 1:3 rwm");
        r.major = Some(1 << 33);
        assert!(bad(r).contains("major 8589934592 is above 4294967295"));
        // -1 is a wildcard, as in runc's specs
        let mut r = rule(true, "c 1:3 rwm");
        r.minor = Some(-1);
        assert_eq!(exception(&r).unwrap().unwrap().minor, None);
    }

    #[test]
    fn huge_numbers_never_match_a_device() {
        let prog = compile(&list_of(&[rule(true, "c 4294967295:0 rwm")]));
        assert!(!allowed(&prog, 'c', "r", u32::MAX, 0));
        assert!(!allowed(&prog, 'c', "r", 0x7fff_ffff, 0));
    }

    #[test]
    fn every_default_rule_parses() {
        for line in DEFAULT_ALLOWED {
            let r = parse_rule(true, line).unwrap();
            assert!(exception(&r).unwrap().is_some(), "{line}");
        }
        assert_eq!(rule(true, "c 5:* m").minor, None);
        assert!(parse_rule(true, "c 5").is_none());
    }

    #[test]
    fn the_device_list_is_what_v1_would_hold() {
        let deny_all = DeviceRule {
            allow: false,
            kind: Some("a".into()),
            ..Default::default()
        };
        let (default_allow, allowed) = device_list(&[deny_all, rule(true, "c 10:200 rw")]).unwrap();
        assert!(!default_allow);
        assert!(allowed.iter().all(|r| r.allow));
        let lines: Vec<String> = allowed.iter().map(crate::resources::device_line).collect();
        assert!(lines.contains(&"c 10:200 rw".to_string()), "{lines:?}");
        assert!(lines.contains(&"c 136:* rwm".to_string()), "{lines:?}");
        assert!(lines.contains(&"b *:* m".to_string()), "{lines:?}");
        assert_eq!(lines.len(), DEFAULT_ALLOWED.len() + 1, "{lines:?}");
        // An allow-all default is a deny list: nothing systemd's DeviceAllow= can say.
        let allow_all = DeviceRule {
            allow: true,
            kind: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(
            device_list(std::slice::from_ref(&allow_all)).unwrap(),
            (true, vec![])
        );
        let (default_allow, denied) = device_list(&[allow_all, rule(false, "c 10:200 w")]).unwrap();
        assert!(default_allow);
        assert_eq!(denied, vec![rule(false, "c 10:200 w")]);
    }
}
