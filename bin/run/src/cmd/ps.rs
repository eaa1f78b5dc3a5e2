//! `berth-run ps`: the processes in a container's cgroup, as `runc ps` shows them.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use clap::Args;

use super::Format;

#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// Output format: table (ps's own columns) or json (the pids).
    #[arg(long, short = 'f', value_name = "FORMAT", default_value = "table")]
    format: Format,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,

    /// Arguments for ps(1) in table format; default: -ef.
    #[arg(
        value_name = "PS_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    ps_args: Vec<String>,
}

pub(crate) fn run(root: &Path, a: PsArgs) -> anyhow::Result<ExitCode> {
    let pids = berth_runtime::inspect::pids(root, &a.id)
        .with_context(|| format!("processes of container {}", a.id))?;
    match a.format {
        Format::Json => {
            if !a.ps_args.is_empty() {
                return Err(berth_cli::Usage("ps arguments need --format table".into()).into());
            }
            berth_cli::print_line(&serde_json::to_string(&pids)?)?;
        }
        Format::Table => {
            let args = if a.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                a.ps_args
            };
            let out = Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!(
                    "ps {}: {}: {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            berth_cli::print_line(&filter(&text, &pids)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// ps's header and the lines whose PID column is one of `pids`.
fn filter(ps_output: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = ps_output.lines();
    let header = lines.next().unwrap_or("");
    let Some(index) = header.split_whitespace().position(|f| f == "PID") else {
        bail!("ps output has no PID column: {header:?}");
    };
    let mut out = vec![header];
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let field = line.split_whitespace().nth(index).unwrap_or("");
        let pid: i32 = field
            .parse()
            .with_context(|| format!("ps output: unable to parse pid {field:?} in {line:?}"))?;
        if pids.contains(&pid) {
            out.push(line);
        }
    }
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_matching_pids() {
        let ps = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                  root           1       0  0 18:00 ?        00:00:01 /sbin/init\n\
                  root          42       1  0 18:01 ?        00:00:00 sleep 100\n";
        let out = filter(ps, &[42]).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(out.ends_with("sleep 100"));
        assert!(filter("USER COMMAND\nroot x\n", &[1]).is_err());
        assert!(filter("PID CMD\nabc x\n", &[1]).is_err());
    }
}
