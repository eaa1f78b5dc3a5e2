//! `berth-run restore`: a new container from a checkpoint's images and a bundle (runc's
//! flags). In the foreground it waits and exits with the container's status, like `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::checkpoint::{self, RestoreOptions};
use clap::Args;

use super::checkpoint::CriuArgs;

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// Directory of the image files (default: ./checkpoint).
    #[arg(long, value_name = "DIR")]
    image_path: Option<PathBuf>,

    /// Directory for criu's work files and log (default: the image directory).
    #[arg(long, value_name = "DIR")]
    work_path: Option<PathBuf>,

    /// The bundle directory (config.json and the rootfs); default: the current directory.
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    bundle: PathBuf,

    /// Return once the container is restored instead of waiting for it.
    #[arg(long, short = 'd')]
    detach: bool,

    /// Write the restored init's pid to this file.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,

    /// Accepted as runc does; a terminal container cannot be restored (see README).
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,

    /// Accepted for runc compatibility: the restored init is berth-run's own child, so no
    /// subreaper is needed either way.
    #[arg(long)]
    no_subreaper: bool,

    /// Accepted for runc compatibility: criu sets up the restored root itself.
    #[arg(long)]
    no_pivot: bool,

    #[command(flatten)]
    pub(crate) criu: CriuArgs,

    /// The container id (must not exist yet).
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(
    root: &std::path::Path,
    a: RestoreArgs,
    systemd_cgroup: bool,
) -> anyhow::Result<ExitCode> {
    let opts = RestoreOptions {
        criu: a.criu.binary(),
        image_path: a.criu.image_path(a.image_path)?,
        work_path: a.work_path,
        bundle: a.bundle,
        detach: a.detach,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_subreaper: a.no_subreaper,
        no_pivot: a.no_pivot,
        flags: a.criu.flags()?,
        systemd_cgroup,
    };
    // Until the container exists, failures are berth-run's own with the documented exit
    // codes (6: criu missing or unusable); after that, in the foreground, its status.
    let status = checkpoint::restore(root, &a.id, &opts)
        .with_context(|| format!("restoring container {}", a.id))?;
    Ok(ExitCode::from(status.clamp(0, 255) as u8))
}
