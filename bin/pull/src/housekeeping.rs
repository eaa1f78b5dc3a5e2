//! `--list`, `--remove NAME…` and `--gc`.

use std::path::Path;

use anyhow::Context;
use berth_content::Store;
use serde_json::json;

fn open(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("opening the content store in {}", root.display()))
}

/// One line per named image: `NAME@DIGEST`, or a JSON object.
pub fn list(root: &Path, as_json: bool) -> anyhow::Result<()> {
    let store = open(root)?;
    for e in store.list()? {
        let d = &e.descriptor;
        let line = if as_json {
            json!({
                "name": e.name,
                "pinned": format!("{}@{}", e.name, d.digest),
                "digest": d.digest,
                "mediaType": d.media_type,
                "size": d.size,
            })
            .to_string()
        } else {
            format!("{}@{}", e.name, d.digest)
        };
        berth_cli::print_line(&line)?;
    }
    Ok(())
}

/// Removes each name from `index.json`; prints what was removed.
pub fn remove(root: &Path, names: &[String], as_json: bool) -> anyhow::Result<()> {
    let store = open(root)?;
    for name in names {
        let e = store
            .remove(name)
            .with_context(|| format!("removing {name}"))?;
        let line = if as_json {
            json!({"name": e.name, "digest": e.descriptor.digest, "removed": true}).to_string()
        } else {
            format!("{}@{}", e.name, e.descriptor.digest)
        };
        berth_cli::print_line(&line)?;
    }
    Ok(())
}

/// Collects unreachable blobs; prints each removed digest (or one JSON summary).
pub fn gc(root: &Path, as_json: bool) -> anyhow::Result<()> {
    let store = open(root)?;
    let report = store.gc().context("collecting garbage")?;
    if as_json {
        let v =
            json!({"removed": report.removed, "bytes": report.bytes, "partials": report.partials});
        berth_cli::print_line(&v.to_string())?;
    } else {
        for d in &report.removed {
            berth_cli::print_line(d.as_str())?;
        }
    }
    tracing::info!(
        "removed {} blobs ({} bytes) and {} partial downloads",
        report.removed.len(),
        report.bytes,
        report.partials
    );
    Ok(())
}
