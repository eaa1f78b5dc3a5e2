//! `berth-netns gc`: for each network, DEL the cached attachments whose namespace is gone and
//! send GC (CNI 1.1) with the ones that remain.

use std::path::Path;
use std::process::ExitCode;

use berth_cni::{netns, GcAttachment};
use clap::Args;
use serde_json::json;

use crate::Common;

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    common: Common,
    /// Only this network.
    #[arg(long, value_name = "NET")]
    network: Option<String>,
}

pub fn run(a: GcArgs) -> anyhow::Result<ExitCode> {
    let cni = a.common.cni();
    let lists = match &a.network {
        Some(n) => vec![berth_cni::load_list(&a.common.conf_dir, Some(n))?],
        None => berth_cni::conf::load_all(&a.common.conf_dir)?,
    };
    // An attachment stays valid while the namespace it was made in still exists.
    let valid: Vec<GcAttachment> = cni
        .cache()
        .entries(None)?
        .into_iter()
        .filter(|i| !i.netns.is_empty() && netns::is_netns(Path::new(&i.netns)))
        .map(|i| GcAttachment {
            container_id: i.container_id,
            ifname: i.if_name,
        })
        .collect();
    let mut first_err = None;
    for list in &lists {
        match cni.gc(list, &valid) {
            Ok(report) => {
                for info in &report.deleted {
                    let line = if a.common.json {
                        json!({"network": list.name, "deleted": super::attachment_json(info)})
                            .to_string()
                    } else {
                        format!(
                            "{}\tdeleted\t{}\t{}",
                            list.name, info.container_id, info.if_name
                        )
                    };
                    berth_cli::print_line(&line)?;
                }
            }
            Err(e) => {
                berth_cli::print_line(&if a.common.json {
                    json!({"network": list.name, "error": e.to_string()}).to_string()
                } else {
                    format!("{}\terror\t{e}", list.name)
                })?;
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(anyhow::Error::new(e).context("collecting garbage")),
        None => Ok(ExitCode::SUCCESS),
    }
}
