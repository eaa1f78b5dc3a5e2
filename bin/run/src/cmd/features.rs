//! `berth-run features`: the runtime-spec features document.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct FeaturesArgs {}

pub(crate) fn run(_: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let doc = berth_runtime::features::features();
    berth_cli::print_line(&serde_json::to_string_pretty(&doc)?)?;
    Ok(ExitCode::SUCCESS)
}
