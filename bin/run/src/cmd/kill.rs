//! `berth-run kill`.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// Signal every process in the container's cgroup, not only its init.
    #[arg(long, short = 'a')]
    all: bool,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,

    /// Signal name or number (TERM, SIGKILL, 9).
    #[arg(value_name = "SIGNAL", default_value = "SIGTERM")]
    signal: String,
}

pub(crate) fn run(rt: &Runtime, a: KillArgs) -> anyhow::Result<ExitCode> {
    let sig = berth_runtime::parse_signal(&a.signal)
        .ok_or_else(|| berth_cli::Usage(format!("unknown signal {:?}", a.signal)))?;
    rt.kill(&a.id, sig, a.all)
        .with_context(|| format!("killing container {}", a.id))?;
    Ok(ExitCode::SUCCESS)
}
