//! `berth-run start`.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(rt: &Runtime, a: StartArgs) -> anyhow::Result<ExitCode> {
    rt.start(&a.id)
        .with_context(|| format!("starting container {}", a.id))?;
    Ok(ExitCode::SUCCESS)
}
