//! Test support shared by the CLI and end-to-end tests.
//!
//! - [`bin_path`]: the path of a workspace binary built into the same target directory.
//! - [`fixtures`]: deterministic OCI images built offline from local inputs (busybox from
//!   Debian's `busybox-static`, a multi-layer image full of tar edge cases, a multi-platform
//!   index, a large image for benchmarks), cached once per machine under the target dir.
//! - [`registry::Registry`]: Debian's `docker-registry` on a free loopback port, with or
//!   without htpasswd credentials, and `skopeo copy --preserve-digests` to push fixtures.
//! - [`fake::FakeRegistry`]: a tiny in-process registry that serves a layout and can be told
//!   to misbehave (wrong digest, wrong size, dropped connection, 500s, hostile manifests) and
//!   to require the bearer-token flow; it records every request it saw.
//!
//! See `crates/testkit/README.md` for the contents of each fixture.
#![forbid(unsafe_code)]

use std::path::PathBuf;

pub mod fake;
pub mod fixtures;
pub mod registry;

/// The path of a workspace binary (`berth-pull`, …) built by `cargo build --workspace`
/// into the same target directory as the running test.
///
/// Panics with a clear message when it is not there: a test that cannot find the binary it
/// tests must fail, not skip.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` first",
        path.display()
    );
    path
}
