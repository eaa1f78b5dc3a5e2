//! Listing, removing and garbage-collecting snapshots.

use std::collections::HashSet;

use anyhow::Context;
use berth_content::oci::{media_type, Index};
use berth_content::Store;
use berth_snapshot::Snapshots;
use serde_json::json;

use crate::Cli;

fn open(cli: &Cli) -> anyhow::Result<Snapshots> {
    Snapshots::open(&cli.root)
        .with_context(|| format!("opening the snapshots in {}", cli.root.display()))
}

/// One line per snapshot: chain ID, users (or `-`), layer digest.
pub(crate) fn list(cli: &Cli) -> anyhow::Result<()> {
    for info in open(cli)?.list()? {
        if cli.json {
            berth_cli::print_line(&serde_json::to_string(&info)?)?;
        } else {
            let users = if info.users.is_empty() {
                "-".to_string()
            } else {
                info.users.join(",")
            };
            let layer = info
                .meta
                .as_ref()
                .map(|m| m.layer.digest.as_str())
                .unwrap_or("-");
            berth_cli::print_line(&format!("{}\t{}\t{}", info.chain_id, users, layer))?;
        }
    }
    Ok(())
}

pub(crate) fn remove(cli: &Cli, chain_ids: &[String]) -> anyhow::Result<()> {
    if chain_ids.is_empty() {
        return Err(berth_cli::Usage("--remove needs the chain IDs to remove".into()).into());
    }
    let snaps = open(cli)?;
    for id in chain_ids {
        snaps
            .remove(id)
            .with_context(|| format!("removing snapshot {id}"))?;
        print(cli, json!({"removed": id}), id)?;
    }
    Ok(())
}

pub(crate) fn release(cli: &Cli, bundle_id: &str) -> anyhow::Result<()> {
    let released = open(cli)?
        .release(bundle_id)
        .with_context(|| format!("releasing bundle {bundle_id}"))?;
    if cli.json {
        berth_cli::print_line(&json!({"bundle": bundle_id, "released": released}).to_string())?;
    } else {
        for id in released {
            berth_cli::print_line(&id)?;
        }
    }
    Ok(())
}

pub(crate) fn gc(cli: &Cli) -> anyhow::Result<()> {
    let keep = needed(cli)?;
    let report = open(cli)?.gc(&keep).context("collecting snapshots")?;
    if cli.json {
        berth_cli::print_line(&serde_json::to_string(&report)?)?;
    } else {
        for id in &report.removed {
            berth_cli::print_line(id)?;
        }
    }
    Ok(())
}

/// The chain IDs of every image manifest the content store names (every platform of an
/// index that is present).
fn needed(cli: &Cli) -> anyhow::Result<HashSet<String>> {
    let mut keep = HashSet::new();
    let layout = cli.root.join("content");
    if !layout.join("index.json").exists() {
        return Ok(keep);
    }
    let store = Store::open(&cli.root)
        .with_context(|| format!("opening the content store in {}", cli.root.display()))?;
    for entry in store.list()? {
        let mut manifests = Vec::new();
        if media_type::is_index(&entry.descriptor.media_type) {
            let bytes = store
                .read_document(&entry.descriptor.digest)
                .with_context(|| format!("reading index of {}", entry.name))?;
            let index: Index = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing index of {}", entry.name))?;
            manifests.extend(
                index
                    .manifests
                    .into_iter()
                    .filter(|d| store.has_blob(&d.digest))
                    .map(|d| d.digest),
            );
        } else {
            manifests.push(entry.descriptor.digest.clone());
        }
        for digest in manifests {
            let image = store
                .resolve(&digest.to_string())
                .with_context(|| format!("resolving {} ({digest})", entry.name))?;
            let ids = berth_snapshot::chain_ids(
                &image
                    .diff_ids()
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>(),
            )?;
            keep.extend(ids);
        }
    }
    Ok(keep)
}

fn print(cli: &Cli, v: serde_json::Value, text: &str) -> anyhow::Result<()> {
    if cli.json {
        berth_cli::print_line(&v.to_string())?;
    } else {
        berth_cli::print_line(text)?;
    }
    Ok(())
}
