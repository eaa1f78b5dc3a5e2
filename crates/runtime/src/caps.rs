//! Capability names (as the OCI spec writes them) and their numbers.

/// Capability names in kernel order: index = capability number.
pub(crate) const NAMES: &[&str] = &berth_caps::NAMES;

/// The number of a capability name (`CAP_CHOWN` or `chown`, any case).
pub(crate) fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// A set of names as a bit mask. Unknown names are an error naming the set; names of
/// capabilities this kernel does not know (above `last_cap`) are dropped, as runc does.
pub(crate) fn mask(set: &str, names: &[String], last_cap: u32) -> Result<u64, String> {
    let mut m = 0u64;
    for n in names {
        let num = number(n)
            .ok_or_else(|| format!("process.capabilities.{set}: unknown capability {n:?}"))?;
        if num <= last_cap {
            m |= 1 << num;
        }
    }
    Ok(m)
}

/// The names in a mask, in kernel order.
pub fn names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| name(b as u32))
        .collect()
}

/// The name of a capability number (`CAP_<n>` past the table).
pub fn name(num: u32) -> String {
    NAMES
        .get(num as usize)
        .map_or_else(|| format!("CAP_{num}"), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("net_raw"), Some(13));
        assert_eq!(number("CAP_NOPE"), None);
        let m = mask("bounding", &["CAP_CHOWN".into(), "CAP_KILL".into()], 40).unwrap();
        assert_eq!(m, 0b100001);
        assert_eq!(names(m), vec!["CAP_CHOWN", "CAP_KILL"]);
    }

    #[test]
    fn unknown_names_are_errors_naming_the_set() {
        let err = mask("effective", &["CAP_FLY".into()], 40).unwrap_err();
        assert!(
            err.contains("effective") && err.contains("CAP_FLY"),
            "{err}"
        );
    }

    #[test]
    fn caps_beyond_the_kernel_are_dropped() {
        assert_eq!(
            mask("bounding", &["CAP_CHECKPOINT_RESTORE".into()], 39).unwrap(),
            0
        );
    }
}
