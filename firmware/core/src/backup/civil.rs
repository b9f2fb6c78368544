//! Civil time for backup schedules: UTC instants, proleptic Gregorian dates
//! (Howard Hinnant's `days_from_civil` algorithm), ISO weeks, and time
//! zones given as data.
//!
//! A [`Zone`] is a standard offset from UTC plus an optional [`DstRule`].
//! Rules are northern-hemisphere "one hour ahead in summer" rules:
//!
//! - [`DstRule::Eu`]: from the last Sunday of March to the last Sunday of
//!   October, switching at 01:00 UTC in both directions;
//! - [`DstRule::Us`]: from the second Sunday of March at 02:00 local
//!   standard time to the first Sunday of November at 02:00 local daylight
//!   time.
//!
//! More rules are more variants of [`DstRule`] with their own
//! [`DstRule::window`]. The zone never comes from the system: the daemon
//! passes the administrator's setting in.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Seconds in a civil day (UTC has no leap seconds in Unix time).
pub const DAY: i64 = 86_400;
/// Seconds in an hour.
pub const HOUR: i64 = 3_600;
/// Largest accepted distance of a zone's offset from UTC.
pub const MAX_OFFSET: i32 = 18 * 3_600;

/// An instant: seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// This instant moved by `secs` (negative moves back).
    #[must_use]
    pub fn plus(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    /// The UTC date of this instant.
    pub fn utc_date(self) -> Date {
        Date::from_days(self.0.div_euclid(DAY))
    }

    /// `YYYY-MM-DDTHHMMSSZ`: a UTC stamp that sorts by time and is safe in
    /// a path (no colons).
    pub fn stamp(self) -> String {
        let d = self.utc_date();
        let s = self.0.rem_euclid(DAY);
        format!("{:04}-{:02}-{:02}T{:02}{:02}{:02}Z", d.year, d.month, d.day, s / HOUR, (s % HOUR) / 60, s % 60)
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weekday {
    Sun,
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
}

impl Weekday {
    /// All days, Sunday first (cron numbering: Sunday is 0).
    pub const ALL: [Weekday; 7] =
        [Weekday::Sun, Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat];

    /// Cron numbering: Sunday 0 … Saturday 6.
    pub fn from_sunday(self) -> u8 {
        self as u8
    }

    /// ISO numbering: Monday 1 … Sunday 7.
    pub fn iso(self) -> u8 {
        match self {
            Weekday::Sun => 7,
            other => other as u8,
        }
    }

    /// Parses a three-letter English name, any case.
    pub fn from_name(name: &str) -> Option<Weekday> {
        const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let lower = name.to_ascii_lowercase();
        NAMES.iter().position(|n| *n == lower).map(|i| Weekday::ALL[i])
    }
}

/// Whether `year` has a 29 February.
pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`; 0 for a month out of range.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A proleptic Gregorian calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// A date, if it exists (no 31 April, no 29 February in 2100).
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        (day >= 1 && day <= days_in_month(year, month)).then_some(Date { year, month, day })
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// The day of the week.
    pub fn weekday(self) -> Weekday {
        // 1970-01-01 was a Thursday.
        Weekday::ALL[(self.days() + 4).rem_euclid(7) as usize]
    }

    /// The ISO 8601 week: (week-numbering year, week 1–53). Weeks start on
    /// Monday; week 1 is the one holding the year's first Thursday.
    pub fn iso_week(self) -> (i32, u8) {
        let days = self.days();
        let thursday = Date::from_days(days - i64::from(self.weekday().iso()) + 4);
        let jan1 = Date { year: thursday.year, month: 1, day: 1 };
        let week = (thursday.days() - jan1.days()) / 7 + 1;
        (thursday.year, week as u8)
    }

    /// Seconds since the epoch of this date's midnight, read as if the
    /// local wall clock were UTC ("naive" local seconds).
    pub fn naive_at(self, hour: u8, minute: u8) -> i64 {
        self.days() * DAY + i64::from(hour) * HOUR + i64::from(minute) * 60
    }

    /// The last `weekday` of `month` in `year`.
    fn last_weekday(year: i32, month: u8, weekday: Weekday) -> Date {
        let last = Date { year, month, day: days_in_month(year, month) };
        let back = (i64::from(last.weekday().from_sunday()) - i64::from(weekday.from_sunday())).rem_euclid(7);
        Date::from_days(last.days() - back)
    }

    /// The `n`th (1-based) `weekday` of `month` in `year`.
    fn nth_weekday(year: i32, month: u8, weekday: Weekday, n: i64) -> Date {
        let first = Date { year, month, day: 1 };
        let ahead = (i64::from(weekday.from_sunday()) - i64::from(first.weekday().from_sunday())).rem_euclid(7);
        Date::from_days(first.days() + ahead + 7 * (n - 1))
    }
}

/// A daylight-saving rule: clocks one hour ahead of standard time inside a
/// yearly window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DstRule {
    /// European Union: last Sunday of March to last Sunday of October,
    /// 01:00 UTC.
    Eu,
    /// United States and Canada: second Sunday of March 02:00 standard
    /// time to first Sunday of November 02:00 daylight time.
    Us,
}

impl DstRule {
    /// The UTC instants `[start, end)` during which daylight time is in
    /// effect in `year`, for a zone whose standard offset is `std_offset`.
    pub fn window(self, year: i32, std_offset: i32) -> (UnixTime, UnixTime) {
        let std = i64::from(std_offset);
        match self {
            DstRule::Eu => (
                UnixTime(Date::last_weekday(year, 3, Weekday::Sun).naive_at(1, 0)),
                UnixTime(Date::last_weekday(year, 10, Weekday::Sun).naive_at(1, 0)),
            ),
            DstRule::Us => (
                UnixTime(Date::nth_weekday(year, 3, Weekday::Sun, 2).naive_at(2, 0) - std),
                UnixTime(Date::nth_weekday(year, 11, Weekday::Sun, 1).naive_at(2, 0) - std - HOUR),
            ),
        }
    }
}

/// A zone setting that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ZoneError {
    /// The offset is more than 18 hours from UTC.
    #[error("zone offset {0} s is more than 18 hours from UTC")]
    OffsetOutOfRange(i32),
}

/// A time zone: standard offset east of UTC plus an optional DST rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    std_offset: i32,
    dst: Option<DstRule>,
}

/// Where a local wall-clock time falls in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTime {
    /// Exactly one instant shows this wall-clock time.
    Unique(UnixTime),
    /// The clock skips this time (spring forward); `jump` is the instant
    /// the clock jumps over it.
    Gap { jump: UnixTime },
    /// The clock shows this time twice (fall back), first in daylight time.
    Repeated { first: UnixTime, second: UnixTime },
}

impl Zone {
    /// Coordinated Universal Time.
    pub const UTC: Zone = Zone { std_offset: 0, dst: None };

    /// A zone `offset` seconds east of UTC, with DST following `dst`.
    pub fn new(offset: i32, dst: Option<DstRule>) -> Result<Zone, ZoneError> {
        if offset.abs() > MAX_OFFSET {
            return Err(ZoneError::OffsetOutOfRange(offset));
        }
        Ok(Zone { std_offset: offset, dst })
    }

    /// Offset east of UTC, in seconds, in effect at `t`.
    pub fn offset_at(&self, t: UnixTime) -> i32 {
        match self.dst {
            None => self.std_offset,
            Some(rule) => {
                let year = t.plus(i64::from(self.std_offset)).utc_date().year;
                let (start, end) = rule.window(year, self.std_offset);
                if start <= t && t < end { self.std_offset + HOUR as i32 } else { self.std_offset }
            }
        }
    }

    /// Naive local seconds (the wall clock read as UTC) at `t`.
    pub fn to_naive(&self, t: UnixTime) -> i64 {
        t.0 + i64::from(self.offset_at(t))
    }

    /// The local date at `t`.
    pub fn date_at(&self, t: UnixTime) -> Date {
        Date::from_days(self.to_naive(t).div_euclid(DAY))
    }

    /// The instant(s) showing the wall-clock time `naive` (local seconds
    /// read as UTC).
    pub fn resolve(&self, naive: i64) -> LocalTime {
        let std = i64::from(self.std_offset);
        let Some(rule) = self.dst else {
            return LocalTime::Unique(UnixTime(naive - std));
        };
        let as_std = UnixTime(naive - std);
        let as_dst = UnixTime(naive - std - HOUR);
        let std_ok = i64::from(self.offset_at(as_std)) == std;
        let dst_ok = i64::from(self.offset_at(as_dst)) == std + HOUR;
        match (dst_ok, std_ok) {
            (true, true) => LocalTime::Repeated { first: as_dst, second: as_std },
            (true, false) => LocalTime::Unique(as_dst),
            (false, true) => LocalTime::Unique(as_std),
            (false, false) => {
                let year = Date::from_days(naive.div_euclid(DAY)).year;
                LocalTime::Gap { jump: rule.window(year, self.std_offset).0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_known_values() {
        assert_eq!(Date::new(1970, 1, 1).map(Date::days), Some(0));
        assert_eq!(Date::new(2000, 3, 1).map(Date::days), Some(11_017));
        for days in -800_000..800_000i64 {
            if days % 997 == 0 {
                assert_eq!(Date::from_days(days).days(), days);
            }
        }
        assert_eq!(Date::new(2024, 2, 29).map(Date::weekday), Some(Weekday::Thu));
        assert_eq!(Date::new(2100, 2, 29), None);
        assert!(Date::new(2000, 2, 29).is_some());
        assert_eq!(Date::new(2026, 4, 31), None);
    }

    #[test]
    fn iso_weeks() {
        let cases = [
            ((2021, 1, 3), (2020, 53)),
            ((2021, 1, 4), (2021, 1)),
            ((2024, 12, 30), (2025, 1)),
            ((2026, 11, 25), (2026, 48)),
            ((2027, 1, 1), (2026, 53)),
        ];
        for ((y, m, d), want) in cases {
            assert_eq!(Date::new(y, m, d).map(Date::iso_week), Some(want), "{y}-{m}-{d}");
        }
    }

    #[test]
    fn dst_windows() {
        // EU 2026: 29 March 01:00 UTC to 25 October 01:00 UTC.
        let (s, e) = DstRule::Eu.window(2026, 3600);
        assert_eq!(s.stamp(), "2026-03-29T010000Z");
        assert_eq!(e.stamp(), "2026-10-25T010000Z");
        // US Eastern 2026: 8 March 07:00 UTC to 1 November 06:00 UTC.
        let (s, e) = DstRule::Us.window(2026, -5 * 3600);
        assert_eq!(s.stamp(), "2026-03-08T070000Z");
        assert_eq!(e.stamp(), "2026-11-01T060000Z");
    }

    #[test]
    fn resolve_gap_and_repeat() {
        let cet = Zone::new(3600, Some(DstRule::Eu)).expect("valid offset");
        let spring = Date::new(2026, 3, 29).expect("date");
        assert_eq!(cet.resolve(spring.naive_at(2, 30)), LocalTime::Gap { jump: UnixTime(spring.naive_at(1, 0)) });
        assert_eq!(cet.resolve(spring.naive_at(3, 0)), LocalTime::Unique(UnixTime(spring.naive_at(1, 0))));
        let fall = Date::new(2026, 10, 25).expect("date");
        assert_eq!(
            cet.resolve(fall.naive_at(2, 30)),
            LocalTime::Repeated { first: UnixTime(fall.naive_at(0, 30)), second: UnixTime(fall.naive_at(1, 30)) }
        );
        assert_eq!(Zone::new(19 * 3600, None), Err(ZoneError::OffsetOutOfRange(19 * 3600)));
    }
}
