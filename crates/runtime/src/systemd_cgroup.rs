//! `--systemd-cgroup`: runc's systemd cgroup driver, on a host whose PID 1 is systemd, with
//! a pure cgroup v2 hierarchy (runc's v2 manager) or v1 controllers, hybrid or not (runc's
//! legacy manager). The spec's `cgroupsPath` is `slice:prefix:name` (runc's default
//! `system.slice:runc:<id>` when empty); the container's cgroup is the transient scope
//! `<prefix>-<name>.scope` in that slice, which systemd makes around the init:
//!
//! 1. the init is cloned outside any container cgroup and waits for `Go` (container.rs);
//! 2. `StartTransientUnit` with `PIDs=[init]`, `Delegate=true`, accounting on and the limits
//!    as unit properties (so that `systemctl daemon-reload` keeps them), then the job's
//!    `JobRemoved` signal, then /proc/<init>/cgroup must name the scope;
//! 3. the limits are written to the scope's files too (as runc does), with the device eBPF
//!    program and `unified` keys, through berth-cgroup; then the init goes on.
//!
//! With v1 controllers (`legacy`): the properties are runc's v1 ones (MemoryLimit, CPUShares,
//! BlockIOWeight...); systemd makes the scope in name=systemd, the unified tree and the
//! controllers it manages; container.rs makes the same path in every other hierarchy (cpuset,
//! freezer, net_cls...) and moves the init there, then writes the limits to every hierarchy.
//!
//! `delete` kills what is left, then `StopUnit` and waits for its job (a unit already gone,
//! as a scope is once empty, is fine). The unit's name is kept in the state, so later verbs
//! need no flag. See docs/systemd-cgroup.md.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_cgroup::Resources;
use berth_systemd::{range_to_bits, Property, Systemd, Value};

use crate::error::{Error, Result};

/// The directory whose existence says PID 1 is systemd (`sd_booted()`).
pub const SYSTEMD_RUN_DIR: &str = "/run/systemd/system";

/// How long systemd may take to start or stop a unit (runc waits 30 s too).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// A systemd cgroupsPath, parsed and expanded as runc does.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// The slice unit (`system.slice`, `machine-web.slice`).
    pub slice: String,
    /// The unit systemd creates: `<prefix>-<name>.scope`, or `<name>` when it is a slice.
    pub unit: String,
    /// The cgroup path in the hierarchy: the slice expanded (`a-b.slice` is
    /// `/a.slice/a-b.slice`), then the unit.
    pub cgroup: String,
    /// The name part (runc's Description is "libcontainer container <name>").
    pub name: String,
    /// Extra unit properties from `org.systemd.property.<Name>` annotations, sent last.
    pub extra: Vec<Property>,
    /// The host has v1 controllers (hybrid or v1): runc's legacy properties.
    pub legacy: bool,
}

/// Parses `slice:prefix:name` (or the default for an empty path).
pub fn parse(cgroups_path: Option<&str>, id: &str) -> std::result::Result<Scope, String> {
    let raw = match cgroups_path {
        None | Some("") => format!("system.slice:runc:{id}"),
        Some(p) => p.to_string(),
    };
    let parts: Vec<&str> = raw.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(format!(
            "linux.cgroupsPath {raw:?}: with --systemd-cgroup it must be \"slice:prefix:name\""
        ));
    };
    if name.is_empty() {
        return Err(format!(
            "linux.cgroupsPath {raw:?}: the name (after the second ':') is empty"
        ));
    }
    for part in [slice, prefix, name] {
        if part.contains('/') {
            return Err(format!(
                "linux.cgroupsPath {raw:?}: {part:?} contains '/', which systemd unit names cannot"
            ));
        }
        if part.chars().any(|c| c.is_control() || c == ' ') || part == "." || part == ".." {
            return Err(format!(
                "linux.cgroupsPath {raw:?}: {part:?} is not a valid part of a unit name"
            ));
        }
    }
    let slice = if slice.is_empty() {
        "system.slice".to_string()
    } else {
        slice.to_string()
    };
    let expanded =
        expand_slice(&slice).map_err(|why| format!("linux.cgroupsPath {raw:?}: {why}"))?;
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(Scope {
        slice,
        cgroup: format!("{expanded}/{unit}"),
        unit,
        name: name.to_string(),
        extra: Vec::new(),
        legacy: false,
    })
}

const PROPERTY_PREFIX: &str = "org.systemd.property.";

/// runc's `org.systemd.property.<Name>` annotations: the value in GVariant text (the subset
/// berth reads: `true`/`false`, `'text'`/`"text"`, a bare integer (int32) or one typed as
/// `uint64 N`, `int64 N`, `uint32 N`, `int32 N`, `byte N`, `double N`). A name ending in
/// `Sec` (after a lowercase letter) becomes `...USec`, its value times 1,000,000, as runc does.
pub(crate) fn annotation_properties(
    annotations: &std::collections::BTreeMap<String, String>,
) -> std::result::Result<Vec<Property>, String> {
    let mut out = Vec::new();
    for (key, text) in annotations {
        let Some(name) = key.strip_prefix(PROPERTY_PREFIX) else {
            continue;
        };
        let bad = |why: &str| format!("annotation {key}={text:?}: {why}");
        if !valid_property_name(name) {
            return Err(bad("not a systemd property name (CamelCase letters)"));
        }
        let mut value = parse_gvariant(text.trim()).map_err(|why| bad(&why))?;
        let mut name = name.to_string();
        if let Some(stem) = name.strip_suffix("Sec") {
            if stem.ends_with(|c: char| c.is_ascii_lowercase()) {
                value = match value {
                    Value::U64(n) => Value::U64(n.saturating_mul(1_000_000)),
                    Value::I64(n) => Value::I64(n.saturating_mul(1_000_000)),
                    Value::U32(n) => Value::U64(u64::from(n) * 1_000_000),
                    Value::I32(n) if n >= 0 => Value::U64(n as u64 * 1_000_000),
                    _ => return Err(bad("a ...Sec value must be a number of seconds")),
                };
                name = format!("{stem}USec");
            }
        }
        out.push((name, value));
    }
    Ok(out)
}

/// `CamelCase`: one or more words, each an uppercase ASCII letter then lowercase ones (runc's
/// check), digits allowed after the first letter.
fn valid_property_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn parse_gvariant(text: &str) -> std::result::Result<Value, String> {
    match text {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    for quote in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            if inner.contains(quote) || inner.contains('\\') {
                return Err("escapes in strings are not supported".into());
            }
            return Ok(Value::str(inner));
        }
    }
    let (kind, number) = match text.split_once(' ') {
        Some((k, n)) => (k, n.trim()),
        None => ("int32", text),
    };
    let err = |_| format!("{number:?} is not a valid {kind}");
    Ok(match kind {
        "uint64" => Value::U64(number.parse().map_err(err)?),
        "int64" => Value::I64(number.parse().map_err(err)?),
        "uint32" => Value::U32(number.parse().map_err(err)?),
        "int32" => Value::I32(number.parse().map_err(err)?),
        "byte" => Value::Byte(number.parse().map_err(err)?),
        "double" => {
            let f: f64 = number
                .parse()
                .map_err(|_| format!("{number:?} is not a valid double"))?;
            if !(0.0..1.8e13).contains(&f) {
                return Err(format!("{number} is out of range"));
            }
            Value::U64(f as u64)
        }
        _ => {
            return Err(format!(
                "GVariant value {text:?} is not supported (use true/false, 'text', or a \
                 typed number such as \"uint64 5\")"
            ))
        }
    })
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> std::result::Result<String, String> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(format!("{slice:?} is not a slice (it must end in .slice)"));
    };
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(format!("{slice:?} is not a valid slice name"));
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// The container's scope for `--systemd-cgroup`, after checking that this host can make one.
pub(crate) fn scope_for(
    spec: &crate::spec::Spec,
    linux: &crate::spec::Linux,
    id: &str,
    config: &Path,
    layout: &berth_cgroup::Layout,
) -> Result<Scope> {
    let spec_err = |why| Error::Spec {
        file: config.display().to_string(),
        why,
    };
    let mut scope = parse(linux.cgroups_path.as_deref(), id).map_err(spec_err)?;
    scope.extra = annotation_properties(&spec.annotations).map_err(spec_err)?;
    if let Some(why) = host_problem(Path::new(SYSTEMD_RUN_DIR)) {
        return Err(Error::Unsupported(why));
    }
    scope.legacy = !layout.is_v2();
    if scope.legacy {
        if let Some(key) = linux
            .resources
            .as_ref()
            .and_then(|r| r.unified.keys().next())
        {
            // As runc's legacy manager (ErrV1NoUnified).
            return Err(spec_err(format!(
                "linux.resources.unified {key:?}: this host has cgroup v1 controllers, where \
                 unified keys cannot be set"
            )));
        }
    }
    Ok(scope)
}

/// The unit's properties, as runc's unified (v2) or legacy (v1) manager sets them for `pid`.
pub(crate) fn unit_properties(scope: &Scope, pid: i32, res: Option<&Resources>) -> Vec<Property> {
    let mut props: Vec<Property> = vec![(
        "Description".into(),
        Value::str(format!("libcontainer container {}", scope.name)),
    )];
    if scope.unit.ends_with(".slice") {
        // A slice's parent comes from Wants=, a scope's from Slice=.
        props.push((
            "Wants".into(),
            Value::Array("s".into(), vec![Value::str(&scope.slice)]),
        ));
    } else {
        props.push(("Slice".into(), Value::str(&scope.slice)));
        props.push(("Delegate".into(), Value::Bool(true)));
    }
    props.push((
        "PIDs".into(),
        Value::Array("u".into(), vec![Value::U32(pid as u32)]),
    ));
    let io = if scope.legacy {
        "BlockIOAccounting"
    } else {
        "IOAccounting"
    };
    for p in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
        props.push((p.into(), Value::Bool(true)));
    }
    props.push(("DefaultDependencies".into(), Value::Bool(false)));
    if let Some(res) = res {
        props.extend(if scope.legacy {
            legacy_resource_properties(res)
        } else {
            resource_properties(res)
        });
    }
    // As runc: the annotations last, so they can override what berth sets.
    props.extend(scope.extra.iter().cloned());
    props
}

fn max_or(v: i64) -> u64 {
    if v < 0 {
        u64::MAX
    } else {
        v as u64
    }
}

/// linux.resources as systemd properties (runc's genV2ResourcesProperties). What systemd has
/// no property for (hugetlb, io.max, other unified keys) is only written to the files.
pub(crate) fn resource_properties(res: &Resources) -> Vec<Property> {
    let mut props: Vec<Property> = Vec::new();
    if let Some(m) = &res.memory {
        let limit = m.limit.unwrap_or(0);
        if limit != 0 {
            props.push(("MemoryMax".into(), Value::U64(max_or(limit))));
        }
        if let Some(r) = m.reservation.filter(|r| *r != 0) {
            props.push(("MemoryLow".into(), Value::U64(max_or(r))));
        }
        if let Some(swap) = swap_v2(m.swap.unwrap_or(0), limit) {
            props.push(("MemorySwapMax".into(), Value::U64(max_or(swap))));
        }
    }
    if let Some(c) = &res.cpu {
        if let Some(s) = c.shares.filter(|s| *s != 0) {
            props.push(("CPUWeight".into(), Value::U64(shares_to_weight(s))));
        }
        cpu_quota(&mut props, c.quota.unwrap_or(0), c.period.unwrap_or(0));
        for (value, name) in [(&c.cpus, "AllowedCPUs"), (&c.mems, "AllowedMemoryNodes")] {
            if let Some(bits) = value
                .as_deref()
                .filter(|v| !v.is_empty())
                .and_then(|v| range_to_bits(v).ok())
            {
                props.push((name.into(), bytes(bits)));
            }
        }
    }
    if let Some(p) = &res.pids {
        if p.limit > 0 || p.limit == -1 {
            props.push(("TasksMax".into(), Value::U64(max_or(p.limit))));
        }
    }
    if let Some(w) = res
        .block_io
        .as_ref()
        .and_then(|b| b.weight)
        .filter(|w| *w != 0)
    {
        props.push(("IOWeight".into(), Value::U64(blkio_to_io_weight(w))));
    }
    for (key, value) in &res.unified {
        unified_property(&mut props, key, value.trim());
    }
    props
}

/// linux.resources as the properties runc's legacy (v1) manager sets
/// (genV1ResourcesProperties): the device list first, then v1's own units, no conversion.
pub(crate) fn legacy_resource_properties(res: &Resources) -> Vec<Property> {
    let mut props = device_properties(
        &res.devices,
        Path::new("/proc/devices"),
        Path::new("/sys/dev"),
    );
    if let Some(limit) = res
        .memory
        .as_ref()
        .and_then(|m| m.limit)
        .filter(|l| *l != 0)
    {
        // runc: uint64(r.Memory), so -1 is infinity.
        props.push(("MemoryLimit".into(), Value::U64(limit as u64)));
    }
    if let Some(c) = &res.cpu {
        if let Some(s) = c.shares.filter(|s| *s != 0) {
            props.push(("CPUShares".into(), Value::U64(s)));
        }
        cpu_quota(&mut props, c.quota.unwrap_or(0), c.period.unwrap_or(0));
    }
    if let Some(w) = res
        .block_io
        .as_ref()
        .and_then(|b| b.weight)
        .filter(|w| *w != 0)
    {
        props.push(("BlockIOWeight".into(), Value::U64(u64::from(w))));
    }
    if let Some(p) = &res.pids {
        if p.limit > 0 || p.limit == -1 {
            props.push(("TasksMax".into(), Value::U64(max_or(p.limit))));
        }
    }
    if let Some(c) = &res.cpu {
        for (value, name) in [(&c.cpus, "AllowedCPUs"), (&c.mems, "AllowedMemoryNodes")] {
            if let Some(bits) = value
                .as_deref()
                .filter(|v| !v.is_empty())
                .and_then(|v| range_to_bits(v).ok())
            {
                props.push((name.into(), bytes(bits)));
            }
        }
    }
    props
}

/// DevicePolicy and DeviceAllow for the devices rules, as runc's generateDeviceProperties:
/// on v1 systemd writes the unit's list to devices.allow/deny whenever it realizes the unit
/// (a `daemon-reload` too), so without them a reload would allow every device. Strict
/// policy with the final allow-list; a list that allows all is DevicePolicy=auto; a deny
/// list (which DeviceAllow= cannot say) is strict and empty, as runc (the files hold the
/// real list until systemd rewrites them). No rules: berth writes none, and sends none.
/// `n:*` becomes `char-<name>` from /proc/devices, `n:m` `/dev/char/n:m` where /sys/dev has
/// it (others are skipped with a warning, as runc).
fn device_properties(
    rules: &[berth_cgroup::DeviceRule],
    proc_devices: &Path,
    sys_dev: &Path,
) -> Vec<Property> {
    if rules.is_empty() {
        return Vec::new();
    }
    // A bad rule: the file write that follows reports it.
    let Ok((default_allow, exceptions)) = berth_cgroup::device_list(rules) else {
        return Vec::new();
    };
    let entry =
        |path: String, perms: &str| Value::Struct(vec![Value::str(path), Value::str(perms)]);
    if default_allow && exceptions.is_empty() {
        return vec![
            ("DevicePolicy".into(), Value::str("auto")),
            (
                "DeviceAllow".into(),
                Value::Array("(ss)".into(), Vec::new()),
            ),
        ];
    }
    let mut props: Vec<Property> = vec![
        ("DevicePolicy".into(), Value::str("strict")),
        (
            "DeviceAllow".into(),
            Value::Array("(ss)".into(), Vec::new()),
        ),
    ];
    if default_allow {
        tracing::warn!(
            "systemd cannot express a device deny list: the scope's DeviceAllow= is empty (deny \
             all) and only the cgroup files hold the rules"
        );
        return props;
    }
    let groups = std::fs::read_to_string(proc_devices).unwrap_or_default();
    for rule in exceptions {
        let (kind, class) = match rule.kind.as_deref() {
            Some("b") => ("block", "Block devices:"),
            _ => ("char", "Character devices:"),
        };
        let perms = rule.access.as_deref().unwrap_or("rwm");
        let path = match (rule.major, rule.minor) {
            (None, _) => format!("{kind}-*"),
            (Some(major), None) => match device_group(&groups, class, major) {
                Some(name) => format!("{kind}-{name}"),
                None => {
                    tracing::warn!("skipping device {kind} {major}:* for systemd: no such major in /proc/devices");
                    continue;
                }
            },
            (Some(major), Some(minor)) => {
                if !sys_dev.join(kind).join(format!("{major}:{minor}")).exists() {
                    tracing::warn!(
                        "skipping device /dev/{kind}/{major}:{minor} for systemd: not in {}",
                        sys_dev.display()
                    );
                    continue;
                }
                format!("/dev/{kind}/{major}:{minor}")
            }
        };
        props.push((
            "DeviceAllow".into(),
            Value::Array("(ss)".into(), vec![entry(path, perms)]),
        ));
    }
    props
}

/// The name /proc/devices gives `major` in its `class` section ("Character devices:").
fn device_group(proc_devices: &str, class: &str, major: i64) -> Option<String> {
    let mut in_class = false;
    for line in proc_devices.lines() {
        let line = line.trim();
        if line.ends_with(':') {
            in_class = line == class;
            continue;
        }
        if !in_class {
            continue;
        }
        if let Some((n, name)) = line.split_once(' ') {
            if n.parse::<i64>().ok() == Some(major) {
                return Some(name.trim().to_string());
            }
        }
    }
    None
}

fn bytes(bits: Vec<u8>) -> Value {
    Value::Array("y".into(), bits.into_iter().map(Value::Byte).collect())
}

/// One `unified` key as a property, where systemd has one (runc's unifiedResToSystemdProps);
/// values that do not parse are left to the cgroup file write, which reports them.
fn unified_property(props: &mut Vec<Property>, key: &str, v: &str) {
    let num = |v: &str| -> Option<u64> {
        if v == "max" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    };
    let name = match key {
        "cpu.max" => {
            let f: Vec<&str> = v.split_whitespace().collect();
            let quota = match f.first() {
                Some(&"max") => Some(0),
                Some(q) => q.parse::<i64>().ok(),
                None => None,
            };
            let period = match f.get(1) {
                Some(p) => p.parse::<u64>().ok(),
                None => Some(100_000),
            };
            if let (Some(q), Some(p), 1..=2) = (quota, period, f.len()) {
                cpu_quota(props, q, p);
            }
            return;
        }
        "cpuset.cpus" | "cpuset.mems" => {
            if let Ok(bits) = range_to_bits(v) {
                let name = if key == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                props.push((name.into(), bytes(bits)));
            }
            return;
        }
        "cpu.weight" => match v.parse::<u64>() {
            Ok(n) => {
                props.push(("CPUWeight".into(), Value::U64(n)));
                return;
            }
            Err(_) => return,
        },
        "memory.high" => "MemoryHigh",
        "memory.low" => "MemoryLow",
        "memory.min" => "MemoryMin",
        "memory.max" => "MemoryMax",
        "memory.swap.max" => "MemorySwapMax",
        "pids.max" => "TasksMax",
        _ => return,
    };
    if let Some(n) = num(v) {
        props.push((name.into(), Value::U64(n)));
    }
}

/// CPUQuotaPeriodUSec and CPUQuotaPerSecUSec as runc's addCpuQuota computes them: the
/// quota per second of wall time, rounded up to systemd's 10 ms granularity.
fn cpu_quota(props: &mut Vec<Property>, quota: i64, period: u64) {
    if period != 0 {
        props.push(("CPUQuotaPeriodUSec".into(), Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let mut per_sec = u64::MAX;
        if quota > 0 {
            let period = if period == 0 { 100_000 } else { period };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if per_sec % 10_000 != 0 {
                per_sec = (per_sec / 10_000).saturating_add(1).saturating_mul(10_000);
            }
        }
        props.push(("CPUQuotaPerSecUSec".into(), Value::U64(per_sec)));
    }
}

/// v1's memory+swap as v2's swap alone (runc's ConvertMemorySwapToCgroupV2Value); None when
/// nothing is to be set or the pair is invalid (the file write then reports it).
fn swap_v2(swap: i64, memory: i64) -> Option<i64> {
    match (swap, memory) {
        (0, -1) => Some(-1),
        (0, _) => None,
        (-1, _) => Some(-1),
        (_, m) if m <= 0 || swap < m => None,
        (s, m) => Some(s - m).filter(|v| *v != 0),
    }
}

/// cpu.shares to CPUWeight (runc's ConvertCPUSharesToCgroupV2Value).
fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// blkio.weight to IOWeight (as berth-cgroup writes io.weight).
fn blkio_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

/// Starts the scope around `pid` and waits until the kernel shows `pid` in it.
pub(crate) fn start(scope: &Scope, pid: i32, res: Option<&Resources>) -> Result<()> {
    let mut sd = Systemd::connect()?;
    let props = unit_properties(scope, pid, res);
    // On a failed or timed-out job start_transient_unit stops the unit it made; on any
    // other error (UnitExists, no answer) the unit, if any, may be another container's and
    // is left alone.
    sd.start_transient_unit(&scope.unit, &props, JOB_TIMEOUT)?;
    // The job is done, so the pid should be there; check rather than trust.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if in_scope(&now, &scope.cgroup, scope.legacy) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = sd.stop_unit(&scope.unit, JOB_TIMEOUT);
            return Err(Error::Setup {
                kind: berth_kind::Kind::Internal,
                message: format!(
                    "systemd: StartTransientUnit {}: started, but pid {pid} is in {:?}, not {}",
                    scope.unit,
                    now.trim(),
                    scope.cgroup
                ),
                exec: None,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether /proc/<pid>/cgroup text shows the process in `cgroup`: in the v2 hierarchy, or,
/// with v1 controllers, in systemd's own named hierarchy (where systemd tracks its units).
fn in_scope(proc_cgroup: &str, cgroup: &str, legacy: bool) -> bool {
    proc_cgroup.lines().any(|line| {
        let mut f = line.splitn(3, ':');
        let (_, names, path) = (f.next(), f.next(), f.next());
        let hierarchy = if legacy {
            Some("name=systemd")
        } else {
            Some("")
        };
        names == hierarchy && path == Some(cgroup)
    })
}

/// `update`: the new limits as the unit's runtime properties (SetUnitProperties), v1 or v2
/// ones as the host has.
pub(crate) fn set_limits(unit: &str, res: &Resources) -> Result<()> {
    let legacy = berth_cgroup::Layout::detect().is_ok_and(|l| !l.is_v2());
    let props = if legacy {
        legacy_resource_properties(res)
    } else {
        resource_properties(res)
    };
    if !props.is_empty() {
        Systemd::connect()?.set_unit_properties(unit, &props)?;
    }
    Ok(())
}

/// Stops the unit and waits for it to be gone; a unit that is not loaded is fine.
pub(crate) fn stop(unit: &str) -> Result<()> {
    Systemd::connect()?.stop_unit(unit, JOB_TIMEOUT)?;
    Ok(())
}

/// Why this host cannot run `--systemd-cgroup` containers, or None when it can.
pub fn host_problem(run_dir: &Path) -> Option<String> {
    if !run_dir.is_dir() {
        let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        return Some(format!(
            "--systemd-cgroup: PID 1 is not systemd ({} does not exist; PID 1 is {:?}), so no \
             systemd can create the container's scope: run without --systemd-cgroup",
            run_dir.display(),
            init.trim()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_cgroup::{BlockIo, Cpu, Memory, Pids};

    #[test]
    fn paths_parse_and_expand_like_runc() {
        let s = parse(Some("machine-web.slice:crio:abc"), "x").unwrap();
        assert_eq!(s.slice, "machine-web.slice");
        assert_eq!(s.unit, "crio-abc.scope");
        assert_eq!(s.cgroup, "/machine.slice/machine-web.slice/crio-abc.scope");
        let d = parse(None, "c1").unwrap();
        assert_eq!(d.cgroup, "/system.slice/runc-c1.scope");
        assert_eq!(d.name, "c1");
        let e = parse(Some(":prefix:n"), "x").unwrap();
        assert_eq!(e.cgroup, "/system.slice/prefix-n.scope");
        let n = parse(Some("user.slice::n"), "x").unwrap();
        assert_eq!(n.unit, "n.scope");
        let sub = parse(Some("-.slice::pods.slice"), "x").unwrap();
        assert_eq!(sub.cgroup, "/pods.slice");
    }

    #[test]
    fn malformed_paths_are_refused_with_the_reason() {
        for (bad, why) in [
            ("/berth/x", "slice:prefix:name"),
            ("a:b", "slice:prefix:name"),
            ("a.slice:b:c:d", "slice:prefix:name"),
            ("system.slice:runc:", "name"),
            ("system:runc:x", "must end in .slice"),
            ("a--b.slice:p:x", "not a valid slice"),
            ("system.slice:p:x/y", "contains '/'"),
            ("system.slice:p:a b", "not a valid part"),
            ("system.slice:p:..", "not a valid part"),
        ] {
            let e = parse(Some(bad), "x").unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_host_without_systemd_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(host_problem(dir.path()).is_none());
        let why = host_problem(&dir.path().join("absent")).unwrap();
        assert!(why.contains("PID 1 is not systemd"), "{why}");
    }

    fn prop<'a>(props: &'a [Property], name: &str) -> Option<&'a Value> {
        props.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    #[test]
    fn a_scope_gets_runcs_fixed_properties() {
        let scope = parse(Some("system.slice:berth:c1"), "c1").unwrap();
        let p = unit_properties(&scope, 4242, None);
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Description",
                "Slice",
                "Delegate",
                "PIDs",
                "MemoryAccounting",
                "CPUAccounting",
                "IOAccounting",
                "TasksAccounting",
                "DefaultDependencies"
            ]
        );
        assert_eq!(
            prop(&p, "Description"),
            Some(&Value::str("libcontainer container c1"))
        );
        assert_eq!(prop(&p, "Slice"), Some(&Value::str("system.slice")));
        assert_eq!(
            prop(&p, "PIDs"),
            Some(&Value::Array("u".into(), vec![Value::U32(4242)]))
        );
        assert_eq!(prop(&p, "DefaultDependencies"), Some(&Value::Bool(false)));
    }

    #[test]
    fn resources_become_the_properties_runc_sets() {
        let res = Resources {
            memory: Some(Memory {
                limit: Some(256 << 20),
                reservation: Some(128 << 20),
                swap: Some(512 << 20),
                ..Memory::default()
            }),
            cpu: Some(Cpu {
                shares: Some(1024),
                quota: Some(50_000),
                period: Some(100_000),
                cpus: Some("0-1".into()),
                mems: Some("0".into()),
                ..Cpu::default()
            }),
            pids: Some(Pids { limit: 20 }),
            block_io: Some(BlockIo {
                weight: Some(500),
                ..BlockIo::default()
            }),
            ..Resources::default()
        };
        let p = resource_properties(&res);
        assert_eq!(prop(&p, "MemoryMax"), Some(&Value::U64(256 << 20)));
        assert_eq!(prop(&p, "MemoryLow"), Some(&Value::U64(128 << 20)));
        // v1's memory+swap 512M with memory 256M: 256M of swap on v2.
        assert_eq!(prop(&p, "MemorySwapMax"), Some(&Value::U64(256 << 20)));
        // runc: 1 + (1024-2)*9999/262142 = 39.
        assert_eq!(prop(&p, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(prop(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(prop(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(prop(&p, "AllowedCPUs"), Some(&bytes(vec![3])));
        assert_eq!(prop(&p, "AllowedMemoryNodes"), Some(&bytes(vec![1])));
        assert_eq!(prop(&p, "TasksMax"), Some(&Value::U64(20)));
        // 1 + (500-10)*9999/990 = 4950.
        assert_eq!(prop(&p, "IOWeight"), Some(&Value::U64(4950)));
    }

    #[test]
    fn unlimited_values_and_rounding_follow_runc() {
        let res = Resources {
            memory: Some(Memory {
                limit: Some(-1),
                ..Memory::default()
            }),
            cpu: Some(Cpu {
                quota: Some(1234),
                ..Cpu::default()
            }),
            pids: Some(Pids { limit: -1 }),
            ..Resources::default()
        };
        let p = resource_properties(&res);
        assert_eq!(prop(&p, "MemoryMax"), Some(&Value::U64(u64::MAX)));
        // Memory unlimited and swap unset: swap unlimited too.
        assert_eq!(prop(&p, "MemorySwapMax"), Some(&Value::U64(u64::MAX)));
        // 1234us per 100ms is 12340us/s, rounded up to 20000.
        assert_eq!(prop(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(20_000)));
        assert_eq!(prop(&p, "CPUQuotaPeriodUSec"), None);
        assert_eq!(prop(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        // Nothing set, nothing sent.
        assert!(resource_properties(&Resources::default()).is_empty());
    }

    #[test]
    fn a_saturated_cpu_quota_rounds_without_overflow() {
        // 2e13us per 1us saturates the per-second value; rounding up must not overflow.
        let mut p = Vec::new();
        cpu_quota(&mut p, 20_000_000_000_000, 1);
        assert_eq!(prop(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
        assert_eq!(prop(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(1)));
    }

    #[test]
    fn systemd_property_annotations_are_read_as_runc_reads_them() {
        let mut a = std::collections::BTreeMap::new();
        for (k, v) in [
            ("org.systemd.property.TimeoutStopUSec", "uint64 123456789"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.TimeoutStopSec", "5"),
            ("org.systemd.property.SendSIGKILL", "false"),
            ("io.kubernetes.other", "x"),
        ] {
            a.insert(k.to_string(), v.to_string());
        }
        let p = annotation_properties(&a).unwrap();
        assert_eq!(
            p,
            vec![
                ("CollectMode".into(), Value::str("inactive-or-failed")),
                ("SendSIGKILL".into(), Value::Bool(false)),
                ("TimeoutStopUSec".into(), Value::U64(5_000_000)),
                ("TimeoutStopUSec".into(), Value::U64(123_456_789)),
            ]
        );
        let scope = Scope {
            extra: p,
            ..parse(None, "c1").unwrap()
        };
        let all = unit_properties(&scope, 1, None);
        assert_eq!(
            all.last().unwrap().0,
            "TimeoutStopUSec",
            "annotations come last"
        );
        for (k, v, why) in [
            ("org.systemd.property.lower", "1", "property name"),
            ("org.systemd.property.Bad-Name", "1", "property name"),
            ("org.systemd.property.X", "[1, 2]", "not supported"),
            ("org.systemd.property.X", "uint64 -1", "not a valid uint64"),
            (
                "org.systemd.property.RuntimeMaxSec",
                "'soon'",
                "number of seconds",
            ),
        ] {
            let one = [(k.to_string(), v.to_string())].into_iter().collect();
            let e = annotation_properties(&one).unwrap_err();
            assert!(e.contains(why) && e.contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn legacy_hosts_get_runcs_v1_properties() {
        let res = Resources {
            memory: Some(Memory {
                limit: Some(64 << 20),
                swap: Some(128 << 20),
                ..Memory::default()
            }),
            cpu: Some(Cpu {
                shares: Some(512),
                quota: Some(50_000),
                period: Some(100_000),
                cpus: Some("0".into()),
                ..Cpu::default()
            }),
            pids: Some(Pids { limit: 32 }),
            block_io: Some(BlockIo {
                weight: Some(300),
                ..BlockIo::default()
            }),
            ..Resources::default()
        };
        let scope = Scope {
            legacy: true,
            ..parse(Some("system.slice:berth:c1"), "c1").unwrap()
        };
        let p = unit_properties(&scope, 7, Some(&res));
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"BlockIOAccounting"), "{names:?}");
        for v2_only in [
            "IOAccounting",
            "MemoryMax",
            "MemorySwapMax",
            "CPUWeight",
            "IOWeight",
        ] {
            assert!(!names.contains(&v2_only), "{v2_only} in {names:?}");
        }
        assert_eq!(prop(&p, "MemoryLimit"), Some(&Value::U64(64 << 20)));
        assert_eq!(prop(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(prop(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(prop(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(prop(&p, "BlockIOWeight"), Some(&Value::U64(300)));
        assert_eq!(prop(&p, "TasksMax"), Some(&Value::U64(32)));
        assert_eq!(prop(&p, "AllowedCPUs"), Some(&bytes(vec![1])));
        // runc: uint64(-1) for an unlimited memory.
        let unlimited = Resources {
            memory: Some(Memory {
                limit: Some(-1),
                ..Memory::default()
            }),
            ..Resources::default()
        };
        assert_eq!(
            legacy_resource_properties(&unlimited),
            vec![("MemoryLimit".into(), Value::U64(u64::MAX))]
        );
    }

    #[test]
    fn device_rules_become_runcs_device_properties() {
        let dir = tempfile::tempdir().unwrap();
        let sys_dev = dir.path().join("sys-dev");
        std::fs::create_dir_all(sys_dev.join("char/1:3")).unwrap();
        let proc_devices = dir.path().join("devices");
        std::fs::write(
            &proc_devices,
            "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n",
        )
        .unwrap();
        let rule =
            |allow: bool, kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| {
                berth_cgroup::DeviceRule {
                    allow,
                    kind: Some(kind.into()),
                    major,
                    minor,
                    access: Some(access.into()),
                }
            };
        let deny_all = rule(false, "a", None, None, "rwm");
        let p = device_properties(
            &[deny_all.clone(), rule(true, "b", Some(8), None, "r")],
            &proc_devices,
            &sys_dev,
        );
        let allowed: Vec<(String, String)> = p
            .iter()
            .filter(|(k, _)| k == "DeviceAllow")
            .flat_map(|(_, v)| match v {
                Value::Array(_, items) => items.clone(),
                _ => panic!("{v:?}"),
            })
            .map(|e| match e {
                Value::Struct(f) => match &f[..] {
                    [Value::Str(a), Value::Str(b)] => (a.clone(), b.clone()),
                    _ => panic!("{f:?}"),
                },
                _ => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(p[0], ("DevicePolicy".into(), Value::str("strict")));
        let has = |path: &str, perms: &str| allowed.contains(&(path.into(), perms.into()));
        assert!(has("block-sd", "r"), "{allowed:?}");
        assert!(has("char-pts", "rwm"), "{allowed:?}");
        assert!(has("char-*", "m") && has("block-*", "m"), "{allowed:?}");
        assert!(has("/dev/char/1:3", "rwm"), "{allowed:?}");
        // Not in this /sys/dev: skipped, as runc skips it.
        assert!(
            !allowed.iter().any(|(p, _)| p == "/dev/char/1:5"),
            "{allowed:?}"
        );
        let allow_all = device_properties(
            &[rule(true, "a", None, None, "rwm")],
            &proc_devices,
            &sys_dev,
        );
        assert_eq!(allow_all[0], ("DevicePolicy".into(), Value::str("auto")));
        assert!(device_properties(&[], &proc_devices, &sys_dev).is_empty());
        let deny_list = device_properties(
            &[
                rule(true, "a", None, None, "rwm"),
                rule(false, "c", Some(10), Some(200), "rwm"),
            ],
            &proc_devices,
            &sys_dev,
        );
        assert_eq!(deny_list.len(), 2, "strict and empty: {deny_list:?}");
    }

    #[test]
    fn the_init_is_found_in_its_scope_per_hierarchy() {
        let hybrid = "13:rdma:/\n8:memory:/system.slice/b-1.scope\n\
                      1:name=systemd:/system.slice/b-1.scope\n0::/system.slice/b-1.scope\n";
        assert!(in_scope(hybrid, "/system.slice/b-1.scope", true));
        assert!(in_scope(hybrid, "/system.slice/b-1.scope", false));
        let moved_elsewhere =
            "1:name=systemd:/system.slice/x.service\n0::/system.slice/b-1.scope\n";
        assert!(!in_scope(moved_elsewhere, "/system.slice/b-1.scope", true));
        assert!(!in_scope(
            "0::/system.slice/b-1.scope.x\n",
            "/system.slice/b-1.scope",
            false
        ));
    }

    #[test]
    fn unified_keys_map_to_properties_where_systemd_has_one() {
        let mut res = Resources::default();
        for (k, v) in [
            ("memory.high", "1048576"),
            ("memory.max", "max"),
            ("pids.max", "10"),
            ("cpu.max", "max 50000"),
            ("cpu.weight", "300"),
            ("cpuset.cpus", "1"),
            ("io.max", "8:0 rbps=1"),
        ] {
            res.unified.insert(k.into(), v.into());
        }
        let p = resource_properties(&res);
        assert_eq!(prop(&p, "MemoryHigh"), Some(&Value::U64(1 << 20)));
        assert_eq!(prop(&p, "MemoryMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(prop(&p, "TasksMax"), Some(&Value::U64(10)));
        assert_eq!(prop(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(50_000)));
        assert_eq!(prop(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
        assert_eq!(prop(&p, "CPUWeight"), Some(&Value::U64(300)));
        assert_eq!(prop(&p, "AllowedCPUs"), Some(&bytes(vec![2])));
        assert_eq!(p.len(), 7, "io.max has no property: {p:?}");
    }
}
