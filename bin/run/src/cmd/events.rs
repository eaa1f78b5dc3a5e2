//! `berth-run events`: a container's statistics as runc prints them, one JSON object a line:
//! once with `--stats`, else every `--interval` until the container stops, with `oom` events
//! as they happen.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use berth_cli::Usage;
use berth_runtime::Runtime;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Time between two stats events (Go duration syntax: 5s, 500ms, 1m30s).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    interval: String,

    /// Print the container's stats once and exit.
    #[arg(long)]
    stats: bool,

    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(rt: &Runtime, a: EventsArgs) -> anyhow::Result<ExitCode> {
    let interval = parse_duration(&a.interval).ok_or_else(|| {
        Usage(format!(
            "invalid --interval {:?}: use a duration such as 5s, 500ms or 1m",
            a.interval
        ))
    })?;
    if interval.is_zero() {
        return Err(Usage("duration interval must be greater than 0".into()).into());
    }
    let mut out = std::io::stdout().lock();
    let mut emit = |e: &berth_runtime::Event| -> std::io::Result<()> {
        let line = serde_json::to_string(e).map_err(std::io::Error::other)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    };
    if a.stats {
        let event = rt
            .stats(&a.id)
            .with_context(|| format!("stats of container {}", a.id))?;
        emit(&event)?;
    } else {
        rt.events(&a.id, interval, &mut emit)
            .with_context(|| format!("events of container {}", a.id))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Go's `time.ParseDuration` for non-negative values: a sequence of decimal numbers, each
/// with a unit (`ns us µs ms s m h`), like `300ms`, `1.5h` or `2h45m`; `0` alone is zero.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(end);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * nanos;
        rest = next;
    }
    (total < 1e18).then(|| Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "-1s", "1..5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
