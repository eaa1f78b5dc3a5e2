//! Unpacking images: into snapshots, or flattened into a directory.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use berth_content::{Image, Platform, Store};
use berth_layer::Layer;
use berth_snapshot::{LayerSource, Snapshots, UnpackOptions};
use serde_json::json;

use crate::Cli;

fn resolve(cli: &Cli, store: &Store, name: &str) -> anyhow::Result<Image> {
    let image = match &cli.platform {
        Some(p) => {
            let platform =
                Platform::parse(p).map_err(|e| berth_cli::Usage(format!("--platform {p}: {e}")))?;
            store.resolve_for(name, &platform)
        }
        None => store.resolve(name),
    };
    image.with_context(|| format!("resolving {name}"))
}

/// The layers of an image with their diff_ids and blob paths.
fn sources(store: &Store, image: &Image) -> anyhow::Result<Vec<LayerSource>> {
    let (layers, diff_ids) = (image.layers(), image.diff_ids());
    if layers.len() != diff_ids.len() {
        return Err(berth_layer::Error::Hostile {
            path: image.config_descriptor().digest.to_string(),
            reason: format!(
                "config lists {} diff_ids for {} layers",
                diff_ids.len(),
                layers.len()
            ),
        })
        .with_context(|| format!("image {}", image.pinned()));
    }
    Ok(layers
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| LayerSource {
            digest: l.digest.to_string(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: d.to_string(),
            blob: store.blob_path(&l.digest),
        })
        .collect())
}

/// Makes sure every layer of every image is a committed snapshot; prints each image's
/// pinned reference (or JSON) as soon as it is done.
pub(crate) fn snapshots(cli: &Cli, names: &[String]) -> anyhow::Result<()> {
    let store = Store::open(&cli.root)
        .with_context(|| format!("opening the content store in {}", cli.root.display()))?;
    let snaps = Snapshots::open(&cli.root)
        .with_context(|| format!("opening the snapshots in {}", cli.root.display()))?;
    let mut opts = UnpackOptions {
        sync: !cli.no_sync,
        ..UnpackOptions::default()
    };
    if let Some(j) = cli.jobs {
        opts.jobs = j.into();
    }
    for name in names {
        let started = Instant::now();
        let image = resolve(cli, &store, name)?;
        let layers = sources(&store, &image)?;
        let outcomes = snaps
            .unpack(&layers, &opts)
            .with_context(|| format!("unpacking {}", image.pinned()))?;
        if cli.json {
            let v = json!({
                "reference": image.pinned(),
                "name": image.name,
                "manifest_digest": image.manifest_digest.to_string(),
                "chain_id": outcomes.last().map(|o| o.chain_id.clone()),
                "layers": outcomes,
                "seconds": started.elapsed().as_secs_f64(),
            });
            berth_cli::print_line(&v.to_string())?;
        } else {
            berth_cli::print_line(&image.pinned())?;
        }
    }
    Ok(())
}

/// Writes one image flattened into `to`.
pub(crate) fn flatten(cli: &Cli, name: &str, to: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Store::open(&cli.root)
        .with_context(|| format!("opening the content store in {}", cli.root.display()))?;
    let image = resolve(cli, &store, name)?;
    let sources = sources(&store, &image)?;
    let layers: Vec<(Layer<'_>, &Path)> = sources
        .iter()
        .map(|s| {
            (
                Layer {
                    digest: &s.digest,
                    media_type: &s.media_type,
                    diff_id: &s.diff_id,
                },
                s.blob.as_path(),
            )
        })
        .collect();
    let stats = berth_layer::flatten(&layers, to)
        .with_context(|| format!("unpacking {} into {}", image.pinned(), to.display()))?;
    if cli.json {
        let v = json!({
            "reference": image.pinned(),
            "name": image.name,
            "manifest_digest": image.manifest_digest.to_string(),
            "to": to,
            "layers": sources.len(),
            "entries": stats.entries,
            "tar_bytes": stats.tar_bytes,
            "seconds": started.elapsed().as_secs_f64(),
        });
        berth_cli::print_line(&v.to_string())?;
    } else {
        berth_cli::print_line(&image.pinned())?;
    }
    Ok(())
}
