//! The in-container probe: `path()` is a statically linked program (built from
//! `src/probe.rs` by the build script) that prints, as one JSON object, what a process inside
//! a container sees: ids, groups, the five capability sets, no_new_privs, seccomp mode, umask,
//! cwd, env, args, hostname, domainname, mounts, rlimits, cgroups, open fds, oom_score_adj,
//! namespace ids, and for well-known paths whether they exist, are masked, are read-only.
//!
//! Copy it into a test rootfs and run it as the container's process.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The probe binary built for this target.
pub fn path() -> PathBuf {
    PathBuf::from(env!("BERTH_PROBE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_is_statically_linked() {
        let bytes = std::fs::read(path()).unwrap();
        // A dynamically linked ELF has a PT_INTERP (3) program header naming its loader.
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
        let interp = (0..phnum).any(|i| {
            u32::from_le_bytes(bytes[phoff + i * phentsize..][..4].try_into().unwrap()) == 3
        });
        assert!(
            !interp,
            "the probe has a PT_INTERP header: it is dynamically linked"
        );
        let out = std::process::Command::new("ldd")
            .arg(path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("not a dynamic executable") || text.contains("statically linked"),
            "ldd says: {text}"
        );
    }

    #[test]
    fn probe_reports_this_process_as_json() {
        let out = std::process::Command::new(path())
            .arg("--paths")
            .arg("/proc/kcore")
            .env("PROBE_TEST", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["uid"], serde_json::json!(rustix_free_uid()));
        assert!(v["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "PROBE_TEST=1"));
        assert_eq!(v["args"][1], "--paths");
        assert!(v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mount_point"] == "/"));
        assert!(v["rlimits"]["RLIMIT_NOFILE"]["soft"].is_string());
        assert!(v["caps"]["bounding"].is_u64());
        assert!(v["namespaces"]["pid"]
            .as_str()
            .unwrap()
            .starts_with("pid:["));
        assert!(v["paths"]["/proc/kcore"]["exists"].is_boolean());
        assert!(
            v["fds"].as_object().unwrap().contains_key("1"),
            "{}",
            v["fds"]
        );
    }

    fn rustix_free_uid() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}
