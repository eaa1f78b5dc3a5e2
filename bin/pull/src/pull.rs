//! Pulling: options into a client, each operand through the puller, one result line each.

use std::time::Instant;

use anyhow::Context;
use berth_content::{Platform, Store};
use berth_reference::Reference;
use berth_registry::{
    Client, CredentialSource, Credentials, Mirrors, NoProgress, Options, Progress, Pulled, Puller,
};
use serde_json::json;

use crate::progress::Bars;
use crate::Cli;

pub fn run(cli: &Cli, operands: &[String]) -> anyhow::Result<()> {
    // Everything the user typed is checked before any network traffic.
    let references = operands
        .iter()
        .map(|o| o.parse::<Reference>())
        .collect::<Result<Vec<_>, _>>()?;
    let platform = cli.platform.as_deref().map(Platform::parse).transpose()?;
    let explicit = cli.creds.as_deref().map(Credentials::parse).transpose()?;
    let credentials = CredentialSource {
        explicit,
        files: CredentialSource::default_files(cli.authfile.clone()),
    };
    if let Some(f) = &cli.authfile {
        if !f.exists() {
            return Err(
                berth_cli::Usage(format!("--authfile {}: no such file", f.display())).into(),
            );
        }
    }
    credentials.validate()?;
    let mirrors = Mirrors::load(cli.mirrors.as_deref())?;
    let options = Options {
        plain_http: cli.plain_http,
        ca_file: cli.ca_file.clone(),
        credentials,
        mirrors,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(usize::from(cli.jobs) + 4)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = Client::new(options)?;
    let store = Store::create(&cli.root)
        .with_context(|| format!("opening the content store in {}", cli.root.display()))?;
    let mut puller = Puller::new(client, store, usize::from(cli.jobs));
    if let Some(p) = platform {
        puller = puller.with_platform(p);
    }
    let bars = Bars::new(cli.quiet);
    let progress: &dyn Progress = match &bars {
        Some(b) => b,
        None => &NoProgress,
    };
    for (operand, reference) in operands.iter().zip(&references) {
        let started = Instant::now();
        let pulled = runtime
            .block_on(puller.pull(reference, progress))
            .with_context(|| format!("pulling {operand}"));
        if let Some(b) = &bars {
            b.clear();
        }
        let pulled = pulled?;
        tracing::info!("pulled {} in {:.2?}", pulled.pinned, started.elapsed());
        let line = if cli.json {
            to_json(&pulled, puller.store()).to_string()
        } else {
            pulled.pinned.clone()
        };
        berth_cli::print_line(&line)?;
    }
    Ok(())
}

/// The `--json` shape documented in bin/pull/README.md.
fn to_json(p: &Pulled, store: &Store) -> serde_json::Value {
    json!({
        "reference": p.reference.to_string(),
        "name": p.name,
        "pinned": p.pinned,
        "manifest": {"mediaType": p.manifest.media_type, "digest": p.manifest.digest, "size": p.manifest.size},
        "index": p.index,
        "platform": p.platform,
        "config": {"mediaType": p.config.media_type, "digest": p.config.digest, "size": p.config.size},
        "layers": p.layers,
        "bytesFetched": p.bytes_fetched,
        "source": p.source,
        "seconds": p.elapsed.as_secs_f64(),
        "store": store.layout_dir(),
    })
}
