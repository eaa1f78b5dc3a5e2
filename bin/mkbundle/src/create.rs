//! `berth-mkbundle --bundle DIR IMAGE`: resolve the image, hold its snapshots, make the bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use berth_cli::Usage;
use berth_content::Store;
use berth_snapshot::Snapshots;
use berth_spec::bundle::{self, Record, Request};
use berth_spec::ImageConfig;

use crate::cli::Cli;

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let dir = cli
        .bundle
        .as_deref()
        .ok_or_else(|| Usage("--bundle DIR is required".into()))?;
    let dir = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let operand = cli
        .image
        .clone()
        .ok_or_else(|| Usage("IMAGE is required".into()))?;
    let images = berth_cli::operands(&[operand]).context("reading the image from stdin")?;
    let [name] = images.as_slice() else {
        return Err(Usage(format!(
            "one image makes one bundle; got {} images",
            images.len()
        ))
        .into());
    };
    let id = match &cli.id {
        Some(id) => id.clone(),
        None => default_id(&dir)?,
    };
    let options = cli.options(id.clone())?;
    // Fail before touching the store; bundle::create checks again, race-free.
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(berth_spec::Error::BundleExists { path: dir }.into());
    }

    let store = Store::open(&cli.root)?;
    let image = store.resolve(name)?;
    let diff_ids: Vec<&str> = image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.as_str())
        .collect();
    let chain_ids = berth_snapshot::chain_ids(&diff_ids)?;
    let snapshots = Snapshots::open(&cli.root)?;
    let layers = chain_ids
        .iter()
        .map(|c| snapshots.path(c))
        .collect::<Result<Vec<PathBuf>, _>>()
        .with_context(|| {
            format!(
                "image {} is not unpacked (run berth-unpack first)",
                image.pinned()
            )
        })?;

    // Hold the snapshots before mounting them, so a concurrent GC cannot take them.
    let lease = lease_id(&id, &dir);
    snapshots.acquire(&lease, &dir, &chain_ids)?;
    let config = image_config(&image.config.config.clone().unwrap_or_default());
    let request = Request {
        dir: &dir,
        layers: &layers,
        image: &config,
        options: &options,
        host: bundle::detect_host(),
        volatile: !cli.durable,
        record: Record {
            image: image.pinned(),
            root: cli.root.clone(),
            lease: lease.clone(),
            snapshots: chain_ids.clone(),
            volatile: false,
        },
    };
    let created = match bundle::create(&request) {
        Ok(c) => c,
        Err(e) => {
            if let Err(release) = snapshots.release(&lease) {
                tracing::warn!(error = %release, "releasing snapshots after a failed bundle");
            }
            return Err(anyhow::Error::new(e).context(format!("making bundle {}", dir.display())));
        }
    };

    if cli.json {
        let spec = &created.plan.spec;
        let out = serde_json::json!({
            "bundle": created.path,
            "id": id,
            "image": image.pinned(),
            "config": created.path.join("config.json"),
            "rootfs": created.path.join("rootfs"),
            "snapshots": chain_ids,
            "volatile": created.volatile,
            "process": {
                "args": spec.process.args,
                "env": spec.process.env,
                "cwd": spec.process.cwd,
                "terminal": spec.process.terminal,
                "user": spec.process.user,
                "capabilities": spec.process.capabilities.bounding,
            },
            "hostname": spec.hostname,
            "cgroupsPath": spec.linux.cgroups_path,
            "mounts": spec.mounts,
            "elapsed_ms": start.elapsed().as_secs_f64() * 1000.0,
        });
        berth_cli::print_line(&out.to_string())?;
    } else {
        berth_cli::print_line(&created.path.display().to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The bundle directory's name, when it is a valid id.
fn default_id(dir: &Path) -> anyhow::Result<String> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Usage(format!(
            "bundle directory name {name:?} is not a valid container id; give one with --id"
        ))
        .into())
    }
}

/// The name under which a bundle holds its snapshots: the id and a hash of the bundle's path,
/// this process and the time, so that no two bundles (not even two attempts at the same
/// directory racing each other) share a lease. It is kept in the bundle's record.
fn lease_id(id: &str, dir: &Path) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // FNV-1a: small and stable; uniqueness comes from the inputs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let salt = format!("{}:{nanos}", std::process::id());
    for b in dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .chain(salt.as_bytes())
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let mut id = id.to_string();
    id.truncate(100);
    format!("{id}-{h:016x}")
}

fn image_config(c: &berth_content::oci::ContainerConfig) -> ImageConfig {
    ImageConfig {
        entrypoint: c.entrypoint.clone().unwrap_or_default(),
        cmd: c.cmd.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        user: c.user.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        volumes: c
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default(),
        labels: c.labels.clone().unwrap_or_default(),
        stop_signal: c.stop_signal.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_differ_by_path_and_ids_come_from_the_directory() {
        let a = lease_id("b", Path::new("/tmp/x/b"));
        assert_ne!(a, lease_id("b", Path::new("/tmp/x/b")));
        assert_ne!(a, lease_id("b", Path::new("/tmp/y/b")));
        assert!(a.starts_with("b-"));
        assert_eq!(default_id(Path::new("/tmp/web-1")).unwrap(), "web-1");
        assert!(default_id(Path::new("/tmp/bad name")).is_err());
    }
}
