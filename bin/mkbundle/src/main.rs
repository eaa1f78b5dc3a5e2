//! berth-mkbundle: an OCI bundle (config.json + overlay rootfs) from an unpacked image.
#![forbid(unsafe_code)]

mod cli;
mod create;
mod remove;

use std::error::Error as StdError;
use std::process::ExitCode;

use berth_cli::{HasKind, Kind};
use clap::error::ErrorKind;
use clap::Parser;

use crate::cli::Cli;

fn classify(e: &(dyn StdError + 'static)) -> Option<Kind> {
    if let Some(e) = e.downcast_ref::<berth_spec::Error>() {
        return Some(e.kind());
    }
    if let Some(e) = e.downcast_ref::<berth_content::Error>() {
        return Some(e.kind());
    }
    e.downcast_ref::<berth_snapshot::Error>().map(|e| e.kind())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // One line, like every other error of the tool.
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let line = first.join(" ");
            eprintln!(
                "berth-mkbundle: error: {}",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(berth_cli::exit::USAGE);
        }
    };
    berth_cli::init_logging(&cli.log_level, cli.log_format);
    berth_cli::main("berth-mkbundle", classify, || match &cli.remove {
        Some(dir) => remove::run(&cli, dir),
        None => create::run(&cli),
    })
}
