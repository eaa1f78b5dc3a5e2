//! `berth-mkbundle --remove DIR`: unmount, delete, and give back the snapshots.
//!
//! Everything is gone from the filesystem's namespace when this returns. The unlinked inodes
//! (the bundle's directories and files, and the snapshots' `users/` files) are kept open and
//! handed to a detached process that closes them: on a disk mounted with `discard` the last
//! close of each waits for the device to discard its blocks, and nobody needs to wait for
//! that (docs/bundles.md, "Removing without waiting for the disk").

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use berth_snapshot::Snapshots;
use berth_spec::bundle;

use crate::cli::Cli;

pub fn run(cli: &Cli, dir: &Path) -> anyhow::Result<ExitCode> {
    let record = bundle::record(dir)?;
    let mut held = Vec::new();
    let removed = bundle::remove(dir, &mut held)
        .with_context(|| format!("removing bundle {}", dir.display()))?;
    // Released only once the rootfs is unmounted, so GC never takes a mounted lower.
    // A root that is gone holds no lease (and Snapshots::open would make it anew).
    if let Some(r) = record.filter(|r| !r.lease.is_empty() && r.root.join("snapshots").is_dir()) {
        Snapshots::open(&r.root)
            .and_then(|s| s.release_holding(&r.lease, &mut held))
            .with_context(|| format!("releasing the snapshots of bundle {}", dir.display()))?;
    }
    let count = held.len();
    match berth_sys::close_detached(held) {
        Ok(()) => tracing::debug!(count, "removed files handed to a detached process"),
        // The files were closed here instead: slower, the same result.
        Err(e) => tracing::debug!(error = %e, "removed files closed in the foreground"),
    }
    if cli.json {
        let out = serde_json::json!({ "bundle": dir, "removed": removed });
        berth_cli::print_line(&out.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
