//! One file per verb.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod resume;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::process::ExitCode;

use berth_runtime::Runtime;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a container: its init waits for `start` before running the program.
    Create(create::CreateArgs),
    /// Start a created container: its program runs.
    Start(start::StartArgs),
    /// Create and start a container; in the foreground, wait and exit with its status.
    Run(run::RunArgs),
    /// Print the state of a container as OCI state JSON.
    State(state::StateArgs),
    /// Send a signal (default SIGTERM) to a container's init, or with --all to all its processes.
    Kill(kill::KillArgs),
    /// Delete a stopped container (--force: any container), with its cgroup and state.
    Delete(delete::DeleteArgs),
    /// Write a default config.json in the bundle directory, as `runc spec` does.
    Spec(spec::SpecArgs),
    /// Print the runtime-spec features document: what this berth-run supports.
    Features(features::FeaturesArgs),
    /// List the containers under --root.
    List(list::ListArgs),
    /// Show the processes in a container's cgroup (ps -ef by default, or their pids as JSON).
    Ps(ps::PsArgs),
    /// Freeze every process of a running container (its cgroup freezer); state: paused.
    Pause(pause::PauseArgs),
    /// Thaw a paused container: its processes run again.
    Resume(resume::ResumeArgs),
    /// Change a container's resource limits (runc's flags, or --resources JSON).
    Update(update::UpdateArgs),
    /// Print a container's cgroup stats (--stats: once) and OOM events, as runc's JSON.
    Events(events::EventsArgs),
    /// Run one more process in a created or running container (joins its namespaces and cgroup).
    Exec(exec::ExecArgs),
    /// Dump a running container to image files through CRIU (it stops unless --leave-running).
    Checkpoint(checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint's images and a bundle, through CRIU.
    Restore(restore::RestoreArgs),
}

/// `--format` of `list` and `ps`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

/// Options `create` and `run` share, spelled as runc spells them.
#[derive(Debug, Args)]
pub(crate) struct BundleArgs {
    /// The bundle directory (config.json and the rootfs); default: the current directory.
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    bundle: std::path::PathBuf,

    /// Write the init's pid to this file.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<std::path::PathBuf>,

    /// Unix socket that receives the pty master (SCM_RIGHTS) when process.terminal is true.
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<std::path::PathBuf>,

    /// Pass this many fds beyond stdio (3, 4, …) to the container.
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,

    /// Move the rootfs over / and chroot instead of pivot_root (for ramfs roots).
    #[arg(long)]
    no_pivot: bool,

    /// Keep the caller's session keyring instead of a new one.
    #[arg(long)]
    no_new_keyring: bool,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

impl BundleArgs {
    fn options(&self) -> berth_runtime::CreateOptions {
        berth_runtime::CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
        }
    }
}

pub(crate) fn dispatch(
    rt: &Runtime,
    root: &std::path::Path,
    cmd: Command,
) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Create(a) => create::run(rt, a),
        Command::Start(a) => start::run(rt, a),
        Command::Run(a) => run::run(rt, a),
        Command::State(a) => state::run(rt, a),
        Command::Kill(a) => kill::run(rt, a),
        Command::Delete(a) => delete::run(rt, a),
        Command::Spec(a) => spec::run(a),
        Command::Features(a) => features::run(a),
        Command::List(a) => list::run(root, a),
        Command::Ps(a) => ps::run(root, a),
        Command::Pause(a) => pause::run(rt, a),
        Command::Resume(a) => resume::run(rt, a),
        Command::Update(a) => update::run(rt, a),
        Command::Events(a) => events::run(rt, a),
        Command::Exec(a) => exec::run(rt, a),
        Command::Checkpoint(a) => checkpoint::run(root, a),
        Command::Restore(a) => restore::run(root, a, rt.systemd_cgroup()),
    }
}

/// Failures of berth-run itself in the foreground, as `docker run` reports them
/// (docs/errors.md).
const RUNTIME_FAILED: u8 = 125;
const CANNOT_EXECUTE: u8 = 126;
const NOT_FOUND: u8 = 127;

/// The exit of a verb that runs a process (`run`, `exec`): detached, berth-run's own kinds;
/// in the foreground the process's status, or 125/126/127 when berth-run failed.
fn process_exit(
    result: berth_runtime::Result<i32>,
    detach: bool,
    what: impl Fn() -> String,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use berth_runtime::ExecFailure;
    if detach {
        result.with_context(what)?;
        return Ok(ExitCode::SUCCESS);
    }
    match result {
        Ok(status) => Ok(ExitCode::from(status.clamp(0, 255) as u8)),
        Err(e) => {
            let code = match e.exec_failure() {
                Some(ExecFailure::NotFound) => NOT_FOUND,
                Some(ExecFailure::NotExecutable) => CANNOT_EXECUTE,
                None => RUNTIME_FAILED,
            };
            let err = anyhow::Error::new(e).context(what());
            eprintln!("berth-run: error: {}", berth_cli::chain(&err));
            Ok(ExitCode::from(code))
        }
    }
}
