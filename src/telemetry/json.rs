//! The diagnostic log's JSON lines, in a format the gateway owns (see
//! `docs/operations.md`): one object per event with `timestamp`, `level`,
//! `target`, the event's `fields` (its `message` among them) and, when the
//! event happens while a request is served, that request's `request_id`,
//! `trace_id` and `span_id`, read from the task (not from `tracing` spans:
//! none is made per request in this mode). It plugs into tracing-subscriber
//! as a `FormatEvent`, its public extension point; the fields are written
//! by this module's own visitor.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

use crate::context::{current_trace, with_request_id};

/// The JSON event format of the diagnostic log.
pub(super) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{{\"timestamp\":\"{}\",\"level\":\"{}\",\"target\":",
            super::timestamp(),
            meta.level()
        )?;
        write_str(&mut writer, meta.target())?;
        writer.write_str(",\"fields\":{")?;
        let mut object = Object {
            writer: &mut writer,
            empty: true,
            result: Ok(()),
        };
        event.record(&mut object);
        object.result?;
        writer.write_char('}')?;
        with_request_id(|id| {
            writer
                .write_str(",\"request_id\":")
                .and_then(|()| write_str(&mut writer, id))
        })
        .unwrap_or(Ok(()))?;
        if let Some(trace) = current_trace() {
            write!(
                writer,
                ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                trace.trace_id_hex(),
                trace.span_id_hex()
            )?;
        }
        writer.write_str("}\n")
    }
}

/// Writes visited fields as `"name":value` members of a JSON object.
struct Object<'a, W> {
    writer: &'a mut W,
    empty: bool,
    result: fmt::Result,
}

impl<W: Write> Object<'_, W> {
    /// Writes the member's name and colon; false for a field `JsonFields`
    /// skips (`log.*` metadata, shown as Debug) or after a failed write.
    fn member(&mut self, field: &Field, debug: bool) -> bool {
        let mut name = field.name();
        if debug {
            if name.starts_with("log.") {
                return false;
            }
            name = name.strip_prefix("r#").unwrap_or(name);
        }
        if self.result.is_err() {
            return false;
        }
        let separator = if std::mem::take(&mut self.empty) {
            ""
        } else {
            ","
        };
        self.result = self
            .writer
            .write_str(separator)
            .and_then(|()| write_str(self.writer, name))
            .and_then(|()| self.writer.write_char(':'));
        self.result.is_ok()
    }

    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.member(field, false) {
            self.result = self.writer.write_fmt(value);
        }
    }
}

impl<W: Write> Visit for Object<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json turns what JSON cannot hold into null.
        if value.is_finite() {
            self.raw(field, format_args!("{value:?}"));
        } else {
            self.raw(field, format_args!("null"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.record_debug(field, &value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.record_debug(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.member(field, false) {
            self.result = write_str(self.writer, value);
        }
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        if self.member(field, false) {
            let writer = &mut *self.writer;
            let mut result = writer.write_char('[');
            for (i, byte) in value.iter().enumerate() {
                let separator = if i == 0 { "" } else { "," };
                result = result.and_then(|()| write!(writer, "{separator}{byte}"));
            }
            self.result = result.and_then(|()| writer.write_char(']'));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.member(field, true) {
            let writer = &mut *self.writer;
            self.result = writer
                .write_char('"')
                .and_then(|()| write!(Escaped(&mut *writer), "{value:?}"))
                .and_then(|()| writer.write_char('"'));
        }
    }
}

/// `value` as a JSON string, quoted and escaped.
pub(super) fn write_str(writer: &mut impl Write, value: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped(&mut *writer).write_str(value)?;
    writer.write_char('"')
}

/// Escapes what passes through as the inside of a JSON string, as
/// serde_json does: `"`, `\` and control characters; the rest as it is.
struct Escaped<W>(W);

impl<W: Write> Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // What needs escaping is ASCII, so a byte scan finds it and every
        // cut falls between characters.
        let mut plain = 0;
        for (at, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(s.get(plain..at).unwrap_or_default())?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at.saturating_add(1);
        }
        self.0.write_str(s.get(plain..).unwrap_or_default())
    }
}

/// For tests of log lines.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::{Arc, Mutex};

    /// A `Vec` a subscriber under test writes its lines to.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tracing_subscriber::{fmt, layer::SubscriberExt};

    use super::{test_support::Captured, *};
    use crate::context::{REQUEST_ID, TRACE, TraceContext};

    /// What `run` logs through the diagnostic JSON format.
    fn logged(run: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = fmt::layer()
            .event_format(JsonLines)
            .with_writer(move || writer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), run);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn an_event_is_one_object_with_its_fields() {
        let lines = logged(|| {
            tracing::warn!(
                text = "a \"quoted\"\nline",
                number = -3,
                big = 7_u64,
                float = 1.5,
                nan = f64::NAN,
                flag = true,
                bytes = &b"ab"[..],
                shown = %"displayed",
                debugged = ?Some(1),
                r#type = "kind",
                "something happened"
            );
        });
        let [line] = &lines[..] else {
            panic!("{lines:?}")
        };
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], module_path!());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        let fields = &line["fields"];
        assert_eq!(fields["message"], "something happened");
        assert_eq!(fields["text"], "a \"quoted\"\nline");
        assert_eq!(fields["number"], -3);
        assert_eq!(fields["big"], 7);
        assert_eq!(fields["float"], 1.5);
        assert!(fields["nan"].is_null());
        assert_eq!(fields["flag"], true);
        assert_eq!(fields["bytes"], serde_json::json!([97, 98]));
        assert_eq!(fields["shown"], "displayed");
        assert_eq!(fields["debugged"], "Some(1)");
        assert_eq!(fields["type"], "kind");
        assert!(line.get("request_id").is_none(), "outside a request");
    }

    #[test]
    fn an_event_while_a_request_is_served_names_the_request() {
        let trace =
            TraceContext::continued("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        let lines = logged(|| {
            REQUEST_ID.sync_scope("req-1".into(), || {
                TRACE.sync_scope(trace, || tracing::info!("inside"));
            });
        });
        let [line] = &lines[..] else {
            panic!("{lines:?}")
        };
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["span_id"], trace.span_id_hex().to_string());
    }

    proptest! {
        #[test]
        fn any_text_is_one_valid_json_line(text in any::<String>(), id in "[A-Za-z0-9._:-]{1,128}") {
            let lines = logged(|| {
                REQUEST_ID.sync_scope(id.as_str().into(), || {
                    tracing::info!(text = %text, debugged = ?text, "{text}");
                });
            });
            prop_assert_eq!(lines.len(), 1);
            prop_assert_eq!(lines[0]["fields"]["text"].as_str(), Some(text.as_str()));
            prop_assert_eq!(lines[0]["fields"]["message"].as_str(), Some(text.as_str()));
            let debugged = format!("{text:?}");
            prop_assert_eq!(lines[0]["fields"]["debugged"].as_str(), Some(debugged.as_str()));
            prop_assert_eq!(lines[0]["request_id"].as_str(), Some(id.as_str()));
        }
    }
}
