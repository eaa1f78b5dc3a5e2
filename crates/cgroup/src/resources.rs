//! OCI `linux.resources` and how they are written to v1 and v2 controllers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{read, write, Cgroup, Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resources {
    pub devices: Vec<DeviceRule>,
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
    pub pids: Option<Pids>,
    #[serde(rename = "blockIO")]
    pub block_io: Option<BlockIo>,
    pub hugepage_limits: Vec<HugepageLimit>,
    pub unified: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
    pub swap: Option<i64>,
    pub swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub realtime_runtime: Option<i64>,
    pub realtime_period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    pub weight_device: Vec<WeightDevice>,
    pub throttle_read_bps_device: Vec<ThrottleDevice>,
    pub throttle_write_bps_device: Vec<ThrottleDevice>,
    #[serde(rename = "throttleReadIOPSDevice")]
    pub throttle_read_iops_device: Vec<ThrottleDevice>,
    #[serde(rename = "throttleWriteIOPSDevice")]
    pub throttle_write_iops_device: Vec<ThrottleDevice>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HugepageLimit {
    pub page_size: String,
    pub limit: u64,
}

/// The devices every container may use whatever its rules say (runc's defaults): null, zero,
/// full, tty, random, urandom, /dev/pts/*, ptmx, and mknod of any char/block device.
pub(crate) const DEFAULT_ALLOWED: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
];

/// The v1 `devices.allow`/`devices.deny` line for a rule.
pub(crate) fn device_line(rule: &DeviceRule) -> String {
    let kind = rule.kind.as_deref().unwrap_or("a");
    let num = |n: Option<i64>| {
        n.filter(|v| *v >= 0)
            .map_or("*".to_string(), |v| v.to_string())
    };
    let access = rule
        .access
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    if kind == "a" && rule.major.is_none() && rule.minor.is_none() {
        return "a".to_string();
    }
    format!("{kind} {}:{} {access}", num(rule.major), num(rule.minor))
}

fn check_device_rule(rule: &DeviceRule) -> Result<()> {
    let kind = rule.kind.as_deref().unwrap_or("a");
    if !matches!(kind, "a" | "b" | "c") {
        return Err(Error::Invalid {
            what: "devices".into(),
            why: format!("type {kind:?} is not a, b or c"),
        });
    }
    if let Some(a) = &rule.access {
        if a.chars().any(|c| !"rwm".contains(c)) {
            return Err(Error::Invalid {
                what: "devices".into(),
                why: format!("access {a:?} is not made of r, w, m"),
            });
        }
    }
    Ok(())
}

pub(crate) fn apply_v1(cg: &Cgroup, res: &Resources) -> Result<()> {
    if let Some(cpu) = &res.cpu {
        write_cpu_v1(cg, cpu)?;
        if let Some(v) = cpu.cpus.as_deref().filter(|v| !v.is_empty()) {
            write(&cg.v1_dir("cpuset", "cpu.cpus")?.join("cpuset.cpus"), v)?;
        }
        if let Some(v) = cpu.mems.as_deref().filter(|v| !v.is_empty()) {
            write(&cg.v1_dir("cpuset", "cpu.mems")?.join("cpuset.mems"), v)?;
        }
    }
    if let Some(mem) = &res.memory {
        apply_memory_v1(cg, mem)?;
    }
    if let Some(p) = &res.pids {
        let dir = cg.v1_dir("pids", "pids.limit")?;
        let v = if p.limit > 0 {
            p.limit.to_string()
        } else {
            "max".to_string()
        };
        write(&dir.join("pids.max"), &v)?;
    }
    if let Some(b) = &res.block_io {
        let dir = cg.v1_dir("blkio", "blockIO")?;
        if let Some(w) = b.weight {
            write_weight(dir, "weight", w)?;
        }
        if let Some(w) = b.leaf_weight {
            write(&dir.join("blkio.leaf_weight"), &w.to_string())?;
        }
        for d in &b.weight_device {
            if let Some(w) = d.weight {
                write_weight(dir, "weight_device", format!("{}:{} {w}", d.major, d.minor))?;
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                &b.throttle_read_bps_device,
            ),
            (
                "blkio.throttle.write_bps_device",
                &b.throttle_write_bps_device,
            ),
            (
                "blkio.throttle.read_iops_device",
                &b.throttle_read_iops_device,
            ),
            (
                "blkio.throttle.write_iops_device",
                &b.throttle_write_iops_device,
            ),
        ];
        for (file, list) in throttles {
            for t in list {
                write(
                    &dir.join(file),
                    &format!("{}:{} {}", t.major, t.minor, t.rate),
                )?;
            }
        }
    }
    for h in &res.hugepage_limits {
        let dir = cg.v1_dir("hugetlb", &format!("hugepageLimits {}", h.page_size))?;
        write(
            &dir.join(format!("hugetlb.{}.limit_in_bytes", h.page_size)),
            &h.limit.to_string(),
        )?;
    }
    if !res.devices.is_empty() {
        let dir = cg.v1_dir("devices", "devices")?;
        for rule in &res.devices {
            check_device_rule(rule)?;
        }
        for rule in &res.devices {
            let file = if rule.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(&dir.join(file), &device_line(rule))?;
        }
        for line in DEFAULT_ALLOWED {
            write(&dir.join("devices.allow"), line)?;
        }
    }
    if !res.unified.is_empty() {
        let dir = cg.v2.as_deref().ok_or(Error::NoCgroups)?;
        apply_unified(dir, &res.unified)?;
    }
    Ok(())
}

fn write_weight(dir: &Path, name: &str, value: impl ToString) -> Result<()> {
    // Kernels with BFQ instead of CFQ name the files blkio.bfq.*.
    let plain = dir.join(format!("blkio.{name}"));
    if plain.exists() {
        return write(&plain, &value.to_string());
    }
    let bfq = dir.join(format!("blkio.bfq.{name}"));
    if bfq.exists() {
        return write(&bfq, &value.to_string());
    }
    Err(Error::Invalid {
        what: format!("blockIO {name}"),
        why: "this kernel has no blkio weight files (no CFQ or BFQ scheduler)".into(),
    })
}

fn apply_memory_v1(cg: &Cgroup, mem: &Memory) -> Result<()> {
    let dir = cg.v1_dir("memory", "memory")?;
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if let Some(swap) = mem.swap {
        if !memsw.exists() {
            return Err(Error::Invalid {
                what: "memory.swap".into(),
                why: "swap accounting is off on this host (no memory.memsw.limit_in_bytes)".into(),
            });
        }
        // The kernel requires limit <= memsw at every step: raise memsw first when growing.
        let current: i64 = read(&dir.join("memory.limit_in_bytes"))?
            .trim()
            .parse()
            .unwrap_or(i64::MAX);
        let limit = mem.limit.unwrap_or(current);
        if swap == -1 || swap >= current {
            write(&memsw, &swap.to_string())?;
            write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
        } else {
            write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            write(&memsw, &swap.to_string())?;
        }
    } else if let Some(limit) = mem.limit {
        write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
    }
    if let Some(v) = mem.reservation {
        write(&dir.join("memory.soft_limit_in_bytes"), &v.to_string())?;
    }
    if let Some(v) = mem.swappiness {
        if v > 100 {
            return Err(Error::Invalid {
                what: "memory.swappiness".into(),
                why: format!("{v} is above 100"),
            });
        }
        write(&dir.join("memory.swappiness"), &v.to_string())?;
    }
    if mem.disable_oom_killer == Some(true) {
        write(&dir.join("memory.oom_control"), "1")?;
    }
    Ok(())
}

/// The v1 cpu controller's files that `cpu` sets (the cpuset files are the cpuset
/// controller's), in the order the kernel accepts them: a CFS or RT period before the
/// quota or runtime checked against it. The controller is not needed when nothing is set.
pub(crate) fn write_cpu_v1(cg: &Cgroup, cpu: &Cpu) -> Result<()> {
    let items = [
        ("cpu.shares", cpu.shares.map(|v| v.to_string())),
        ("cpu.cfs_period_us", cpu.period.map(|v| v.to_string())),
        ("cpu.cfs_quota_us", cpu.quota.map(|v| v.to_string())),
        (
            "cpu.rt_period_us",
            cpu.realtime_period.map(|v| v.to_string()),
        ),
        (
            "cpu.rt_runtime_us",
            cpu.realtime_runtime.map(|v| v.to_string()),
        ),
    ];
    if items.iter().all(|(_, v)| v.is_none()) {
        return Ok(());
    }
    let dir = cg.v1_dir("cpu", "cpu")?;
    for (file, value) in items {
        if let Some(v) = value {
            write(&dir.join(file), &v)?;
        }
    }
    Ok(())
}

/// cpu.weight from `shares` and cpu.max from the quota and period (a quota of 0 or less is
/// "max", the period 100ms unless given).
pub(crate) fn write_cpu_v2(dir: &Path, cpu: &Cpu) -> Result<()> {
    if let Some(s) = cpu.shares {
        write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    if cpu.quota.is_some() || cpu.period.is_some() {
        let quota = match cpu.quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        write(
            &dir.join("cpu.max"),
            &format!("{quota} {}", cpu.period.unwrap_or(100_000)),
        )?;
    }
    Ok(())
}

/// blockIO.weight on v2. As runc: BFQ takes the blkio range as is; io.weight wants its own
/// range.
pub(crate) fn write_io_weight_v2(dir: &Path, weight: u16) -> Result<()> {
    let bfq = dir.join("io.bfq.weight");
    if bfq.exists() {
        write(&bfq, &weight.to_string())
    } else {
        write(
            &dir.join("io.weight"),
            &format!("default {}", blkio_to_io_weight(weight)),
        )
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc and crun use.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000), the conversion runc and crun use.
pub(crate) fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

pub(crate) fn apply_v2(dir: &Path, res: &Resources) -> Result<()> {
    if let Some(cpu) = &res.cpu {
        write_cpu_v2(dir, cpu)?;
        if let Some(v) = cpu.cpus.as_deref().filter(|v| !v.is_empty()) {
            write(&dir.join("cpuset.cpus"), v)?;
        }
        if let Some(v) = cpu.mems.as_deref().filter(|v| !v.is_empty()) {
            write(&dir.join("cpuset.mems"), v)?;
        }
    }
    if let Some(mem) = &res.memory {
        let max = |v: i64| {
            if v < 0 {
                "max".to_string()
            } else {
                v.to_string()
            }
        };
        if let Some(l) = mem.limit {
            write(&dir.join("memory.max"), &max(l))?;
        }
        if let Some(r) = mem.reservation {
            write(&dir.join("memory.low"), &max(r))?;
        }
        if let Some(s) = mem.swap {
            // v1 swap counts memory+swap; v2 counts swap alone.
            let v = match (s, mem.limit) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write(&dir.join("memory.swap.max"), &v)?;
        }
    }
    if let Some(p) = &res.pids {
        let v = if p.limit > 0 {
            p.limit.to_string()
        } else {
            "max".to_string()
        };
        write(&dir.join("pids.max"), &v)?;
    }
    if let Some(b) = &res.block_io {
        if let Some(w) = b.weight {
            write_io_weight_v2(dir, w)?;
        }
        for (key, list) in [
            ("rbps", &b.throttle_read_bps_device),
            ("wbps", &b.throttle_write_bps_device),
            ("riops", &b.throttle_read_iops_device),
            ("wiops", &b.throttle_write_iops_device),
        ] {
            for t in list {
                write(
                    &dir.join("io.max"),
                    &format!("{}:{} {key}={}", t.major, t.minor, t.rate),
                )?;
            }
        }
    }
    for h in &res.hugepage_limits {
        write(
            &dir.join(format!("hugetlb.{}.max", h.page_size)),
            &h.limit.to_string(),
        )?;
    }
    // Device rules on a pure v2 host are an eBPF program: Cgroup::set_device_rules
    // (devices_bpf.rs), which berth-run calls beside this.
    apply_unified(dir, &res.unified)
}

fn apply_unified(dir: &Path, unified: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in unified {
        if key.contains('/') || key.starts_with('.') {
            return Err(Error::Invalid {
                what: format!("unified {key:?}"),
                why: "not a file name".into(),
            });
        }
        let path = dir.join(key);
        if !path.exists() {
            return Err(Error::Invalid {
                what: format!("unified {key:?}"),
                why: "no such file in the cgroup (is its controller enabled?)".into(),
            });
        }
        write(&path, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lines_match_the_v1_syntax() {
        let deny_all = DeviceRule {
            allow: false,
            access: Some("rwm".into()),
            ..Default::default()
        };
        assert_eq!(device_line(&deny_all), "a");
        let null = DeviceRule {
            allow: true,
            kind: Some("c".into()),
            major: Some(1),
            minor: Some(3),
            access: Some("rw".into()),
        };
        assert_eq!(device_line(&null), "c 1:3 rw");
        let any_minor = DeviceRule {
            allow: true,
            kind: Some("c".into()),
            major: Some(136),
            minor: None,
            access: None,
        };
        assert_eq!(device_line(&any_minor), "c 136:* rwm");
    }

    #[test]
    fn bad_device_rules_are_refused() {
        let bad = DeviceRule {
            kind: Some("x".into()),
            ..Default::default()
        };
        assert!(check_device_rule(&bad).is_err());
        let bad = DeviceRule {
            access: Some("rwz".into()),
            ..Default::default()
        };
        assert!(check_device_rule(&bad).is_err());
    }

    #[test]
    fn shares_convert_to_weights_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn blkio_weights_convert_to_io_weights_like_runc() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(300), 2930);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn resources_parse_from_oci_json() {
        let r: Resources = serde_json::from_str(
            r#"{"memory":{"limit":1048576,"disableOOMKiller":true},"cpu":{"shares":512},
                "pids":{"limit":10},"blockIO":{"throttleReadIOPSDevice":[{"major":8,"minor":0,"rate":5}]},
                "devices":[{"allow":false,"access":"rwm"}]}"#,
        )
        .unwrap();
        assert_eq!(r.memory.unwrap().limit, Some(1_048_576));
        assert_eq!(r.pids.unwrap().limit, 10);
        assert_eq!(r.block_io.unwrap().throttle_read_iops_device[0].rate, 5);
        assert!(!r.devices[0].allow);
    }
}
