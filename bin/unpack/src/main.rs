//! berth-unpack: image layers from berth's content store into shared overlay snapshots
//! (`<root>/snapshots/sha256/<chain-id>/`), or one image flattened into a directory.
#![forbid(unsafe_code)]

mod housekeeping;
mod unpack;

use std::error::Error as StdError;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_cli::{kind_of, Kind, LogArgs};
use clap::Parser;

/// Unpack images from berth's content store into overlay snapshots, one per layer chain,
/// shared by every image that has it, and print each image's pinned reference
/// (NAME[:TAG]@sha256:<manifest digest>) once its snapshots exist.
///
/// With --to DIR, write one image flattened into DIR instead (whiteouts applied, no overlay
/// needed), as `umoci unpack` or `crane export` do. IMAGE `-` reads names from stdin, one a
/// line. Needs root (device nodes, owners, trusted.* xattrs).
#[derive(Debug, Parser)]
#[command(name = "berth-unpack", version, after_help = berth_cli::EXIT_CODES_HELP)]
struct Cli {
    /// Images (names or pinned references) to unpack, chain IDs with --remove;
    /// `-` reads them from stdin.
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,

    /// berth's root directory: the content store is <root>/content, snapshots <root>/snapshots.
    #[arg(
        long,
        value_name = "DIR",
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,

    /// Layers unpacked at the same time (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,

    /// The platform to take from a multi-platform index (default: this host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Flatten the (single) IMAGE into DIR, which must not exist or be an empty directory.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["list", "remove", "gc", "release"])]
    to: Option<PathBuf>,

    /// Do not syncfs(2) snapshots before committing them (faster; a crash may then leave a
    /// committed snapshot with lost data).
    #[arg(long)]
    no_sync: bool,

    /// Print one JSON object per operand (shape in bin/unpack/README.md).
    #[arg(long)]
    json: bool,

    /// List the snapshots with the bundles that use them.
    #[arg(long, conflicts_with_all = ["remove", "gc", "release"])]
    list: bool,

    /// Remove the snapshots whose chain IDs are given as operands (refused while in use).
    #[arg(long, conflicts_with_all = ["gc", "release"])]
    remove: bool,

    /// Remove snapshots that no image in the content store needs and no bundle uses, and
    /// leftovers of crashed builds.
    #[arg(long, conflicts_with = "release")]
    gc: bool,

    /// Forget every use of snapshots recorded for this bundle id.
    #[arg(long, value_name = "BUNDLE-ID")]
    release: Option<String>,

    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    berth_cli::main("berth-unpack", classify, || run(Cli::parse()))
}

fn classify(e: &(dyn StdError + 'static)) -> Option<Kind> {
    kind_of::<berth_snapshot::Error>(e)
        .or_else(|| kind_of::<berth_layer::Error>(e))
        .or_else(|| kind_of::<berth_content::Error>(e))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    berth_cli::init_logging(&cli.log.level, cli.log.format);
    let operands = berth_cli::operands(&cli.images)?;
    if cli.list {
        housekeeping::list(&cli)?;
    } else if cli.gc {
        housekeeping::gc(&cli)?;
    } else if let Some(id) = &cli.release {
        housekeeping::release(&cli, id)?;
    } else if cli.remove {
        housekeeping::remove(&cli, &operands)?;
    } else if let Some(to) = &cli.to {
        let [image] = operands.as_slice() else {
            return Err(berth_cli::Usage(format!(
                "--to takes exactly one IMAGE, not {}",
                operands.len()
            ))
            .into());
        };
        unpack::flatten(&cli, image, to)?;
    } else {
        if operands.is_empty() {
            return Err(berth_cli::Usage("no IMAGE given (try --help)".into()).into());
        }
        unpack::snapshots(&cli, &operands)?;
    }
    Ok(ExitCode::SUCCESS)
}
