//! `berth-run checkpoint`: dump a running container through CRIU (runc's flags).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::checkpoint::{self, CheckpointOptions, CriuFlags};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// Directory for the image files (default: ./checkpoint).
    #[arg(long, value_name = "DIR")]
    image_path: Option<PathBuf>,

    /// Directory for criu's work files and log (default: the image directory).
    #[arg(long, value_name = "DIR")]
    work_path: Option<PathBuf>,

    /// Images of an earlier --pre-dump, relative to --image-path (iterative migration).
    #[arg(long, value_name = "DIR")]
    parent_path: Option<PathBuf>,

    /// Leave the container running after the dump.
    #[arg(long)]
    leave_running: bool,

    /// Dump only the memory (for a later dump with --parent-path); the container keeps running.
    #[arg(long)]
    pre_dump: bool,

    #[command(flatten)]
    pub(crate) criu: CriuArgs,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(root: &std::path::Path, a: CheckpointArgs) -> anyhow::Result<ExitCode> {
    let opts = CheckpointOptions {
        criu: a.criu.binary(),
        image_path: a.criu.image_path(a.image_path)?,
        work_path: a.work_path,
        parent_path: a.parent_path,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        flags: a.criu.flags()?,
    };
    checkpoint::checkpoint(root, &a.id, &opts)
        .with_context(|| format!("checkpointing container {}", a.id))?;
    Ok(ExitCode::SUCCESS)
}

/// The criu flags `checkpoint` and `restore` share, as runc spells them.
#[derive(Debug, Args)]
pub(crate) struct CriuArgs {
    /// Allow open TCP connections.
    #[arg(long)]
    tcp_established: bool,

    /// Allow external unix sockets.
    #[arg(long)]
    ext_unix_sk: bool,

    /// Allow shell jobs (a process on the caller's terminal).
    #[arg(long)]
    shell_job: bool,

    /// Handle file locks.
    #[arg(long)]
    file_locks: bool,

    /// Cgroups mode: soft (default), full, strict or ignore.
    #[arg(long, value_name = "MODE", default_value = "soft")]
    manage_cgroups_mode: String,

    /// Create this namespace but do not restore its contents (only `network`).
    #[arg(long, value_name = "NS")]
    empty_ns: Option<String>,

    /// Deduplicate memory images against the parent's.
    #[arg(long)]
    auto_dedup: bool,

    /// Restore memory pages lazily through userfaultfd (passed to criu as is).
    #[arg(long)]
    lazy_pages: bool,

    /// The criu binary, from the global --criu.
    #[arg(skip)]
    pub(crate) binary: Option<PathBuf>,
}

impl CriuArgs {
    pub(crate) fn binary(&self) -> PathBuf {
        self.binary.clone().unwrap_or_else(|| PathBuf::from("criu"))
    }

    pub(crate) fn flags(&self) -> anyhow::Result<CriuFlags> {
        Ok(CriuFlags {
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode: self.manage_cgroups_mode.parse()?,
            empty_net_ns: match &self.empty_ns {
                Some(ns) => checkpoint::parse_empty_ns(ns)?,
                None => false,
            },
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        })
    }

    /// `--image-path`, made absolute; runc's default is `checkpoint` in the current directory.
    pub(crate) fn image_path(&self, given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        let p = given.unwrap_or_else(|| PathBuf::from("checkpoint"));
        std::path::absolute(&p).with_context(|| format!("--image-path {}", p.display()))
    }
}

impl super::Command {
    /// Hands the global `--criu` to the verbs that run criu.
    pub(crate) fn set_criu(&mut self, criu: Option<PathBuf>) {
        match self {
            super::Command::Checkpoint(a) => a.criu.binary = criu,
            super::Command::Restore(a) => a.criu.binary = criu,
            _ => {}
        }
    }
}
