//! What a container's cgroup counts, for `berth-run events`: read from the v1 controllers
//! (`cpuacct.*`, `cpu.stat`, `cpuset.*`, `memory.*`, `pids.*`, `blkio.*`, `hugetlb.*`) or from
//! the v2 directory (`cpu.stat`, `memory.stat`, `memory.current`, `io.stat`, `pids.current`,
//! `hugetlb.*.current`, …), in the shape of runc 1.1's `types.Stats` so that tools reading
//! `runc events` read ours: the same keys, in the same order, with the same fields left out
//! when zero (Go's `omitempty`).
//!
//! The readings follow runc's `libcontainer/cgroups/fs` and `fs2`: cpuacct ticks are turned
//! into nanoseconds at 100 ticks a second, v2 microseconds into nanoseconds, `max` reads as
//! `u64::MAX` (pids: 0, "no limit"), and v2 swap is reported as memory+swap, as v1 counts it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::{Cgroup, Error, Result};

/// runc's `types.Stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// Always null: runc fills it only for its own (non-OCI) network configs.
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// v1 only (runc 1.1 reads no cpuset stats on v2: all zero there).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// memory+swap, on v1 and v2 alike.
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Every line of memory.stat.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Intel RDT is not managed by berth: always `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntelRdt {}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// cpuacct.stat counts in USER_HZ, which is 100 on Linux.
const CLOCK_TICKS: u64 = 100;

impl Cgroup {
    /// Reads the cgroup's counters: from the v1 controllers on a v1 or hybrid host, from the
    /// v2 directory on a pure v2 host. The cgroup must exist.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if self.v1.is_empty() {
            let dir = self.v2.as_deref().ok_or(Error::NoCgroups)?;
            must_exist(dir)?;
            stats_v2(dir, &mut s, &hugepage_sizes())?;
        } else {
            // The memory (or else any) controller's directory tells whether the cgroup exists.
            let probe = self
                .v1
                .get("memory")
                .or_else(|| self.v1.values().next())
                .expect("v1 is not empty");
            must_exist(probe)?;
            stats_v1(self, &mut s, &hugepage_sizes())?;
        }
        Ok(s)
    }
}

fn must_exist(dir: &Path) -> Result<()> {
    fs::metadata(dir).map(|_| ()).map_err(|source| Error::Io {
        op: "reading",
        path: dir.to_path_buf(),
        source,
    })
}

// --- v1 -------------------------------------------------------------------------------------

fn stats_v1(cg: &Cgroup, s: &mut Stats, page_sizes: &[String]) -> Result<()> {
    if let Some(dir) = cg.v1.get("cpuacct") {
        cpuacct_v1(dir, &mut s.cpu.usage)?;
    }
    if let Some(dir) = cg.v1.get("cpu") {
        for (k, v) in read_key_values(&dir.join("cpu.stat"))?.unwrap_or_default() {
            match k.as_str() {
                "nr_periods" => s.cpu.throttling.periods = v,
                "nr_throttled" => s.cpu.throttling.throttled_periods = v,
                "throttled_time" => s.cpu.throttling.throttled_time = v,
                _ => {}
            }
        }
    }
    if let Some(dir) = cg.v1.get("cpuset") {
        cpuset_v1(dir, &mut s.cpuset)?;
    }
    if let Some(dir) = cg.v1.get("memory") {
        memory_v1(dir, &mut s.memory)?;
    }
    if let Some(dir) = cg.v1.get("pids") {
        pids(dir, &mut s.pids)?;
    }
    if let Some(dir) = cg.v1.get("blkio") {
        blkio_v1(dir, &mut s.blkio)?;
    }
    if let Some(dir) = cg.v1.get("hugetlb") {
        for size in page_sizes {
            if let Some(c) = counter_v1(dir, &format!("hugetlb.{size}"))? {
                let h = Hugetlb {
                    usage: c.usage,
                    max: c.max,
                    failcnt: c.failcnt,
                };
                s.hugetlb.insert(size.clone(), h);
            }
        }
    }
    Ok(())
}

fn cpuacct_v1(dir: &Path, u: &mut CpuUsage) -> Result<()> {
    for (k, v) in read_key_values(&dir.join("cpuacct.stat"))?.unwrap_or_default() {
        match k.as_str() {
            "user" => u.user = v.saturating_mul(1_000_000_000) / CLOCK_TICKS,
            "system" => u.kernel = v.saturating_mul(1_000_000_000) / CLOCK_TICKS,
            _ => {}
        }
    }
    u.total = read_uint_opt(&dir.join("cpuacct.usage"))?.unwrap_or(0);
    if let Some(text) = read_opt(&dir.join("cpuacct.usage_percpu"))? {
        u.percpu = text
            .split_whitespace()
            .map(|v| parse_uint(v, &dir.join("cpuacct.usage_percpu")))
            .collect::<Result<_>>()?;
    }
    // "cpu user system" then one line per CPU.
    if let Some(text) = read_opt(&dir.join("cpuacct.usage_all"))? {
        let path = dir.join("cpuacct.usage_all");
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() != 3 {
                continue;
            }
            u.percpu_user.push(parse_uint(cols[1], &path)?);
            u.percpu_kernel.push(parse_uint(cols[2], &path)?);
        }
    }
    Ok(())
}

fn cpuset_v1(dir: &Path, c: &mut CpuSet) -> Result<()> {
    let num = |name: &str| -> Result<u64> {
        Ok(read_uint_opt(&dir.join(format!("cpuset.{name}")))?.unwrap_or(0))
    };
    if let Some(text) = read_opt(&dir.join("cpuset.cpus"))? {
        c.cpus = parse_list(&text, &dir.join("cpuset.cpus"))?;
    }
    if let Some(text) = read_opt(&dir.join("cpuset.mems"))? {
        c.mems = parse_list(&text, &dir.join("cpuset.mems"))?;
    }
    c.cpu_exclusive = num("cpu_exclusive")?;
    c.mem_hardwall = num("mem_hardwall")?;
    c.mem_exclusive = num("mem_exclusive")?;
    c.memory_migrate = num("memory_migrate")?;
    c.memory_spread_page = num("memory_spread_page")?;
    c.memory_spread_slab = num("memory_spread_slab")?;
    c.memory_pressure = num("memory_pressure")?;
    c.sched_load_balance = num("sched_load_balance")?;
    let level = dir.join("cpuset.sched_relax_domain_level");
    if let Some(text) = read_opt(&level)? {
        c.sched_relax_domain_level = text.trim().parse().map_err(|_| bad(&level, &text))?;
    }
    Ok(())
}

fn memory_v1(dir: &Path, m: &mut Memory) -> Result<()> {
    if !memory_stat(dir, "cache", m)? {
        return Ok(());
    }
    m.usage = counter_v1(dir, "memory")?.unwrap_or_default();
    m.swap = counter_v1(dir, "memory.memsw")?.unwrap_or_default();
    m.kernel = counter_v1(dir, "memory.kmem")?.unwrap_or_default();
    m.kernel_tcp = counter_v1(dir, "memory.kmem.tcp")?.unwrap_or_default();
    Ok(())
}

/// A v1 page counter, as the memory and hugetlb controllers show one:
/// `<prefix>.{usage_in_bytes,max_usage_in_bytes,failcnt,limit_in_bytes}`; None when the
/// kernel has no such counter (swap accounting or kmem off, a page size not enabled).
fn counter_v1(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>> {
    let file = |what: &str| dir.join(format!("{prefix}.{what}"));
    let Some(usage) = read_uint_opt(&file("usage_in_bytes"))? else {
        return Ok(None);
    };
    Ok(Some(MemoryEntry {
        usage,
        max: read_uint_opt(&file("max_usage_in_bytes"))?.unwrap_or(0),
        failcnt: read_uint_opt(&file("failcnt"))?.unwrap_or(0),
        limit: read_uint_opt(&file("limit_in_bytes"))?.unwrap_or(0),
    }))
}

/// runc's order: the first group whose first file has entries is the one reported (BFQ with
/// its debug files, BFQ, CFQ, the recursive throttle counters, the flat throttle counters).
fn blkio_v1(dir: &Path, b: &mut Blkio) -> Result<()> {
    type Field = fn(&mut Blkio) -> &mut Vec<BlkioEntry>;
    let sectors: Field = |b| &mut b.sectors_recursive;
    let service_time: Field = |b| &mut b.io_service_time_recursive;
    let wait_time: Field = |b| &mut b.io_wait_time_recursive;
    let merged: Field = |b| &mut b.io_merged_recursive;
    let queued: Field = |b| &mut b.io_queued_recursive;
    let time: Field = |b| &mut b.io_time_recursive;
    let serviced: Field = |b| &mut b.io_serviced_recursive;
    let bytes: Field = |b| &mut b.io_service_bytes_recursive;
    let full = |prefix: &str| -> Vec<(String, Field)> {
        [
            ("sectors_recursive", sectors),
            ("io_service_time_recursive", service_time),
            ("io_wait_time_recursive", wait_time),
            ("io_merged_recursive", merged),
            ("io_queued_recursive", queued),
            ("time_recursive", time),
            ("io_serviced_recursive", serviced),
            ("io_service_bytes_recursive", bytes),
        ]
        .into_iter()
        .map(|(f, field)| (format!("blkio.{prefix}{f}"), field))
        .collect()
    };
    let pair = |serviced_file: &str, bytes_file: &str| -> Vec<(String, Field)> {
        vec![
            (serviced_file.to_string(), serviced),
            (bytes_file.to_string(), bytes),
        ]
    };
    let groups = [
        full("bfq."),
        pair(
            "blkio.bfq.io_serviced_recursive",
            "blkio.bfq.io_service_bytes_recursive",
        ),
        full(""),
        pair(
            "blkio.throttle.io_serviced_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ),
        pair(
            "blkio.throttle.io_serviced",
            "blkio.throttle.io_service_bytes",
        ),
    ];
    for group in groups {
        for (i, (file, field)) in group.iter().enumerate() {
            let entries = match read_opt(&dir.join(file))? {
                Some(text) => blkio_entries(&text, &dir.join(file))?,
                None => Vec::new(),
            };
            if entries.is_empty() {
                if i == 0 {
                    break; // this group is not what the kernel has: try the next
                }
                return Ok(());
            }
            *field(b) = entries;
            if i == group.len() - 1 {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Lines `MAJ:MIN OP VALUE` or `MAJ:MIN VALUE`; `Total N` lines are skipped.
fn blkio_entries(text: &str, path: &Path) -> Result<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split([' ', ':']).filter(|f| !f.is_empty()).collect();
        if fields.len() < 3 {
            if fields.len() == 2 && fields[0] == "Total" {
                continue;
            }
            return Err(bad(path, line));
        }
        let (op, value) = if fields.len() >= 4 {
            (fields[2].to_string(), fields[3])
        } else {
            (String::new(), fields[2])
        };
        out.push(BlkioEntry {
            major: parse_uint(fields[0], path)?,
            minor: parse_uint(fields[1], path)?,
            op,
            value: parse_uint(value, path)?,
        });
    }
    Ok(out)
}

// --- v2 -------------------------------------------------------------------------------------

fn stats_v2(dir: &Path, s: &mut Stats, page_sizes: &[String]) -> Result<()> {
    if dir.join("pids.current").exists() {
        pids(dir, &mut s.pids)?;
    } else {
        // The pids controller is not enabled here: count the processes, as runc does.
        let procs = crate::read(&dir.join("cgroup.procs"))?;
        s.pids.current = procs.lines().count() as u64;
    }
    memory_v2(dir, &mut s.memory)?;
    if let Some(text) = read_opt(&dir.join("io.stat"))? {
        s.blkio = io_stat(&text, &dir.join("io.stat"))?;
    }
    for (k, v) in read_key_values(&dir.join("cpu.stat"))?.unwrap_or_default() {
        let t = &mut s.cpu.throttling;
        let u = &mut s.cpu.usage;
        match k.as_str() {
            "usage_usec" => u.total = v.saturating_mul(1000),
            "user_usec" => u.user = v.saturating_mul(1000),
            "system_usec" => u.kernel = v.saturating_mul(1000),
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_usec" => t.throttled_time = v.saturating_mul(1000),
            _ => {}
        }
    }
    for size in page_sizes {
        let Some(usage) = read_uint_opt(&dir.join(format!("hugetlb.{size}.current")))? else {
            continue;
        };
        let events = dir.join(format!("hugetlb.{size}.events"));
        let failcnt = match read_opt(&events)? {
            Some(text) => key_value(&text, "max", &events)?.unwrap_or(0),
            None => 0,
        };
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}

fn memory_v2(dir: &Path, m: &mut Memory) -> Result<()> {
    if !memory_stat(dir, "file", m)? {
        return Ok(());
    }
    let usage = MemoryEntry {
        usage: read_uint_opt(&dir.join("memory.current"))?.unwrap_or(0),
        limit: read_uint_opt(&dir.join("memory.max"))?.unwrap_or(0),
        ..Default::default()
    };
    // v2 counts swap alone; report memory+swap as v1 does (and as runc does).
    if let Some(swap) = read_uint_opt(&dir.join("memory.swap.current"))? {
        let limit = read_uint_opt(&dir.join("memory.swap.max"))?.unwrap_or(0);
        m.swap = MemoryEntry {
            usage: swap.saturating_add(usage.usage),
            limit: if limit == u64::MAX {
                limit
            } else {
                limit.saturating_add(usage.limit)
            },
            ..Default::default()
        };
    }
    m.usage = usage;
    Ok(())
}

/// io.stat (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`) in v1's terms: bytes
/// and operations, Read and Write; the rest has no v1 name and is left out, as runc does.
fn io_stat(text: &str, path: &Path) -> Result<Blkio> {
    let mut b = Blkio::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some((ma, mi)) = parts.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (major, minor) = (parse_uint(ma, path)?, parse_uint(mi, path)?);
        for item in parts {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let (op, table) = match key {
                "rbytes" => ("Read", &mut b.io_service_bytes_recursive),
                "wbytes" => ("Write", &mut b.io_service_bytes_recursive),
                "rios" => ("Read", &mut b.io_serviced_recursive),
                "wios" => ("Write", &mut b.io_serviced_recursive),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: parse_uint(value, path)?,
            });
        }
    }
    Ok(b)
}

// --- shared ---------------------------------------------------------------------------------

fn pids(dir: &Path, p: &mut Pids) -> Result<()> {
    p.current = read_uint_opt(&dir.join("pids.current"))?.unwrap_or(0);
    let max = dir.join("pids.max");
    p.limit = match read_opt(&max)? {
        Some(t) if t.trim() == "max" => 0,
        Some(t) => parse_uint(t.trim(), &max)?,
        None => 0,
    };
    Ok(())
}

/// The huge page sizes of the host as runc names them (`2MB`, `1GB`), from
/// /sys/kernel/mm/hugepages/hugepages-<N>kB.
pub(crate) fn hugepage_sizes() -> Vec<String> {
    let Ok(entries) = fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| page_size_name(&e.file_name().to_string_lossy()))
        .collect();
    out.sort();
    out
}

/// `hugepages-2048kB` -> `2MB` (go-units' binary sizes, as runc formats them).
fn page_size_name(dir_name: &str) -> Option<String> {
    let kb: u64 = dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    let mut size = kb as f64 * 1024.0;
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut i = 0;
    while size >= 1024.0 && i < units.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    Some(format!("{size}{}", units[i]))
}

/// "0-2,4" -> [0, 1, 2, 4].
fn parse_list(text: &str, path: &Path) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u16 = lo.trim().parse().map_err(|_| bad(path, text))?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad(path, text))?;
        if hi < lo {
            return Err(bad(path, text));
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// memory.stat, every line into `raw` and the page cache from line `cache_key` (v1 and v2
/// name it differently); false when the file is not there.
fn memory_stat(dir: &Path, cache_key: &str, m: &mut Memory) -> Result<bool> {
    let Some(raw) = read_key_values(&dir.join("memory.stat"))? else {
        return Ok(false);
    };
    m.raw = raw.into_iter().collect();
    m.cache = m.raw.get(cache_key).copied().unwrap_or(0);
    Ok(true)
}

/// The `key value` lines of a file; None when the kernel has no such file.
fn read_key_values(path: &Path) -> Result<Option<Vec<(String, u64)>>> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    let pairs = key_values(&text, path)?;
    Ok(Some(
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    ))
}

/// `key value` lines.
fn key_values<'a>(text: &'a str, path: &Path) -> Result<Vec<(&'a str, u64)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (k, v) = line.split_once(' ').ok_or_else(|| bad(path, line))?;
            Ok((k, parse_uint(v.trim(), path)?))
        })
        .collect()
}

fn key_value(text: &str, key: &str, path: &Path) -> Result<Option<u64>> {
    Ok(key_values(text, path)?
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v))
}

/// A counter as runc reads one: `max` is u64::MAX, a negative number is 0.
fn parse_uint(v: &str, path: &Path) -> Result<u64> {
    let v = v.trim();
    if v == "max" {
        return Ok(u64::MAX);
    }
    match v.parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) if v.parse::<i64>().is_ok_and(|n| n < 0) => Ok(0),
        Err(_) => Err(bad(path, v)),
    }
}

fn read_opt(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // v1 files of a controller the kernel lacks (e.g. kmem accounting off) fail this way.
        Err(e) if e.raw_os_error() == Some(95) => Ok(None),
        Err(source) => Err(Error::Io {
            op: "reading",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_uint_opt(path: &Path) -> Result<Option<u64>> {
    read_opt(path)?.map(|t| parse_uint(&t, path)).transpose()
}

fn bad(path: &Path, text: &str) -> Error {
    Error::Invalid {
        what: path.display().to_string(),
        why: format!("unexpected content {:?}", text.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A scratch directory (this crate has no tempfile), removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("berth-stats-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn put(&self, sub: &str, name: &str, text: &str) -> PathBuf {
            let d = self.0.join(sub);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(name), text).unwrap();
            d
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn page_sizes_are_named_like_runc() {
        assert_eq!(page_size_name("hugepages-2048kB").as_deref(), Some("2MB"));
        assert_eq!(
            page_size_name("hugepages-1048576kB").as_deref(),
            Some("1GB")
        );
        assert_eq!(page_size_name("hugepages-64kB").as_deref(), Some("64KB"));
        assert_eq!(page_size_name("other"), None);
    }

    #[test]
    fn counters_read_like_runc() {
        let p = Path::new("x");
        assert_eq!(parse_uint("max", p).unwrap(), u64::MAX);
        assert_eq!(parse_uint("-1\n", p).unwrap(), 0);
        assert_eq!(parse_uint("42\n", p).unwrap(), 42);
        assert!(parse_uint("nope", p).is_err());
        assert_eq!(parse_list("0-2,4\n", p).unwrap(), vec![0, 1, 2, 4]);
        assert!(parse_list("3-1", p).is_err());
    }

    #[test]
    fn v1_files_give_runc_shaped_stats() {
        let d = Scratch::new("v1");
        let acct = d.put("cpuacct", "cpuacct.stat", "user 5\nsystem 2\n");
        d.put("cpuacct", "cpuacct.usage", "123456\n");
        d.put("cpuacct", "cpuacct.usage_percpu", "100000 23456 \n");
        d.put(
            "cpuacct",
            "cpuacct.usage_all",
            "cpu user system\n0 4000000 0\n1 0 7\n",
        );
        let cpu = d.put(
            "cpu",
            "cpu.stat",
            "nr_periods 3\nnr_throttled 1\nthrottled_time 999\n",
        );
        let mem = d.put("memory", "memory.stat", "cache 4096\nrss 8192\n");
        for (f, v) in [
            ("memory.usage_in_bytes", "729088"),
            ("memory.max_usage_in_bytes", "2506752"),
            ("memory.failcnt", "0"),
            ("memory.limit_in_bytes", "67108864"),
        ] {
            d.put("memory", f, v);
        }
        let pids = d.put("pids", "pids.current", "2\n");
        d.put("pids", "pids.max", "max\n");
        let blkio = d.put(
            "blkio",
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        );
        d.put(
            "blkio",
            "blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\nTotal 1\n",
        );
        let cpuset = d.put("cpuset", "cpuset.cpus", "0-1\n");
        d.put("cpuset", "cpuset.mems", "0\n");
        d.put("cpuset", "cpuset.sched_relax_domain_level", "-1\n");
        d.put("cpuset", "cpuset.sched_load_balance", "1\n");
        let cg = Cgroup {
            path: "/berth/t".into(),
            v1: BTreeMap::from([
                ("cpuacct".to_string(), acct),
                ("cpu".to_string(), cpu),
                ("memory".to_string(), mem),
                ("pids".to_string(), pids),
                ("blkio".to_string(), blkio),
                ("cpuset".to_string(), cpuset),
            ]),
            v2: None,
        };
        let s = cg.stats().unwrap();
        assert_eq!(s.cpu.usage.user, 50_000_000);
        assert_eq!(s.cpu.usage.kernel, 20_000_000);
        assert_eq!(s.cpu.usage.total, 123_456);
        assert_eq!(s.cpu.usage.percpu, vec![100_000, 23_456]);
        assert_eq!(s.cpu.usage.percpu_user, vec![4_000_000, 0]);
        assert_eq!(s.cpu.usage.percpu_kernel, vec![0, 7]);
        assert_eq!(s.cpu.throttling.throttled_time, 999);
        assert_eq!(s.memory.cache, 4096);
        assert_eq!(s.memory.usage.limit, 67_108_864);
        assert_eq!(
            s.memory.swap,
            MemoryEntry::default(),
            "no memsw files: zero"
        );
        assert_eq!(s.pids.current, 2);
        assert_eq!(s.pids.limit, 0, "max is no limit");
        assert_eq!(s.blkio.io_serviced_recursive.len(), 1);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.cpuset.cpus, vec![0, 1]);
        assert_eq!(s.cpuset.sched_relax_domain_level, -1);

        let v = serde_json::to_value(&s).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8);
        assert_eq!(v["network_interfaces"], serde_json::Value::Null);
        assert_eq!(v["intel_rdt"], serde_json::json!({}));
        assert_eq!(v["hugetlb"], serde_json::json!({}));
        assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 1);
        assert_eq!(
            v["blkio"]["ioServiceBytesRecursive"][1],
            serde_json::json!({"major": 8, "op": "Write"})
        );
        assert_eq!(
            v["memory"]["kernelTCP"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert!(v["pids"].get("limit").is_none(), "omitempty, as Go");
    }

    #[test]
    fn v1_hugetlb_counters_are_read_per_page_size() {
        let d = Scratch::new("v1-hugetlb");
        let dir = d.put("hugetlb", "hugetlb.2MB.usage_in_bytes", "4194304\n");
        d.put("hugetlb", "hugetlb.2MB.max_usage_in_bytes", "6291456\n");
        d.put("hugetlb", "hugetlb.2MB.failcnt", "2\n");
        d.put("hugetlb", "hugetlb.2MB.limit_in_bytes", "8388608\n");
        let cg = Cgroup {
            path: "/berth/t".into(),
            v1: BTreeMap::from([("hugetlb".to_string(), dir)]),
            v2: None,
        };
        let mut s = Stats::default();
        stats_v1(&cg, &mut s, &["1GB".to_string(), "2MB".to_string()]).unwrap();
        let want = Hugetlb {
            usage: 4_194_304,
            max: 6_291_456,
            failcnt: 2,
        };
        assert_eq!(s.hugetlb, BTreeMap::from([("2MB".to_string(), want)]));
    }

    #[test]
    fn v2_files_give_runc_shaped_stats() {
        let d = Scratch::new("v2");
        let dir = d.put("c", "cpu.stat", "usage_usec 10\nuser_usec 7\nsystem_usec 3\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
        d.put("c", "memory.stat", "anon 8192\nfile 4096\n");
        d.put("c", "memory.current", "12288\n");
        d.put("c", "memory.max", "67108864\n");
        d.put("c", "memory.swap.current", "0\n");
        d.put("c", "memory.swap.max", "max\n");
        d.put("c", "pids.current", "1\n");
        d.put("c", "pids.max", "64\n");
        d.put(
            "c",
            "io.stat",
            "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        );
        d.put("c", "hugetlb.2MB.current", "0\n");
        d.put("c", "hugetlb.2MB.events", "max 3\n");
        let mut s = Stats::default();
        stats_v2(&dir, &mut s, &["2MB".to_string(), "1GB".to_string()]).unwrap();
        assert_eq!(s.cpu.usage.total, 10_000);
        assert_eq!(s.cpu.usage.user, 7_000);
        assert_eq!(s.memory.cache, 4096);
        assert_eq!(s.memory.usage.usage, 12_288);
        assert_eq!(s.memory.usage.limit, 67_108_864);
        assert_eq!(s.memory.swap.usage, 12_288, "memory+swap");
        assert_eq!(s.memory.swap.limit, u64::MAX);
        assert_eq!(s.pids.limit, 64);
        assert_eq!(
            s.blkio.io_service_bytes_recursive,
            vec![
                BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Read".into(),
                    value: 4096
                },
                BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Write".into(),
                    value: 0
                },
            ]
        );
        assert_eq!(s.hugetlb["2MB"].failcnt, 3);
        assert!(!s.hugetlb.contains_key("1GB"));
        assert!(s.cpuset.cpus.is_empty());
    }

    #[test]
    fn a_missing_cgroup_is_not_found() {
        let cg = Cgroup {
            path: "/berth/gone".into(),
            v1: BTreeMap::new(),
            v2: Some(PathBuf::from("/nonexistent/berth/gone")),
        };
        let e = cg.stats().unwrap_err();
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::NotFound);
    }
}
