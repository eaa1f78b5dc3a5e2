//! The front every berth binary shares: one place that turns an error into one printed line
//! and an exit code, installs the log subscriber, and reads `-` operands from stdin.
#![forbid(unsafe_code)]

use std::error::Error as StdError;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

pub use berth_kind::{exit, HasKind, Kind};

/// Appended to every tool's `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  failed (including corrupt or hostile input from a registry, layer or bundle)
  2  usage: bad arguments or a malformed reference or option
  3  not found
  4  already exists, or conflict
  5  permission denied
  6  unsupported by this host";

/// Looks for a berth library error in an error chain and returns its kind.
pub type Classify = fn(&(dyn StdError + 'static)) -> Option<Kind>;

/// The kind of `e` if it is a `T`: the step a `Classify` takes for each library error type
/// it knows, `kind_of::<A>(e).or_else(|| kind_of::<B>(e))`.
pub fn kind_of<T: HasKind + StdError + 'static>(e: &(dyn StdError + 'static)) -> Option<Kind> {
    e.downcast_ref::<T>().map(HasKind::kind)
}

/// Runs a tool's body, prints a failure once as `TOOL: error: a: b: c`, and maps it to the
/// exit code of the first classified error in the chain (1 when none is).
/// A broken pipe on stdout is a quiet exit 0.
pub fn main(
    tool: &str,
    classify: Classify,
    body: impl FnOnce() -> anyhow::Result<ExitCode>,
) -> ExitCode {
    match body() {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("{tool}: error: {}", chain(&err));
            ExitCode::from(exit_code(&err, classify))
        }
    }
}

/// The exit code for an error: the kind of the first error in the chain that `classify`
/// (or the I/O mapping) recognises.
pub fn exit_code(err: &anyhow::Error, classify: Classify) -> u8 {
    for cause in err.chain() {
        if let Some(kind) = classify(cause) {
            return kind.exit_code();
        }
        if cause.downcast_ref::<Usage>().is_some() {
            return exit::USAGE;
        }
    }
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Kind::of_io(io).exit_code();
        }
    }
    exit::FAILED
}

/// The chain of an error on one line, each cause once, separated by `: `.
pub fn chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, cause) in err.chain().enumerate() {
        let text = cause.to_string();
        // Some libraries repeat their source in their own message; print it once.
        if i > 0 && out.ends_with(&text) {
            continue;
        }
        if i > 0 {
            out.push_str(": ");
        }
        out.push_str(text.lines().next().unwrap_or(""));
    }
    out
}

/// A usage error found by the binary itself (beyond what clap checks): exit code 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Usage {}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Writes one result line to stdout and flushes it, so a pipeline's next stage sees it at once.
pub fn print_line(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Expands operands: `-` stands for the lines of stdin (blank lines and surrounding space
/// ignored); every other operand is kept as given, in order.
pub fn operands(args: &[String]) -> io::Result<Vec<String>> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        if arg == "-" {
            out.extend(read_operands(io::stdin().lock())?);
        } else {
            out.push(arg.clone());
        }
    }
    Ok(out)
}

fn read_operands(input: impl BufRead) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for line in input.lines() {
        let line = line?;
        let line = line.trim();
        if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// Log output format chosen with `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

/// `--log-level` and `--log-format`, the same in every tool that takes them: put it in the
/// tool's arguments with `#[command(flatten)]` and hand it to [`init_logging`].
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter for stderr (error, warn, info, debug, trace, or a RUST_LOG-style
    /// directive; RUST_LOG wins).
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "warn")]
    pub level: String,

    /// Log format on stderr: text or json.
    #[arg(long = "log-format", value_name = "FORMAT", default_value = "text")]
    pub format: LogFormat,
}

/// Installs the tracing subscriber on stderr. `level` is a filter such as `warn` or
/// `berth=debug`; `RUST_LOG` wins when set.
pub fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Lib;
    impl std::fmt::Display for Lib {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("manifest sha256:ab not found")
        }
    }
    impl StdError for Lib {}

    fn classify(e: &(dyn StdError + 'static)) -> Option<Kind> {
        e.downcast_ref::<Lib>().map(|_| Kind::NotFound)
    }

    #[test]
    fn classified_errors_give_their_exit_code_through_context() {
        let err = anyhow::Error::new(Lib).context("pulling busybox");
        assert_eq!(exit_code(&err, classify), 3);
        assert_eq!(chain(&err), "pulling busybox: manifest sha256:ab not found");
    }

    impl HasKind for Lib {
        fn kind(&self) -> Kind {
            Kind::AlreadyExists
        }
    }

    #[test]
    fn kind_of_finds_only_its_own_type() {
        assert_eq!(kind_of::<Lib>(&Lib), Some(Kind::AlreadyExists));
        assert_eq!(kind_of::<Lib>(&Usage("bad".into())), None);
    }

    #[test]
    fn usage_and_io_errors_are_recognised() {
        let err = anyhow::Error::new(Usage("bad".into()));
        assert_eq!(exit_code(&err, classify), 2);
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::PermissionDenied)).context("x");
        assert_eq!(exit_code(&err, classify), 5);
        let err = anyhow::anyhow!("plain");
        assert_eq!(exit_code(&err, classify), 1);
    }

    #[test]
    fn stdin_operands_skip_blank_lines() {
        let got = read_operands(&b"a\n\n  b  \n"[..]).unwrap();
        assert_eq!(got, vec!["a".to_string(), "b".to_string()]);
    }
}
