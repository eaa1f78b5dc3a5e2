//! `--log-format json`: runc's log lines, as logrus' JSONFormatter writes them, one object a
//! line with sorted keys: `{"level":"error","msg":"…","time":"2026-11-27T20:48:12.123456Z"}`.
//!
//! containerd's runc shim runs the runtime with `--log <bundle>/log.json --log-format json`
//! and, when a verb fails, decodes that file line by line and shows the `msg` of the last
//! `"level":"error"` line (`OCI runtime create failed: <msg>`); a line that is not a JSON
//! object breaks that decoding, and so does a `time` that is not RFC 3339. podman (through
//! conmon) reads the same shape from its `oci-log` file. So the final error of a verb is
//! written here too (see `main`), besides the usual line on stderr.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter for `--log-format json`.
pub(crate) struct Logrus;

impl<S, N> FormatEvent<S, N> for Logrus
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        writeln!(
            writer,
            "{}",
            line(event.metadata().level(), fields.0, &time)
        )
    }
}

/// Logs the error a verb failed with, for the engine that reads the log file back.
pub(crate) fn final_error(err: &anyhow::Error) {
    tracing::error!("{}", berth_cli::chain(err));
}

/// One logrus line: the event's fields, `level`, `msg` (the message) and `time`. A field
/// named like one of those three is renamed `fields.<name>`, as logrus does.
fn line(level: &Level, fields: Map<String, Value>, time: &str) -> String {
    let mut out = Map::new();
    let mut msg = Value::String(String::new());
    for (key, value) in fields {
        match key.as_str() {
            "message" => msg = value,
            "level" | "msg" | "time" => {
                out.insert(format!("fields.{key}"), value);
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    out.insert("level".into(), Value::String(level_name(level).into()));
    out.insert("msg".into(), msg);
    out.insert("time".into(), Value::String(time.into()));
    // serde_json's Map is ordered by key here (no `preserve_order`), as Go's maps marshal.
    Value::Object(out).to_string()
}

/// logrus' level names.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_logrus_line_with_sorted_keys() {
        let mut fields = Map::new();
        fields.insert(
            "message".into(),
            Value::String("creating container c1: mount /data: \"quoted\"".into()),
        );
        let l = line(&Level::ERROR, fields, "2026-11-27T20:48:12.123456Z");
        assert_eq!(
            l,
            r#"{"level":"error","msg":"creating container c1: mount /data: \"quoted\"","time":"2026-11-27T20:48:12.123456Z"}"#
        );
    }

    #[test]
    fn other_fields_sit_beside_and_clashing_names_are_prefixed() {
        let mut fields = Map::new();
        fields.insert("message".into(), Value::String("hook".into()));
        fields.insert("pid".into(), Value::from(42));
        fields.insert("time".into(), Value::String("mine".into()));
        let l = line(&Level::WARN, fields, "T");
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["msg"], "hook");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["fields.time"], "mine");
        assert_eq!(v["time"], "T");
        assert!(!l.contains('\n'));
    }

    #[test]
    fn the_time_is_rfc3339_utc() {
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time)).unwrap();
        // 2026-11-27T20:48:12.123456Z
        let b = time.as_bytes();
        assert!(time.ends_with('Z'), "{time}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16]),
            (b'-', b'-', b'T', b':', b':')
        );
    }

    #[test]
    fn level_names_are_logrus_names() {
        assert_eq!(level_name(&Level::ERROR), "error");
        assert_eq!(level_name(&Level::WARN), "warning");
        assert_eq!(level_name(&Level::TRACE), "trace");
    }
}
