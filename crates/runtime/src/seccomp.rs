//! The OCI seccomp profile compiled with libseccomp: default action and errno, architectures,
//! flags, per-syscall actions with errnoRet, and argument rules.

use std::io::{IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::str::FromStr;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::process::PidfdGetfdFlags;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::error::Error;
use crate::spec::{Seccomp, SyscallArg};
use crate::state::Report;

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
        "SCMP_ACT_NOTIFY" => ScmpAction::Notify,
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

/// Whether some rule of the profile uses SCMP_ACT_NOTIFY: the filter is then loaded with a
/// listener fd, which goes to the agent at `listenerPath` (see init.rs and container.rs).
pub(crate) fn uses_notify(s: &Seccomp) -> bool {
    s.syscalls.iter().any(|r| r.action == "SCMP_ACT_NOTIFY")
}

/// The rules runc 1.1 applies to SCMP_ACT_NOTIFY: never the default action, a listenerPath
/// whenever a rule notifies, and not on `write`, which the init needs after the filter is
/// loaded to hand the listener over (a notified `write` there would wait for an agent that
/// has not got the fd yet).
pub(crate) fn check_notify(s: &Seccomp) -> Result<(), String> {
    if s.default_action == "SCMP_ACT_NOTIFY" {
        return Err(
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action".into(),
        );
    }
    if !uses_notify(s) {
        return Ok(());
    }
    if s.listener_path.as_deref().unwrap_or("").is_empty() {
        return Err("linux.seccomp: SCMP_ACT_NOTIFY is used but listenerPath is not set".into());
    }
    if s.syscalls
        .iter()
        .any(|r| r.action == "SCMP_ACT_NOTIFY" && r.names.iter().any(|n| n == "write"))
    {
        return Err("linux.seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall".into());
    }
    Ok(())
}

/// Builds (but does not load) the filter.
pub(crate) fn compile(s: &Seccomp) -> Result<ScmpFilterContext, String> {
    check_notify(s)?;
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

/// The listener fd of a loaded filter with SCMP_ACT_NOTIFY rules (libseccomp loads such a
/// filter with SECCOMP_FILTER_FLAG_NEW_LISTENER). The fd stays owned by the context.
pub(crate) fn notify_fd(ctx: &ScmpFilterContext) -> Result<i32, String> {
    ctx.get_notify_fd()
        .map_err(|e| format!("linux.seccomp: getting the listener fd: {e}"))
}

/// The runtime-spec "Container Process State" sent with the listener fd, as runc 1.1 sends
/// it: the fd is named `seccompFd`, `state` is the container's state (status `creating`).
/// `pid` is the filtered process's (the init's for create, the new process's for exec).
pub(crate) fn process_state(
    s: &Seccomp,
    oci_version: &str,
    pid: i32,
    state: &Report,
) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = s.listener_metadata.as_deref().filter(|m| !m.is_empty()) {
        doc["metadata"] = m.into();
    }
    doc
}

/// berth-run's side of SCMP_ACT_NOTIFY: takes the listener fd `fd` out of process `pid`
/// (the init, or an exec'd process; pidfd_getfd), connects to linux.seccomp.listenerPath (relative to the bundle, as runc
/// resolves it after its chdir there) and sends the container process state JSON and the fd
/// in one message (SCM_RIGHTS).
pub(crate) fn send_listener(
    pid: i32,
    fd: i32,
    s: &Seccomp,
    bundle: &Path,
    state: &Report,
) -> crate::error::Result<()> {
    let pidfd = berth_sys::pidfd_open(pid)
        .map_err(|e| Error::io("linux.seccomp: pidfd_open of the filtered process", e))?;
    let listener =
        rustix::process::pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()).map_err(|e| {
            Error::io(
                format!("linux.seccomp: taking listener fd {fd} of process {pid}"),
                e.into(),
            )
        })?;
    let path = bundle.join(s.listener_path.as_deref().unwrap_or_default());
    let sock = UnixStream::connect(&path).map_err(|source| Error::File {
        what: "linux.seccomp.listenerPath: connecting to",
        path: path.clone(),
        source,
    })?;
    let body = serde_json::to_vec(&process_state(s, &state.oci_version, pid, state))
        .expect("the process state serialises");
    let fds = [listener.as_fd()];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    cmsg.push(SendAncillaryMessage::ScmRights(&fds));
    let sent = rustix::net::sendmsg(
        &sock,
        &[IoSlice::new(&body)],
        &mut cmsg,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| {
        Error::io(
            format!("linux.seccomp.listenerPath: sending to {}", path.display()),
            e.into(),
        )
    })?;
    // A stream socket may take less in one call: the rest follows without the fd.
    (&sock).write_all(&body[sent..]).map_err(|e| {
        Error::io(
            format!("linux.seccomp.listenerPath: sending to {}", path.display()),
            e,
        )
    })
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
    fn notify_needs_a_listener_and_is_never_the_default_or_on_write() {
        let mut s = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(uses_notify(&s));
        assert!(compile(&s).err().unwrap().contains("listenerPath"));
        s.listener_path = Some("/run/agent.sock".into());
        compile(&s).unwrap();
        s.syscalls[0].names.push("write".into());
        assert!(compile(&s).err().unwrap().contains("write syscall"));
        let d = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/x"}"#);
        assert!(!uses_notify(&d));
        assert!(compile(&d).err().unwrap().contains("default action"));
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
