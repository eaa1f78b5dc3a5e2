//! Test support shared by the CLI and end-to-end tests.
#![forbid(unsafe_code)]

use std::path::PathBuf;

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
