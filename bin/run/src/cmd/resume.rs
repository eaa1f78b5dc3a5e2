//! `berth-run resume`: thaw a paused container's processes.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(rt: &Runtime, a: ResumeArgs) -> anyhow::Result<ExitCode> {
    rt.resume(&a.id)
        .with_context(|| format!("resuming container {}", a.id))?;
    Ok(ExitCode::SUCCESS)
}
