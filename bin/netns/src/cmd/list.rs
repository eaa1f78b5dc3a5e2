//! `berth-netns list`: the named namespaces and their cached attachments.

use std::path::Path;
use std::process::ExitCode;

use berth_cni::netns;
use clap::Args;
use serde_json::json;

use crate::Common;

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    common: Common,
}

/// One line per namespace: `NAME` then, for each attachment, `NETWORK/IFNAME=ADDR,ADDR`.
pub fn run(a: ListArgs) -> anyhow::Result<ExitCode> {
    let cni = a.common.cni();
    let entries = cni.cache().entries(None)?;
    for name in netns::list_in(Path::new(netns::RUN_DIR))? {
        let path = netns::path_of(&name);
        let mine: Vec<_> = entries
            .iter()
            .filter(|i| Path::new(&i.netns) == path)
            .collect();
        let line = if a.common.json {
            let attachments: Vec<_> = mine.iter().map(|i| super::attachment_json(i)).collect();
            json!({"name": name, "netns": path, "attachments": attachments}).to_string()
        } else {
            let mut line = name.clone();
            for i in &mine {
                line.push_str(&format!(
                    "\t{}/{}={}",
                    i.network_name,
                    i.if_name,
                    super::addresses(i).join(",")
                ));
            }
            line
        };
        berth_cli::print_line(&line)?;
    }
    Ok(ExitCode::SUCCESS)
}
