//! Compiles src/probe.rs (std only, no crates) into a statically linked binary in OUT_DIR,
//! with `+crt-static` scoped to this one program: the rest of the workspace is unaffected.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/probe.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("berth-probe");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "berth_probe",
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
            "-C",
            "panic=abort",
        ])
        .args(["--target", &target])
        .arg("-o")
        .arg(&out)
        .arg("src/probe.rs")
        .status()
        .unwrap_or_else(|e| panic!("running {rustc}: {e}"));
    assert!(status.success(), "compiling the probe failed");
    println!("cargo:rustc-env=BERTH_PROBE={}", out.display());
}
