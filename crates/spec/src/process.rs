//! The container's process: args from Entrypoint and Cmd, Env, working directory, user,
//! capabilities and rlimits.

use crate::defaults;
use crate::error::Error;
use crate::image::ImageConfig;
use crate::options::Options;
use crate::plan::clean_abs;
use crate::runtime::{Capabilities, Process, User};
use crate::user::ResolvedUser;

pub(crate) fn process(
    image: &ImageConfig,
    opts: &Options,
    user: &ResolvedUser,
    caps: &[String],
) -> Result<Process, Error> {
    let entrypoint = opts
        .entrypoint
        .clone()
        .unwrap_or_else(|| image.entrypoint.clone());
    let cmd = match (&opts.args, &opts.entrypoint) {
        (Some(args), _) => args.clone(),
        // A new entrypoint drops the image's Cmd, as `docker run --entrypoint` does.
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::NoCommand);
    }

    let cwd = match &opts.workdir {
        Some(w) if !w.starts_with('/') => {
            return Err(Error::invalid("--workdir", w, "must be an absolute path"));
        }
        Some(w) => clean_abs(w),
        None if image.working_dir.is_empty() => "/".into(),
        None => clean_abs(&image.working_dir),
    };

    let mut env: Vec<String> = Vec::new();
    let set = |env: &mut Vec<String>, entry: &str| {
        let key = entry.split_once('=').map_or(entry, |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(entry.to_string());
    };
    let has = |env: &[String], key: &str| {
        env.iter()
            .any(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
    };
    for e in image.env.iter().filter(|e| e.contains('=')) {
        set(&mut env, e);
    }
    if !has(&env, "PATH") {
        env.insert(0, defaults::PATH.into());
    }
    for e in &opts.env {
        set(&mut env, e);
    }
    if !has(&env, "HOME") {
        env.push(format!(
            "HOME={}",
            if user.home.is_empty() {
                "/"
            } else {
                &user.home
            }
        ));
    }
    if opts.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }

    // A non-root user gets capabilities only in the bounding set, as docker does: the kernel
    // would not give a non-root exec any either.
    let capabilities = if user.uid == 0 {
        Capabilities {
            bounding: caps.to_vec(),
            effective: caps.to_vec(),
            permitted: caps.to_vec(),
        }
    } else {
        Capabilities {
            bounding: caps.to_vec(),
            effective: Vec::new(),
            permitted: Vec::new(),
        }
    };

    let mut rlimits = defaults::rlimits();
    for u in &opts.ulimits {
        rlimits.retain(|r| r.kind != u.kind);
        rlimits.push(crate::runtime::Rlimit {
            kind: u.kind.clone(),
            hard: u.hard,
            soft: u.soft,
        });
    }

    Ok(Process {
        terminal: opts.tty,
        user: User {
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids.clone(),
        },
        args,
        env,
        cwd,
        capabilities,
        rlimits,
        no_new_privileges: opts.no_new_privileges,
        oom_score_adj: None,
    })
}
