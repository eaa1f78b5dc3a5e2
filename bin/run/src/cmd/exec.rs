//! `berth-run exec`: one more process in a created or running container, as `runc exec`.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_runtime::{ExecOptions, Runtime};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Unix socket that receives the pty master (SCM_RIGHTS) when a terminal is allocated.
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,

    /// Working directory in the container (default: the container's process.cwd).
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,

    /// Set an environment variable (NAME=value); repeatable.
    #[arg(long, short = 'e', value_name = "NAME=VALUE")]
    env: Vec<String>,

    /// Allocate a pseudo-terminal (its master goes to --console-socket).
    #[arg(long, short = 't')]
    tty: bool,

    /// The user: uid[:gid].
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    user: Option<String>,

    /// An additional group id; repeatable.
    #[arg(long = "additional-gids", short = 'g', value_name = "GID")]
    additional_gids: Vec<u32>,

    /// A runtime-spec Process JSON to run instead of COMMAND (the flags above are then unused).
    #[arg(long, short = 'p', value_name = "FILE")]
    process: Option<PathBuf>,

    /// Return once the process runs instead of waiting for it.
    #[arg(long, short = 'd')]
    detach: bool,

    /// Write the process's host pid to this file.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,

    /// SELinux process label (refused: SELinux is not enabled on this host).
    #[arg(long, value_name = "LABEL")]
    process_label: Option<String>,

    /// AppArmor profile (refused: AppArmor is not enabled on this host).
    #[arg(long, value_name = "PROFILE")]
    apparmor: Option<String>,

    /// Set no_new_privs for the process.
    #[arg(long)]
    no_new_privs: bool,

    /// Add a capability to the bounding, effective and permitted sets; repeatable.
    #[arg(long = "cap", short = 'c', value_name = "CAP")]
    caps: Vec<String>,

    /// Pass this many fds beyond stdio (3, 4, …) to the process.
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,

    /// Exec even into a paused container (the process stays frozen until `resume`).
    #[arg(long)]
    ignore_paused: bool,

    /// Run in an existing sub-cgroup of the container's: PATH in every hierarchy, or
    /// CONTROLLER[,CONTROLLER]:PATH per v1 controller; repeatable with controllers.
    #[arg(long, value_name = "[CONTROLLER:]PATH")]
    cgroup: Vec<String>,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,

    /// The program and its arguments.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

impl ExecArgs {
    fn options(&self) -> ExecOptions {
        // A relative pid file is relative to the caller's directory, as with runc.
        let pid_file = self
            .pid_file
            .as_ref()
            .map(|p| std::env::current_dir().map_or_else(|_| p.clone(), |d| d.join(p)));
        ExecOptions {
            process: self.process.clone(),
            args: self.command.clone(),
            tty: self.tty,
            console_socket: self.console_socket.clone(),
            detach: self.detach,
            pid_file,
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            user: self.user.clone(),
            additional_gids: self.additional_gids.clone(),
            caps: self.caps.clone(),
            preserve_fds: self.preserve_fds,
            no_new_privs: self.no_new_privs,
            process_label: self.process_label.clone(),
            apparmor: self.apparmor.clone(),
            ignore_paused: self.ignore_paused,
            cgroup: self.cgroup.clone(),
        }
    }
}

pub(crate) fn run(rt: &Runtime, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let id = a.id.clone();
    let result = rt.exec(&id, &a.options());
    super::process_exit(result, a.detach, || format!("exec in container {id}"))
}
