//! berth-probe: prints what a process in a container sees, as one JSON object on stdout.
//! Std only (no crates), so the build script can compile it statically with plain rustc.
//! Everything is read from /proc and the filesystem; nothing needs unsafe code.
//!
//! Usage: berth-probe [--paths P...] [--exit N]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

enum J {
    Null,
    Bool(bool),
    Num(i64),
    UNum(u64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn esc(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => {
                let _ = write!(out, "{n}");
            }
            J::UNum(n) => {
                let _ = write!(out, "{n}");
            }
            J::Str(s) => esc(s, out),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    esc(k, out);
                    out.push(':');
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn s(v: impl Into<String>) -> J {
    J::Str(v.into())
}

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':'))).map(str::trim)
}

fn first_num(v: Option<&str>) -> J {
    v.and_then(|x| x.split_whitespace().next()).and_then(|x| x.parse::<i64>().ok()).map_or(J::Null, J::Num)
}

fn hex(v: Option<&str>) -> J {
    v.and_then(|x| u64::from_str_radix(x, 16).ok()).map_or(J::Null, J::UNum)
}

struct Mount {
    point: String,
    fstype: String,
    source: String,
    opts: String,
    superopts: String,
    root: String,
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn mounts() -> Vec<Mount> {
    let text = read("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape(f.get(3)?),
                point: unescape(f.get(4)?),
                opts: f.get(5)?.to_string(),
                fstype: r.first()?.to_string(),
                source: r.get(1).map_or(String::new(), |x| unescape(x)),
                superopts: r.get(2).map_or(String::new(), |x| x.to_string()),
            })
        })
        .collect()
}

/// The mount a path lives on: the last mount whose point is the longest prefix.
fn mount_of<'a>(ms: &'a [Mount], path: &str) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for m in ms {
        let p = m.point.trim_end_matches('/');
        let under = path == m.point || p.is_empty() || path.starts_with(&format!("{p}/"));
        if under && best.is_none_or(|b| m.point.len() >= b.point.len()) {
            best = Some(m);
        }
    }
    best
}

const LIMITS: &[(&str, &str)] = &[
    ("Max cpu time", "RLIMIT_CPU"), ("Max file size", "RLIMIT_FSIZE"), ("Max data size", "RLIMIT_DATA"),
    ("Max stack size", "RLIMIT_STACK"), ("Max core file size", "RLIMIT_CORE"), ("Max resident set", "RLIMIT_RSS"),
    ("Max processes", "RLIMIT_NPROC"), ("Max open files", "RLIMIT_NOFILE"), ("Max locked memory", "RLIMIT_MEMLOCK"),
    ("Max address space", "RLIMIT_AS"), ("Max file locks", "RLIMIT_LOCKS"), ("Max pending signals", "RLIMIT_SIGPENDING"),
    ("Max msgqueue size", "RLIMIT_MSGQUEUE"), ("Max nice priority", "RLIMIT_NICE"), ("Max realtime priority", "RLIMIT_RTPRIO"),
    ("Max realtime timeout", "RLIMIT_RTTIME"),
];

fn rlimits() -> J {
    let text = read("/proc/self/limits").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        for (label, name) in LIMITS {
            if let Some(rest) = line.strip_prefix(label) {
                let mut it = rest.split_whitespace();
                let soft = it.next().unwrap_or("").to_string();
                let hard = it.next().unwrap_or("").to_string();
                out.push((name.to_string(), J::Obj(vec![("soft".into(), s(soft)), ("hard".into(), s(hard))])));
            }
        }
    }
    J::Obj(out)
}

const WELL_KNOWN: &[&str] = &[
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/proc/bus", "/proc/fs",
    "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
];

fn path_report(ms: &[Mount], p: &str) -> J {
    let meta = fs::metadata(p);
    let exists = meta.is_ok();
    let masked = match &meta {
        Ok(m) if m.file_type().is_char_device() => m.rdev() == ((1 << 8) | 3) && !p.starts_with("/dev/"),
        Ok(m) if m.is_dir() => {
            let on = mount_of(ms, p);
            on.is_some_and(|mt| mt.point == p && mt.fstype == "tmpfs")
                && fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(false)
        }
        _ => false,
    };
    let readonly = mount_of(ms, p).is_some_and(|m| m.opts.split(',').any(|o| o == "ro"));
    J::Obj(vec![("exists".into(), J::Bool(exists)), ("masked".into(), J::Bool(masked)), ("readonly".into(), J::Bool(readonly))])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut paths: Vec<String> = WELL_KNOWN.iter().map(|p| p.to_string()).collect();
    let mut exit = 0;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--exit" => {
                exit = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
                i += 1;
            }
            "--paths" => {}
            p if p.starts_with('/') => paths.push(p.to_string()),
            _ => {}
        }
        i += 1;
    }

    // Open fds, before this program opens anything else.
    let mut fds = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc/self/fd") {
        let mut list: Vec<(u32, String)> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n: u32 = e.file_name().to_str()?.parse().ok()?;
                let target = fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
                Some((n, target))
            })
            .collect();
        list.sort();
        // The directory being listed is the highest fd that points at a /proc/<pid>/fd dir.
        if let Some(pos) = list.iter().rposition(|(_, t)| t.starts_with("/proc/") && t.ends_with("/fd")) {
            list.remove(pos);
        }
        fds = list.into_iter().map(|(n, t)| (n.to_string(), s(t))).collect();
    }

    let status = read("/proc/self/status").unwrap_or_default();
    let ids = |key: &str| first_num(status_field(&status, key));
    let groups: Vec<J> = status_field(&status, "Groups")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok().map(J::Num))
        .collect();
    let umask = status_field(&status, "Umask").and_then(|u| i64::from_str_radix(u, 8).ok()).map_or(J::Null, J::Num);
    let caps = J::Obj(vec![
        ("inheritable".into(), hex(status_field(&status, "CapInh"))),
        ("permitted".into(), hex(status_field(&status, "CapPrm"))),
        ("effective".into(), hex(status_field(&status, "CapEff"))),
        ("bounding".into(), hex(status_field(&status, "CapBnd"))),
        ("ambient".into(), hex(status_field(&status, "CapAmb"))),
    ]);

    let ms = mounts();
    let mounts_j: Vec<J> = ms
        .iter()
        .map(|m| {
            J::Obj(vec![
                ("mount_point".into(), s(m.point.clone())),
                ("fstype".into(), s(m.fstype.clone())),
                ("source".into(), s(m.source.clone())),
                ("root".into(), s(m.root.clone())),
                ("options".into(), s(m.opts.clone())),
                ("super_options".into(), s(m.superopts.clone())),
            ])
        })
        .collect();

    let mut ns = BTreeMap::new();
    for name in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(t) = fs::read_link(format!("/proc/self/ns/{name}")) {
            ns.insert(name.to_string(), t.display().to_string());
        }
    }

    let trim = |p: &str| read(p).map_or(J::Null, |v| s(v.trim_end_matches('\n')));
    let report = J::Obj(vec![
        ("pid".into(), J::Num(std::process::id() as i64)),
        ("uid".into(), ids("Uid")),
        ("gid".into(), ids("Gid")),
        ("groups".into(), J::Arr(groups)),
        ("caps".into(), caps),
        ("no_new_privs".into(), first_num(status_field(&status, "NoNewPrivs"))),
        ("seccomp".into(), first_num(status_field(&status, "Seccomp"))),
        ("umask".into(), umask),
        ("cwd".into(), std::env::current_dir().map_or(J::Null, |d| s(d.display().to_string()))),
        ("env".into(), J::Arr(std::env::vars_os().map(|(k, v)| s(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))).collect())),
        ("args".into(), J::Arr(args.iter().map(|a| s(a.clone())).collect())),
        ("hostname".into(), trim("/proc/sys/kernel/hostname")),
        ("domainname".into(), trim("/proc/sys/kernel/domainname")),
        ("mounts".into(), J::Arr(mounts_j)),
        ("rlimits".into(), rlimits()),
        ("cgroup".into(), J::Arr(read("/proc/self/cgroup").unwrap_or_default().lines().map(|l| s(l)).collect())),
        ("fds".into(), J::Obj(fds)),
        ("oom_score_adj".into(), first_num(read("/proc/self/oom_score_adj").as_deref())),
        ("namespaces".into(), J::Obj(ns.into_iter().map(|(k, v)| (k, s(v))).collect())),
        ("paths".into(), J::Obj(paths.iter().map(|p| (p.clone(), path_report(&ms, p))).collect())),
    ]);
    let mut out = String::new();
    report.write(&mut out);
    out.push('\n');
    use std::io::Write;
    let _ = std::io::stdout().write_all(out.as_bytes());
    std::process::exit(exit);
}
