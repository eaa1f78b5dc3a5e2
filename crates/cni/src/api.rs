//! ADD, DEL, CHECK, GC and STATUS of a network list on a namespace, as libcni runs them.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cache::{Cache, CachedInfo, KIND};
use crate::conf::{validate_id, validate_ifname, NetworkList, PluginConf, RuntimeConf};
use crate::error::{Error, Result};
use crate::invoke::{self, find_in_path, join_path, Args};
use crate::result::{self, CniResult};
use crate::version::{Version, VersionInfo};

/// Where plugins are looked for when `CNI_PATH` is not set.
pub const DEFAULT_PATH: &str = "/opt/cni/bin:/usr/lib/cni";
/// Where the result cache lives (as `<dir>/results`), as for libcni.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
/// How long one plugin invocation may take before its process is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A still-valid attachment passed to GC: `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcAttachment {
    pub container_id: String,
    pub ifname: String,
}

/// What GC did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// The cached attachments that were not valid and were deleted.
    pub deleted: Vec<CachedInfo>,
    /// Whether the plugins were sent GC (lists of cniVersion 1.1.0 and later).
    pub plugins_collected: bool,
}

/// Runs network lists: plugins found on a bin path, one cache directory, a per-plugin timeout.
/// Safe to share between threads (the CRI gateway calls it in process).
#[derive(Debug)]
pub struct Cni {
    path: Vec<PathBuf>,
    cache: Cache,
    timeout: Duration,
    /// VERSION answers, keyed by the binary's identity, so each binary is asked once.
    versions: Mutex<HashMap<BinaryId, Vec<String>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BinaryId {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

/// Splits a `CNI_PATH`-style list; empty entries are dropped.
pub fn parse_path(list: &str) -> Vec<PathBuf> {
    list.split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

impl Cni {
    /// Plugins on `path`, the default cache directory and timeout.
    pub fn new(path: Vec<PathBuf>) -> Cni {
        Cni {
            path,
            cache: Cache::new(DEFAULT_CACHE_DIR),
            timeout: DEFAULT_TIMEOUT,
            versions: Mutex::default(),
        }
    }

    /// Plugins on `CNI_PATH`, else on [`DEFAULT_PATH`].
    pub fn from_env() -> Cni {
        let path = std::env::var("CNI_PATH").ok().filter(|p| !p.is_empty());
        Cni::new(parse_path(path.as_deref().unwrap_or(DEFAULT_PATH)))
    }

    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Cni {
        self.cache = Cache::new(dir);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Cni {
        self.timeout = timeout;
        self
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn path(&self) -> &[PathBuf] {
        &self.path
    }

    /// Runs ADD through the list, each plugin getting the previous one's result, and caches
    /// the final result with the list's configuration. A failure at any step runs DEL through
    /// the whole list (in reverse) so that nothing is left half made.
    pub fn add(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<CniResult> {
        rt.validate()?;
        if !crate::netns::is_netns(&rt.netns) {
            return Err(Error::NetnsNotFound {
                path: rt.netns.clone(),
            });
        }
        let bins = self.binaries(list)?;
        self.check_versions(list, &bins)?;
        let netns = rt.netns.to_string_lossy();
        let cni_args = rt.args_env();
        let path = join_path(&self.path);
        let args = Args {
            command: "ADD",
            container_id: &rt.container_id,
            netns: &netns,
            ifname: &rt.ifname,
            args: &cni_args,
            path: &path,
        };
        let mut last: Option<CniResult> = None;
        for (plugin, bin) in list.plugins.iter().zip(&bins) {
            let who = describe(list, plugin);
            let stdin = list.plugin_stdin(plugin, last.as_ref().map(|r| &r.raw), Some(rt));
            let step = invoke::exec(bin, &who, &args, &stdin, self.timeout).and_then(|out| {
                result::parse(&out).map_err(|reason| Error::BadResult {
                    plugin: who.clone(),
                    command: "ADD",
                    reason,
                })
            });
            match step {
                Ok(r) => last = Some(r),
                Err(e) => return Err(self.roll_back(list, rt, e)),
            }
        }
        let result = last.expect("a list has at least one plugin");
        let info = CachedInfo {
            kind: KIND.into(),
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            if_name: rt.ifname.clone(),
            network_name: list.name.clone(),
            netns: netns.into_owned(),
            cni_args: rt
                .args
                .iter()
                .map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.raw.clone()),
        };
        if let Err(e) = self.cache.write(&info) {
            return Err(self.roll_back(list, rt, e));
        }
        Ok(result)
    }

    fn roll_back(&self, list: &NetworkList, rt: &RuntimeConf, err: Error) -> Error {
        tracing::debug!("ADD of network {:?} failed, running DEL: {err}", list.name);
        match self.del_with(list, rt, None) {
            Ok(()) => err,
            Err(del) => Error::RolledBackBadly {
                network: list.name.clone(),
                add: Box::new(err),
                del: Box::new(del),
            },
        }
    }

    /// Runs DEL through the list in reverse with the cached result as `prevResult`, then
    /// removes the cache entry. Idempotent: resources already gone are not an error, and a
    /// namespace that no longer exists is passed as an empty `CNI_NETNS`.
    pub fn del(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<()> {
        validate_id("container ID", &rt.container_id)?;
        validate_ifname(&rt.ifname)?;
        let mut prev = None;
        if list.version() >= Version::CHECK {
            match self.cache.read(&list.name, &rt.container_id, &rt.ifname) {
                Ok(info) => prev = info.and_then(|i| i.result),
                Err(e) => {
                    tracing::warn!("ignoring the cached result: {e}");
                    self.cache
                        .remove(&list.name, &rt.container_id, &rt.ifname)?;
                }
            }
        }
        self.del_with(list, rt, prev.as_ref())?;
        self.cache.remove(&list.name, &rt.container_id, &rt.ifname)
    }

    fn del_with(&self, list: &NetworkList, rt: &RuntimeConf, prev: Option<&Value>) -> Result<()> {
        // A path that is no longer a namespace (unmounted, or a stale file) is passed as empty.
        let netns = if rt.netns.as_os_str().is_empty() || !crate::netns::is_netns(&rt.netns) {
            String::new()
        } else {
            rt.netns.to_string_lossy().into_owned()
        };
        let cni_args = rt.args_env();
        let path = join_path(&self.path);
        let args = Args {
            command: "DEL",
            container_id: &rt.container_id,
            netns: &netns,
            ifname: &rt.ifname,
            args: &cni_args,
            path: &path,
        };
        for plugin in list.plugins.iter().rev() {
            let bin = find_in_path(&plugin.plugin_type, &self.path)?;
            let stdin = list.plugin_stdin(plugin, prev, Some(rt));
            invoke::exec(&bin, &describe(list, plugin), &args, &stdin, self.timeout)?;
        }
        Ok(())
    }

    /// DEL with the configuration and arguments the ADD ran with, from its cache entry: what
    /// to use after the configuration files changed.
    pub fn del_cached(&self, info: &CachedInfo) -> Result<()> {
        let origin = self
            .cache
            .path(&info.network_name, &info.container_id, &info.if_name);
        let list =
            NetworkList::from_bytes(&info.config, &origin.display().to_string()).map_err(|e| {
                Error::BadCache {
                    path: origin,
                    reason: e.to_string(),
                }
            })?;
        self.del(&list, &info.runtime_conf())
    }

    /// The cache entry of an attachment, if any.
    pub fn cached(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedInfo>> {
        self.cache.read(network, container_id, ifname)
    }

    /// Runs CHECK through the list with the cached result (cniVersion 0.4.0 and later;
    /// nothing is run when the list sets `disableCheck`).
    pub fn check(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<()> {
        rt.validate()?;
        if list.version() < Version::CHECK {
            return Err(Error::CommandUnsupported {
                network: list.name.clone(),
                version: list.cni_version.clone(),
                what: "CHECK",
                needs: "0.4.0",
            });
        }
        if list.disable_check {
            return Ok(());
        }
        let info = self
            .cache
            .read(&list.name, &rt.container_id, &rt.ifname)?
            .ok_or_else(|| Error::NotCached {
                network: list.name.clone(),
                container_id: rt.container_id.clone(),
                ifname: rt.ifname.clone(),
            })?;
        if !crate::netns::is_netns(&rt.netns) {
            return Err(Error::NetnsNotFound {
                path: rt.netns.clone(),
            });
        }
        let bins = self.binaries(list)?;
        self.check_versions(list, &bins)?;
        let netns = rt.netns.to_string_lossy();
        let cni_args = rt.args_env();
        let path = join_path(&self.path);
        let args = Args {
            command: "CHECK",
            container_id: &rt.container_id,
            netns: &netns,
            ifname: &rt.ifname,
            args: &cni_args,
            path: &path,
        };
        for (plugin, bin) in list.plugins.iter().zip(&bins) {
            let stdin = list.plugin_stdin(plugin, info.result.as_ref(), Some(rt));
            invoke::exec(bin, &describe(list, plugin), &args, &stdin, self.timeout)?;
        }
        Ok(())
    }

    /// Asks each plugin for STATUS (cniVersion 1.1.0 and later). Returns false, asking
    /// nothing, for older lists: they are taken as ready, as libcni does.
    pub fn status(&self, list: &NetworkList) -> Result<bool> {
        if list.version() < Version::GC_STATUS {
            return Ok(false);
        }
        let bins = self.binaries(list)?;
        self.check_versions(list, &bins)?;
        let path = join_path(&self.path);
        let args = Args {
            command: "STATUS",
            path: &path,
            ..Args::default()
        };
        for (plugin, bin) in list.plugins.iter().zip(&bins) {
            let stdin = list.plugin_stdin(plugin, None, None);
            invoke::exec(bin, &describe(list, plugin), &args, &stdin, self.timeout)?;
        }
        Ok(true)
    }

    /// Deletes the cached attachments of this network that are not in `valid`, then (for
    /// cniVersion 1.1.0 and later, unless `disableGC`) sends GC to every plugin with the
    /// valid attachments, as libcni's `GCNetworkList` does.
    pub fn gc(&self, list: &NetworkList, valid: &[GcAttachment]) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut errors = Vec::new();
        for info in self.cache.entries(None)? {
            if info.network_name != list.name {
                continue;
            }
            let key = GcAttachment {
                container_id: info.container_id.clone(),
                ifname: info.if_name.clone(),
            };
            if valid.contains(&key) {
                continue;
            }
            match self.del_cached(&info) {
                Ok(()) => report.deleted.push(info),
                Err(e) => errors.push(e),
            }
        }
        if list.version() >= Version::GC_STATUS && !list.disable_gc {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|a| json!({"containerID": a.container_id, "ifname": a.ifname}))
                .collect();
            let path = join_path(&self.path);
            let args = Args {
                command: "GC",
                path: &path,
                ..Args::default()
            };
            let gc = || -> Result<()> {
                let bins = self.binaries(list)?;
                self.check_versions(list, &bins)?;
                for (plugin, bin) in list.plugins.iter().zip(&bins) {
                    let mut with_valid = plugin.clone();
                    with_valid.raw.insert(
                        "cni.dev/valid-attachments".into(),
                        Value::Array(attachments.clone()),
                    );
                    let stdin = list.plugin_stdin(&with_valid, None, None);
                    invoke::exec(bin, &describe(list, plugin), &args, &stdin, self.timeout)?;
                }
                Ok(())
            };
            match gc() {
                Ok(()) => report.plugins_collected = true,
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(report),
            1 => Err(errors.remove(0)),
            n => Err(Error::Several {
                count: n,
                first: Box::new(errors.remove(0)),
            }),
        }
    }

    fn binaries(&self, list: &NetworkList) -> Result<Vec<PathBuf>> {
        list.plugins
            .iter()
            .map(|p| find_in_path(&p.plugin_type, &self.path))
            .collect()
    }

    /// Checks that every plugin supports the list's cniVersion, asking each binary VERSION
    /// once (in parallel) and remembering the answer while the binary stays the same file.
    fn check_versions(&self, list: &NetworkList, bins: &[PathBuf]) -> Result<()> {
        let mut ids = Vec::with_capacity(bins.len());
        for bin in bins {
            let meta = std::fs::metadata(bin).map_err(|source| Error::Read {
                path: bin.clone(),
                source,
            })?;
            ids.push(BinaryId {
                path: bin.clone(),
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            });
        }
        let unknown: Vec<&BinaryId> = {
            let known = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            let mut unknown: Vec<&BinaryId> = Vec::new();
            for id in &ids {
                if !known.contains_key(id) && !unknown.contains(&id) {
                    unknown.push(id);
                }
            }
            unknown
        };
        let answers: Vec<Result<Vec<String>>> = std::thread::scope(|s| {
            let handles: Vec<_> = unknown
                .iter()
                .map(|id| s.spawn(|| self.ask_version(&id.path)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("VERSION thread panicked"))
                .collect()
        });
        {
            let mut known = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            for (id, answer) in unknown.iter().zip(answers) {
                known.insert((*id).clone(), answer?);
            }
        }
        let known = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        for (plugin, id) in list.plugins.iter().zip(&ids) {
            let supported = &known[id];
            if !supported.iter().any(|v| v == &list.cni_version) {
                return Err(Error::VersionUnsupported {
                    plugin: plugin.plugin_type.clone(),
                    version: list.cni_version.clone(),
                    supported: supported.join(", "),
                });
            }
        }
        Ok(())
    }

    fn ask_version(&self, bin: &Path) -> Result<Vec<String>> {
        let who = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = join_path(&self.path);
        let args = Args {
            command: "VERSION",
            path: &path,
            ..Args::default()
        };
        let stdin = format!(r#"{{"cniVersion":"{}"}}"#, Version::CURRENT);
        let out = invoke::exec(bin, &who, &args, stdin.as_bytes(), self.timeout)?;
        let info: VersionInfo = serde_json::from_slice(&out).map_err(|e| Error::BadResult {
            plugin: who.clone(),
            command: "VERSION",
            reason: e.to_string(),
        })?;
        let supported = info.supported();
        if supported.len() > 64 || supported.iter().any(|v| Version::parse(v).is_none()) {
            return Err(Error::BadResult {
                plugin: who,
                command: "VERSION",
                reason: "supportedVersions holds a non-version".into(),
            });
        }
        Ok(supported)
    }
}

/// How errors name a plugin: `bridge of network "net1"`.
fn describe(list: &NetworkList, plugin: &PluginConf) -> String {
    format!("{} of network {:?}", plugin.plugin_type, list.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// A fake plugin: logs each call as `COMMAND CNI_IFNAME stdin` to `log`, answers VERSION,
    /// and on ADD echoes its prevResult (or a fresh result) back.
    fn fake(dir: &Path, name: &str, log: &Path, extra: &str) {
        let body = format!(
            r#"#!/bin/sh
input=$(cat)
printf '%s %s %s\n' "$CNI_COMMAND" "{name}" "$input" >> {log}
{extra}
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}}' ;;
ADD) echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"/x"}}],"ips":[{{"interface":0,"address":"10.9.0.{name_len}/24"}}]}}' ;;
esac
"#,
            log = log.display(),
            name_len = name.len()
        );
        let path = dir.join(name);
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    struct Fixture {
        dir: tempfile::TempDir,
        log: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("log");
            fs::create_dir(dir.path().join("bin")).unwrap();
            Fixture { dir, log }
        }
        fn plugin(&self, name: &str, extra: &str) {
            fake(&self.dir.path().join("bin"), name, &self.log, extra);
        }
        fn cni(&self) -> Cni {
            Cni::new(vec![self.dir.path().join("bin")])
                .with_cache_dir(self.dir.path().join("cache"))
        }
        fn calls(&self) -> Vec<String> {
            fs::read_to_string(&self.log)
                .unwrap_or_default()
                .lines()
                .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
                .collect()
        }
        fn stdin_of(&self, call: &str) -> Value {
            let text = fs::read_to_string(&self.log).unwrap();
            let line = text.lines().find(|l| l.starts_with(call)).unwrap();
            serde_json::from_str(line.splitn(3, ' ').nth(2).unwrap()).unwrap()
        }
    }

    fn list(version: &str, types: &[&str]) -> NetworkList {
        let plugins: Vec<Value> = types
            .iter()
            .map(|t| json!({"type": t, "capabilities": {"portMappings": true}}))
            .collect();
        let text =
            json!({"cniVersion": version, "name": "testnet", "plugins": plugins}).to_string();
        NetworkList::from_list_bytes(text.as_bytes(), "test").unwrap()
    }

    fn rt() -> RuntimeConf {
        let mut rt = RuntimeConf {
            container_id: "ctr1".into(),
            netns: "/proc/self/ns/net".into(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "p".into())],
            ..Default::default()
        };
        rt.capability_args
            .insert("portMappings".into(), json!([{"hostPort": 1}]));
        rt
    }

    #[test]
    fn add_chains_results_and_caches_them_then_del_runs_in_reverse() {
        let f = Fixture::new();
        f.plugin("one", "");
        f.plugin("two", "");
        let cni = f.cni();
        let l = list("1.0.0", &["one", "two"]);
        let r = cni.add(&l, &rt()).unwrap();
        assert_eq!(r.ips[0].address, "10.9.0.3/24");
        let second = f.stdin_of("ADD two");
        assert_eq!(second["prevResult"]["ips"][0]["address"], "10.9.0.3/24");
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        assert_eq!(second["name"], "testnet");
        let info = cni.cached("testnet", "ctr1", "eth0").unwrap().unwrap();
        assert_eq!(info.config, l.bytes);
        assert_eq!(
            info.cni_args,
            vec![["K8S_POD_NAME".to_string(), "p".to_string()]]
        );

        cni.del(&l, &rt()).unwrap();
        let calls = f.calls();
        assert_eq!(&calls[calls.len() - 2..], ["DEL two", "DEL one"]);
        assert_eq!(
            f.stdin_of("DEL one")["prevResult"]["ips"][0]["address"],
            "10.9.0.3/24"
        );
        assert!(cni.cached("testnet", "ctr1", "eth0").unwrap().is_none());
        cni.del(&l, &rt()).unwrap();
    }

    #[test]
    fn versions_are_asked_once_per_binary() {
        let f = Fixture::new();
        f.plugin("one", "");
        let cni = f.cni();
        let l = list("1.0.0", &["one", "one"]);
        cni.add(&l, &rt()).unwrap();
        cni.add(
            &l,
            &RuntimeConf {
                container_id: "ctr2".into(),
                ..rt()
            },
        )
        .unwrap();
        assert_eq!(
            f.calls()
                .iter()
                .filter(|c| c.starts_with("VERSION"))
                .count(),
            1
        );
    }

    #[test]
    fn an_unsupported_version_is_refused_before_any_add() {
        let f = Fixture::new();
        f.plugin("one", "");
        let err = f.cni().add(&list("0.3.1", &["one"]), &rt()).unwrap_err();
        assert!(matches!(err, Error::VersionUnsupported { .. }), "{err}");
        assert!(!f.calls().iter().any(|c| c.starts_with("ADD")));
    }

    #[test]
    fn a_failed_add_is_rolled_back_with_del() {
        let f = Fixture::new();
        f.plugin("one", "");
        f.plugin(
            "bad",
            r#"if [ "$CNI_COMMAND" = ADD ]; then echo '{"code":7,"msg":"nope"}'; exit 1; fi"#,
        );
        let cni = f.cni();
        let err = cni.add(&list("1.0.0", &["one", "bad"]), &rt()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin bad of network \"testnet\" failed (ADD): code 7: nope"
        );
        let calls: Vec<_> = f
            .calls()
            .into_iter()
            .filter(|c| !c.starts_with("VERSION"))
            .collect();
        assert_eq!(calls, ["ADD one", "ADD bad", "DEL bad", "DEL one"]);
        assert!(cni.cached("testnet", "ctr1", "eth0").unwrap().is_none());
    }

    #[test]
    fn a_malformed_result_is_refused_and_rolled_back() {
        let f = Fixture::new();
        f.plugin("liar", r#"if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.0.0","ips":[{"address":"999.1.1.1/8"}]}'; exit 0; fi"#);
        let err = f.cni().add(&list("1.0.0", &["liar"]), &rt()).unwrap_err();
        assert!(
            err.to_string()
                .contains("malformed result: ips[0]: address"),
            "{err}"
        );
        assert!(f.calls().iter().any(|c| c == "DEL liar"));
    }

    #[test]
    fn del_uses_the_cached_configuration() {
        let f = Fixture::new();
        f.plugin("one", "");
        f.plugin("two", "");
        let cni = f.cni();
        cni.add(&list("1.0.0", &["one"]), &rt()).unwrap();
        let info = cni.cached("testnet", "ctr1", "eth0").unwrap().unwrap();
        // The configuration on disk changed to another plugin since; the cache still says "one".
        cni.del_cached(&info).unwrap();
        assert!(f.calls().iter().any(|c| c == "DEL one"));
        assert!(!f.calls().iter().any(|c| c == "DEL two"));
    }

    #[test]
    fn check_needs_a_cached_result_and_passes_it() {
        let f = Fixture::new();
        f.plugin("one", "");
        let cni = f.cni();
        let l = list("1.0.0", &["one"]);
        assert!(matches!(cni.check(&l, &rt()), Err(Error::NotCached { .. })));
        cni.add(&l, &rt()).unwrap();
        cni.check(&l, &rt()).unwrap();
        assert_eq!(
            f.stdin_of("CHECK one")["prevResult"]["ips"][0]["address"],
            "10.9.0.3/24"
        );
        let old = list("0.3.1", &["one"]);
        assert!(matches!(
            cni.check(&old, &rt()),
            Err(Error::CommandUnsupported { .. })
        ));
    }

    #[test]
    fn gc_deletes_stale_attachments_and_tells_11_plugins_the_valid_ones() {
        let f = Fixture::new();
        f.plugin("one", "");
        let cni = f.cni();
        let l = list("1.1.0", &["one"]);
        cni.add(&l, &rt()).unwrap();
        cni.add(
            &l,
            &RuntimeConf {
                container_id: "ctr2".into(),
                ..rt()
            },
        )
        .unwrap();
        let valid = [GcAttachment {
            container_id: "ctr2".into(),
            ifname: "eth0".into(),
        }];
        let report = cni.gc(&l, &valid).unwrap();
        assert_eq!(report.deleted.len(), 1);
        assert_eq!(report.deleted[0].container_id, "ctr1");
        assert!(report.plugins_collected);
        assert_eq!(
            f.stdin_of("GC one")["cni.dev/valid-attachments"],
            json!([{"containerID": "ctr2", "ifname": "eth0"}])
        );
        assert!(cni.cached("testnet", "ctr2", "eth0").unwrap().is_some());
        assert!(cni.cached("testnet", "ctr1", "eth0").unwrap().is_none());
    }

    #[test]
    fn status_is_asked_only_of_11_lists_and_failures_name_the_plugin() {
        let f = Fixture::new();
        f.plugin("one", r#"if [ "$CNI_COMMAND" = STATUS ]; then echo '{"code":50,"msg":"not ready"}'; exit 1; fi"#);
        let cni = f.cni();
        assert!(!cni.status(&list("1.0.0", &["one"])).unwrap());
        let err = cni.status(&list("1.1.0", &["one"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin one of network \"testnet\" failed (STATUS): code 50: not ready"
        );
    }

    #[test]
    fn a_missing_plugin_fails_before_anything_runs() {
        let f = Fixture::new();
        f.plugin("one", "");
        let err = f
            .cni()
            .add(&list("1.0.0", &["one", "absent"]), &rt())
            .unwrap_err();
        assert!(matches!(err, Error::PluginNotFound { .. }));
        assert!(f.calls().is_empty());
    }

    #[test]
    fn add_needs_a_namespace() {
        let f = Fixture::new();
        f.plugin("one", "");
        let rt = RuntimeConf {
            netns: f.dir.path().to_path_buf(),
            ..rt()
        };
        let err = f.cni().add(&list("1.0.0", &["one"]), &rt).unwrap_err();
        assert!(matches!(err, Error::NetnsNotFound { .. }), "{err}");
        assert!(f.calls().is_empty());
    }

    #[test]
    fn paths_split_like_cni_path() {
        assert_eq!(
            parse_path("/a::/b"),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }
}
