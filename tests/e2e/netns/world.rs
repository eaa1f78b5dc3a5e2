//! The test fixture: one test's bridge, subnet, directories and namespaces, removed on drop.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PLUGINS: &str = "/usr/lib/cni";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's network world.
pub struct World {
    pub key: u32,
    pub dir: tempfile::TempDir,
    pub bridge: String,
    pub network: String,
    pub subnet: String,
    pub names: Vec<String>,
    pub children: Vec<Child>,
    /// Set by the one test that runs portmap: its shared top-level chains are removed on drop
    /// when they were not there before and no other port mapping uses them.
    pub portmap_chains_before: Option<bool>,
    /// `/proc/sys/net/ipv4/ip_forward` before a gateway bridge (which sets it) was
    /// configured; written back on drop.
    pub ip_forward_before: Option<String>,
}

impl World {
    pub fn new() -> World {
        for plugin in ["bridge", "host-local", "portmap", "loopback"] {
            assert!(
                Path::new(PLUGINS).join(plugin).exists(),
                "{PLUGINS}/{plugin} is missing: install containernetworking-plugins (scripts/setup)"
            );
        }
        assert!(nix_is_root(), "these tests need root");
        let key = std::process::id()
            .wrapping_mul(8)
            .wrapping_add(SEQ.fetch_add(1, Ordering::SeqCst))
            & 0x00ff_ffff;
        let dir = tempfile::tempdir().unwrap();
        for sub in ["conf", "cache", "ipam", "bin", "www"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        World {
            key,
            bridge: format!("bnb{key:x}"),
            network: format!("bnet{key:x}"),
            subnet: format!("10.{}.{}", 100 + (key >> 8) % 100, key % 256),
            dir,
            names: Vec::new(),
            children: Vec::new(),
            portmap_chains_before: None,
            ip_forward_before: None,
        }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A namespace name owned by this world, removed on drop.
    pub fn name(&mut self, suffix: &str) -> String {
        let name = format!("bn{:x}{suffix}", self.key);
        self.names.push(name.clone());
        name
    }

    /// The bridge's own address when it is the gateway (`write_list(true, …)`).
    pub fn gateway(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// bridge + host-local (+ extra plugins), written as the only configuration.
    pub fn write_list(&mut self, gateway: bool, extra: &[Value]) {
        if gateway && self.ip_forward_before.is_none() {
            // The bridge plugin turns IP forwarding on for a gateway; drop turns it back.
            self.ip_forward_before = Some(fs::read_to_string(IP_FORWARD).unwrap());
        }
        let mut plugins = vec![serde_json::json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": gateway,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "subnet": format!("{}.0/24", self.subnet),
                "dataDir": self.path("ipam"),
            }
        })];
        plugins.extend(extra.iter().cloned());
        let list =
            serde_json::json!({"cniVersion": "1.0.0", "name": self.network, "plugins": plugins});
        fs::write(self.path("conf/10-test.conflist"), list.to_string()).unwrap();
    }

    /// A plugin script in the test's bin directory that answers VERSION and runs `on_add` for ADD.
    pub fn script_plugin(&self, name: &str, on_add: &str) {
        let body = format!(
            "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n\
             VERSION) echo '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}}' ;;\n\
             ADD) {on_add} ;;\n\
             esac\n"
        );
        let path = self.path("bin").join(name);
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn netns(&self, args: &[&str]) -> Output {
        let conf = self.path("conf");
        let cache = self.path("cache");
        let bin = format!("{}:{PLUGINS}", self.path("bin").display());
        let mut cmd = Command::new(berth_testkit::bin_path("berth-netns"));
        cmd.args(args)
            .arg("--conf-dir")
            .arg(&conf)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--bin-dir")
            .arg(&bin)
            .env_remove("CNI_PATH")
            .env_remove("CNI_CONF_DIR");
        cmd.output().unwrap()
    }

    pub fn netns_ok(&self, args: &[&str]) -> String {
        let out = self.netns(args);
        assert!(
            out.status.success(),
            "berth-netns {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `berth-netns add`, returning the CNI result and the container's IPv4 address.
    pub fn add(&mut self, suffix: &str, extra: &[&str]) -> (String, Value, String) {
        let name = self.name(suffix);
        let mut args = vec!["add", name.as_str()];
        args.extend_from_slice(extra);
        let result: Value = serde_json::from_str(self.netns_ok(&args).trim()).unwrap();
        let ip = result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        assert!(
            ip.starts_with(&format!("{}.", self.subnet)),
            "{ip} not in {}",
            self.subnet
        );
        (name, result, ip)
    }

    /// The veths enslaved to this world's bridge.
    pub fn bridge_ports(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-j", "link", "show", "master", &self.bridge])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let links: Value = serde_json::from_str(if text.trim().is_empty() {
            "[]"
        } else {
            text.trim()
        })
        .unwrap_or(Value::Null);
        links
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The addresses host-local holds for this network.
    pub fn reserved(&self) -> Vec<String> {
        let dir = self.path("ipam").join(&self.network);
        let mut out: Vec<String> = fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.retain(|n| n.starts_with("10."));
        out.sort();
        out
    }

    pub fn cache_entries(&self) -> Vec<String> {
        fs::read_dir(self.path("cache/results"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// iptables rules (nat and filter) that mention this world's network.
    pub fn iptables_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        for table in ["nat", "filter"] {
            let out = Command::new("iptables-save")
                .args(["-t", table])
                .output()
                .unwrap();
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if self.mentions_network(line) {
                    rules.push(format!("{table} {line}"));
                }
            }
        }
        rules
    }

    /// Whether an iptables-save line names this world's network exactly: portmap's comments
    /// quote it (`dnat name: "bnet1a3" id: …`), and `bnet1a3` must not match `bnet1a30`.
    pub fn mentions_network(&self, line: &str) -> bool {
        let quoted = format!("\"{}\"", self.network);
        shell_words(line).iter().any(|w| w.contains(&quoted))
    }

    pub fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in self.names.clone() {
            let _ = self.netns(&["del", &name]);
            if Path::new("/run/netns").join(&name).exists() {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        // Rules portmap made for this network, and the per-container chains they jump to.
        for table in ["nat", "filter"] {
            let out = Command::new("iptables-save").args(["-t", table]).output();
            let Ok(out) = out else { continue };
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut chains = Vec::new();
            for line in text
                .lines()
                .filter(|l| l.starts_with("-A ") && self.mentions_network(l))
            {
                let rule: Vec<String> = shell_words(&line[3..]);
                let _ = Command::new("iptables")
                    .args(["-t", table, "-D"])
                    .args(&rule)
                    .status();
                if let Some(i) = rule.iter().position(|w| w == "-j") {
                    if let Some(target) = rule.get(i + 1).filter(|t| t.starts_with("CNI-DN-")) {
                        chains.push(target.clone());
                    }
                }
            }
            for chain in chains {
                let _ = Command::new("iptables")
                    .args(["-t", table, "-F", &chain])
                    .status();
                let _ = Command::new("iptables")
                    .args(["-t", table, "-X", &chain])
                    .status();
            }
        }
        if self.portmap_chains_before == Some(false) {
            remove_portmap_shared_chains();
        }
        if let Some(before) = &self.ip_forward_before {
            let _ = fs::write(IP_FORWARD, before);
        }
    }
}

pub fn portmap_chains_exist() -> bool {
    Command::new("iptables")
        .args(["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// portmap's shared chains and the jumps to them, unless some port mapping still uses them.
pub fn remove_portmap_shared_chains() {
    let out = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stdout).contains(":CNI-DN-") {
        return;
    }
    let ipt = |args: &[&str]| {
        let _ = Command::new("iptables")
            .args(["-t", "nat"])
            .args(args)
            .stderr(Stdio::null())
            .status();
    };
    ipt(&[
        "-D",
        "PREROUTING",
        "-m",
        "addrtype",
        "--dst-type",
        "LOCAL",
        "-j",
        "CNI-HOSTPORT-DNAT",
    ]);
    ipt(&[
        "-D",
        "OUTPUT",
        "-m",
        "addrtype",
        "--dst-type",
        "LOCAL",
        "-j",
        "CNI-HOSTPORT-DNAT",
    ]);
    ipt(&[
        "-D",
        "POSTROUTING",
        "-m",
        "comment",
        "--comment",
        "CNI portfwd requiring masquerade",
        "-j",
        "CNI-HOSTPORT-MASQ",
    ]);
    for chain in [
        "CNI-HOSTPORT-DNAT",
        "CNI-HOSTPORT-MASQ",
        "CNI-HOSTPORT-SETMARK",
    ] {
        ipt(&["-F", chain]);
        ipt(&["-X", chain]);
    }
}

/// Splits an iptables-save rule into words, honouring double quotes.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

pub fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// The IPv4 addresses a process sees inside the namespace (`nsenter --net=… ip -j addr`).
pub fn addresses_inside(name: &str) -> Vec<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{name}"))
        .args(["ip", "-j", "addr"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nsenter: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    links
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["family"] == "inet")
        .map(|a| a["local"].as_str().unwrap().to_string())
        .collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET / from `host:port` over plain HTTP/1.0; None when it cannot connect.
pub fn http_get(host: &str, port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{host}:{port}").parse().unwrap(),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
