//! berth-spec: an OCI runtime spec (`config.json`) from an image config and the user's
//! options, with the defaults containerd gives a container, and the bundle around it.
//!
//! The work is split the way STYLE.md asks:
//! - [`options`]: the user's options as plain data, and parsers for docker's spellings;
//! - [`plan`]: options + [`image::ImageConfig`] + the image's users → a [`plan::Plan`]
//!   (the [`runtime::Spec`] plus directories to make and bind sources to check), no I/O;
//! - [`bundle`]: carries a plan out on disk: overlay rootfs of the image's snapshots,
//!   `config.json`, removal.
//!
//! Defaults (see `docs/bundles.md`): new pid/ipc/uts/mount/network namespaces, the 14 default
//! capabilities, `/proc /dev /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup`, containerd's
//! masked and read-only paths, `RLIMIT_NOFILE` 1024:1024, the default seccomp profile
//! (`seccomp/default.json`) resolved against the final capability set, and a cgroup under
//! `/berth/<id>`.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod caps;
pub mod defaults;
mod error;
pub mod image;
pub mod options;
mod overlay;
pub mod plan;
mod process;
mod resources;
mod rootfs;
pub mod runtime;
pub mod seccomp;
mod teardown;
pub mod user;

pub use error::Error;
pub use image::ImageConfig;
pub use options::Options;
pub use plan::{plan, Host, Plan, Users};
