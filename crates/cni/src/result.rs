//! CNI results (spec 0.3.0 to 1.1.0) read as hostile input: every field that is present
//! must have the shape the spec gives it; unknown fields are kept as they are.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::version::Version;

/// A result a plugin returned, checked. `raw` is passed on as the next plugin's `prevResult`,
/// cached, and printed; the typed fields are what callers usually want.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    pub raw: Value,
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// `10.1.0.2/24`
    pub address: String,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> IpAddr {
        parse_cidr(&self.address)
            .expect("checked when the result was parsed")
            .0
    }
}

/// Parses and checks a result; the error says which field is wrong.
pub fn parse(bytes: &[u8]) -> Result<CniResult, String> {
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    check(raw)
}

/// Checks a result already parsed as JSON.
pub fn check(raw: Value) -> Result<CniResult, String> {
    let Value::Object(obj) = &raw else {
        return Err("not a JSON object".into());
    };
    let cni_version = match obj.get("cniVersion") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err("no string \"cniVersion\"".into()),
    };
    match Version::parse(&cni_version) {
        Some(v) if v >= Version::OLDEST && v <= Version::CURRENT => {}
        _ => {
            return Err(format!(
                "cniVersion {cni_version:?} is not one of 0.3.0 to {}",
                Version::CURRENT
            ))
        }
    }
    let interfaces = array(obj, "interfaces")?
        .iter()
        .enumerate()
        .map(|(i, v)| interface(v).map_err(|e| format!("interfaces[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let ips = array(obj, "ips")?
        .iter()
        .enumerate()
        .map(|(i, v)| ip_config(v, interfaces.len()).map_err(|e| format!("ips[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, route) in array(obj, "routes")?.iter().enumerate() {
        check_route(route).map_err(|e| format!("routes[{i}]: {e}"))?;
    }
    match obj.get("dns") {
        None | Some(Value::Null) => {}
        Some(Value::Object(dns)) => check_dns(dns).map_err(|e| format!("dns: {e}"))?,
        Some(_) => return Err("dns is not an object".into()),
    }
    Ok(CniResult {
        raw,
        cni_version,
        interfaces,
        ips,
    })
}

fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("{key} is not an array")),
    }
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key} is not a string")),
    }
}

fn interface(v: &Value) -> Result<Interface, String> {
    let Value::Object(obj) = v else {
        return Err("not an object".into());
    };
    let name = string(obj, "name")?.unwrap_or_default();
    if name.len() > 15 || name.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!("name {name:?} is not an interface name"));
    }
    let mac = string(obj, "mac")?;
    if let Some(mac) = mac {
        if mac.len() > 64 || !mac.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("mac {mac:?} is not a hardware address"));
        }
    }
    let sandbox = string(obj, "sandbox")?;
    if sandbox.is_some_and(|s| s.len() > 4096 || s.chars().any(char::is_control)) {
        return Err("sandbox is not a path".into());
    }
    Ok(Interface {
        name: name.to_string(),
        mac: mac.map(str::to_string),
        sandbox: sandbox.map(str::to_string),
    })
}

fn ip_config(v: &Value, interfaces: usize) -> Result<IpConfig, String> {
    let Value::Object(obj) = v else {
        return Err("not an object".into());
    };
    let address = string(obj, "address")?.ok_or("no address")?;
    let (ip, _) =
        parse_cidr(address).ok_or_else(|| format!("address {address:?} is not IP/PREFIX"))?;
    let gateway = match string(obj, "gateway")? {
        None => None,
        Some(g) => Some(
            g.parse::<IpAddr>()
                .map_err(|_| format!("gateway {g:?} is not an IP address"))?,
        ),
    };
    if let Some(version) = string(obj, "version")? {
        let want = if ip.is_ipv4() { "4" } else { "6" };
        if version != want {
            return Err(format!(
                "version {version:?} does not match address {address}"
            ));
        }
    }
    let interface = match obj.get("interface") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let i = n.as_u64().ok_or("interface is not an index")? as usize;
            if i >= interfaces {
                return Err(format!(
                    "interface {i} is not one of the {interfaces} interfaces"
                ));
            }
            Some(i)
        }
        Some(_) => return Err("interface is not a number".into()),
    };
    Ok(IpConfig {
        address: address.to_string(),
        gateway,
        interface,
    })
}

fn check_route(v: &Value) -> Result<(), String> {
    let Value::Object(obj) = v else {
        return Err("not an object".into());
    };
    let dst = string(obj, "dst")?.ok_or("no dst")?;
    parse_cidr(dst).ok_or_else(|| format!("dst {dst:?} is not IP/PREFIX"))?;
    if let Some(gw) = string(obj, "gw")? {
        gw.parse::<IpAddr>()
            .map_err(|_| format!("gw {gw:?} is not an IP address"))?;
    }
    Ok(())
}

fn check_dns(dns: &Map<String, Value>) -> Result<(), String> {
    for key in ["nameservers", "search", "options"] {
        for item in array(dns, key)? {
            if !item.is_string() {
                return Err(format!("{key} holds a non-string"));
            }
        }
    }
    string(dns, "domain")?;
    Ok(())
}

/// `10.1.0.2/24` → (10.1.0.2, 24), with the prefix checked against the family.
pub(crate) fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = text.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"16:fb:39:a6:93:4d"},
        {"name":"veth1","mac":"16:fb:39:a6:93:4d"},{"name":"eth0","mac":"26:68:5f:94:36:30","sandbox":"/run/netns/a"}],
        "ips":[{"interface":2,"address":"10.231.7.2/24","gateway":"10.231.7.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;

    #[test]
    fn a_bridge_result_parses() {
        let r = parse(BRIDGE.as_bytes()).unwrap();
        assert_eq!(r.cni_version, "1.0.0");
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.ips[0].ip().to_string(), "10.231.7.2");
        assert_eq!(r.ips[0].interface, Some(2));
        assert_eq!(r.interfaces[2].sandbox.as_deref(), Some("/run/netns/a"));
    }

    #[test]
    fn an_old_result_with_versions_parses() {
        let text = r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/8"}]}"#;
        assert_eq!(parse(text.as_bytes()).unwrap().ips.len(), 1);
        let text = r#"{"cniVersion":"0.3.1","ips":[{"version":"6","address":"10.0.0.2/8"}]}"#;
        assert!(parse(text.as_bytes()).unwrap_err().contains("version"));
    }

    #[test]
    fn hostile_results_are_refused_naming_the_field() {
        for (text, want) in [
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#,
                "ips[0]: address",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/33"}]}"#,
                "ips[0]: address",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","interface":5}]}"#,
                "ips[0]: interface 5",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","gateway":"x"}]}"#,
                "gateway",
            ),
            (
                r#"{"cniVersion":"1.0.0","interfaces":[{"name":"a/b"}]}"#,
                "interfaces[0]",
            ),
            (
                r#"{"cniVersion":"1.0.0","interfaces":[{"name":"a","mac":"zz"}]}"#,
                "mac",
            ),
            (
                r#"{"cniVersion":"1.0.0","routes":[{"dst":"nope"}]}"#,
                "routes[0]",
            ),
            (r#"{"cniVersion":"1.0.0","dns":{"nameservers":[1]}}"#, "dns"),
            (r#"{"cniVersion":"0.2.0"}"#, "cniVersion"),
            (r#"{"ips":[]}"#, "cniVersion"),
            (r#"[]"#, "object"),
            (r#"{"#, "not JSON"),
        ] {
            let err = parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn cidrs_parse_for_both_families() {
        assert_eq!(parse_cidr("fd00::2/64").unwrap().1, 64);
        assert!(parse_cidr("fd00::2/129").is_none());
        assert!(parse_cidr("10.0.0.1").is_none());
        assert!(parse_cidr("10.0.0.1/+1").is_none());
    }
}
