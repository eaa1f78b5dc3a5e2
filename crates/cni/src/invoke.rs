//! Running one plugin: finding it on the bin path, its environment, stdin, bounded stdout and
//! stderr, a deadline after which its process is killed by pid, and its error JSON.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;

use crate::error::{Error, Result};

/// The most a plugin may write to stdout (a result or an error): results are a few KiB.
pub const MAX_STDOUT: usize = 1 << 20;
/// The most of a plugin's stderr kept (the rest is read and dropped).
pub const MAX_STDERR: usize = 64 << 10;
/// How long the pipes are still read after the plugin exited, in case a child it left
/// behind holds them open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Args<'a> {
    pub command: &'static str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub path: &'a str,
}

/// Finds a plugin binary: the first regular file named `plugin_type` in the bin path.
pub(crate) fn find_in_path(plugin_type: &str, path: &[PathBuf]) -> Result<PathBuf> {
    if plugin_type.is_empty()
        || plugin_type.contains('/')
        || plugin_type == "."
        || plugin_type == ".."
    {
        return Err(Error::PluginNotFound {
            plugin: plugin_type.to_string(),
            path: join_path(path),
        });
    }
    for dir in path {
        let candidate = dir.join(plugin_type);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
    }
    Err(Error::PluginNotFound {
        plugin: plugin_type.to_string(),
        path: join_path(path),
    })
}

pub(crate) fn join_path(path: &[PathBuf]) -> String {
    path.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// What a plugin left: its exit status and what it wrote.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs a plugin and returns its stdout when it succeeded; a failure becomes one error that
/// names the plugin and carries the plugin's own code and message.
pub(crate) fn exec(
    binary: &Path,
    who: &str,
    args: &Args<'_>,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let out = run(binary, who, args, stdin, timeout)?;
    if !out.stderr.is_empty() {
        tracing::debug!(
            plugin = who,
            command = args.command,
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    if out.status.success() {
        return Ok(out.stdout);
    }
    let (code, message) = plugin_error(&out);
    Err(Error::Plugin {
        plugin: who.to_string(),
        command: args.command,
        code,
        message,
    })
}

/// The code and one-line message of a failed plugin: its error JSON
/// (`{"code":N,"msg":"…","details":"…"}`), else the last line of its stderr, else its status.
fn plugin_error(out: &Output) -> (Option<u64>, String) {
    if let Ok(Value::Object(err)) = serde_json::from_slice::<Value>(&out.stdout) {
        let code = err.get("code").and_then(Value::as_u64);
        let msg = err.get("msg").and_then(Value::as_str).unwrap_or("");
        let details = err.get("details").and_then(Value::as_str).unwrap_or("");
        let mut text = String::new();
        if let Some(code) = code {
            text.push_str(&format!("code {code}"));
        }
        for part in [msg, details] {
            if !part.is_empty() {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(part);
            }
        }
        if !text.is_empty() {
            return (code, one_line(&text));
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let status = match (out.status.code(), nix_signal(&out.status)) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    if last.is_empty() {
        (None, status)
    } else {
        (None, one_line(&format!("{status}: {last}")))
    }
}

fn nix_signal(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Text from a plugin made fit for one line of a terminal: control characters become
/// spaces and it is cut at 1000 characters.
pub(crate) fn one_line(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect();
    if text.trim().chars().count() > 1000 {
        out.push('…');
    }
    out
}

/// A started plugin: killed by pid and reaped on drop unless it was waited for.
struct Guard {
    child: Child,
    reaped: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a plugin to completion: writes stdin, reads stdout and stderr (bounded), and kills
/// the process by pid when the deadline passes.
pub(crate) fn run(
    binary: &Path,
    who: &str,
    args: &Args<'_>,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Output> {
    let exec_err = |source| Error::Exec {
        plugin: who.to_string(),
        command: args.command,
        source,
    };
    let deadline = Instant::now() + timeout;
    let mut cmd = Command::new(binary);
    cmd.env("CNI_COMMAND", args.command)
        .env("CNI_CONTAINERID", args.container_id)
        .env("CNI_NETNS", args.netns)
        .env("CNI_ARGS", args.args)
        .env("CNI_IFNAME", args.ifname)
        .env("CNI_PATH", args.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Guard {
        child: cmd.spawn().map_err(exec_err)?,
        reaped: false,
    };
    let pid = guard.child.id();
    let mut input = guard
        .child
        .stdin
        .take()
        .map(|p| File::from(OwnedFd::from(p)));
    let mut stdout_fd = guard
        .child
        .stdout
        .take()
        .map(|p| File::from(OwnedFd::from(p)));
    let mut stderr_fd = guard
        .child
        .stderr
        .take()
        .map(|p| File::from(OwnedFd::from(p)));
    for fd in [&input, &stdout_fd, &stderr_fd].into_iter().flatten() {
        set_nonblocking(fd).map_err(exec_err)?;
    }
    let pidfd = rustix::process::Pid::from_raw(pid as i32)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());

    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut written = 0usize;
    let mut exited_at: Option<Instant> = None;
    let timed_out = || Error::Timeout {
        plugin: who.to_string(),
        command: args.command,
        secs: timeout.as_secs_f64(),
        pid,
    };
    if stdin.is_empty() {
        input = None;
    }
    while stdout_fd.is_some() || stderr_fd.is_some() {
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out());
        }
        if exited_at.is_some_and(|t| now.duration_since(t) > DRAIN_AFTER_EXIT) {
            break;
        }
        let mut wait = deadline - now;
        if pidfd.is_none() || exited_at.is_some() {
            wait = wait.min(Duration::from_millis(50));
        }
        let (ready_in, ready_out, ready_err, ready_pid) = {
            let mut fds = Vec::with_capacity(4);
            let mut slots = [None; 4];
            let readable = PollFlags::POLLIN;
            if let Some(fd) = &input {
                slots[0] = Some(fds.len());
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(fd) = &stdout_fd {
                slots[1] = Some(fds.len());
                fds.push(PollFd::new(fd.as_fd(), readable));
            }
            if let Some(fd) = &stderr_fd {
                slots[2] = Some(fds.len());
                fds.push(PollFd::new(fd.as_fd(), readable));
            }
            if let (Some(fd), None) = (&pidfd, exited_at) {
                slots[3] = Some(fds.len());
                fds.push(PollFd::new(fd.as_fd(), readable));
            }
            let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(exec_err(e.into())),
            }
            let ready = |slot: Option<usize>| {
                slot.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()))
            };
            (
                ready(slots[0]),
                ready(slots[1]),
                ready(slots[2]),
                ready(slots[3]),
            )
        };
        if ready_in {
            if let Some(fd) = &mut input {
                match fd.write(&stdin[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The plugin closed its stdin: it does not want the rest.
                    Err(_) => written = stdin.len(),
                }
            }
            if written >= stdin.len() {
                input = None;
            }
        }
        if ready_out && drain(&mut stdout_fd, &mut stdout, MAX_STDOUT, false).map_err(exec_err)? {
            return Err(Error::OutputTooLarge {
                plugin: who.to_string(),
                command: args.command,
                stream: "stdout",
                limit: MAX_STDOUT,
            });
        }
        if ready_err {
            // Stderr beyond the cap is read and dropped, so the plugin never blocks on it.
            drain(&mut stderr_fd, &mut stderr, MAX_STDERR, true).map_err(exec_err)?;
        }
        if ready_pid || (pidfd.is_none() && exited_at.is_none()) {
            if let Ok(Some(_)) = guard.child.try_wait() {
                exited_at = Some(Instant::now());
            }
        }
    }
    drop(input);
    let status = wait_until(&mut guard.child, deadline).map_err(exec_err)?;
    let Some(status) = status else {
        return Err(timed_out());
    };
    guard.reaped = true;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn set_nonblocking(fd: &File) -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let flags = fcntl_getfl(fd)?;
    fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

/// Reads what is there (at most 256 KiB per call, so the deadline is looked at again) and
/// closes the stream at EOF. Bytes past `limit` are dropped when `discard` is set; otherwise
/// passing `limit` returns true.
fn drain(
    fd: &mut Option<File>,
    buf: &mut Vec<u8>,
    limit: usize,
    discard: bool,
) -> io::Result<bool> {
    let Some(file) = fd.as_mut() else {
        return Ok(false);
    };
    let mut chunk = [0u8; 16 << 10];
    for _ in 0..16 {
        match file.read(&mut chunk) {
            Ok(0) => {
                *fd = None;
                return Ok(false);
            }
            Ok(n) => {
                let room = limit.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
                if n > room && !discard {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Waits for the child until the deadline; `None` when it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut nap = Duration::from_micros(20);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn args() -> Args<'static> {
        Args {
            command: "ADD",
            container_id: "c1",
            netns: "/x",
            ifname: "eth0",
            args: "A=1;B=2",
            path: "/p",
        }
    }

    #[test]
    fn the_plugin_gets_its_environment_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "echoer",
            r#"printf '%s|%s|%s|%s|%s|%s|' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH"; cat"#,
        );
        let out = exec(
            &bin,
            "echoer",
            &args(),
            b"{\"x\":1}",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ADD|c1|/x|eth0|A=1;B=2|/p|{\"x\":1}"
        );
    }

    #[test]
    fn large_stdin_does_not_deadlock_a_plugin_that_writes_first() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "big",
            "head -c 200000 /dev/zero | tr '\\0' x; cat >/dev/null",
        );
        let stdin = vec![b'y'; 300_000];
        let out = exec(&bin, "big", &args(), &stdin, Duration::from_secs(10)).unwrap();
        assert_eq!(out.len(), 200_000);
    }

    #[test]
    fn error_json_becomes_one_line_with_code_msg_and_details() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "bad",
            r#"printf '%s\n' '{"cniVersion":"1.0.0","code":11,"msg":"no IP\naddresses","details":"range full"}'; echo noise >&2; exit 1"#,
        );
        let err = exec(&bin, "bad", &args(), b"{}", Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin bad failed (ADD): code 11: no IP addresses: range full"
        );
        assert!(matches!(err, Error::Plugin { code: Some(11), .. }));
    }

    #[test]
    fn without_error_json_the_last_stderr_line_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "crash",
            "echo first >&2; echo 'panic: boom' >&2; exit 2",
        );
        let err = exec(&bin, "crash", &args(), b"{}", Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin crash failed (ADD): exit status 2: panic: boom"
        );
    }

    #[test]
    fn a_hanging_plugin_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let bin = script(
            dir.path(),
            "hang",
            &format!("echo $$ > {}; exec sleep 30", pidfile.display()),
        );
        let start = Instant::now();
        let err = exec(&bin, "hang", &args(), b"{}", Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "plugin {pid} still runs"
        );
    }

    #[test]
    fn a_flood_on_stdout_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(dir.path(), "flood", "exec yes");
        let err = exec(&bin, "flood", &args(), b"{}", Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutputTooLarge {
                    stream: "stdout",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_flood_on_stderr_is_read_and_dropped_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "noisy",
            "head -c 3000000 /dev/zero >&2; echo '{}'",
        );
        let out = run(&bin, "noisy", &args(), b"{}", Duration::from_secs(10)).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stderr.len(), MAX_STDERR);
        assert_eq!(out.stdout, b"{}\n");
    }

    #[test]
    fn a_child_left_holding_the_pipes_does_not_block_forever() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child");
        let body = format!(
            "sleep 10 & echo $! > {}; echo '{{}}'; exit 0",
            pidfile.display()
        );
        let bin = script(dir.path(), "leaver", &body);
        let start = Instant::now();
        let out = exec(&bin, "leaver", &args(), b"{}", Duration::from_secs(10));
        let elapsed = start.elapsed();
        let child = std::fs::read_to_string(&pidfile).unwrap();
        let _ = std::process::Command::new("kill")
            .arg(child.trim())
            .status();
        assert_eq!(out.unwrap(), b"{}\n");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }

    #[test]
    fn plugins_are_found_on_the_path_and_names_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "p", "true");
        let path = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(find_in_path("p", &path).unwrap(), dir.path().join("p"));
        assert!(matches!(
            find_in_path("q", &path),
            Err(Error::PluginNotFound { .. })
        ));
        assert!(find_in_path("../p", &path).is_err());
    }
}
