//! The normalization rules (docs/api-guide.md) as small functions, so every route
//! turns upstream values into gateway values the same way:
//! string-or-number scalars, sentinel dates to `null`, `"1"`/`"0"` to
//! booleans, money as a two-place decimal string with a currency, zone-less
//! date-times read in a configured zone, status values in snake_case.

use std::{fmt, str::FromStr};

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, de};
use utoipa::ToSchema;

/// An upstream value that is not what its field promises. Becomes a 502:
/// the upstream answered, but not in a shape the gateway can vouch for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` is `{value}`, expected {expected}")]
pub struct NormalizeError {
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

type Result<T> = std::result::Result<T, NormalizeError>;

/// A scalar as HostBill-style upstreams send it: a string, a number, a
/// boolean or null, all read into text so each field decides what it means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loose(Option<String>);

impl Loose {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Some(s.into()))
    }

    pub fn null() -> Self {
        Self(None)
    }

    /// The raw text; `None` for null. `""` stays `""` here.
    pub fn raw(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text with sentinels removed: null, `""` and zero dates are `None`.
    fn meaningful(&self) -> Option<&str> {
        self.0
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.starts_with("0000-00-00"))
    }

    fn err(&self, field: &'static str, expected: &'static str) -> NormalizeError {
        NormalizeError {
            field,
            value: self.0.clone().unwrap_or_else(|| "null".into()),
            expected,
        }
    }

    /// Free text; `""` and null become `None`.
    pub fn text(&self) -> Option<String> {
        self.0
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// A required numeric id, as a positive integer.
    pub fn id(&self, field: &'static str) -> Result<i64> {
        self.opt_id(field)?
            .ok_or_else(|| self.err(field, "a positive integer id"))
    }

    /// An optional reference to another record: `"0"`, `""` and null mean none.
    pub fn opt_id(&self, field: &'static str) -> Result<Option<i64>> {
        match self.meaningful() {
            None | Some("0") => Ok(None),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(self.err(field, "a positive integer id")),
            },
        }
    }

    /// An integer count or period.
    pub fn int(&self, field: &'static str) -> Result<Option<i64>> {
        match self.meaningful() {
            None => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .or_else(|_| {
                    // "1.00" style integers.
                    Decimal::from_str(s)
                        .ok()
                        .filter(|d| d.fract().is_zero())
                        .and_then(|d| i64::try_from(d).ok())
                        .ok_or(())
                })
                .map(Some)
                .map_err(|()| self.err(field, "an integer")),
        }
    }

    /// A decimal quantity or rate, as a string without float rounding.
    pub fn decimal(&self, field: &'static str) -> Result<Option<Decimal>> {
        match self.meaningful() {
            None => Ok(None),
            Some(s) => parse_decimal(s)
                .map(|d| Some(d.normalize()))
                .ok_or_else(|| self.err(field, "a decimal number")),
        }
    }

    /// Money in `currency`; `""` and null become `None`.
    pub fn money(&self, field: &'static str, currency: &str) -> Result<Option<Money>> {
        match self.meaningful() {
            None => Ok(None),
            Some(s) => parse_decimal(s)
                .map(|d| Some(Money::new(d, currency)))
                .ok_or_else(|| self.err(field, "a decimal amount")),
        }
    }

    /// A `YYYY-MM-DD` date; zero dates and `""` become `None`. A date-time
    /// where a date is expected keeps its date.
    pub fn date(&self, field: &'static str) -> Result<Option<NaiveDate>> {
        match self.meaningful() {
            None => Ok(None),
            Some(s) => NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                .map(Some)
                .map_err(|_| self.err(field, "a YYYY-MM-DD date")),
        }
    }

    /// A zone-less `YYYY-MM-DD HH:MM:SS` read in `zone`, as RFC 3339 with its
    /// offset. Zero dates and `""` become `None`; a bare date is midnight.
    pub fn datetime(&self, field: &'static str, zone: Tz) -> Result<Option<DateTime<FixedOffset>>> {
        let Some(s) = self.meaningful() else {
            return Ok(None);
        };
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
            .or_else(|_| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(Default::default()))
            })
            .map_err(|_| self.err(field, "a YYYY-MM-DD HH:MM:SS date-time"))?;
        Ok(Some(in_zone(naive, zone)))
    }

    /// A `"1"`/`"0"` flag; `""` and null become `None`.
    pub fn flag(&self, field: &'static str) -> Result<Option<bool>> {
        match self.meaningful() {
            None => Ok(None),
            Some("1") => Ok(Some(true)),
            Some("0") => Ok(Some(false)),
            Some(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("yes") => {
                Ok(Some(true))
            }
            Some(s) if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("no") => {
                Ok(Some(false))
            }
            Some(_) => Err(self.err(field, "a 1/0 flag")),
        }
    }

    /// A status value in snake_case; an unknown value passes through, lower-cased.
    pub fn status(&self) -> Option<String> {
        self.meaningful().map(status)
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Loose;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Loose, E> {
                Ok(Loose::new(v))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Loose, E> {
                Ok(Loose(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Loose, E> {
                Ok(Loose(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Loose, E> {
                Ok(Loose(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Loose, E> {
                Ok(Loose(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Loose, E> {
                Ok(Loose::new(if v { "1" } else { "0" }))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Loose, E> {
                Ok(Loose(None))
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<Loose, E> {
                Ok(Loose(None))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn parse_decimal(s: &str) -> Option<Decimal> {
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// A zone-less local time in `zone`. In a DST gap (a time that never
/// happened) the clock is read one hour later; in an overlap, the earlier.
pub fn in_zone(naive: NaiveDateTime, zone: Tz) -> DateTime<FixedOffset> {
    let local = match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
        LocalResult::None => {
            let later = naive.checked_add_signed(chrono::TimeDelta::hours(1));
            match later.map(|later| zone.from_local_datetime(&later)) {
                Some(LocalResult::Single(t) | LocalResult::Ambiguous(t, _)) => t,
                _ => zone.from_utc_datetime(&naive),
            }
        }
    };
    local.fixed_offset()
}

/// Serializes a date-time as RFC 3339 with a numeric offset (`+00:00`, never
/// `Z`), whole seconds, so every date-time of the API looks alike.
pub fn rfc3339<S: serde::Serializer>(
    value: &DateTime<FixedOffset>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
}

/// [`rfc3339`] for optional date-times; `None` is `null`.
pub fn opt_rfc3339<S: serde::Serializer>(
    value: &Option<DateTime<FixedOffset>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(v) => rfc3339(v, s),
        None => s.serialize_none(),
    }
}

/// `"Active"` → `"active"`, `"Payment Pending"` → `"payment_pending"`,
/// `"In-Progress"` → `"in_progress"`.
pub fn status(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Upstream lists with blank entries (a 4th nameserver of `""`) lose them.
pub fn non_empty(values: &[Loose]) -> Vec<String> {
    values
        .iter()
        .filter_map(Loose::text)
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// An amount of money: a decimal string with two places and its currency,
/// never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"amount": "58.50", "currency": "USD"}))]
pub struct Money {
    /// Two decimal places, e.g. `"58.50"`; negative for amounts owed back.
    #[schema(pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "58.50")]
    pub amount: String,
    /// ISO 4217 code.
    #[schema(example = "USD", min_length = 3, max_length = 3)]
    pub currency: String,
}

impl Money {
    pub fn new(amount: Decimal, currency: &str) -> Self {
        let rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        Self {
            amount: format!("{rounded:.2}"),
            currency: currency.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &str) -> Loose {
        serde_json::from_str(v).unwrap()
    }

    #[test]
    fn loose_reads_strings_numbers_booleans_and_null() {
        assert_eq!(json(r#""58.50""#).raw(), Some("58.50"));
        assert_eq!(json("58.5").raw(), Some("58.5"));
        assert_eq!(json("20408").raw(), Some("20408"));
        assert_eq!(json("true").raw(), Some("1"));
        assert_eq!(json("null").raw(), None);
        assert!(serde_json::from_str::<Loose>("[1]").is_err());
    }

    #[test]
    fn money_is_two_places_whatever_the_upstream_sent() {
        for (input, expected) in [
            (r#""58.50""#, "58.50"),
            ("58.5", "58.50"),
            ("0", "0.00"),
            (r#""0.0000""#, "0.00"),
            (r#""10.005""#, "10.01"),
            (r#""-3.2""#, "-3.20"),
            (r#""1234567.891""#, "1234567.89"),
        ] {
            let m = json(input).money("total", "USD").unwrap().unwrap();
            assert_eq!(m.amount, expected, "{input}");
            assert_eq!(m.currency, "USD");
        }
        assert_eq!(json(r#""""#).money("total", "USD").unwrap(), None);
        assert_eq!(json("null").money("total", "USD").unwrap(), None);
        let err = json(r#""ten""#).money("total", "USD").unwrap_err();
        assert_eq!(err.field, "total");
    }

    #[test]
    fn sentinel_dates_become_none() {
        for sentinel in [
            r#""0000-00-00""#,
            r#""0000-00-00 00:00:00""#,
            r#""""#,
            "null",
        ] {
            assert_eq!(json(sentinel).date("d").unwrap(), None, "{sentinel}");
            assert_eq!(
                json(sentinel).datetime("d", Tz::UTC).unwrap(),
                None,
                "{sentinel}"
            );
        }
    }

    #[test]
    fn dates_parse_and_bad_dates_name_their_field() {
        assert_eq!(
            json(r#""2015-03-16""#).date("created_on").unwrap(),
            NaiveDate::from_ymd_opt(2015, 3, 16)
        );
        assert_eq!(
            json(r#""2015-09-10 13:13:37""#).date("paid_on").unwrap(),
            NaiveDate::from_ymd_opt(2015, 9, 10)
        );
        let err = json(r#""2015-02-30""#).date("created_on").unwrap_err();
        assert_eq!(err.field, "created_on");
        assert!(json(r#""yesterday""#).date("x").is_err());
    }

    #[test]
    fn datetimes_are_read_in_the_configured_zone() {
        let summer = json(r#""2015-09-17 09:00:20""#)
            .datetime("last_login_at", chrono_tz::Europe::Stockholm)
            .unwrap()
            .unwrap();
        assert_eq!(summer.to_rfc3339(), "2015-09-17T09:00:20+02:00");
        let winter = json(r#""2015-01-17 09:00:20""#)
            .datetime("x", chrono_tz::Europe::Stockholm)
            .unwrap()
            .unwrap();
        assert_eq!(winter.to_rfc3339(), "2015-01-17T09:00:20+01:00");
        let utc = json(r#""2015-01-17 09:00:20""#)
            .datetime("x", Tz::UTC)
            .unwrap()
            .unwrap();
        assert_eq!(utc.to_rfc3339(), "2015-01-17T09:00:20+00:00");
        assert!(json(r#""17/01/2015""#).datetime("x", Tz::UTC).is_err());
    }

    #[test]
    fn datetimes_in_a_dst_gap_or_overlap_still_resolve() {
        // 2021-03-28 02:30 never happened in Stockholm; 2021-10-31 02:30 happened twice.
        let gap = json(r#""2021-03-28 02:30:00""#)
            .datetime("x", chrono_tz::Europe::Stockholm)
            .unwrap()
            .unwrap();
        assert_eq!(gap.to_rfc3339(), "2021-03-28T03:30:00+02:00");
        let overlap = json(r#""2021-10-31 02:30:00""#)
            .datetime("x", chrono_tz::Europe::Stockholm)
            .unwrap()
            .unwrap();
        assert_eq!(overlap.to_rfc3339(), "2021-10-31T02:30:00+02:00");
    }

    #[test]
    fn flags_become_booleans() {
        assert_eq!(json(r#""1""#).flag("autorenew").unwrap(), Some(true));
        assert_eq!(json(r#""0""#).flag("autorenew").unwrap(), Some(false));
        assert_eq!(json("1").flag("autorenew").unwrap(), Some(true));
        assert_eq!(json("false").flag("autorenew").unwrap(), Some(false));
        assert_eq!(json(r#""""#).flag("autorenew").unwrap(), None);
        assert_eq!(
            json(r#""2""#).flag("autorenew").unwrap_err().field,
            "autorenew"
        );
    }

    #[test]
    fn statuses_become_snake_case_and_unknown_ones_pass_through() {
        assert_eq!(status("Active"), "active");
        assert_eq!(status("Payment Pending"), "payment_pending");
        assert_eq!(status("In-Progress"), "in_progress");
        assert_eq!(status(" Client-Reply "), "client_reply");
        assert_eq!(status("Fraud"), "fraud");
        assert_eq!(status("ÖPPEN"), "öppen");
        assert_eq!(json(r#""""#).status(), None);
    }

    #[test]
    fn ids_are_positive_integers_and_zero_references_are_none() {
        assert_eq!(json(r#""20408""#).id("id").unwrap(), 20408);
        assert_eq!(json("548").id("id").unwrap(), 548);
        assert!(json(r#""abc""#).id("id").is_err());
        assert!(json(r#""-1""#).id("id").is_err());
        assert!(json(r#""0""#).id("id").is_err());
        assert_eq!(json(r#""0""#).opt_id("parent_id").unwrap(), None);
        assert_eq!(json("null").opt_id("parent_id").unwrap(), None);
        assert_eq!(json(r#""7""#).opt_id("parent_id").unwrap(), Some(7));
    }

    #[test]
    fn integers_and_decimals_keep_their_value() {
        assert_eq!(json(r#""322""#).int("days").unwrap(), Some(322));
        assert_eq!(json(r#""1.00""#).int("qty").unwrap(), Some(1));
        assert!(json(r#""1.5""#).int("qty").is_err());
        assert_eq!(
            json("22").decimal("rate").unwrap().unwrap().to_string(),
            "22"
        );
        assert_eq!(
            json(r#""1.50""#)
                .decimal("qty")
                .unwrap()
                .unwrap()
                .to_string(),
            "1.5"
        );
    }

    #[test]
    fn blank_list_entries_are_dropped() {
        let ns: Vec<Loose> =
            serde_json::from_str(r#"["ns1.example.com","ns2.example.com","", " "]"#).unwrap();
        assert_eq!(non_empty(&ns), vec!["ns1.example.com", "ns2.example.com"]);
    }

    #[test]
    fn text_drops_empty_strings() {
        assert_eq!(json(r#""""#).text(), None);
        assert_eq!(json(r#""x""#).text().as_deref(), Some("x"));
        assert_eq!(json("null").text(), None);
    }
}
