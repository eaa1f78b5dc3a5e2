//! berth-run: an OCI runtime with runc's command line.
#![forbid(unsafe_code)]

mod cmd;
mod log;
mod systemd;

use std::error::Error as StdError;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_cli::{HasKind, Kind, LogFormat};
use clap::{CommandFactory, FromArgMatches, Parser};

/// Run containers from OCI bundles (a directory with config.json and a root filesystem),
/// with runc's command line: `create` then `start`, or `run` for both; `state`, `kill` and
/// `delete` act on a container by its id. State lives in <root>/<id>/.
#[derive(Debug, Parser)]
#[command(name = "berth-run", version, after_help = AFTER_HELP)]
struct Cli {
    /// Directory for container state.
    #[arg(long, value_name = "DIR", default_value = "/run/berth", global = true)]
    root: PathBuf,

    /// Write logs to this file instead of stderr.
    #[arg(long, value_name = "FILE", global = true)]
    log: Option<PathBuf>,

    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,

    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,

    /// Make the container's cgroup a systemd scope (cgroupsPath `slice:prefix:name`), as runc
    /// does; needs systemd as PID 1 (cgroup v2, hybrid or v1; create and run fail with exit
    /// 6 otherwise).
    #[arg(long, global = true)]
    systemd_cgroup: bool,

    /// The criu binary for checkpoint and restore.
    #[arg(long, value_name = "PATH", global = true)]
    criu: Option<PathBuf>,

    #[command(subcommand)]
    command: cmd::Command,
}

const AFTER_HELP: &str = "\
Exit codes:
  0  ok
  1  failed
  2  usage: bad arguments, an invalid container id or a malformed config.json
  3  not found (no such container, bundle or file)
  4  already exists
  5  permission denied
  6  unsupported by this host (e.g. AppArmor or SELinux labels)
  run in the foreground: the container's own status (128+N for signal N), or
  125 when berth-run failed, 126 when the program cannot be executed, 127 when it is not found";

fn classify(e: &(dyn StdError + 'static)) -> Option<Kind> {
    e.downcast_ref::<berth_runtime::Error>()
        .map(HasKind::kind)
        .or_else(|| {
            e.downcast_ref::<berth_runtime::checkpoint::Error>()
                .map(HasKind::kind)
        })
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = init_logging(&cli) {
        eprintln!("berth-run: error: {e}");
        return ExitCode::from(1);
    }
    if cli.systemd_cgroup {
        if let Err((code, why)) = systemd_cgroup_check(&matches) {
            eprintln!("berth-run: error: {why}");
            return ExitCode::from(code);
        }
    }
    cli.command.set_criu(cli.criu.take());
    let runtime = berth_runtime::Runtime::new(&cli.root).with_systemd_cgroup(cli.systemd_cgroup);
    // With --log, the final error goes to the log file too: engines read it back from there.
    let log_to_file = cli.log.is_some();
    berth_cli::main("berth-run", classify, || {
        cmd::dispatch(&runtime, &cli.root, cli.command).inspect_err(|e| {
            if log_to_file {
                log::final_error(e);
            }
        })
    })
}

fn init_logging(cli: &Cli) -> std::io::Result<()> {
    let level = if cli.debug { "debug" } else { "warn" };
    let Some(path) = &cli.log else {
        if cli.debug || std::env::var_os("RUST_LOG").is_some() {
            berth_cli::init_logging(level, cli.log_format);
        } else {
            // The hot path (every container start): warnings only, without building an
            // EnvFilter, which costs start-up time and memory.
            let builder = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_writer(std::io::stderr);
            let _ = match cli.log_format {
                LogFormat::Text => builder.with_target(false).try_init(),
                LogFormat::Json => builder.event_format(log::Logrus).try_init(),
            };
        }
        return Ok(());
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("opening --log {}: {e}", path.display()))
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false);
    let _ = match cli.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.event_format(log::Logrus).try_init(),
    };
    Ok(())
}

/// `--systemd-cgroup` for the verbs that make a cgroup, before anything is made: the bundle's
/// cgroupsPath must be systemd's `slice:prefix:name` (exit 2), PID 1 must be systemd (exit 6;
/// `run` too says 6, not 125). `create`, `run` and `restore` then hand the flag to the
/// runtime. Other verbs act on the recorded state (the
/// scope is in it) and ignore the flag, as runc's do.
fn systemd_cgroup_check(matches: &clap::ArgMatches) -> Result<(), (u8, String)> {
    let Some(("create" | "run" | "restore", sub)) = matches.subcommand() else {
        return Ok(());
    };
    let (bundle, id) = systemd::bundle_and_id(sub);
    systemd::check(&bundle, &id)
}
