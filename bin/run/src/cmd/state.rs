//! `berth-run state`: the OCI state JSON on stdout.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(rt: &Runtime, a: StateArgs) -> anyhow::Result<ExitCode> {
    let report = rt
        .state(&a.id)
        .with_context(|| format!("state of container {}", a.id))?;
    let text = serde_json::to_string_pretty(&report)?;
    berth_cli::print_line(&text)?;
    Ok(ExitCode::SUCCESS)
}
