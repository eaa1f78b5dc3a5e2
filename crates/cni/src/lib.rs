//! CNI plugin invocation as libcni does it, and named network namespaces as `ip netns` makes
//! them.
//!
//! - [`conf`]: network lists from a directory (by name, or the first in lexical order), a
//!   single-plugin `.conf` lifted to a list, each plugin's stdin with `prevResult` and the
//!   `runtimeConfig` of the capabilities it declares.
//! - [`Cni`]: ADD (rolled back with DEL when any step fails), DEL (reverse order, idempotent),
//!   CHECK, GC and STATUS; plugins found on the bin path, asked VERSION, run with a deadline.
//! - [`cache`]: the result cache in libcni's format and place, so DEL runs with the ADD's
//!   configuration and result.
//! - [`result`]: plugin results read as hostile input.
//! - [`netns`]: create, list and remove `/run/netns/NAME`.
//!
//! How the CRI gateway uses it, in process:
//!
//! ```no_run
//! use std::path::Path;
//! use berth_cni::{netns, Cni, RuntimeConf};
//!
//! # fn main() -> Result<(), berth_cni::Error> {
//! let cni = Cni::from_env(); // CNI_PATH, else /opt/cni/bin:/usr/lib/cni; cache in /var/lib/cni
//! let list = berth_cni::load_list(Path::new("/etc/cni/net.d"), None)?;
//! let path = netns::create("pod-1234")?;
//! let rt = RuntimeConf {
//!     container_id: "1234".into(),
//!     netns: path.clone(),
//!     ifname: "eth0".into(),
//!     args: vec![("IgnoreUnknown".into(), "1".into())],
//!     ..Default::default()
//! };
//! let result = cni.add(&list, &rt)?; // rolled back with DEL if any plugin fails
//! println!("{}", result.ips[0].address);
//! cni.check(&list, &rt)?;
//! cni.del(&list, &rt)?; // idempotent; uses the cached result as prevResult
//! netns::remove(&path)?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod api;
pub mod cache;
pub mod conf;
mod error;
mod invoke;
pub mod netns;
pub mod result;
pub mod version;

pub use api::{
    parse_path, Cni, GcAttachment, GcReport, DEFAULT_CACHE_DIR, DEFAULT_PATH, DEFAULT_TIMEOUT,
};
pub use cache::CachedInfo;
pub use conf::{load_list, NetworkList, PluginConf, RuntimeConf};
pub use error::{Error, Result};
pub use result::CniResult;
