//! The parts of an OCI image config that shape a container, as plain data. The caller fills
//! it from the content store's image config; this crate does not read the store.

use std::collections::BTreeMap;

/// An image's `config` object (Entrypoint, Cmd, Env, …), empty fields where the image has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    /// Paths from `Volumes` (the keys of the object).
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

/// The annotation the OCI image spec's conversion rules give StopSignal.
pub const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";
