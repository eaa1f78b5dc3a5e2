//! `berth-mkbundle --remove DIR`: unmount, delete, and give back the snapshots.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use berth_snapshot::Snapshots;
use berth_spec::bundle;

use crate::cli::Cli;

pub fn run(cli: &Cli, dir: &Path) -> anyhow::Result<ExitCode> {
    let record = bundle::record(dir)?;
    let removed =
        bundle::remove(dir).with_context(|| format!("removing bundle {}", dir.display()))?;
    // Released only once the rootfs is unmounted, so GC never takes a mounted lower.
    // A root that is gone holds no lease (and Snapshots::open would make it anew).
    if let Some(r) = record.filter(|r| !r.lease.is_empty() && r.root.join("snapshots").is_dir()) {
        Snapshots::open(&r.root)
            .and_then(|s| s.release(&r.lease))
            .with_context(|| format!("releasing the snapshots of bundle {}", dir.display()))?;
    }
    if cli.json {
        let out = serde_json::json!({ "bundle": dir, "removed": removed });
        berth_cli::print_line(&out.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
