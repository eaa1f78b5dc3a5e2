//! `berth-netns status`: STATUS of each network's plugins (CNI 1.1 networks; older ones are
//! reported as not asked, and taken as ready, as libcni does).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::Common;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
    /// Only this network.
    #[arg(long, value_name = "NET")]
    network: Option<String>,
}

/// One line per network: `NAME\tready`, `NAME\tready (not asked: cniVersion V)` or
/// `NAME\terror\tMESSAGE`; fails when any network is not ready.
pub fn run(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let cni = a.common.cni();
    let lists = match &a.network {
        Some(n) => vec![berth_cni::load_list(&a.common.conf_dir, Some(n))?],
        None => {
            let lists = berth_cni::conf::load_all(&a.common.conf_dir)?;
            if lists.is_empty() {
                return Err(berth_cni::Error::NoConfigs {
                    dir: a.common.conf_dir.clone(),
                }
                .into());
            }
            lists
        }
    };
    let mut first_err = None;
    for list in &lists {
        let (status, detail) = match cni.status(list) {
            Ok(true) => ("ready", String::new()),
            Ok(false) => (
                "ready",
                format!("not asked: cniVersion {}", list.cni_version),
            ),
            Err(e) => {
                let text = e.to_string();
                first_err.get_or_insert(e);
                ("error", text)
            }
        };
        let line = if a.common.json {
            json!({"network": list.name, "cniVersion": list.cni_version, "status": status, "detail": detail}).to_string()
        } else if detail.is_empty() {
            format!("{}\t{status}", list.name)
        } else {
            format!("{}\t{status}\t{detail}", list.name)
        };
        berth_cli::print_line(&line)?;
    }
    match first_err {
        Some(e) => Err(anyhow::Error::new(e).context("network status")),
        None => Ok(ExitCode::SUCCESS),
    }
}
