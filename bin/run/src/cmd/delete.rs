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
    match rt.delete(&a.id, a.force) {
        // As runc: `delete --force` of a container that does not exist succeeds. podman runs
        // it after a failed create, and its error would otherwise hide the create's own.
        Err(berth_runtime::Error::NotFound(_)) if a.force => Ok(ExitCode::SUCCESS),
        r => {
            r.with_context(|| format!("deleting container {}", a.id))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
