//! `berth-run delete`.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// Kill the container first if it is still running.
    #[arg(long, short = 'f')]
    force: bool,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(rt: &Runtime, a: DeleteArgs) -> anyhow::Result<ExitCode> {
    rt.delete(&a.id, a.force)
        .with_context(|| format!("deleting container {}", a.id))?;
    Ok(ExitCode::SUCCESS)
}
