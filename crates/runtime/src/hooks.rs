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
        let err = run("prestart", &[hook("sleep 5", Some(1))], &report())
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out after 1s"), "{err}");
    }
}
