//! OCI hooks: each runs with the container state on stdin, its own args and env, and its
//! timeout; a non-zero exit or a timeout fails the hook.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spec::Hook;
use crate::state::Report;

/// Runs hooks in order; the first failure stops them.
pub(crate) fn run(which: &'static str, hooks: &[Hook], state: &Report) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).expect("state serialises");
    for h in hooks {
        run_one(which, h, &input)?;
    }
    Ok(())
}

fn run_one(which: &'static str, h: &Hook, input: &[u8]) -> Result<()> {
    let fail = |why: String| Error::Hook {
        hook: which,
        path: h.path.clone(),
        why,
    };
    let mut cmd = Command::new(&h.path);
    if let Some((arg0, rest)) = h.args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for e in &h.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    // Its own process group, so that a timeout ends what the hook started too (a shell's
    // children would otherwise live on, holding berth-run's stdout and stderr).
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| fail(crate::init::describe(&e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(input);
    }
    let deadline = h
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child
            .try_wait()
            .map_err(|e| fail(crate::init::describe(&e)))?
        {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(fail(format!("exited with {status}"))),
            None => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("timed out after {}s", h.timeout.unwrap_or(0))));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Status;

    fn report() -> Report {
        Report {
            oci_version: "1.0.2".into(),
            id: "hook-test".into(),
            status: Status::Created,
            pid: 1,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: Default::default(),
        }
    }

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["X=1".into()],
            timeout,
        }
    }

    #[test]
    fn hooks_read_the_state_and_see_their_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(
            &format!("cat > {} && echo $X >> {}", out.display(), out.display()),
            None,
        );
        run("prestart", &[h], &report()).unwrap();
        let text = std::fs::read_to_string(out).unwrap();
        assert!(
            text.contains("\"id\":\"hook-test\"") && text.ends_with("1\n"),
            "{text}"
        );
    }

    #[test]
    fn failures_and_timeouts_name_the_hook() {
        let err = run("poststop", &[hook("exit 3", None)], &report())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("poststop hook /bin/sh") && err.contains("3"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {} && wait", pid_file.display());
        let err = run("prestart", &[hook(&script, Some(1))], &report())
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out after 1s"), "{err}");
        // What the hook started ended with it.
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Dead: gone, or a zombie its new parent has not reaped yet.
        let dead = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        };
        let until = Instant::now() + Duration::from_secs(5);
        while !dead() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(dead(), "the hook's child {pid} outlived the timeout");
    }
}
