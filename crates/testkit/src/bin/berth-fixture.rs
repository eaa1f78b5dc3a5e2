//! `berth-fixture --out DIR [--large] [NAME...]`: writes berth's fixture images into the OCI
//! image layout DIR (created, or added to), for scripts such as quickstart and benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_testkit::fixtures;

const USAGE: &str = "usage: berth-fixture --out DIR [--large] [NAME...]

Writes deterministic fixture images into the OCI image layout DIR.
Without NAME, writes every small fixture (and large:latest with --large).

names: busybox:gzip busybox:zstd busybox:docker layers:latest layers:gzip multiarch:latest large:latest

exit codes: 0 ok, 1 failed, 2 usage";

fn main() -> ExitCode {
    let mut out: Option<PathBuf> = None;
    let mut large = false;
    let mut names: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--out" => match args.next() {
                Some(d) => out = Some(PathBuf::from(d)),
                None => return usage("--out needs a directory"),
            },
            "--large" => large = true,
            s if s.starts_with('-') => return usage(&format!("unknown option {s}")),
            s if fixtures::SMALL.contains(&s) || s == fixtures::LARGE => names.push(s.to_owned()),
            s => return usage(&format!("unknown fixture {s}")),
        }
    }
    let Some(out) = out else {
        return usage("--out DIR is required");
    };
    if names.is_empty() {
        names = fixtures::SMALL.iter().map(|s| s.to_string()).collect();
    }
    if large && !names.iter().any(|n| n == fixtures::LARGE) {
        names.push(fixtures::LARGE.to_owned());
    }
    let which: Vec<&str> = names.iter().map(String::as_str).collect();
    match fixtures::build(&out, &which) {
        Ok(()) => {
            for n in &which {
                println!("{n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-fixture: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("berth-fixture: {msg}\n{USAGE}");
    ExitCode::from(2)
}
