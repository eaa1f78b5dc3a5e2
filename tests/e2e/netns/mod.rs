//! berth-netns against the real kernel and Debian's containernetworking-plugins.
//!
//! Every test has its own conf, cache and host-local data directories, its own bridge name,
//! subnet (10.X.Y.0/24 derived from the process id) and namespace names, and removes all of
//! it on drop: DEL, then whatever is left (namespaces, the bridge, portmap's iptables rules).
//! Configurations use no IP masquerade and no default route; traffic stays on loopback and
//! the test's own bridge.
//!
//! `world` is the fixture; `containers` runs containers (runc, berth-mkbundle) in the
//! namespaces.

mod containers;
mod world;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use world::{addresses_inside, free_port, http_get, portmap_chains_exist, wait_for, World};

#[test]
fn two_namespaces_on_one_bridge_reach_each_other() {
    let mut w = World::new();
    w.write_list(false, &[]);
    let (a, result_a, ip_a) = w.add("a", &[]);
    let (b, _, ip_b) = w.add("b", &[]);
    assert_ne!(ip_a, ip_b);
    assert_eq!(
        result_a["interfaces"][2]["sandbox"],
        format!("/run/netns/{a}")
    );

    // `ip netns` sees them, lo is up, and a process inside sees the address CNI gave.
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&a));
    let lo = Command::new("ip")
        .args(["-n", &a, "-j", "link", "show", "lo"])
        .output()
        .unwrap();
    let lo: Value = serde_json::from_slice(&lo.stdout).unwrap();
    assert!(
        lo[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "lo is down: {lo}"
    );
    assert!(addresses_inside(&a).contains(&ip_a));
    assert!(addresses_inside(&a).contains(&"127.0.0.1".to_string()));

    ping(&a, &ip_b);
    ping(&b, &ip_a);

    // list shows both with their addresses.
    let listed = w.netns_ok(&["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&a) && l.contains(&format!("{}/eth0={ip_a}/24", w.network))),
        "{listed}"
    );

    assert_eq!(w.bridge_ports().len(), 2);
    w.netns_ok(&["del", &a]);
    w.netns_ok(&["del", &b]);
    assert!(w.bridge_ports().is_empty());
    assert!(w.reserved().is_empty());
    assert!(!Path::new("/run/netns").join(&a).exists());
}

/// Pings `ip` from namespace `ns`: up to 3 echo requests within 10 s, one reply is enough
/// (the first may be lost while ARP resolves).
fn ping(ns: &str, ip: &str) {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "busybox", "ping", "-c", "3", "-w", "10", ip,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("bytes from {ip}")),
        "ping {ip} from {ns} ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_port_mapping_reaches_httpd_in_the_namespace() {
    let mut w = World::new();
    w.portmap_chains_before = Some(portmap_chains_exist());
    w.write_list(
        true,
        // No SNAT: portmap makes no MASQUERADE rule.
        &[serde_json::json!({"type": "portmap", "snat": false, "capabilities": {"portMappings": true}})],
    );
    // The mapping is on the test's own bridge address, never 127.0.0.1: it cannot catch
    // traffic meant for another test's server that later binds the same port on loopback.
    let gateway = w.gateway();
    let host_port = free_port();
    let token = format!("hello from {}", w.network);
    fs::write(w.path("www/index.html"), &token).unwrap();
    let (name, _, _) = w.add("h", &["--port", &format!("{gateway}:{host_port}:8080/tcp")]);
    let cached: Value = serde_json::from_slice(
        &fs::read(
            w.path("cache/results")
                .join(format!("{}-{name}-eth0", w.network)),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(
        cached["capabilityArgs"]["portMappings"][0]["hostPort"],
        host_port
    );

    let www = w.path("www");
    w.spawn(
        Command::new("ip")
            .args([
                "netns", "exec", &name, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(&www),
    );
    let body = wait_for(
        "httpd through the port mapping",
        Duration::from_secs(10),
        || http_get(&gateway, host_port).filter(|b| b.contains("200")),
    );
    assert!(body.contains(&token), "{body}");
    let rules = w.iptables_rules();
    assert!(!rules.is_empty(), "portmap made no rules");
    assert!(!rules.iter().any(|r| r.contains("MASQUERADE")), "{rules:?}");

    w.netns_ok(&["del", &name]);
    assert!(
        w.iptables_rules().is_empty(),
        "left behind: {:?}",
        w.iptables_rules()
    );
    assert!(http_get(&gateway, host_port).is_none_or(|b| !b.contains(&token)));
}

#[test]
fn del_frees_the_address_and_the_veth_even_after_the_config_changed() {
    let mut w = World::new();
    w.write_list(
        false,
        &[serde_json::json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.rp_filter": "1"}})],
    );
    let (name, result, ip) = w.add(
        "d",
        &[
            "--args",
            "IgnoreUnknown=1;K8S_POD_NAME=p1;K8S_POD_NAMESPACE=ns1",
        ],
    );
    let host_veth = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i.get("sandbox").is_none() && i["name"] != w.bridge.as_str())
        .and_then(|i| i["name"].as_str())
        .unwrap()
        .to_string();
    assert_eq!(w.reserved(), vec![ip.clone()]);
    assert_eq!(w.bridge_ports(), vec![host_veth.clone()]);
    w.netns_ok(&["check", &name]);

    // The configuration on disk changes to a network whose plugin does not even exist: DEL
    // still runs with what the ADD cached.
    fs::write(
        w.path("conf/10-test.conflist"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"{}","plugins":[{{"type":"absent-plugin"}}]}}"#,
            w.network
        ),
    )
    .unwrap();
    let out: Value = serde_json::from_str(w.netns_ok(&["del", &name, "--json"]).trim()).unwrap();
    assert_eq!(out["deleted"][0]["ips"][0], format!("{ip}/24"));
    assert_eq!(out["netnsRemoved"], true);
    assert!(
        w.reserved().is_empty(),
        "host-local still holds {:?}",
        w.reserved()
    );
    assert!(
        !Path::new("/sys/class/net").join(&host_veth).exists(),
        "{host_veth} is still there"
    );
    assert!(w.cache_entries().is_empty());

    // DEL again: nothing cached, nothing to do, still success.
    fs::remove_file(w.path("conf/10-test.conflist")).unwrap();
    w.netns_ok(&["del", &name]);
}

#[test]
fn a_plugin_failing_midway_leaves_nothing_behind() {
    let mut w = World::new();
    w.script_plugin(
        "fail-midway",
        r#"echo '{"cniVersion":"1.0.0","code":100,"msg":"refusing on purpose","details":"test plugin"}'; exit 1"#,
    );
    w.write_list(false, &[serde_json::json!({"type": "fail-midway"})]);
    let name = w.name("f");
    let out = w.netns(&["add", &name]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("plugin fail-midway of network")
            && stderr.contains("code 100: refusing on purpose: test plugin"),
        "{stderr}"
    );
    assert!(!Path::new("/run/netns").join(&name).exists());
    assert!(
        w.reserved().is_empty(),
        "host-local still holds {:?}",
        w.reserved()
    );
    assert!(
        w.bridge_ports().is_empty(),
        "veths left: {:?}",
        w.bridge_ports()
    );
    assert!(w.cache_entries().is_empty());
}

#[test]
fn a_hanging_plugin_times_out_and_is_killed() {
    let mut w = World::new();
    let pidfile = w.path("hang.pid");
    w.script_plugin(
        "hang",
        &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
    );
    w.write_list(false, &[serde_json::json!({"type": "hang"})]);
    let name = w.name("t");
    let start = Instant::now();
    let out = w.netns(&["add", &name, "--timeout", "3"]);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hang of network") && stderr.contains("did not finish within 3.0s"),
        "{stderr}"
    );
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert!(
        !Path::new("/proc").join(&pid).exists(),
        "the plugin {pid} still runs"
    );
    assert!(!Path::new("/run/netns").join(&name).exists());
    assert!(w.reserved().is_empty());
    assert!(w.bridge_ports().is_empty());
}

#[test]
fn gc_deletes_attachments_whose_namespace_is_gone() {
    let mut w = World::new();
    w.write_list(false, &[]);
    let (kept, _, _) = w.add("k", &[]);
    let (gone, _, ip_gone) = w.add("g", &[]);
    // The namespace disappears behind berth's back: the cache and host-local still hold it.
    let status = Command::new("ip")
        .args(["netns", "del", &gone])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(w.reserved().contains(&ip_gone));
    let out = w.netns_ok(&["gc"]);
    assert_eq!(out.trim(), format!("{}\tdeleted\t{gone}\teth0", w.network));
    assert!(!w.reserved().contains(&ip_gone));
    assert_eq!(
        w.cache_entries(),
        vec![format!("{}-{kept}-eth0", w.network)]
    );
}

#[test]
fn del_succeeds_and_frees_the_address_when_the_namespace_is_already_gone() {
    let mut w = World::new();
    w.write_list(false, &[]);
    let (name, _, ip) = w.add("x", &[]);
    let status = Command::new("ip")
        .args(["netns", "del", &name])
        .status()
        .unwrap();
    assert!(status.success());
    // The veth died with the namespace; host-local and the cache still hold the attachment.
    assert_eq!(w.reserved(), vec![ip]);
    let out: Value = serde_json::from_str(w.netns_ok(&["del", &name, "--json"]).trim()).unwrap();
    assert_eq!(out["netnsRemoved"], false);
    assert_eq!(out["deleted"].as_array().unwrap().len(), 1);
    assert!(w.reserved().is_empty());
    assert!(w.cache_entries().is_empty());
    // The kernel destroys the namespace, and the veth with it, asynchronously.
    wait_for(
        "the veth to go with the namespace",
        Duration::from_secs(10),
        || w.bridge_ports().is_empty().then_some(()),
    );
}

#[test]
fn capability_args_reach_the_plugins_that_declare_them() {
    let mut w = World::new();
    w.write_list(
        false,
        &[
            serde_json::json!({"type": "tuning", "capabilities": {"mac": true}}),
            serde_json::json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
        ],
    );
    let mac = format!(
        "0a:58:0a:{:02x}:{:02x}:42",
        (w.key >> 8) & 0xff,
        w.key & 0xff
    );
    let (name, result, _) = w.add(
        "c",
        &[
            "--mac",
            &mac,
            "--bandwidth",
            "ingressRate=1000000,ingressBurst=100000,egressRate=2000000,egressBurst=200000",
        ],
    );
    // tuning set the MAC the runtime asked for, inside the namespace.
    let link = Command::new("ip")
        .args(["-n", &name, "-j", "link", "show", "eth0"])
        .output()
        .unwrap();
    let link: Value = serde_json::from_slice(&link.stdout).unwrap();
    assert_eq!(link[0]["address"], mac.as_str());
    // bandwidth shaped the host side of the veth and made its ifb device.
    let veth = w.bridge_ports().pop().expect("a veth on the bridge");
    let qdisc = Command::new("tc")
        .args(["qdisc", "show", "dev", &veth])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&qdisc.stdout).contains("tbf"),
        "{}",
        String::from_utf8_lossy(&qdisc.stdout)
    );
    let ifb = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .find(|n| n.starts_with("bwp"))
        .expect("bandwidth's ifb device in the result")
        .to_string();
    assert!(Path::new("/sys/class/net").join(&ifb).exists());

    w.netns_ok(&["del", &name]);
    assert!(
        !Path::new("/sys/class/net").join(&ifb).exists(),
        "{ifb} is still there"
    );
    assert!(w.bridge_ports().is_empty());
}
