//! The container's user, resolved from the image's own `/etc/passwd` and `/etc/group` (never
//! the host's NSS), with runc/docker's rules for `USER[:GROUP]`:
//!
//! - a user named by name must exist in passwd; a numeric uid need not (its gid is then 0 and
//!   its home `/`);
//! - a group named by name must exist in group; a numeric gid need not;
//! - without an explicit group, the user's primary gid comes from passwd and the additional
//!   gids are the groups in `/etc/group` that list the user as a member.

use crate::error::Error;

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The user the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Parses passwd content; malformed lines (too few fields, non-numeric ids) are skipped, as
/// libc does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// Parses group content; malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].trim().parse().ok()?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `spec` (`""`, `USER`, `UID`, `USER:GROUP`, `UID:GID`, …) against the image's
/// passwd and group entries.
pub fn resolve(
    spec: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ResolvedUser, Error> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric_uid: Option<u32> = user_part.parse().ok();

    let entry = passwd.iter().find(|e| match numeric_uid {
        Some(uid) => e.uid == uid || e.name == user_part,
        None => e.name == user_part,
    });
    let mut user = match (entry, numeric_uid) {
        (Some(e), _) => ResolvedUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: Vec::new(),
            home: e.home.clone(),
        },
        (None, Some(uid)) => ResolvedUser {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/".into(),
        },
        (None, None) => {
            return Err(Error::UnknownUser {
                user: user_part.to_string(),
            })
        }
    };

    match group_part {
        Some(g) if !g.is_empty() => {
            let numeric_gid: Option<u32> = g.parse().ok();
            let found = groups
                .iter()
                .find(|e| e.name == g || Some(e.gid) == numeric_gid);
            user.gid = match (found, numeric_gid) {
                (Some(e), _) => e.gid,
                (None, Some(gid)) => gid,
                (None, None) => {
                    return Err(Error::UnknownGroup {
                        group: g.to_string(),
                    })
                }
            };
        }
        Some(_) => {
            return Err(Error::UnknownGroup {
                group: String::new(),
            })
        }
        None => {
            if let Some(e) = entry {
                let mut gids: Vec<u32> = groups
                    .iter()
                    .filter(|g| g.members.contains(&e.name))
                    .map(|g| g.gid)
                    .collect();
                gids.sort_unstable();
                gids.dedup();
                user.additional_gids = gids;
            }
        }
    }
    Ok(user)
}

/// Resolves `--group-add` entries (docker's rule): a name must be a group in the image's
/// `/etc/group`; a number need not be. The gids are added to the user's additional gids
/// whatever `USER[:GROUP]` was, in order, without duplicates.
pub fn add_groups(
    user: &mut ResolvedUser,
    add: &[String],
    groups: &[GroupEntry],
) -> Result<(), Error> {
    for g in add {
        let gid = match groups.iter().find(|e| e.name == *g) {
            Some(e) => e.gid,
            None => g
                .parse()
                .map_err(|_| Error::UnknownGroup { group: g.clone() })?,
        };
        if !user.additional_gids.contains(&gid) {
            user.additional_gids.push(gid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
        # a comment\n\
        broken:line\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nstaff:x:50:app, other\nwheel:x:10:root\n";

    fn go(spec: &str) -> Result<ResolvedUser, Error> {
        resolve(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn empty_user_is_root_with_its_groups() {
        let u = go("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, [10]);
    }

    #[test]
    fn named_user_gets_passwd_gid_and_member_groups() {
        let u = go("app").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.as_str()),
            (1000, 1000, vec![50], "/home/app")
        );
        // A uid that is in passwd resolves like its name.
        assert_eq!(go("1000").unwrap(), u);
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        let u = go("app:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert!(u.additional_gids.is_empty());
        let u = go("app:4242").unwrap();
        assert_eq!(u.gid, 4242);
    }

    #[test]
    fn unknown_numeric_ids_are_taken_as_given() {
        let u = go("4000:4001").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4000, 4001, "/"));
        let u = go("4000").unwrap();
        assert_eq!((u.uid, u.gid), (4000, 0));
    }

    #[test]
    fn group_add_appends_names_and_numbers_even_with_an_explicit_group() {
        let groups = parse_group(GROUP);
        let mut u = go("app").unwrap();
        add_groups(
            &mut u,
            &["wheel".into(), "4242".into(), "staff".into()],
            &groups,
        )
        .unwrap();
        assert_eq!(u.additional_gids, [50, 10, 4242]);
        let mut u = go("app:app").unwrap();
        add_groups(&mut u, &["staff".into()], &groups).unwrap();
        assert_eq!((u.gid, u.additional_gids.clone()), (1000, vec![50]));
        let err = add_groups(&mut u, &["ghosts".into()], &groups).unwrap_err();
        assert!(matches!(err, Error::UnknownGroup { group } if group == "ghosts"));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(go("mallory"), Err(Error::UnknownUser { user }) if user == "mallory"));
        assert!(
            matches!(go("app:ghosts"), Err(Error::UnknownGroup { group }) if group == "ghosts")
        );
        assert!(matches!(go("app:"), Err(Error::UnknownGroup { .. })));
        // No passwd at all: names cannot resolve, numbers can.
        assert!(resolve("app", &[], &[]).is_err());
        assert_eq!(resolve("0", &[], &[]).unwrap().uid, 0);
    }
}
