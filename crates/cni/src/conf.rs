//! Network configuration lists: loading them from a directory as libcni does, lifting a
//! single-plugin `.conf` into a list, and building each plugin's stdin.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::version::Version;

/// The largest configuration file read (network lists are a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A network configuration list: a name, a spec version and a chain of plugins.
#[derive(Debug, Clone)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub plugins: Vec<PluginConf>,
    /// The list's JSON as loaded (for a lifted `.conf`, the list made from it): what the
    /// result cache stores, so DEL runs with the configuration of the ADD.
    pub bytes: Vec<u8>,
}

/// One plugin of a list: its type (the binary's name), its declared capabilities and its
/// whole JSON object, passed on to the plugin with `name`, `cniVersion`, `prevResult` and
/// `runtimeConfig` set.
#[derive(Debug, Clone)]
pub struct PluginConf {
    pub plugin_type: String,
    pub capabilities: BTreeMap<String, bool>,
    pub raw: Map<String, Value>,
}

/// The per-invocation arguments that are not in the configuration (libcni's `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    /// The namespace path (`/run/netns/NAME`, `/proc/PID/ns/net`).
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS`, as `K=V` pairs joined with `;`.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `bandwidth`, `ipRanges`, `dns`, `mac`, `ips`, …):
    /// each reaches only the plugins that declare that capability, in their `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// The `CNI_ARGS` value.
    pub fn args_env(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Checks the container ID, interface name and args as libcni does before ADD.
    pub fn validate(&self) -> Result<()> {
        validate_id("container ID", &self.container_id)?;
        validate_ifname(&self.ifname)?;
        for (k, v) in &self.args {
            if k.is_empty()
                || k.contains(['=', ';'])
                || v.contains(';')
                || has_control(k)
                || has_control(v)
            {
                return Err(Error::InvalidName {
                    what: "CNI_ARGS pair",
                    value: format!("{k}={v}"),
                    reason: "keys must be non-empty without '=' or ';', values without ';'",
                });
            }
        }
        Ok(())
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Container IDs and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (libcni's rule), at most
/// 256 bytes; they become parts of cache file names.
pub fn validate_id(what: &'static str, value: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            what,
            value: value.to_string(),
            reason,
        })
    };
    let mut bytes = value.bytes();
    match bytes.next() {
        None => return bad("must not be empty"),
        Some(b) if !b.is_ascii_alphanumeric() => return bad("must start with a letter or digit"),
        Some(_) => {}
    }
    if value.len() > 256 {
        return bad("longer than 256 bytes");
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    Ok(())
}

/// Interface names as the kernel takes them: 1–15 bytes, not `.` or `..`, no `/`, `:` or space.
pub fn validate_ifname(value: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            what: "interface name",
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("must not be empty");
    }
    if value.len() > 15 {
        return bad("longer than 15 bytes");
    }
    if value == "." || value == ".." {
        return bad("must not be . or ..");
    }
    if value
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("must not contain '/', ':' or whitespace");
    }
    Ok(())
}

impl NetworkList {
    /// Parses a `.conflist` (a list with `plugins`).
    pub fn from_list_bytes(bytes: &[u8], origin: &str) -> Result<NetworkList> {
        let raw = parse_object(bytes, origin)?;
        let bad = |reason: String| Error::BadConfig {
            origin: origin.to_string(),
            reason,
        };
        let name = match raw.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("\"name\" is not a string".into())),
            None => return Err(bad("no \"name\"".into())),
        };
        validate_id("network name", &name)?;
        let cni_version = list_version(&raw).map_err(bad)?;
        let disable_check = read_bool(&raw, "disableCheck").map_err(bad)?;
        let disable_gc = read_bool(&raw, "disableGC").map_err(bad)?;
        let plugins = match raw.get("plugins") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) => return Err(bad("\"plugins\" is empty".into())),
            Some(_) => return Err(bad("\"plugins\" is not an array".into())),
            None => return Err(bad("no \"plugins\"".into())),
        };
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, p)| PluginConf::from_value(p).map_err(|r| bad(format!("plugin {i}: {r}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(NetworkList {
            name,
            cni_version,
            disable_check,
            disable_gc,
            plugins,
            bytes: bytes.to_vec(),
        })
    }

    /// Parses a single-plugin `.conf` and lifts it into a one-plugin list, as libcni's
    /// `ConfListFromConf` does.
    pub fn from_conf_bytes(bytes: &[u8], origin: &str) -> Result<NetworkList> {
        let raw = parse_object(bytes, origin)?;
        let mut list = Map::new();
        list.insert(
            "name".into(),
            raw.get("name").cloned().unwrap_or(Value::Null),
        );
        list.insert(
            "cniVersion".into(),
            raw.get("cniVersion").cloned().unwrap_or(Value::Null),
        );
        list.insert("plugins".into(), Value::Array(vec![Value::Object(raw)]));
        let lifted = serde_json::to_vec(&Value::Object(list)).expect("a JSON value serialises");
        NetworkList::from_list_bytes(&lifted, origin)
    }

    /// Parses either form: an object with `plugins` is a list, any other a single plugin.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<NetworkList> {
        let is_list = serde_json::from_slice::<Map<String, Value>>(bytes)
            .map(|m| m.contains_key("plugins"))
            .unwrap_or(true);
        if is_list {
            NetworkList::from_list_bytes(bytes, origin)
        } else {
            NetworkList::from_conf_bytes(bytes, origin)
        }
    }

    /// The parsed spec version.
    pub fn version(&self) -> Version {
        Version::parse(&self.cni_version).expect("checked when the list was loaded")
    }

    /// The JSON a plugin reads on stdin: its own object with the list's `name` and
    /// `cniVersion`, the previous result, and the capability args it declares as
    /// `runtimeConfig` (libcni's `buildOneConfig`).
    pub fn plugin_stdin(
        &self,
        plugin: &PluginConf,
        prev: Option<&Value>,
        rt: Option<&RuntimeConf>,
    ) -> Vec<u8> {
        let mut conf = plugin.raw.clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        if let Some(rt) = rt {
            let mut rc = Map::new();
            for (cap, on) in &plugin.capabilities {
                if let (true, Some(v)) = (*on, rt.capability_args.get(cap)) {
                    rc.insert(cap.clone(), v.clone());
                }
            }
            if !rc.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        serde_json::to_vec(&Value::Object(conf)).expect("a JSON value serialises")
    }
}

impl PluginConf {
    fn from_value(value: &Value) -> Result<PluginConf, String> {
        let Value::Object(raw) = value else {
            return Err("not an object".into());
        };
        let plugin_type = match raw.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => return Err("\"type\" is not a string".into()),
            None => return Err("missing \"type\"".into()),
        };
        if plugin_type.is_empty()
            || plugin_type == "."
            || plugin_type == ".."
            || plugin_type.contains('/')
            || has_control(&plugin_type)
        {
            return Err(format!(
                "\"type\" {plugin_type:?} is not a plugin binary name"
            ));
        }
        let capabilities = match raw.get("capabilities") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(caps)) => caps
                .iter()
                .map(|(k, v)| match v {
                    Value::Bool(b) => Ok((k.clone(), *b)),
                    _ => Err(format!("capability {k:?} is not true or false")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("\"capabilities\" is not an object".into()),
        };
        Ok(PluginConf {
            plugin_type,
            capabilities,
            raw: raw.clone(),
        })
    }

    /// How errors name this plugin: `bridge` or `bridge (name "x")`.
    pub fn describe(&self) -> String {
        match self.raw.get("name") {
            Some(Value::String(n)) if !n.is_empty() => format!("{} (name {n:?})", self.plugin_type),
            _ => self.plugin_type.clone(),
        }
    }
}

fn parse_object(bytes: &[u8], origin: &str) -> Result<Map<String, Value>> {
    serde_json::from_slice::<Map<String, Value>>(bytes).map_err(|e| Error::BadConfig {
        origin: origin.to_string(),
        reason: format!("not a JSON object: {e}"),
    })
}

/// The list's version: `cniVersion`, or the highest of `cniVersions` this library speaks.
fn list_version(raw: &Map<String, Value>) -> Result<String, String> {
    let mut best: Option<(Version, String)> = None;
    match raw.get("cniVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let v =
                Version::parse(s).ok_or_else(|| format!("cniVersion {s:?} is not a version"))?;
            best = Some((v, s.clone()));
        }
        Some(_) => return Err("\"cniVersion\" is not a string".into()),
    }
    match raw.get("cniVersions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::String(s) = item else {
                    return Err("\"cniVersions\" holds a non-string".into());
                };
                let v = Version::parse(s)
                    .ok_or_else(|| format!("cniVersions entry {s:?} is not a version"))?;
                if v <= Version::CURRENT && best.as_ref().is_none_or(|(b, _)| v > *b) {
                    best = Some((v, s.clone()));
                }
            }
        }
        Some(_) => return Err("\"cniVersions\" is not an array".into()),
    }
    let (v, s) = best.ok_or_else(|| "no \"cniVersion\"".to_string())?;
    if v < Version::OLDEST {
        return Err(format!(
            "cniVersion {s} is older than {}, the oldest supported",
            Version::OLDEST
        ));
    }
    if v > Version::CURRENT {
        return Err(format!(
            "cniVersion {s} is newer than {}, the newest supported",
            Version::CURRENT
        ));
    }
    Ok(s)
}

fn read_bool(raw: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{key} {s:?} is not true or false")),
        },
        Some(_) => Err(format!("{key} is not a boolean")),
    }
}

/// Reads a file of at most [`MAX_CONFIG_BYTES`].
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(read_err)?;
    let mut out = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(read_err)?;
    if out.len() as u64 > limit {
        return Err(Error::BadConfig {
            origin: path.display().to_string(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(out)
}

/// The files of a directory with one of the extensions, sorted by name; none when the
/// directory does not exist.
fn conf_files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if extensions.contains(&ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads one file: `.conflist` as a list (with plugins from `DIR/NAME/*.conf` appended unless
/// `loadOnlyInlinedPlugins`), `.conf` and `.json` as a single plugin lifted to a list.
pub fn load_file(path: &Path) -> Result<NetworkList> {
    let bytes = read_capped(path, MAX_CONFIG_BYTES)?;
    let origin = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) != Some("conflist") {
        return NetworkList::from_conf_bytes(&bytes, &origin);
    }
    let mut list = match NetworkList::from_list_bytes(&bytes, &origin) {
        Ok(list) => list,
        Err(_) if !bytes.is_empty() && plugins_missing(&bytes) => {
            return load_split_list(path, &bytes, &origin);
        }
        Err(e) => return Err(e),
    };
    let inline_only = serde_json::from_slice::<Map<String, Value>>(&bytes)
        .ok()
        .and_then(|m| m.get("loadOnlyInlinedPlugins").cloned())
        .is_some_and(|v| v == Value::Bool(true) || v == Value::String("true".into()));
    if !inline_only {
        let extra = split_plugins(path, &list.name)?;
        if !extra.is_empty() {
            list = rebuild_with(&bytes, &origin, extra)?;
        }
    }
    Ok(list)
}

fn plugins_missing(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Map<String, Value>>(bytes).is_ok_and(|m| !m.contains_key("plugins"))
}

/// A list without inline plugins whose plugins sit in `DIR/NAME/*.conf` (libcni 1.2+).
fn load_split_list(path: &Path, bytes: &[u8], origin: &str) -> Result<NetworkList> {
    let raw = parse_object(bytes, origin)?;
    let name = raw
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    validate_id("network name", &name)?;
    let extra = split_plugins(path, &name)?;
    if extra.is_empty() {
        return Err(Error::BadConfig {
            origin: origin.to_string(),
            reason: "no plugins".into(),
        });
    }
    rebuild_with(bytes, origin, extra)
}

fn split_plugins(path: &Path, name: &str) -> Result<Vec<Value>> {
    let dir = path.parent().unwrap_or(Path::new(".")).join(name);
    let mut out = Vec::new();
    for file in conf_files(&dir, &["conf"])? {
        let bytes = read_capped(&file, MAX_CONFIG_BYTES)?;
        out.push(Value::Object(parse_object(
            &bytes,
            &file.display().to_string(),
        )?));
    }
    Ok(out)
}

fn rebuild_with(bytes: &[u8], origin: &str, extra: Vec<Value>) -> Result<NetworkList> {
    let mut raw = parse_object(bytes, origin)?;
    let mut plugins = match raw.remove("plugins") {
        Some(Value::Array(p)) => p,
        _ => Vec::new(),
    };
    plugins.extend(extra);
    raw.insert("plugins".into(), Value::Array(plugins));
    let merged = serde_json::to_vec(&Value::Object(raw)).expect("a JSON value serialises");
    NetworkList::from_list_bytes(&merged, origin)
}

/// Loads a network list from a directory: by name (the first `.conflist` with that name in
/// lexical order, then the first `.conf`/`.json`), or without a name the first file of any
/// of the three extensions in lexical order, as containerd and CRI-O pick the default.
pub fn load_list(dir: &Path, name: Option<&str>) -> Result<NetworkList> {
    let all = conf_files(dir, &["conf", "conflist", "json"])?;
    let Some(name) = name else {
        let first = all.first().ok_or_else(|| Error::NoConfigs {
            dir: dir.to_path_buf(),
        })?;
        return load_file(first);
    };
    if all.is_empty() {
        return Err(Error::NoConfigs {
            dir: dir.to_path_buf(),
        });
    }
    let (lists, singles): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|p| p.extension().and_then(|e| e.to_str()) == Some("conflist"));
    for path in lists.into_iter().chain(singles) {
        match load_file(path) {
            Ok(list) if list.name == name => return Ok(list),
            Ok(_) => {}
            // A broken file elsewhere in the directory does not hide the network asked for.
            Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
        }
    }
    Err(Error::NetworkNotFound {
        dir: dir.to_path_buf(),
        name: name.to_string(),
    })
}

/// Every loadable network list in a directory, in lexical order of the files; files that do
/// not parse are skipped with a warning.
pub fn load_all(dir: &Path) -> Result<Vec<NetworkList>> {
    let mut out: Vec<NetworkList> = Vec::new();
    for path in conf_files(dir, &["conf", "conflist", "json"])? {
        match load_file(&path) {
            Ok(list) if out.iter().any(|l| l.name == list.name) => {
                tracing::warn!(
                    "skipping {}: network {:?} is defined earlier",
                    path.display(),
                    list.name
                )
            }
            Ok(list) => out.push(list),
            Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"net1","plugins":[
        {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}},
        {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#;

    #[test]
    fn a_list_parses_with_its_plugins_and_capabilities() {
        let list = NetworkList::from_list_bytes(LIST.as_bytes(), "t").unwrap();
        assert_eq!(list.name, "net1");
        assert_eq!(list.cni_version, "1.0.0");
        assert_eq!(list.plugins.len(), 2);
        assert_eq!(list.plugins[1].plugin_type, "portmap");
        assert_eq!(
            list.plugins[1].capabilities.get("portMappings"),
            Some(&true)
        );
    }

    #[test]
    fn a_single_conf_is_lifted_into_a_list() {
        let conf = r#"{"cniVersion":"0.4.0","name":"single","type":"ptp","ipMasq":false}"#;
        let list = NetworkList::from_conf_bytes(conf.as_bytes(), "t").unwrap();
        assert_eq!(list.name, "single");
        assert_eq!(list.plugins.len(), 1);
        let lifted: Value = serde_json::from_slice(&list.bytes).unwrap();
        assert_eq!(lifted["plugins"][0]["type"], "ptp");
        assert_eq!(lifted["cniVersion"], "0.4.0");
    }

    #[test]
    fn runtime_config_carries_only_declared_capabilities() {
        let list = NetworkList::from_list_bytes(LIST.as_bytes(), "t").unwrap();
        let mut rt = RuntimeConf::default();
        rt.capability_args.insert(
            "portMappings".into(),
            json!([{"hostPort":8080,"containerPort":80}]),
        );
        rt.capability_args
            .insert("bandwidth".into(), json!({"ingressRate":1}));
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let stdin: Value =
            serde_json::from_slice(&list.plugin_stdin(&list.plugins[1], Some(&prev), Some(&rt)))
                .unwrap();
        assert_eq!(stdin["name"], "net1");
        assert_eq!(stdin["cniVersion"], "1.0.0");
        assert_eq!(stdin["prevResult"], prev);
        assert_eq!(
            stdin["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080,"containerPort":80}]})
        );
        let first: Value =
            serde_json::from_slice(&list.plugin_stdin(&list.plugins[0], None, Some(&rt))).unwrap();
        assert!(first.get("runtimeConfig").is_none());
        assert!(first.get("prevResult").is_none());
    }

    #[test]
    fn hostile_configs_are_refused_with_a_reason() {
        for (text, want) in [
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
                "plugin binary name",
            ),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#, "empty"),
            (
                r#"{"cniVersion":"9.0.0","name":"n","plugins":[{"type":"x"}]}"#,
                "newer",
            ),
            (
                r#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"x"}]}"#,
                "older",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"x"}]}"#,
                "letters",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":{"a":1}}]}"#,
                "true or false",
            ),
            (r#"[1]"#, "JSON object"),
        ] {
            let err = NetworkList::from_list_bytes(text.as_bytes(), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn cni_versions_picks_the_newest_supported() {
        let text =
            r#"{"cniVersions":["0.4.0","1.1.0","2.0.0"],"name":"n","plugins":[{"type":"x"}]}"#;
        let list = NetworkList::from_list_bytes(text.as_bytes(), "t").unwrap();
        assert_eq!(list.cni_version, "1.1.0");
    }

    #[test]
    fn names_and_interfaces_are_checked() {
        assert!(validate_id("container ID", "abc-1.2_3").is_ok());
        assert!(validate_id("container ID", "-abc").is_err());
        assert!(validate_id("container ID", "a b").is_err());
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("a-very-long-name0").is_err());
        assert!(validate_ifname("a/b").is_err());
        let rt = RuntimeConf {
            container_id: "c".into(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "p;x".into())],
            ..Default::default()
        };
        assert!(rt.validate().is_err());
    }

    #[test]
    fn a_directory_yields_lists_by_name_or_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("20-b.conflist"), LIST.replace("net1", "b")).unwrap();
        fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"1.0.0","name":"a","type":"ptp"}"#,
        )
        .unwrap();
        fs::write(dir.path().join("30-broken.conflist"), "{").unwrap();
        fs::write(dir.path().join("README"), "ignored").unwrap();
        assert_eq!(load_list(dir.path(), None).unwrap().name, "a");
        assert_eq!(load_list(dir.path(), Some("b")).unwrap().name, "b");
        assert_eq!(load_list(dir.path(), Some("a")).unwrap().name, "a");
        let err = load_list(dir.path(), Some("zzz")).unwrap_err();
        assert!(matches!(err, Error::NetworkNotFound { .. }));
        let names: Vec<_> = load_all(dir.path())
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_list(empty.path(), None),
            Err(Error::NoConfigs { .. })
        ));
    }

    #[test]
    fn plugins_from_the_network_directory_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("10-s.conflist"),
            r#"{"cniVersion":"1.0.0","name":"s"}"#,
        )
        .unwrap();
        fs::create_dir(dir.path().join("s")).unwrap();
        fs::write(dir.path().join("s/10-bridge.conf"), r#"{"type":"bridge"}"#).unwrap();
        fs::write(
            dir.path().join("s/20-portmap.conf"),
            r#"{"type":"portmap"}"#,
        )
        .unwrap();
        let list = load_list(dir.path(), Some("s")).unwrap();
        let types: Vec<_> = list
            .plugins
            .iter()
            .map(|p| p.plugin_type.as_str())
            .collect();
        assert_eq!(types, vec!["bridge", "portmap"]);
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.conf");
        fs::write(&path, vec![b' '; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        assert!(load_file(&path)
            .unwrap_err()
            .to_string()
            .contains("larger than"));
    }
}
