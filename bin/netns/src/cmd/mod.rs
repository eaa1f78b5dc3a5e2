//! One file per verb.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod list;
pub mod status;

use berth_cni::CachedInfo;
use serde_json::{json, Value};

/// An attachment as `--json` shows it.
pub(crate) fn attachment_json(info: &CachedInfo) -> Value {
    json!({
        "network": info.network_name,
        "containerId": info.container_id,
        "ifName": info.if_name,
        "netns": info.netns,
        "ips": addresses(info),
    })
}

/// The addresses of a cached result (`10.1.0.2/24`), for text and JSON output.
pub(crate) fn addresses(info: &CachedInfo) -> Vec<String> {
    info.result
        .as_ref()
        .and_then(|r| r.get("ips"))
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
