//! The OCI seccomp profile compiled with libseccomp: default action and errno, architectures,
//! flags, per-syscall actions with errnoRet, and argument rules.

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::spec::{Seccomp, SyscallArg};

const EPERM: i32 = 1;

fn action(name: &str, errno: Option<u32>) -> Result<ScmpAction, String> {
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.map_or(EPERM, |e| e as i32)),
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno.map_or(EPERM, |e| e as i32) as u16),
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_NOTIFY" => return Err(
            "linux.seccomp: SCMP_ACT_NOTIFY needs a listener, which berth-run does not support yet"
                .into(),
        ),
        other => return Err(format!("linux.seccomp: unknown action {other:?}")),
    })
}

fn compare(arg: &SyscallArg) -> Result<ScmpArgCompare, String> {
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(arg.value),
        other => return Err(format!("linux.seccomp: unknown operator {other:?}")),
    };
    if arg.index > 5 {
        return Err(format!(
            "linux.seccomp: argument index {} is above 5",
            arg.index
        ));
    }
    let datum = if arg.op == "SCMP_CMP_MASKED_EQ" {
        arg.value_two
    } else {
        arg.value
    };
    Ok(ScmpArgCompare::new(arg.index, op, datum))
}

/// Builds (but does not load) the filter.
pub(crate) fn compile(s: &Seccomp) -> Result<ScmpFilterContext, String> {
    let default = action(&s.default_action, s.default_errno_ret)?;
    let mut ctx =
        ScmpFilterContext::new_filter(default).map_err(|e| format!("linux.seccomp: {e}"))?;
    ctx.set_ctl_nnp(false)
        .map_err(|e| format!("linux.seccomp: {e}"))?;
    for a in &s.architectures {
        let arch = ScmpArch::from_str(a)
            .map_err(|_| format!("linux.seccomp: unknown architecture {a:?}"))?;
        ctx.add_arch(arch)
            .map_err(|e| format!("linux.seccomp: architecture {a}: {e}"))?;
    }
    for f in &s.flags {
        let res = match f.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => ctx.set_ctl_tsync(true),
            "SECCOMP_FILTER_FLAG_LOG" => ctx.set_ctl_log(true),
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => ctx.set_ctl_ssb(true),
            other => return Err(format!("linux.seccomp: unknown flag {other:?}")),
        };
        res.map_err(|e| format!("linux.seccomp: flag {f}: {e}"))?;
    }
    for rule in &s.syscalls {
        let act = action(&rule.action, rule.errno_ret)?;
        if act == default {
            continue;
        }
        let cmps = rule
            .args
            .iter()
            .map(compare)
            .collect::<Result<Vec<_>, _>>()?;
        let mut indexes: Vec<u32> = rule.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in &rule.names {
            // Names this libseccomp does not know are skipped, as runc and crun do.
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let res = if cmps.is_empty() {
                ctx.add_rule(act, sc)
            } else if repeated {
                // Several conditions on one argument mean "any of them": one rule each.
                cmps.iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, std::slice::from_ref(c)))
            } else {
                ctx.add_rule_conditional(act, sc, &cmps)
            };
            res.map_err(|e| format!("linux.seccomp: rule for {name}: {e}"))?;
        }
    }
    Ok(ctx)
}

/// Loads a compiled filter into the calling process.
pub(crate) fn load(ctx: &ScmpFilterContext) -> Result<(), String> {
    ctx.load()
        .map_err(|e| format!("loading the seccomp filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SyscallRule;

    fn profile(json: &str) -> Seccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_docker_like_profile_compiles() {
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "flags":["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls":[{"names":["read","write","execve","execveat","exit_group","not_a_syscall"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                            {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
                            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        compile(&s).unwrap();
    }

    #[test]
    fn unknown_actions_ops_and_arches_are_named() {
        let mut s = profile(r#"{"defaultAction":"SCMP_ACT_FLY"}"#);
        assert!(compile(&s).err().unwrap().contains("SCMP_ACT_FLY"));
        s.default_action = "SCMP_ACT_ALLOW".into();
        s.architectures = vec!["SCMP_ARCH_PDP11".into()];
        assert!(compile(&s).err().unwrap().contains("SCMP_ARCH_PDP11"));
        s.architectures.clear();
        s.syscalls = vec![SyscallRule {
            names: vec!["read".into()],
            action: "SCMP_ACT_ERRNO".into(),
            args: vec![SyscallArg {
                index: 0,
                value: 1,
                value_two: 0,
                op: "SCMP_CMP_SOMETIMES".into(),
            }],
            ..Default::default()
        }];
        assert!(compile(&s).err().unwrap().contains("SCMP_CMP_SOMETIMES"));
    }
}
