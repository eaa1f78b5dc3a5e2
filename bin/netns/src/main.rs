//! berth-netns: named network namespaces wired by CNI plugins.
#![forbid(unsafe_code)]

use std::error::Error as StdError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_cli::{HasKind, Kind, LogFormat, EXIT_CODES_HELP};
use clap::{Args, Parser, Subcommand};

mod cmd;
mod options;

#[derive(Parser, Debug)]
#[command(
    name = "berth-netns",
    version,
    about = "Create named network namespaces and wire them with CNI plugins, as ip netns and libcni do",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (error, warn, info, debug, trace, or a RUST_LOG-style directive).
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    log_level: String,
    /// Log format on stderr: text or json.
    #[arg(long, global = true, default_value = "text", value_name = "FORMAT")]
    log_format: LogFormat,
}

/// Where configurations, plugins and the result cache are; shared by every command.
#[derive(Args, Debug, Clone)]
struct Common {
    /// Directory of network configurations (.conflist, .conf, .json).
    #[arg(
        long,
        value_name = "DIR",
        env = "CNI_CONF_DIR",
        default_value = "/etc/cni/net.d"
    )]
    conf_dir: PathBuf,
    /// Plugin directories, searched in order.
    #[arg(long, value_name = "DIR[:DIR…]", env = "CNI_PATH", default_value = berth_cni::DEFAULT_PATH)]
    bin_dir: String,
    /// Directory of the result cache (entries go in DIR/results, as libcni keeps them).
    #[arg(long, value_name = "DIR", default_value = berth_cni::DEFAULT_CACHE_DIR)]
    cache_dir: PathBuf,
    /// Seconds one plugin invocation may run before its process is killed.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = options::parse_timeout)]
    timeout: Duration,
    /// Print one JSON object per result instead of text.
    #[arg(long)]
    json: bool,
}

impl Common {
    fn cni(&self) -> berth_cni::Cni {
        berth_cni::Cni::new(berth_cni::parse_path(&self.bin_dir))
            .with_cache_dir(&self.cache_dir)
            .with_timeout(self.timeout)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create /run/netns/NAME, bring lo up, run the network's ADD and print the CNI result.
    Add(cmd::add::AddArgs),
    /// Run DEL with the configuration the ADD cached, then remove the namespace.
    Del(cmd::del::DelArgs),
    /// Run CHECK on the namespace's attachments with their cached results.
    Check(cmd::check::CheckArgs),
    /// List named namespaces and the networks attached to them.
    List(cmd::list::ListArgs),
    /// Delete cached attachments whose namespace is gone; send GC to CNI 1.1 plugins.
    Gc(cmd::gc::GcArgs),
    /// Ask the plugins of each network for STATUS (CNI 1.1 networks).
    Status(cmd::status::StatusArgs),
}

fn main() -> ExitCode {
    berth_cli::main("berth-netns", classify, || {
        let cli = Cli::parse();
        berth_cli::init_logging(&cli.log_level, cli.log_format);
        match cli.command {
            Command::Add(a) => cmd::add::run(a),
            Command::Del(a) => cmd::del::run(a),
            Command::Check(a) => cmd::check::run(a),
            Command::List(a) => cmd::list::run(a),
            Command::Gc(a) => cmd::gc::run(a),
            Command::Status(a) => cmd::status::run(a),
        }
    })
}

fn classify(err: &(dyn StdError + 'static)) -> Option<Kind> {
    err.downcast_ref::<berth_cni::Error>().map(HasKind::kind)
}
