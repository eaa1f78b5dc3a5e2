//! `berth-run update`: new resource limits for a created, running or paused container, with
//! runc's flags. `--resources FILE|-` takes a runtime-spec LinuxResources JSON; when it is
//! given the other limit flags are ignored, as runc does.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use berth_cli::Usage;
use berth_runtime::spec::Resources;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// LinuxResources JSON to apply (`-`: standard input); the other limit flags are then
    /// ignored. Items left out are unchanged: {"memory":{"limit":…,"reservation":…,"swap":…},
    /// "cpu":{"shares":…,"quota":…,"period":…,"realtimeRuntime":…,"realtimePeriod":…,
    /// "cpus":"…","mems":"…"},"blockIO":{"weight":…},"pids":{"limit":…},"unified":{…}}
    #[arg(long, short = 'r', value_name = "FILE")]
    resources: Option<String>,

    /// Block I/O weight, 10 to 1000.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    blkio_weight: Option<String>,

    /// CPU CFS period in µs.
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    cpu_period: Option<String>,

    /// CPU CFS quota in µs per period (-1: no limit).
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    cpu_quota: Option<String>,

    /// CPU shares (relative weight; cpu.weight on v2).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpu_share: Option<String>,

    /// CPU realtime period in µs (v1 only).
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    cpu_rt_period: Option<String>,

    /// CPU realtime runtime in µs per period (v1 only).
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    cpu_rt_runtime: Option<String>,

    /// CPUs to use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    cpuset_cpus: Option<String>,

    /// Memory nodes to use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    cpuset_mems: Option<String>,

    /// Memory limit in bytes (512m, 1g; -1: no limit).
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    memory: Option<String>,

    /// Memory reservation (soft limit; memory.low on v2).
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    memory_reservation: Option<String>,

    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    memory_swap: Option<String>,

    /// Maximum number of processes (-1: no limit).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pids_limit: Option<String>,

    /// Intel RDT/CAT L3 cache schema (needs the host's resctrl filesystem).
    #[arg(long, value_name = "SCHEMA")]
    l3_cache_schema: Option<String>,

    /// Intel RDT/MBA memory bandwidth schema (needs the host's resctrl filesystem).
    #[arg(long, value_name = "SCHEMA")]
    mem_bw_schema: Option<String>,

    /// Obsolete (runc ignores it too).
    #[arg(long, hide = true)]
    kernel_memory: Option<String>,

    /// Obsolete (runc ignores it too).
    #[arg(long, hide = true)]
    kernel_memory_tcp: Option<String>,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(rt: &Runtime, a: UpdateArgs) -> anyhow::Result<ExitCode> {
    for (flag, value) in [
        ("--l3-cache-schema", &a.l3_cache_schema),
        ("--mem-bw-schema", &a.mem_bw_schema),
    ] {
        if value.is_some() {
            return Err(berth_runtime::Error::Unsupported(rdt_unsupported(flag)).into());
        }
    }
    for (flag, value) in [
        ("--kernel-memory", &a.kernel_memory),
        ("--kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if value.is_some() {
            tracing::warn!("{flag} is obsolete and ignored");
        }
    }
    let request = match &a.resources {
        Some(source) => read_resources(source)?,
        None => from_flags(&a)?,
    };
    let ignored = rt
        .update(&a.id, &request)
        .with_context(|| format!("updating container {}", a.id))?;
    for item in ignored {
        tracing::warn!("update does not change {item} (as runc): ignored");
    }
    Ok(ExitCode::SUCCESS)
}

/// Intel RDT needs the resctrl filesystem; berth-run does not manage it in any case.
fn rdt_unsupported(flag: &str) -> String {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(" - resctrl ")));
    if mounted {
        format!("{flag}: berth-run does not manage Intel RDT (resctrl) groups")
    } else {
        format!("{flag}: Intel RDT is not available on this host (no resctrl filesystem mounted)")
    }
}

fn read_resources(source: &str) -> anyhow::Result<Resources> {
    let mut text = Vec::new();
    if source == "-" {
        std::io::stdin()
            .read_to_end(&mut text)
            .context("reading --resources from standard input")?;
    } else {
        text = std::fs::read(source).with_context(|| format!("reading --resources {source}"))?;
    }
    serde_json::from_slice(&text).map_err(|e| {
        Usage(format!(
            "--resources {source}: not a LinuxResources JSON object: {e}"
        ))
        .into()
    })
}

fn from_flags(a: &UpdateArgs) -> anyhow::Result<Resources> {
    let mut r = Resources::default();
    let cpu = r.cpu.get_or_insert_with(Default::default);
    cpu.period = parse(&a.cpu_period, "--cpu-period")?;
    cpu.quota = parse(&a.cpu_quota, "--cpu-quota")?;
    cpu.shares = parse(&a.cpu_share, "--cpu-share")?;
    cpu.realtime_period = parse(&a.cpu_rt_period, "--cpu-rt-period")?;
    cpu.realtime_runtime = parse(&a.cpu_rt_runtime, "--cpu-rt-runtime")?;
    cpu.cpus = a.cpuset_cpus.clone();
    cpu.mems = a.cpuset_mems.clone();
    let mem = r.memory.get_or_insert_with(Default::default);
    mem.limit = size(&a.memory, "--memory")?;
    mem.reservation = size(&a.memory_reservation, "--memory-reservation")?;
    mem.swap = size(&a.memory_swap, "--memory-swap")?;
    if let Some(limit) = parse::<i64>(&a.pids_limit, "--pids-limit")? {
        r.pids = Some(serde_json::from_value(
            serde_json::json!({ "limit": limit }),
        )?);
    }
    if let Some(w) = parse::<u16>(&a.blkio_weight, "--blkio-weight")? {
        r.block_io = Some(serde_json::from_value(serde_json::json!({ "weight": w }))?);
    }
    Ok(r)
}

fn parse<T: std::str::FromStr>(v: &Option<String>, flag: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    v.as_deref()
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|e| Usage(format!("invalid value {s:?} for {flag}: {e}")).into())
        })
        .transpose()
}

fn size(v: &Option<String>, flag: &str) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|s| {
            if s.trim() == "-1" {
                return Ok(-1);
            }
            ram_in_bytes(s).ok_or_else(|| {
                Usage(format!(
                    "invalid value {s:?} for {flag}: not a size (bytes, or 512k, 64m, 1.5g, …; -1 for no limit)"
                ))
                .into()
            })
        })
        .transpose()
}

/// A size as docker's `RAMInBytes` (and so runc) reads one: a number, an optional space,
/// then an optional binary unit `k m g t p` with optional `i` and `b` (`512m`, `1.5GiB`, `100`).
pub(crate) fn ram_in_bytes(s: &str) -> Option<i64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(digits_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.contains("..") {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut chars = rest.chars();
    let shift = match chars.clone().next() {
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        _ => 0,
    };
    if shift > 0 {
        chars.next();
    }
    let tail: String = chars.collect();
    if !matches!(tail.as_str(), "" | "b" | "i" | "ib") {
        return None;
    }
    let bytes = value * (1u64 << shift) as f64;
    (bytes < i64::MAX as f64).then_some(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::ram_in_bytes;

    #[test]
    fn sizes_read_like_docker_units() {
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("512k"), Some(512 * 1024));
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("64MiB"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Some(3 << 29));
        assert_eq!(ram_in_bytes("2 GB"), Some(2 << 30));
        assert_eq!(ram_in_bytes("1kb"), Some(1024));
        for bad in ["", "m", "-5", "1x", "1.2.3m", "64mm", ".5m"] {
            assert_eq!(ram_in_bytes(bad), None, "{bad}");
        }
    }
}
