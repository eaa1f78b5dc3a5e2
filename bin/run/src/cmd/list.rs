//! `berth-run list`: every container under --root, as runc lists them.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::Report;
use clap::Args;
use serde_json::Value;

use super::Format;

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Output format: table or json.
    #[arg(long, short = 'f', value_name = "FORMAT", default_value = "table")]
    format: Format,

    /// Print only the container ids.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub(crate) fn run(root: &Path, a: ListArgs) -> anyhow::Result<ExitCode> {
    let all = berth_runtime::inspect::list(root)
        .with_context(|| format!("listing containers in {}", root.display()))?;
    let text = if a.quiet {
        all.iter().map(|r| format!("{}\n", r.id)).collect()
    } else {
        match a.format {
            Format::Table => table(&all),
            Format::Json => json(&all)? + "\n",
        }
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// runc's table: Go's tabwriter with minwidth 12, padding 3; CREATED in RFC 3339 with
/// trailing zeros of the fraction dropped.
fn table(all: &[Report]) -> String {
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for r in all {
        rows.push([
            r.id.clone(),
            r.pid.to_string(),
            r.status.as_str().to_string(),
            r.bundle.display().to_string(),
            go_time(&r.created),
            r.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count() + 3).max(12);
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (w, cell) in widths.iter().zip(row.iter()) {
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count()));
        }
        out.push_str(&row[5]);
        out.push('\n');
    }
    out
}

/// runc's JSON: one array on one line, keys in runc's order, `annotations` left out when
/// empty.
fn json(all: &[Report]) -> anyhow::Result<String> {
    let mut items = Vec::new();
    for r in all {
        let mut fields = vec![
            ("ociVersion", Value::from(r.oci_version.clone())),
            ("id", Value::from(r.id.clone())),
            ("pid", Value::from(r.pid)),
            ("status", Value::from(r.status.as_str())),
            ("bundle", Value::from(r.bundle.display().to_string())),
            ("rootfs", Value::from(r.rootfs.display().to_string())),
            ("created", Value::from(go_time(&r.created))),
        ];
        if !r.annotations.is_empty() {
            fields.push(("annotations", serde_json::to_value(&r.annotations)?));
        }
        fields.push(("owner", Value::from(r.owner.clone())));
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
            .collect();
        items.push(format!("{{{}}}", body.join(",")));
    }
    Ok(format!("[{}]", items.join(",")))
}

/// RFC 3339 as Go's RFC3339Nano prints it: no trailing zeros in the fraction.
fn go_time(t: &str) -> String {
    let Some(dot) = t.find('.') else {
        return t.to_string();
    };
    let end = t[dot..]
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or(t.len(), |i| dot + i);
    let frac = t[dot + 1..end].trim_end_matches('0');
    let zone = &t[end..];
    if frac.is_empty() {
        format!("{}{zone}", &t[..dot])
    } else {
        format!("{}.{frac}{zone}", &t[..dot])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> Report {
        Report {
            oci_version: "1.0.2".into(),
            id: id.into(),
            status: berth_runtime::Status::Running,
            pid: 42,
            bundle: "/tmp/bundle".into(),
            rootfs: "/tmp/bundle/rootfs".into(),
            created: "2026-11-27T18:01:47.912034400Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn fractions_lose_trailing_zeros() {
        assert_eq!(
            go_time("2026-11-27T18:01:47.912034400Z"),
            "2026-11-27T18:01:47.9120344Z"
        );
        assert_eq!(
            go_time("2026-11-27T18:01:47.000000000Z"),
            "2026-11-27T18:01:47Z"
        );
        assert_eq!(go_time("2026-11-27T18:01:47Z"), "2026-11-27T18:01:47Z");
    }

    #[test]
    fn table_pads_like_tabwriter() {
        let t = table(&[report("c1")]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "ID          PID         STATUS      BUNDLE        CREATED                        OWNER"
        );
        assert_eq!(
            lines[1],
            "c1          42          running     /tmp/bundle   2026-11-27T18:01:47.9120344Z   root"
        );
    }

    #[test]
    fn json_keeps_runc_key_order() {
        let mut r = report("c1");
        let j = json(std::slice::from_ref(&r)).unwrap();
        assert!(j.starts_with(r#"[{"ociVersion":"1.0.2","id":"c1","pid":42,"status":"running""#));
        assert!(!j.contains("annotations"));
        r.annotations.insert("a".into(), "b".into());
        let v: Value = serde_json::from_str(&json(&[r]).unwrap()).unwrap();
        assert_eq!(v[0]["annotations"]["a"], "b");
        assert_eq!(json(&[]).unwrap(), "[]");
    }
}
