//! Assembles the exec stub (src/stub.S) into a tiny static ELF that lib.rs embeds.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/stub.S");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("stub");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        // No stub: exec falls back to a direct execve (see docs/security.md).
        std::fs::write(&out, b"").expect("write empty stub");
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args([
            "-nostdlib",
            "-static",
            "-Wl,-n",
            "-Wl,--build-id=none",
            "-s",
            "-o",
        ])
        .arg(&out)
        .arg("src/stub.S")
        .status()
        .unwrap_or_else(|e| panic!("running {cc} to assemble src/stub.S: {e}"));
    assert!(status.success(), "{cc} failed to assemble src/stub.S");
}
