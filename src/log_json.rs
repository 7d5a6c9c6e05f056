//! Span fields for the JSON log, formatted straight to text.
//!
//! tracing-subscriber's `JsonFields` collects a span's fields into a map of
//! `serde_json::Value`s and serializes it, for every span: on the request
//! span, made for every request, that was a tenth of a cache hit. The JSON
//! event formatter re-parses whatever object text it stored, so the line
//! written is the same with these fields (sorted by name, as it sorts them);
//! only the object text is written here without the map in between.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    field::RecordFields,
    fmt::{FormatFields, FormattedFields, format::Writer},
};

/// The JSON log's span-field formatter: see the module's documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        writer.write_char('{')?;
        let mut object = Object {
            writer: &mut writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut object);
        object.result?;
        writer.write_char('}')
    }

    /// Fields recorded after the span was made: appended inside the object.
    /// A name recorded twice appears twice; the formatter's parse keeps the
    /// last, as `JsonFields` does.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if current.fields.pop() != Some('}') {
            current.fields.clear();
            return self.format_fields(current.as_writer(), fields);
        }
        let empty = current.fields == "{";
        let mut writer = current.as_writer();
        let mut object = Object {
            writer: &mut writer,
            empty,
            result: Ok(()),
        };
        fields.record(&mut object);
        let result = object.result;
        writer.write_char('}')?;
        result
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
pub fn write_str(writer: &mut impl Write, value: &str) -> fmt::Result {
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

    /// The lines a JSON subscriber writes for a span with these fields (one
    /// recorded after the span is made) and an event in it, with
    /// tracing-subscriber's own field formatter or with [`SpanFields`];
    /// timestamps cut off.
    fn lines(ours: bool, text: &str, number: i64, float: f64, later: &str) -> Vec<String> {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(move || writer.clone());
        let run = || {
            let span = tracing::info_span!(
                "request",
                text,
                shown = %text,
                debugged = ?text,
                number,
                float,
                flag = true,
                bytes = &b"ab"[..],
                r#type = "kind",
                later = tracing::field::Empty,
            );
            span.record("later", later);
            span.in_scope(|| {
                let inner = tracing::info_span!("inner");
                inner.in_scope(|| tracing::info!(number, "an event"));
            });
            span.record("text", "recorded again");
            span.in_scope(|| tracing::warn!("after"));
        };
        if ours {
            let subscriber = tracing_subscriber::registry().with(layer.fmt_fields(SpanFields));
            tracing::subscriber::with_default(subscriber, run);
        } else {
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, run);
        }
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["timestamp"] = serde_json::Value::Null;
                value.to_string()
            })
            .collect()
    }

    #[test]
    fn lines_are_the_same_as_with_the_subscribers_own_fields() {
        for text in [
            "plain",
            "",
            "quote \" back \\ nl \n tab \t nul \0 \u{1f}",
            "é ü 😀 \u{2028}",
        ] {
            let theirs = lines(false, text, -42, 0.1 + 0.2, "later");
            assert_eq!(theirs.len(), 2);
            assert_eq!(lines(true, text, -42, 0.1 + 0.2, "later"), theirs);
        }
        assert_eq!(
            lines(true, "x", i64::MIN, f64::NAN, "y"),
            lines(false, "x", i64::MIN, f64::NAN, "y")
        );
    }

    proptest! {
        #[test]
        fn any_text_makes_the_same_lines(
            text in any::<String>(),
            later in any::<String>(),
            number in any::<i64>(),
            // Not any f64: the formatter re-parses span fields with
            // serde_json, whose float parsing is not exact far from 1, and
            // `JsonFields` re-parses them once more when a field is recorded
            // later, so its own lines disagree with each other there.
            float in -1e6..1e6_f64,
        ) {
            prop_assert_eq!(
                lines(true, &text, number, float, &later),
                lines(false, &text, number, float, &later)
            );
        }

        #[test]
        fn escaped_text_reads_back_as_itself(text in any::<String>()) {
            let mut out = String::new();
            write_str(&mut out, &text).unwrap();
            prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text.clone());
            prop_assert_eq!(out, serde_json::to_string(&text).unwrap());
        }
    }
}
