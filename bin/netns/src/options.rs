//! Parsing of the options that become CNI capability args and CNI_ARGS.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Map, Value};

/// `--timeout SECONDS` (fractions allowed, more than 0).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{text:?} is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The pairs of `--args` (a newtype, so clap takes the option once rather than as a list).
#[derive(Debug, Clone, PartialEq)]
pub struct CniArgs(pub Vec<(String, String)>);

/// `--args K=V;K2=V2`.
pub fn parse_cni_args(text: &str) -> Result<CniArgs, String> {
    let mut out = Vec::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("{pair:?} has an empty key"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(CniArgs(out))
}

/// `--port [HOSTIP:]HOSTPORT:PORT[/PROTO]`, HOSTIP may be `[v6]`; a `portMappings` entry.
pub fn parse_port(text: &str) -> Result<Value, String> {
    let bad = |why: &str| {
        format!("port mapping {text:?}: {why} (want [HOSTIP:]HOSTPORT:PORT[/tcp|udp|sctp])")
    };
    let (rest, proto) = match text.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (text, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad("unknown protocol"));
    }
    let (host_ip, ports) = if let Some(stripped) = rest.strip_prefix('[') {
        let (ip, after) = stripped.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        (
            Some(ip),
            after
                .strip_prefix(':')
                .ok_or_else(|| bad("no port after the address"))?,
        )
    } else {
        match rest.matches(':').count() {
            1 => (None, rest),
            2 => {
                let (ip, ports) = rest.split_once(':').expect("two colons");
                (Some(ip), ports)
            }
            _ => return Err(bad("wrong number of ':'")),
        }
    };
    let (host_port, port) = ports
        .split_once(':')
        .ok_or_else(|| bad("no container port"))?;
    let port_number = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(&format!("{p:?} is not a port"))),
        }
    };
    let mut mapping = Map::new();
    mapping.insert("hostPort".into(), json!(port_number(host_port)?));
    mapping.insert("containerPort".into(), json!(port_number(port)?));
    mapping.insert("protocol".into(), json!(proto));
    if let Some(ip) = host_ip.filter(|ip| !ip.is_empty()) {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?;
        mapping.insert("hostIP".into(), json!(ip.to_string()));
    }
    Ok(Value::Object(mapping))
}

/// `--bandwidth ingressRate=N,ingressBurst=N,egressRate=N,egressBurst=N` (bits per second and
/// bits, the bandwidth capability's own keys; any subset).
pub fn parse_bandwidth(text: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("bandwidth {pair:?} is not KEY=NUMBER"))?;
        if !matches!(
            k,
            "ingressRate" | "ingressBurst" | "egressRate" | "egressBurst"
        ) {
            return Err(format!(
                "bandwidth key {k:?} is not ingressRate, ingressBurst, egressRate or egressBurst"
            ));
        }
        let n: u64 = v
            .parse()
            .map_err(|_| format!("bandwidth {k}={v:?} is not a number"))?;
        out.insert(k.to_string(), json!(n));
    }
    if out.is_empty() {
        return Err("--bandwidth needs at least one KEY=NUMBER".into());
    }
    Ok(Value::Object(out))
}

/// `--cap KEY=JSON`: any capability arg, e.g. `dns={"nameservers":["10.0.0.1"]}`.
pub fn parse_cap(text: &str) -> Result<(String, Value), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=JSON"))?;
    if k.is_empty() {
        return Err(format!("{text:?} has an empty key"));
    }
    let value: Value = serde_json::from_str(v).map_err(|e| format!("capability {k}: {e}"))?;
    Ok((k.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_in_each_form() {
        assert_eq!(
            parse_port("127.0.0.1:8080:80/tcp").unwrap(),
            json!({"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"})
        );
        assert_eq!(
            parse_port("53:53/UDP").unwrap(),
            json!({"hostPort":53,"containerPort":53,"protocol":"udp"})
        );
        assert_eq!(parse_port("[::1]:8443:443").unwrap()["hostIP"], "::1");
        for bad in [
            "80",
            "a:b:c:d",
            "1.2.3.4:0:80",
            "x:80:80",
            "8080:80/icmp",
            "[::1:80:80",
            ":80",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bandwidth_and_args_and_caps_parse() {
        assert_eq!(
            parse_bandwidth("ingressRate=1000,egressBurst=20").unwrap(),
            json!({"ingressRate":1000,"egressBurst":20})
        );
        assert!(parse_bandwidth("rate=1").is_err());
        assert!(parse_bandwidth("ingressRate=-1").is_err());
        assert_eq!(
            parse_cni_args("A=1;B=x=y;").unwrap().0,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert!(parse_cni_args("A").is_err());
        assert_eq!(
            parse_cap(r#"dns={"nameservers":["1.1.1.1"]}"#).unwrap().1["nameservers"][0],
            "1.1.1.1"
        );
        assert!(parse_cap("dns={").is_err());
        assert!(parse_timeout("0").is_err());
        assert_eq!(parse_timeout("1.5").unwrap(), Duration::from_millis(1500));
    }
}
