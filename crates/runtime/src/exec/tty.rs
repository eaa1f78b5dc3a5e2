//! `exec --tty` in the foreground without `--console-socket`: as runc does, berth-run takes
//! the pty master itself (over an internal socketpair instead of the console socket) and
//! copies between its own stdio and the master until the process exits. Its stdin is put in
//! raw mode while it is a terminal, and its window size follows SIGWINCH.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use berth_sys as sys;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::termios::{self, OptionalActions, Termios};

use crate::error::{Error, Result};

/// Restores the terminal settings of stdin when dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// Raw mode on `fd` when it is a terminal; `None` otherwise.
    fn enter(fd: BorrowedFd<'a>) -> Option<RawMode<'a>> {
        if !termios::isatty(fd) {
            return None;
        }
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(fd, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

/// Copies the window size of our terminal (if stdin or stdout is one) to the pty.
fn resize(master: &OwnedFd) {
    for fd in [std::io::stdin().as_fd(), std::io::stdout().as_fd()] {
        if let Ok(ws) = termios::tcgetwinsize(fd) {
            let _ = termios::tcsetwinsize(master, ws);
            return;
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives the master from the process over `sock`, then proxies until `pid` exits;
/// returns how it ended. Signals other than SIGCHLD and SIGWINCH are forwarded to it.
pub(super) fn proxy(pid: i32, sock: UnixStream) -> Result<sys::Exit> {
    let master =
        sys::recv_fd(sock.as_fd()).map_err(|e| Error::io("receiving the pty master", e))?;
    drop(sock);
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let (stdin, stdout) = (stdin.as_fd(), stdout.as_fd());
    let _raw = RawMode::enter(stdin);
    resize(&master);
    let mut stdin_open = true;
    let mut master_open = true;
    let mut buf = [0u8; 16 * 1024];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    loop {
        if master_open {
            let mut fds = vec![PollFd::new(&master, PollFlags::IN)];
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            match poll(&mut fds, Some(&tick)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::io("polling the terminal", e.into())),
            }
            let from_master = fds[0].revents();
            let from_stdin = fds.get(1).map(PollFd::revents);
            if from_master.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                match rustix::io::read(&master, &mut buf) {
                    Ok(0) | Err(rustix::io::Errno::IO) => master_open = false,
                    Ok(n) => write_all(stdout, &buf[..n])
                        .map_err(|e| Error::io("writing the terminal's output", e))?,
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Err(e) => return Err(Error::io("reading the pty", e.into())),
                }
            }
            if from_stdin.is_some_and(|r| r.intersects(PollFlags::IN | PollFlags::HUP)) {
                match rustix::io::read(stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        // The process may be gone: its input is then dropped.
                        let _ = write_all(master.as_fd(), &buf[..n]);
                    }
                }
            }
        }
        while let Some(sig) = sys::wait_signal(if master_open { 0 } else { 200 })
            .map_err(|e| Error::io("waiting for signals", e))?
        {
            match sig {
                libc::SIGCHLD => break,
                libc::SIGWINCH => resize(&master),
                s => {
                    let _ = sys::kill(pid, s);
                }
            }
        }
        if let Some(exit) = sys::wait_child(pid, false)
            .map_err(|e| Error::io("waiting for the exec'd process", e))?
        {
            // What the process wrote last is still in the pty.
            while master_open {
                let mut fds = [PollFd::new(&master, PollFlags::IN)];
                let ready = poll(&mut fds, Some(&Timespec::default())).unwrap_or(0);
                if ready == 0 {
                    break;
                }
                match rustix::io::read(&master, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = write_all(stdout, &buf[..n]);
                    }
                    _ => master_open = false,
                }
            }
            return Ok(exit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_applies_to_a_terminal_and_is_restored() {
        let (_master, name) = sys::open_pty().unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        let before = termios::tcgetattr(&slave).unwrap();
        assert!(before.local_modes.contains(termios::LocalModes::ICANON));
        {
            let _raw = RawMode::enter(slave.as_fd()).expect("a pty is a terminal");
            let now = termios::tcgetattr(&slave).unwrap();
            assert!(!now.local_modes.contains(termios::LocalModes::ICANON));
            assert!(!now.local_modes.contains(termios::LocalModes::ECHO));
        }
        let after = termios::tcgetattr(&slave).unwrap();
        assert!(after.local_modes.contains(termios::LocalModes::ICANON));
        assert!(after.local_modes.contains(termios::LocalModes::ECHO));
    }

    #[test]
    fn a_file_is_left_alone() {
        let f = tempfile::tempfile().unwrap();
        assert!(RawMode::enter(f.as_fd()).is_none());
    }
}
