//! `berth-run spec`: a default config.json, as `runc spec` writes it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct SpecArgs {
    /// Where to write config.json; default: the current directory.
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    bundle: PathBuf,

    /// A spec for a rootless container: a user namespace mapping the caller to root.
    #[arg(long)]
    rootless: bool,
}

pub(crate) fn run(a: SpecArgs) -> anyhow::Result<ExitCode> {
    berth_runtime::default_spec::write_default_spec(&a.bundle, a.rootless)
        .with_context(|| format!("spec in {}", a.bundle.display()))?;
    Ok(ExitCode::SUCCESS)
}
