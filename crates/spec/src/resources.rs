//! The cgroup resources and sysctls of a container.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::options::{NsMode, Options};
use crate::plan::Host;
use crate::runtime::{Cpu, DeviceRule, Memory, Pids, Resources};

pub(crate) fn sysctls(opts: &Options) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for kv in &opts.sysctls {
        let k = kv.key.as_str();
        let ipc = k.starts_with("kernel.shm")
            || k.starts_with("kernel.msg")
            || k == "kernel.sem"
            || k.starts_with("fs.mqueue.");
        let owner = if ipc {
            Some(("--ipc", &opts.ipc))
        } else if k.starts_with("net.") {
            Some(("--net", &opts.net))
        } else if k == "kernel.domainname" {
            Some(("--uts", &opts.uts))
        } else {
            None
        };
        match owner {
            None => return Err(Error::invalid("--sysctl", k, "is not a namespaced sysctl")),
            Some((flag, NsMode::Host)) => {
                return Err(Error::invalid(
                    "--sysctl",
                    k,
                    format!("cannot be set with {flag} host"),
                ));
            }
            Some(_) => {
                out.insert(kv.key.clone(), kv.value.clone());
            }
        }
    }
    Ok(out)
}

pub(crate) fn resources(opts: &Options, host: &Host) -> Result<Resources, Error> {
    let devices = vec![DeviceRule {
        allow: opts.privileged,
        kind: None,
        major: None,
        minor: None,
        access: "rwm".into(),
    }];

    let mut memory = Memory::default();
    if let Some(m) = opts.memory {
        if m < 6 << 20 {
            return Err(Error::invalid(
                "--memory",
                &m.to_string(),
                "the minimum is 6 MiB",
            ));
        }
        memory.limit = Some(
            i64::try_from(m)
                .map_err(|_| Error::invalid("--memory", &m.to_string(), "too large"))?,
        );
    }
    match (opts.memory_swap, memory.limit) {
        (Some(s), _) if !host.swap_accounting => {
            return Err(Error::Unsupported {
                what: format!("--memory-swap {s} (the memory cgroup does not account swap)"),
            });
        }
        (Some(_), None) => {
            return Err(Error::invalid("--memory-swap", "", "needs --memory"));
        }
        (Some(-1), Some(_)) => memory.swap = Some(-1),
        (Some(s), Some(m)) if s < m => {
            return Err(Error::invalid(
                "--memory-swap",
                &s.to_string(),
                "must be at least --memory (it counts memory plus swap)",
            ));
        }
        (Some(s), Some(_)) => memory.swap = Some(s),
        // docker's default: as much swap as memory.
        (None, Some(m)) if host.swap_accounting => memory.swap = Some(m.saturating_mul(2)),
        (None, _) => {}
    }

    let mut cpu = Cpu {
        shares: opts.cpu_shares,
        cpus: opts.cpuset_cpus.clone(),
        ..Cpu::default()
    };
    if let Some(c) = opts.cpus {
        cpu.quota = Some(c.quota);
        cpu.period = Some(c.period);
    }
    if let Some(s) = cpu.shares {
        if !(2..=262_144).contains(&s) {
            return Err(Error::invalid(
                "--cpu-shares",
                &s.to_string(),
                "must be between 2 and 262144",
            ));
        }
    }
    let pids = opts.pids_limit.map(|l| Pids {
        limit: if l <= 0 { -1 } else { l },
    });
    Ok(Resources {
        devices,
        memory: (memory != Memory::default()).then_some(memory),
        cpu: (cpu != Cpu::default()).then_some(cpu),
        pids,
    })
}
