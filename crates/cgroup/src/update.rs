//! `berth-run update`: changing a live container's limits, as `runc update` does.
//!
//! [`plan_update`] merges a request into the resources recorded for the container (runc's
//! merge: the CPU, memory, block I/O weight, pids and `unified` items; a 0 means "unchanged")
//! and says what to write. [`Cgroup::update`] then checks every value before it writes any,
//! notes what the files held, writes, and puts the old contents back if the kernel refuses a
//! write halfway, so a failed update changes nothing. Device rules are never touched (runc
//! skips them on update too).

use std::fs;
use std::path::{Path, PathBuf};

use crate::resources::{write_cpu_v1, write_cpu_v2, write_io_weight_v2};
use crate::{read, write, Cgroup, Cpu, Error, Memory, Pids, Resources, Result};

/// What an update records and what it writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdatePlan {
    /// The container's resources after the update: record these.
    pub record: Resources,
    /// Only the items to write to the cgroup now.
    pub write: Resources,
    /// Items of the request that `update` does not change (as runc): say so to the user.
    pub ignored: Vec<&'static str>,
}

/// Merges `request` into `recorded`, as runc's update does: CPU shares, quota, period and
/// realtime values, cpuset cpus and mems, memory limit, reservation and swap, the block I/O
/// weight, the pids limit and `unified` keys. Zero (or an empty string) leaves an item as it
/// is; a memory limit of -1 with no swap given makes swap unlimited too.
pub fn plan_update(recorded: &Resources, request: &Resources) -> UpdatePlan {
    let mut record = recorded.clone();
    let mut write = Resources::default();
    let mut ignored = Vec::new();
    let nz = |v: Option<u64>| v.filter(|v| *v != 0);
    let nzi = |v: Option<i64>| v.filter(|v| *v != 0);

    if let Some(c) = &request.cpu {
        let rc = record.cpu.get_or_insert_with(Cpu::default);
        let mut wc = Cpu::default();
        if let Some(v) = nz(c.shares) {
            rc.shares = Some(v);
            wc.shares = Some(v);
        }
        if nzi(c.quota).is_some() || nz(c.period).is_some() {
            rc.quota = nzi(c.quota).or(rc.quota);
            rc.period = nz(c.period).or(rc.period);
            wc.quota = rc.quota;
            wc.period = rc.period;
        }
        if nzi(c.realtime_runtime).is_some() || nz(c.realtime_period).is_some() {
            rc.realtime_runtime = nzi(c.realtime_runtime).or(rc.realtime_runtime);
            rc.realtime_period = nz(c.realtime_period).or(rc.realtime_period);
            wc.realtime_runtime = rc.realtime_runtime;
            wc.realtime_period = rc.realtime_period;
        }
        if let Some(v) = c.cpus.clone().filter(|v| !v.is_empty()) {
            rc.cpus = Some(v.clone());
            wc.cpus = Some(v);
        }
        if let Some(v) = c.mems.clone().filter(|v| !v.is_empty()) {
            rc.mems = Some(v.clone());
            wc.mems = Some(v);
        }
        if wc != Cpu::default() {
            write.cpu = Some(wc);
        }
    }

    if let Some(m) = &request.memory {
        let rm = record.memory.get_or_insert_with(Memory::default);
        let mut wm = Memory::default();
        let mut swap = nzi(m.swap);
        if nzi(m.limit) == Some(-1) && swap.is_none() {
            swap = Some(-1);
        }
        if nzi(m.limit).is_some() || swap.is_some() {
            rm.limit = nzi(m.limit).or(rm.limit);
            rm.swap = swap.or(rm.swap);
            // Limit and memory+swap are checked against each other by the kernel: write both.
            wm.limit = rm.limit;
            wm.swap = rm.swap;
        }
        if let Some(v) = nzi(m.reservation) {
            rm.reservation = Some(v);
            wm.reservation = Some(v);
        }
        if m.swappiness.is_some() || m.disable_oom_killer.is_some() {
            ignored.push("memory.swappiness and memory.disableOOMKiller");
        }
        if wm != Memory::default() {
            write.memory = Some(wm);
        }
    }

    if let Some(p) = request.pids.as_ref().filter(|p| p.limit != 0) {
        record.pids = Some(p.clone());
        write.pids = Some(Pids { limit: p.limit });
    }

    if let Some(b) = &request.block_io {
        if let Some(w) = b.weight.filter(|w| *w != 0) {
            record.block_io.get_or_insert_with(Default::default).weight = Some(w);
            write.block_io = Some(crate::BlockIo {
                weight: Some(w),
                ..Default::default()
            });
        }
        if b.leaf_weight.is_some()
            || !b.weight_device.is_empty()
            || !b.throttle_read_bps_device.is_empty()
            || !b.throttle_write_bps_device.is_empty()
            || !b.throttle_read_iops_device.is_empty()
            || !b.throttle_write_iops_device.is_empty()
        {
            ignored.push("blockIO items other than weight");
        }
    }

    for (k, v) in &request.unified {
        record.unified.insert(k.clone(), v.clone());
        write.unified.insert(k.clone(), v.clone());
    }
    if !request.devices.is_empty() {
        ignored.push("devices");
    }
    if !request.hugepage_limits.is_empty() {
        ignored.push("hugepageLimits");
    }
    UpdatePlan {
        record,
        write,
        ignored,
    }
}

impl Cgroup {
    /// Writes an update's items ([`UpdatePlan::write`]) to the cgroup. Every value is checked
    /// first; the files' contents are kept and written back if the kernel refuses any write,
    /// so on error nothing has changed.
    pub fn update(&self, w: &Resources) -> Result<()> {
        self.check_update(w)?;
        let saved: Vec<(PathBuf, String)> = self
            .touched_files(w)
            .into_iter()
            .filter_map(|p| fs::read_to_string(&p).ok().map(|t| (p, t)))
            .collect();
        let result = if self.v1.is_empty() {
            write_v2(self.v2.as_deref().ok_or(Error::NoCgroups)?, w)
        } else {
            write_v1(self, w)
        };
        if result.is_err() {
            restore(&saved);
        }
        result
    }

    /// Every check that can be made without writing.
    fn check_update(&self, w: &Resources) -> Result<()> {
        let v2 = self.v1.is_empty();
        let invalid = |what: &str, why: String| Error::Invalid {
            what: what.to_string(),
            why,
        };
        if let Some(c) = &w.cpu {
            if let Some(s) = c.shares {
                if !(2..=262_144).contains(&s) {
                    return Err(invalid("cpu.shares", format!("{s} is outside 2..262144")));
                }
            }
            if let Some(p) = c.period {
                if !(1000..=1_000_000).contains(&p) {
                    return Err(invalid(
                        "cpu.period",
                        format!("{p} is outside 1000..1000000 (µs)"),
                    ));
                }
            }
            if let Some(q) = c.quota {
                if (0..1000).contains(&q) || q < -1 {
                    return Err(invalid(
                        "cpu.quota",
                        format!("{q} is neither -1 (no limit) nor at least 1000 (µs)"),
                    ));
                }
            }
            if c.realtime_period.is_some() || c.realtime_runtime.is_some() {
                if v2 {
                    return Err(Error::NoController {
                        what: "cpu.realtimeRuntime".into(),
                        controller: "v1 cpu (realtime scheduling has no v2 files)",
                    });
                }
                let dir = self.v1_dir("cpu", "cpu.realtimeRuntime")?;
                if !dir.join("cpu.rt_runtime_us").exists() {
                    return Err(invalid(
                        "cpu.realtimeRuntime",
                        "this kernel has no realtime group scheduling (no cpu.rt_runtime_us)"
                            .into(),
                    ));
                }
                if let (Some(r), Some(p)) = (c.realtime_runtime, c.realtime_period) {
                    if r > 0 && r as u64 > p {
                        return Err(invalid(
                            "cpu.realtimeRuntime",
                            format!("{r} is above the realtime period {p}"),
                        ));
                    }
                }
                if c.realtime_runtime.is_some_and(|r| r < -1) {
                    return Err(invalid(
                        "cpu.realtimeRuntime",
                        "must be -1 or a number of µs".into(),
                    ));
                }
            }
            let needs_cpu = c.shares.is_some() || c.quota.is_some() || c.period.is_some();
            if needs_cpu && !v2 {
                self.v1_dir("cpu", "cpu")?;
            }
            for (name, value, parent_file) in
                [("cpu.cpus", &c.cpus, "cpus"), ("cpu.mems", &c.mems, "mems")]
            {
                if let Some(list) = value {
                    self.check_cpuset(name, list, parent_file)?;
                }
            }
        }
        if let Some(m) = &w.memory {
            for (name, v) in [
                ("memory.limit", m.limit),
                ("memory.reservation", m.reservation),
                ("memory.swap", m.swap),
            ] {
                if v.is_some_and(|v| v < -1) {
                    return Err(invalid(
                        name,
                        format!("{} is neither -1 nor a size", v.unwrap_or(0)),
                    ));
                }
            }
            if let Some(swap) = m.swap.filter(|s| *s > 0) {
                match m.limit {
                    Some(limit) if limit > 0 && swap >= limit => {}
                    Some(limit) if limit > 0 => {
                        return Err(invalid(
                            "memory.swap",
                            format!("memory+swap {swap} is below the memory limit {limit}"),
                        ))
                    }
                    _ => {
                        return Err(invalid(
                            "memory.swap",
                            "a memory+swap limit needs a memory limit".into(),
                        ))
                    }
                }
            }
            if !v2 {
                let dir = self.v1_dir("memory", "memory")?;
                if m.swap.is_some() && !dir.join("memory.memsw.limit_in_bytes").exists() {
                    return Err(invalid(
                        "memory.swap",
                        "swap accounting is off on this host (no memory.memsw.limit_in_bytes)"
                            .into(),
                    ));
                }
            }
        }
        if let Some(p) = &w.pids {
            if p.limit < -1 {
                return Err(invalid(
                    "pids.limit",
                    format!("{} is neither -1 (no limit) nor a count", p.limit),
                ));
            }
            if !v2 {
                self.v1_dir("pids", "pids.limit")?;
            }
        }
        if let Some(weight) = w.block_io.as_ref().and_then(|b| b.weight) {
            if !(10..=1000).contains(&weight) {
                return Err(invalid(
                    "blockIO.weight",
                    format!("{weight} is outside 10..1000"),
                ));
            }
            if weight_file(self)?.is_none() {
                return Err(invalid(
                    "blockIO.weight",
                    "this kernel has no block I/O weight file (no BFQ or CFQ scheduler)".into(),
                ));
            }
        }
        if !w.unified.is_empty() {
            let dir = self.v2.as_deref().ok_or(Error::NoCgroups)?;
            for key in w.unified.keys() {
                if key.is_empty() || key.contains('/') || key.starts_with('.') {
                    return Err(invalid(
                        &format!("unified {key:?}"),
                        "not a file name".into(),
                    ));
                }
                if !dir.join(key).is_file() {
                    return Err(invalid(
                        &format!("unified {key:?}"),
                        "no such file in the cgroup (is its controller enabled?)".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A cpuset list must parse and name only CPUs (memory nodes) the parent has.
    fn check_cpuset(&self, what: &str, list: &str, kind: &str) -> Result<()> {
        let wanted = parse_cpuset(list).ok_or_else(|| Error::Invalid {
            what: what.to_string(),
            why: format!("{list:?} is not a list like 0-2,4"),
        })?;
        let (dir, parent_files) = if self.v1.is_empty() {
            (
                self.v2.as_deref().ok_or(Error::NoCgroups)?,
                vec![format!("cpuset.{kind}.effective")],
            )
        } else {
            (
                self.v1_dir("cpuset", what)?,
                vec![format!("cpuset.effective_{kind}"), format!("cpuset.{kind}")],
            )
        };
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        let available = parent_files
            .iter()
            .find_map(|f| fs::read_to_string(parent.join(f)).ok())
            .and_then(|t| parse_cpuset(t.trim()));
        if let Some(available) = available {
            if let Some(missing) = wanted.iter().find(|c| !available.contains(c)) {
                return Err(Error::Invalid {
                    what: what.to_string(),
                    why: format!(
                        "{missing} is not available here (the parent has {})",
                        join_list(&available)
                    ),
                });
            }
        }
        Ok(())
    }

    /// The files an update of `w` writes, so that they can be put back.
    fn touched_files(&self, w: &Resources) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let v1 = |c: &str, f: &str| self.v1.get(c).map(|d| d.join(f));
        let v2 = |f: &str| self.v2.as_ref().map(|d| d.join(f));
        let is_v2 = self.v1.is_empty();
        let mut add = |p: Option<PathBuf>| out.extend(p);
        if let Some(c) = &w.cpu {
            if is_v2 {
                add(v2("cpu.weight"));
                add(v2("cpu.max"));
                add(v2("cpuset.cpus"));
                add(v2("cpuset.mems"));
            } else {
                for f in [
                    "cpu.shares",
                    "cpu.cfs_period_us",
                    "cpu.cfs_quota_us",
                    "cpu.rt_period_us",
                    "cpu.rt_runtime_us",
                ] {
                    add(v1("cpu", f));
                }
                if c.cpus.is_some() {
                    add(v1("cpuset", "cpuset.cpus"));
                }
                if c.mems.is_some() {
                    add(v1("cpuset", "cpuset.mems"));
                }
            }
        }
        if w.memory.is_some() {
            if is_v2 {
                for f in ["memory.max", "memory.low", "memory.swap.max"] {
                    add(v2(f));
                }
            } else {
                for f in [
                    "memory.limit_in_bytes",
                    "memory.memsw.limit_in_bytes",
                    "memory.soft_limit_in_bytes",
                ] {
                    add(v1("memory", f));
                }
            }
        }
        if w.pids.is_some() {
            add(if is_v2 {
                v2("pids.max")
            } else {
                v1("pids", "pids.max")
            });
        }
        if w.block_io.is_some() {
            add(weight_file(self).ok().flatten());
        }
        for k in w.unified.keys() {
            add(v2(k));
        }
        out
    }
}

/// The block I/O weight file the kernel has, if any.
fn weight_file(cg: &Cgroup) -> Result<Option<PathBuf>> {
    let (dir, names): (&Path, [&str; 2]) = if cg.v1.is_empty() {
        (
            cg.v2.as_deref().ok_or(Error::NoCgroups)?,
            ["io.bfq.weight", "io.weight"],
        )
    } else {
        (
            cg.v1_dir("blkio", "blockIO.weight")?,
            ["blkio.weight", "blkio.bfq.weight"],
        )
    };
    Ok(names.iter().map(|n| dir.join(n)).find(|p| p.exists()))
}

fn write_v1(cg: &Cgroup, w: &Resources) -> Result<()> {
    if let Some(p) = &w.pids {
        write(
            &cg.v1_dir("pids", "pids.limit")?.join("pids.max"),
            &limit_text(p.limit),
        )?;
    }
    if let Some(m) = &w.memory {
        let dir = cg.v1_dir("memory", "memory")?;
        let limit_file = dir.join("memory.limit_in_bytes");
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        // runc's order: when memory+swap grows past the current limit (or goes unlimited),
        // write it first, else the kernel refuses a limit above memory+swap.
        let swap_first = match (m.limit, m.swap) {
            (Some(_), Some(s)) => {
                let current: u64 = read(&limit_file)?.trim().parse().unwrap_or(u64::MAX);
                s == -1 || current < s as u64
            }
            _ => false,
        };
        if swap_first {
            write(&memsw, &m.swap.unwrap_or(-1).to_string())?;
            write(&limit_file, &m.limit.unwrap_or(-1).to_string())?;
        } else {
            if let Some(l) = m.limit {
                write(&limit_file, &l.to_string())?;
            }
            if let Some(s) = m.swap {
                write(&memsw, &s.to_string())?;
            }
        }
        if let Some(r) = m.reservation {
            write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
        }
    }
    if let Some(weight) = w.block_io.as_ref().and_then(|b| b.weight) {
        if let Some(file) = weight_file(cg)? {
            write(&file, &weight.to_string())?;
        }
    }
    if let Some(c) = &w.cpu {
        write_cpu_v1(cg, c)?;
        if let Some(v) = &c.cpus {
            write(&cg.v1_dir("cpuset", "cpu.cpus")?.join("cpuset.cpus"), v)?;
        }
        if let Some(v) = &c.mems {
            write(&cg.v1_dir("cpuset", "cpu.mems")?.join("cpuset.mems"), v)?;
        }
    }
    if !w.unified.is_empty() {
        let dir = cg.v2.as_deref().ok_or(Error::NoCgroups)?;
        for (k, v) in &w.unified {
            write(&dir.join(k), v)?;
        }
    }
    Ok(())
}

fn write_v2(dir: &Path, w: &Resources) -> Result<()> {
    if let Some(p) = &w.pids {
        write(&dir.join("pids.max"), &limit_text(p.limit))?;
    }
    if let Some(m) = &w.memory {
        if let Some(s) = m.swap {
            // v2 counts swap alone: memory+swap minus the memory limit.
            let v = match m.limit {
                _ if s < 0 => "max".to_string(),
                Some(l) if l > 0 => (s - l).max(0).to_string(),
                _ => s.to_string(),
            };
            write(&dir.join("memory.swap.max"), &v)?;
        }
        if let Some(l) = m.limit {
            write(&dir.join("memory.max"), &limit_text(l))?;
        }
        if let Some(r) = m.reservation {
            write(&dir.join("memory.low"), &limit_text(r))?;
        }
    }
    if let Some(weight) = w.block_io.as_ref().and_then(|b| b.weight) {
        write_io_weight_v2(dir, weight)?;
    }
    if let Some(c) = &w.cpu {
        write_cpu_v2(dir, c)?;
        if let Some(v) = &c.cpus {
            write(&dir.join("cpuset.cpus"), v)?;
        }
        if let Some(v) = &c.mems {
            write(&dir.join("cpuset.mems"), v)?;
        }
    }
    for (k, v) in &w.unified {
        write(&dir.join(k), v)?;
    }
    Ok(())
}

/// -1 (or any negative) is "max".
fn limit_text(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Writes the saved contents back; twice, since v1 memory and memory+swap limits can only
/// be restored in one order, which the first pass may not have hit.
fn restore(saved: &[(PathBuf, String)]) {
    for _ in 0..2 {
        for (path, text) in saved.iter().rev() {
            let first = text.lines().next().unwrap_or("").trim();
            if fs::read_to_string(path).is_ok_and(|now| now == *text) {
                continue;
            }
            let _ = fs::write(path, first);
        }
    }
}

/// "0-2,4" -> [0, 1, 2, 4]; None when malformed (an empty list is empty).
pub(crate) fn parse_cpuset(list: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u32 = lo.trim().parse().ok()?;
        let hi: u32 = hi.trim().parse().ok()?;
        if hi < lo || hi - lo > 65_536 {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

fn join_list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("berth-update-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(p.join("c")).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn res(json: &str) -> Resources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn merge_keeps_what_the_request_does_not_name() {
        let recorded = res(
            r#"{"memory":{"limit":67108864,"swap":134217728},"cpu":{"quota":50000,"period":100000,"cpus":"0"},"pids":{"limit":10}}"#,
        );
        let p = plan_update(
            &recorded,
            &res(r#"{"cpu":{"quota":20000},"pids":{"limit":0}}"#),
        );
        let c = p.write.cpu.unwrap();
        assert_eq!(
            (c.quota, c.period),
            (Some(20_000), Some(100_000)),
            "period from the record"
        );
        assert_eq!(c.cpus, None, "cpus not asked for: not written");
        assert_eq!(p.write.pids, None, "0 leaves the pids limit alone");
        assert_eq!(p.write.memory, None);
        assert_eq!(p.record.cpu.as_ref().unwrap().cpus.as_deref(), Some("0"));
        assert_eq!(p.record.pids.unwrap().limit, 10);

        let p = plan_update(&recorded, &res(r#"{"memory":{"limit":33554432}}"#));
        let m = p.write.memory.unwrap();
        assert_eq!((m.limit, m.swap), (Some(33_554_432), Some(134_217_728)));
    }

    #[test]
    fn unlimited_memory_makes_swap_unlimited_too() {
        let p = plan_update(&Resources::default(), &res(r#"{"memory":{"limit":-1}}"#));
        let m = p.write.memory.unwrap();
        assert_eq!((m.limit, m.swap), (Some(-1), Some(-1)));
    }

    #[test]
    fn items_update_does_not_change_are_reported() {
        let p = plan_update(
            &Resources::default(),
            &res(r#"{"devices":[{"allow":true}],"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#),
        );
        assert_eq!(p.write, Resources::default());
        assert_eq!(p.ignored, vec!["devices", "hugepageLimits"]);
    }

    fn v2_cgroup(d: &Scratch) -> Cgroup {
        Cgroup {
            path: "/berth/c".into(),
            v1: BTreeMap::new(),
            v2: Some(d.0.join("c")),
        }
    }

    #[test]
    fn v2_update_writes_the_converted_values() {
        let d = Scratch::new("v2");
        let dir = d.0.join("c");
        for f in [
            "cpu.weight",
            "cpu.max",
            "memory.max",
            "memory.swap.max",
            "pids.max",
            "io.weight",
        ] {
            fs::write(dir.join(f), "x").unwrap();
        }
        let cg = v2_cgroup(&d);
        let p = plan_update(
            &res(r#"{"cpu":{"period":50000}}"#),
            &res(
                r#"{"cpu":{"shares":1024,"quota":25000},"memory":{"limit":1048576,"swap":3145728},"pids":{"limit":-1},"blockIO":{"weight":300}}"#,
            ),
        );
        cg.update(&p.write).unwrap();
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("cpu.weight"), "39");
        assert_eq!(read("cpu.max"), "25000 50000");
        assert_eq!(read("memory.max"), "1048576");
        assert_eq!(read("memory.swap.max"), "2097152");
        assert_eq!(read("pids.max"), "max");
        assert_eq!(read("io.weight"), "default 2930");
    }

    #[test]
    fn bad_values_are_refused_before_anything_is_written() {
        let d = Scratch::new("bad");
        let dir = d.0.join("c");
        fs::write(dir.join("pids.max"), "42\n").unwrap();
        fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
        let cg = v2_cgroup(&d);
        for bad in [
            r#"{"pids":{"limit":7},"cpu":{"quota":10}}"#,
            r#"{"pids":{"limit":7},"cpu":{"period":5}}"#,
            r#"{"pids":{"limit":7},"cpu":{"shares":1}}"#,
            r#"{"pids":{"limit":7},"memory":{"limit":100,"swap":50}}"#,
            r#"{"pids":{"limit":7},"memory":{"swap":50}}"#,
            r#"{"pids":{"limit":7},"blockIO":{"weight":5}}"#,
            r#"{"pids":{"limit":7},"cpu":{"cpus":"1-0"}}"#,
            r#"{"pids":{"limit":7},"unified":{"../x":"1"}}"#,
            r#"{"pids":{"limit":7},"unified":{"nope.max":"1"}}"#,
            r#"{"pids":{"limit":7},"cpu":{"realtimeRuntime":5}}"#,
        ] {
            let p = plan_update(&Resources::default(), &res(bad));
            let e = cg.update(&p.write).unwrap_err();
            assert!(
                matches!(e, Error::Invalid { .. } | Error::NoController { .. }),
                "{bad}: {e}"
            );
            assert_eq!(
                fs::read_to_string(dir.join("pids.max")).unwrap(),
                "42\n",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_refused_write_puts_the_old_contents_back() {
        let d = Scratch::new("restore");
        let dir = d.0.join("c");
        fs::write(dir.join("pids.max"), "42\n").unwrap();
        // cpu.weight is a directory: writing it fails after pids.max was written.
        fs::create_dir(dir.join("cpu.weight")).unwrap();
        let cg = v2_cgroup(&d);
        let p = plan_update(
            &Resources::default(),
            &res(r#"{"pids":{"limit":7},"cpu":{"shares":1024}}"#),
        );
        assert!(cg.update(&p.write).is_err());
        assert_eq!(fs::read_to_string(dir.join("pids.max")).unwrap(), "42");
    }

    #[test]
    fn cpuset_lists_parse() {
        assert_eq!(parse_cpuset("0-2,4"), Some(vec![0, 1, 2, 4]));
        assert_eq!(parse_cpuset(""), Some(vec![]));
        assert_eq!(parse_cpuset("2-1"), None);
        assert_eq!(parse_cpuset("a"), None);
    }
}
