//! `berth-netns add NAME`: create the namespace, run ADD, print the result.

use std::process::ExitCode;

use anyhow::Context as _;
use berth_cni::{netns, RuntimeConf};
use clap::Args;
use serde_json::{json, Value};

use crate::options;
use crate::Common;

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Namespace name: /run/netns/NAME ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
    name: String,
    #[command(flatten)]
    common: Common,
    /// Network to attach (default: the first configuration file in lexical order).
    #[arg(long, value_name = "NET")]
    network: Option<String>,
    /// Interface name inside the namespace.
    #[arg(long, value_name = "IF", default_value = "eth0")]
    ifname: String,
    /// CNI container ID (default: NAME).
    #[arg(long, value_name = "ID")]
    container_id: Option<String>,
    /// CNI_ARGS, as K=V;K2=V2.
    #[arg(long, value_name = "K=V;…", value_parser = options::parse_cni_args)]
    args: Option<options::CniArgs>,
    /// Port mapping for plugins with the portMappings capability (repeatable).
    #[arg(long = "port", value_name = "[HOSTIP:]HOSTPORT:PORT[/PROTO]", value_parser = options::parse_port)]
    ports: Vec<Value>,
    /// Limits for plugins with the bandwidth capability, in bits per second and bits.
    #[arg(long, value_name = "ingressRate=N,ingressBurst=N,egressRate=N,egressBurst=N", value_parser = options::parse_bandwidth)]
    bandwidth: Option<Value>,
    /// MAC address for plugins with the mac capability.
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Address for plugins with the ips capability (repeatable), e.g. 10.1.0.5/24.
    #[arg(long = "ip", value_name = "IP")]
    ips: Vec<String>,
    /// Any other capability arg, as KEY=JSON (repeatable), e.g. dns={"nameservers":["10.1.0.1"]}.
    #[arg(long = "cap", value_name = "KEY=JSON", value_parser = options::parse_cap)]
    caps: Vec<(String, Value)>,
}

pub fn run(a: AddArgs) -> anyhow::Result<ExitCode> {
    netns::validate_name(&a.name)?;
    let container_id = a.container_id.clone().unwrap_or_else(|| a.name.clone());
    let list =
        berth_cni::load_list(&a.common.conf_dir, a.network.as_deref()).with_context(|| {
            format!(
                "loading the network configuration from {}",
                a.common.conf_dir.display()
            )
        })?;
    let mut caps = serde_json::Map::new();
    for (k, v) in a.caps {
        caps.insert(k, v);
    }
    if !a.ports.is_empty() {
        caps.insert("portMappings".into(), Value::Array(a.ports));
    }
    if let Some(bw) = a.bandwidth {
        caps.insert("bandwidth".into(), bw);
    }
    if let Some(mac) = a.mac {
        caps.insert("mac".into(), json!(mac));
    }
    if !a.ips.is_empty() {
        caps.insert("ips".into(), json!(a.ips));
    }
    let path = netns::path_of(&a.name);
    let rt = RuntimeConf {
        container_id,
        netns: path.clone(),
        ifname: a.ifname,
        args: a.args.map(|a| a.0).unwrap_or_default(),
        capability_args: caps,
    };
    rt.validate()?;
    let cni = a.common.cni();
    netns::create(&a.name)?;
    let result = match cni.add(&list, &rt) {
        Ok(r) => r,
        Err(e) => {
            if let Err(rm) = netns::remove(&path) {
                tracing::warn!("{rm}");
            }
            return Err(anyhow::Error::new(e).context(format!(
                "adding network {:?} to {}",
                list.name,
                path.display()
            )));
        }
    };
    let out = if a.common.json {
        json!({
            "name": a.name,
            "netns": path,
            "network": list.name,
            "containerId": rt.container_id,
            "ifName": rt.ifname,
            "result": result.raw,
        })
    } else {
        result.raw
    };
    berth_cli::print_line(&out.to_string())?;
    Ok(ExitCode::SUCCESS)
}
