//! berth-pull: images from OCI registries into berth's content store.
#![forbid(unsafe_code)]

mod housekeeping;
mod progress;
mod pull;

use std::error::Error as StdError;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_cli::{kind_of, Kind, LogArgs};
use clap::Parser;

/// Pull images from OCI registries into berth's content store and print their pinned
/// references (NAME[:TAG]@sha256:<manifest digest>), one a line.
///
/// Names are normalised like docker's (busybox is docker.io/library/busybox:latest).
/// Registries on loopback are spoken to over plain HTTP; others over HTTPS unless
/// --plain-http. IMAGE `-` reads names from stdin, one a line.
#[derive(Debug, Parser)]
#[command(name = "berth-pull", version, after_help = berth_cli::EXIT_CODES_HELP)]
struct Cli {
    /// Images to pull (or names to remove with --remove); `-` reads them from stdin.
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,

    /// berth's root directory; the content store is <root>/content.
    #[arg(
        long,
        value_name = "DIR",
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,

    /// The platform to pull from a multi-platform index (default: this host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Speak plain HTTP to every registry, not only to those on loopback.
    #[arg(long)]
    plain_http: bool,

    /// Credentials for the image's registry.
    #[arg(long, value_name = "USER:PASS")]
    creds: Option<String>,

    /// Auth file (containers auth.json / docker config.json shape) instead of the defaults
    /// ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,

    /// Extra CA certificates (PEM) to trust for HTTPS registries.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,

    /// Mirrors configuration (JSON; default /etc/berth/mirrors.json when it exists).
    #[arg(long, value_name = "FILE", env = "BERTH_MIRRORS")]
    mirrors: Option<PathBuf>,

    /// Blobs downloaded in parallel.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    /// Print one JSON object per image (shape in bin/pull/README.md).
    #[arg(long)]
    json: bool,

    /// No progress bars and no warnings on stderr (errors still print).
    #[arg(long, short)]
    quiet: bool,

    /// List the images in the store instead of pulling.
    #[arg(long, conflicts_with_all = ["remove", "gc"])]
    list: bool,

    /// Remove the named images from the store's index (blobs stay until --gc).
    #[arg(long)]
    remove: bool,

    /// Delete blobs that no name in the store reaches, and abandoned partial downloads.
    #[arg(long)]
    gc: bool,

    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    berth_cli::main("berth-pull", classify, || run(Cli::parse()))
}

fn classify(e: &(dyn StdError + 'static)) -> Option<Kind> {
    kind_of::<berth_registry::Error>(e)
        .or_else(|| kind_of::<berth_content::Error>(e))
        .or_else(|| kind_of::<berth_reference::Error>(e))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let level = if cli.quiet {
        "error"
    } else {
        cli.log.level.as_str()
    };
    berth_cli::init_logging(level, cli.log.format);
    let operands = berth_cli::operands(&cli.images)?;
    if cli.list {
        if !operands.is_empty() {
            return Err(berth_cli::Usage("--list takes no IMAGE operands".into()).into());
        }
        housekeeping::list(&cli.root, cli.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cli.remove || cli.gc {
        if cli.remove && operands.is_empty() {
            return Err(berth_cli::Usage("--remove needs at least one IMAGE name".into()).into());
        }
        if !cli.remove && !operands.is_empty() {
            return Err(berth_cli::Usage(
                "--gc takes no IMAGE operands (use --remove NAME --gc)".into(),
            )
            .into());
        }
        if cli.remove {
            housekeeping::remove(&cli.root, &operands, cli.json)?;
        }
        if cli.gc {
            housekeeping::gc(&cli.root, cli.json)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if operands.is_empty() {
        return Err(berth_cli::Usage("no IMAGE given (see --help)".into()).into());
    }
    pull::run(&cli, &operands)?;
    Ok(ExitCode::SUCCESS)
}
