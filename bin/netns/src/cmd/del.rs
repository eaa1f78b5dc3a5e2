//! `berth-netns del NAME`: DEL every cached attachment of the namespace, with the
//! configuration the ADD ran with, then remove the namespace. Idempotent.

use std::process::ExitCode;

use anyhow::Context as _;
use berth_cni::{netns, Error, RuntimeConf};
use clap::Args;
use serde_json::json;

use crate::Common;

#[derive(Args, Debug)]
pub struct DelArgs {
    /// Namespace name (/run/netns/NAME).
    name: String,
    #[command(flatten)]
    common: Common,
    /// Only this network's attachment (default: every network the namespace has).
    #[arg(long, value_name = "NET")]
    network: Option<String>,
    /// Only this interface.
    #[arg(long, value_name = "IF")]
    ifname: Option<String>,
    /// CNI container ID (default: NAME).
    #[arg(long, value_name = "ID")]
    container_id: Option<String>,
}

pub fn run(a: DelArgs) -> anyhow::Result<ExitCode> {
    netns::validate_name(&a.name)?;
    let container_id = a.container_id.clone().unwrap_or_else(|| a.name.clone());
    let path = netns::path_of(&a.name);
    let cni = a.common.cni();
    let attachments: Vec<_> = cni
        .cache()
        .entries(Some(&container_id))?
        .into_iter()
        .filter(|i| a.network.as_ref().is_none_or(|n| &i.network_name == n))
        .filter(|i| a.ifname.as_ref().is_none_or(|n| &i.if_name == n))
        .collect();
    let mut deleted = Vec::new();
    for info in &attachments {
        cni.del_cached(info).with_context(|| {
            format!(
                "removing network {:?} from {}",
                info.network_name,
                path.display()
            )
        })?;
        deleted.push(super::attachment_json(info));
    }
    if attachments.is_empty() {
        // Nothing cached: DEL with the configuration as it is now, which plugins take as a
        // no-op when they hold nothing for this container.
        match berth_cni::load_list(&a.common.conf_dir, a.network.as_deref()) {
            Ok(list) => {
                let rt = RuntimeConf {
                    container_id: container_id.clone(),
                    netns: path.clone(),
                    ifname: a.ifname.clone().unwrap_or_else(|| "eth0".into()),
                    ..Default::default()
                };
                cni.del(&list, &rt).with_context(|| {
                    format!("removing network {:?} from {}", list.name, path.display())
                })?;
            }
            Err(e @ (Error::NoConfigs { .. } | Error::NetworkNotFound { .. })) => {
                tracing::debug!("no cached attachment and no configuration to run DEL with: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let removed = netns::remove(&path)?;
    if a.common.json {
        let out =
            json!({"name": a.name, "netns": path, "deleted": deleted, "netnsRemoved": removed});
        berth_cli::print_line(&out.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
