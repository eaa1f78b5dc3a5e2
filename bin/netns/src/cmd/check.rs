//! `berth-netns check NAME`: CHECK each cached attachment of the namespace.

use std::process::ExitCode;

use anyhow::Context as _;
use berth_cni::{netns, Error, NetworkList};
use clap::Args;
use serde_json::json;

use crate::Common;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Namespace name (/run/netns/NAME).
    name: String,
    #[command(flatten)]
    common: Common,
    /// Only this network's attachment.
    #[arg(long, value_name = "NET")]
    network: Option<String>,
    /// CNI container ID (default: NAME).
    #[arg(long, value_name = "ID")]
    container_id: Option<String>,
}

pub fn run(a: CheckArgs) -> anyhow::Result<ExitCode> {
    netns::validate_name(&a.name)?;
    let container_id = a.container_id.clone().unwrap_or_else(|| a.name.clone());
    let path = netns::path_of(&a.name);
    if !netns::is_netns(&path) {
        return Err(Error::NetnsNotFound { path }.into());
    }
    let cni = a.common.cni();
    let attachments: Vec<_> = cni
        .cache()
        .entries(Some(&container_id))?
        .into_iter()
        .filter(|i| a.network.as_ref().is_none_or(|n| &i.network_name == n))
        .collect();
    if attachments.is_empty() {
        return Err(Error::NotCached {
            network: a.network.unwrap_or_else(|| "*".into()),
            container_id,
            ifname: "*".into(),
        }
        .into());
    }
    let mut checked = Vec::new();
    for info in &attachments {
        let origin = cni
            .cache()
            .path(&info.network_name, &info.container_id, &info.if_name);
        let list = NetworkList::from_bytes(&info.config, &origin.display().to_string())?;
        let mut rt = info.runtime_conf();
        rt.netns = path.clone();
        cni.check(&list, &rt)
            .with_context(|| format!("checking network {:?} in {}", list.name, path.display()))?;
        checked.push(super::attachment_json(info));
    }
    if a.common.json {
        berth_cli::print_line(
            &json!({"name": a.name, "netns": path, "checked": checked}).to_string(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
