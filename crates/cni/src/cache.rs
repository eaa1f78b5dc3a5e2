//! The result cache, in libcni's format and place: `<cache dir>/results/<network>-<container
//! ID>-<ifname>`, a JSON object of kind `cniCacheV1` holding the list's configuration (base64,
//! as Go encodes `[]byte`), the runtime arguments and the ADD's result. A runtime that uses
//! libcni reads what berth writes and the other way round.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::conf::{read_capped, RuntimeConf};
use crate::error::{Error, Result};

/// The `kind` libcni writes and accepts.
pub const KIND: &str = "cniCacheV1";
/// The largest cache file read.
const MAX_CACHE_BYTES: u64 = 4 << 20;

/// One cache file, field for field as libcni's `cachedInfo` marshals it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedInfo {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    #[serde(with = "go_bytes")]
    pub config: Vec<u8>,
    #[serde(rename = "ifName")]
    pub if_name: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(
        rename = "cniArgs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub cni_args: Vec<[String; 2]>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty",
        deserialize_with = "null_map"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

impl CachedInfo {
    /// The runtime arguments the ADD ran with.
    pub fn runtime_conf(&self) -> RuntimeConf {
        RuntimeConf {
            container_id: self.container_id.clone(),
            netns: PathBuf::from(&self.netns),
            ifname: self.if_name.clone(),
            args: self
                .cni_args
                .iter()
                .map(|[k, v]| (k.clone(), v.clone()))
                .collect(),
            capability_args: self.capability_args.clone(),
        }
    }
}

/// Go marshals `[]byte` as standard base64 and a nil slice as `null`.
mod go_bytes {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(Vec::new()),
            Some(t) => base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}

fn null_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<[String; 2]>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

fn null_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// The cache under one directory (`/var/lib/cni` by default).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// `<dir>/results/<network>-<container ID>-<ifname>`, as libcni names it.
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.results_dir()
            .join(format!("{network}-{container_id}-{ifname}"))
    }

    /// Writes an entry atomically (a temporary file renamed over it), mode 0600 in a 0700
    /// directory, as libcni makes them.
    pub fn write(&self, info: &CachedInfo) -> Result<PathBuf> {
        let dir = self.results_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::Write {
                path: dir.clone(),
                source,
            })?;
        let path = self.path(&info.network_name, &info.container_id, &info.if_name);
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let bytes = serde_json::to_vec(info).expect("cache entries serialise");
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&tmp);
            Error::Write {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
    }

    /// Reads an entry; `None` when there is none.
    pub fn read(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedInfo>> {
        read_entry(&self.path(network, container_id, ifname))
    }

    /// Removes an entry; a missing one is fine.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> Result<()> {
        let path = self.path(network, container_id, ifname);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Write { path, source }),
        }
    }

    /// Every well-formed entry (optionally only one container's), sorted by file name, as
    /// libcni's `GetCachedAttachments` lists them; malformed files are skipped.
    pub fn entries(&self, container_id: Option<&str>) -> Result<Vec<CachedInfo>> {
        let dir = self.results_dir();
        let mut names = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Read { path: dir, source }),
        };
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(id) = container_id {
                if !name.contains(&format!("-{id}-")) {
                    continue;
                }
            }
            let info = match read_entry(&dir.join(&name)) {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!("skipping cache entry {name}: {e}");
                    continue;
                }
            };
            if container_id.is_some_and(|id| info.container_id != id) {
                continue;
            }
            if info.if_name.is_empty() || info.network_name.is_empty() {
                continue;
            }
            out.push(info);
        }
        Ok(out)
    }
}

fn read_entry(path: &Path) -> Result<Option<CachedInfo>> {
    let bytes = match read_capped(path, MAX_CACHE_BYTES) {
        Ok(b) => b,
        Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(Error::BadConfig { reason, .. }) => {
            return Err(Error::BadCache {
                path: path.to_path_buf(),
                reason,
            })
        }
        Err(e) => return Err(e),
    };
    let info: CachedInfo = serde_json::from_slice(&bytes).map_err(|e| Error::BadCache {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if info.kind != KIND {
        return Err(Error::BadCache {
            path: path.to_path_buf(),
            reason: format!("kind {:?} is not {KIND}", info.kind),
        });
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> CachedInfo {
        let mut caps = Map::new();
        caps.insert("portMappings".into(), json!([{"hostPort":8080}]));
        CachedInfo {
            kind: KIND.into(),
            container_id: "c1".into(),
            config: br#"{"name":"net"}"#.to_vec(),
            if_name: "eth0".into(),
            network_name: "net".into(),
            netns: "/run/netns/a".into(),
            cni_args: vec![["K".into(), "V".into()]],
            capability_args: caps,
            result: Some(json!({"cniVersion":"1.0.0"})),
        }
    }

    #[test]
    fn entries_are_written_in_libcnis_shape_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let path = cache.write(&entry()).unwrap();
        assert_eq!(path, dir.path().join("results/net-c1-eth0"));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"cniCacheV1","containerId":"c1","config":"eyJuYW1lIjoibmV0In0=","ifName":"eth0","networkName":"net","netns":"/run/netns/a","cniArgs":[["K","V"]],"capabilityArgs":{"portMappings":[{"hostPort":8080}]},"result":{"cniVersion":"1.0.0"}}"#
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(cache.read("net", "c1", "eth0").unwrap(), Some(entry()));
        assert_eq!(cache.read("net", "c2", "eth0").unwrap(), None);
        assert_eq!(cache.entries(Some("c1")).unwrap().len(), 1);
        assert_eq!(cache.entries(Some("c")).unwrap().len(), 0);
        cache.remove("net", "c1", "eth0").unwrap();
        cache.remove("net", "c1", "eth0").unwrap();
        assert!(cache.entries(None).unwrap().is_empty());
    }

    #[test]
    fn a_file_libcni_wrote_is_read() {
        // What libcni v1.1 wrote for a bridge network (nil cniArgs, no capabilityArgs).
        let text = r#"{"kind":"cniCacheV1","containerId":"abc","config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAifQ==","ifName":"eth0","networkName":"mynet","netns":"/var/run/netns/x","cniArgs":null,"result":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]}}"#;
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("results")).unwrap();
        fs::write(dir.path().join("results/mynet-abc-eth0"), text).unwrap();
        let info = Cache::new(dir.path())
            .read("mynet", "abc", "eth0")
            .unwrap()
            .unwrap();
        assert_eq!(info.config, br#"{"cniVersion":"1.0.0"}"#);
        assert!(info.cni_args.is_empty());
        assert_eq!(info.runtime_conf().netns, PathBuf::from("/var/run/netns/x"));
    }

    #[test]
    fn malformed_entries_are_errors_when_read_and_skipped_when_listed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("results")).unwrap();
        fs::write(dir.path().join("results/n-c-eth0"), r#"{"kind":"other"}"#).unwrap();
        fs::write(dir.path().join("results/m-c-eth0"), "garbage").unwrap();
        let cache = Cache::new(dir.path());
        assert!(matches!(
            cache.read("n", "c", "eth0"),
            Err(Error::BadCache { .. })
        ));
        assert!(cache.entries(None).unwrap().is_empty());
    }
}
