//! `berth-run run`: create + start; in the foreground the container's status is ours.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::{ExecFailure, Runtime};
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

/// Failures of berth-run itself in the foreground, as `docker run` reports them.
const RUNTIME_FAILED: u8 = 125;
const CANNOT_EXECUTE: u8 = 126;
const NOT_FOUND: u8 = 127;

pub(crate) fn run(rt: &Runtime, a: RunArgs) -> anyhow::Result<ExitCode> {
    let id = a.bundle.id.clone();
    let result = rt.run(&id, &a.bundle.options(), a.detach);
    if a.detach {
        result.with_context(|| format!("running container {id}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    match result {
        Ok(status) => Ok(ExitCode::from(status.clamp(0, 255) as u8)),
        Err(e) => {
            let code = match e.exec_failure() {
                Some(ExecFailure::NotFound) => NOT_FOUND,
                Some(ExecFailure::NotExecutable) => CANNOT_EXECUTE,
                None => RUNTIME_FAILED,
            };
            let err = anyhow::Error::new(e).context(format!("running container {id}"));
            eprintln!("berth-run: error: {}", berth_cli::chain(&err));
            Ok(ExitCode::from(code))
        }
    }
}
