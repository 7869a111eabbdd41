//! Instants on the wire and at rest.
//!
//! At rest a [`Timestamp`] is INTEGER epoch milliseconds. On the wire it goes
//! out as ISO-8601 UTC with milliseconds (`2026-11-27T02:01:08.123Z`, what
//! `Date.prototype.toJSON` produces) and comes in as such a string or as epoch
//! milliseconds. Milliseconds always survive the round trip.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::{format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// JavaScript's `Date` holds instants within this many milliseconds of the
/// epoch; a date outside it could not come back to Auth.js as a `Date`.
pub const JS_DATE_LIMIT_MS: i64 = 8_640_000_000_000_000;

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn plus_secs(self, secs: u64) -> Self {
        Timestamp(self.0.saturating_add((secs as i64).saturating_mul(1000)))
    }

    /// Parses ISO-8601 / RFC 3339 text such as `2026-11-27T02:01:08.123Z`.
    pub fn parse_iso(text: &str) -> Option<Self> {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        Self::within_js_range((at.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// `Some` when a JavaScript `Date` can hold `ms`.
    pub fn within_js_range(ms: i64) -> Option<Self> {
        (-JS_DATE_LIMIT_MS..=JS_DATE_LIMIT_MS)
            .contains(&ms)
            .then_some(Timestamp(ms))
    }

    /// The form `Date.prototype.toJSON` gives: four-digit years, and the
    /// extended `±YYYYYY` form for years outside 0..=9999.
    pub fn to_iso(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
            // Unreachable for a timestamp that came in through the wire
            // (bounded to JavaScript's range); keep the number for the rest.
            return self.0.to_string();
        };
        let rest = at
            .format(format_description!(
                "[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .unwrap_or_default();
        match at.year() {
            year @ 0..=9999 => format!("{year:04}-{rest}"),
            year if year < 0 => format!("-{:06}-{rest}", -year),
            year => format!("+{year:06}-{rest}"),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_iso())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a date: an ISO-8601 string or epoch milliseconds, within JavaScript's \
                     Date range (±8.64e15 ms)",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_iso(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Timestamp::within_js_range(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(Timestamp::within_js_range)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                if v.is_finite() && v.fract() == 0.0 && v.abs() <= JS_DATE_LIMIT_MS as f64 {
                    Ok(Timestamp(v as i64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip_keeps_milliseconds() {
        let t = Timestamp::parse_iso("2026-11-27T02:01:08.123Z").unwrap();
        assert_eq!(t.millis() % 1000, 123);
        assert_eq!(t.to_iso(), "2026-11-27T02:01:08.123Z");
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = Timestamp::parse_iso("2026-11-27T03:01:08.5+01:00").unwrap();
        assert_eq!(t.to_iso(), "2026-11-27T02:01:08.500Z");
    }

    #[test]
    fn accepts_epoch_millis_and_rejects_garbage() {
        let t: Timestamp = serde_json::from_str("1764208868123").unwrap();
        assert_eq!(t.to_iso(), "2025-11-27T02:01:08.123Z");
        assert!(serde_json::from_str::<Timestamp>("\"next tuesday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("true").is_err());
    }

    #[test]
    fn dates_past_javascripts_range_are_refused() {
        assert!(serde_json::from_str::<Timestamp>("8640000000000000").is_ok());
        assert!(serde_json::from_str::<Timestamp>("-8640000000000000").is_ok());
        assert!(serde_json::from_str::<Timestamp>("8640000000000001").is_err());
        assert!(serde_json::from_str::<Timestamp>("-8640000000000001").is_err());
        assert!(serde_json::from_str::<Timestamp>("9e15").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"+275760-09-13T00:00:00.001Z\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"9999-12-31T23:59:59.999Z\"").is_ok());
    }

    #[test]
    fn years_past_9999_take_javascripts_extended_form() {
        assert_eq!(
            Timestamp::from_millis(8_640_000_000_000_000).to_iso(),
            "+275760-09-13T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(-8_640_000_000_000_000).to_iso(),
            "-271821-04-20T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(253_402_300_800_000).to_iso(),
            "+010000-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn before_1970_works() {
        let t = Timestamp::from_millis(-1);
        assert_eq!(t.to_iso(), "1969-12-31T23:59:59.999Z");
    }
}
