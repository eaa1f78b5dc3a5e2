//! `berth-run pause`: freeze every process of a running container (its cgroup's freezer).

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct PauseArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(rt: &Runtime, a: PauseArgs) -> anyhow::Result<ExitCode> {
    rt.pause(&a.id)
        .with_context(|| format!("pausing container {}", a.id))?;
    Ok(ExitCode::SUCCESS)
}
