//! `berth-run create`.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Runtime;
use clap::Args;

use super::BundleArgs;

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    bundle: BundleArgs,
}

pub(crate) fn run(rt: &Runtime, a: CreateArgs) -> anyhow::Result<ExitCode> {
    rt.create(&a.bundle.id, &a.bundle.options())
        .with_context(|| format!("creating container {}", a.bundle.id))?;
    Ok(ExitCode::SUCCESS)
}
