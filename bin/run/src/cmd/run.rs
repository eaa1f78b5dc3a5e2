//! `berth-run run`: create + start; in the foreground the container's status is ours.

use std::process::ExitCode;

use berth_runtime::Runtime;
use clap::Args;

use super::BundleArgs;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Return once the container has started instead of waiting for it.
    #[arg(long, short = 'd')]
    detach: bool,

    #[command(flatten)]
    bundle: BundleArgs,
}

pub(crate) fn run(rt: &Runtime, a: RunArgs) -> anyhow::Result<ExitCode> {
    let id = a.bundle.id.clone();
    let result = rt.run(&id, &a.bundle.options(), a.detach);
    super::process_exit(result, a.detach, || format!("running container {id}"))
}
