//! Backup schedules: parsing, the next run, missed runs and the nominal
//! interval (issue 10 "Jobs", "Missed schedules").
//!
//! Text forms, case-insensitive:
//!
//! | text | meaning |
//! |---|---|
//! | `once` | one-time: runs when created ("run now"), never again |
//! | `daily 02:30` | every day at 02:30 local time |
//! | `weekly sun 03:00` | every Sunday at 03:00 local time |
//! | `cron 30 2 * * 1-5` | five cron fields (the `cron` word is optional) |
//!
//! Cron fields are minute (0–59), hour (0–23), day of month (1–31), month
//! (1–12 or `jan`…`dec`) and day of week (0–7 or `sun`…`sat`, 0 and 7 both
//! Sunday). Each is `*`, a value, a range `a-b`, or a list of those, with
//! an optional `/step` (`*/15`, `1-10/3`, `5/10` = 5 to the end by 10). As
//! in Vixie cron, when both day fields are restricted (neither starts with
//! `*`) a day matches if either matches; otherwise both must.
//!
//! Times are local wall-clock times in a [`Zone`] given by the caller.
//! Decisions at daylight-saving changes:
//!
//! - **Spring forward**: a time the clock skips (02:30 when clocks jump from
//!   02:00 to 03:00) runs once, at the instant of the jump (03:00 local).
//!   Several skipped cron times collapse into that one run.
//! - **Fall back**: a time the clock shows twice runs only at its first
//!   occurrence (daylight time); the repeated hour does not run again.
//! - A day that does not exist in a month (31 April, 29 February in a
//!   common year) is skipped, like cron. An expression that can never run
//!   (`0 0 31 2 *`) is refused when parsed.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::civil::{DAY, Date, HOUR, LocalTime, UnixTime, Weekday, Zone, days_in_month};

/// How far ahead [`next_after`] searches: 8 years and a bit, enough for a
/// 29 February across a century year that is not a leap year.
const SEARCH_DAYS: i64 = 366 * 8 + 2;
/// How far [`interval`] looks past its anchor for the longest gap.
const INTERVAL_WINDOW: i64 = 8 * DAY;
/// At most this many runs are examined by [`interval`].
const INTERVAL_MAX_RUNS: usize = 2048;

/// A wall-clock time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

/// One of the five cron fields, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

impl Field {
    const ALL: [Field; 5] = [Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek];

    /// Smallest and largest value written in this field.
    fn bounds(self) -> (u8, u8) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    fn name_value(self, text: &str) -> Option<u8> {
        const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
        match self {
            Field::Month => {
                let lower = text.to_ascii_lowercase();
                MONTHS.iter().position(|m| *m == lower).map(|i| i as u8 + 1)
            }
            Field::DayOfWeek => Weekday::from_name(text).map(Weekday::from_sunday),
            _ => None,
        }
    }
}

/// A schedule text that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// Nothing was given.
    #[error("empty schedule: expected once, daily HH:MM, weekly DAY HH:MM or a cron expression")]
    Empty,
    /// The first word is not a schedule kind and the text is not 5 fields.
    #[error("unknown schedule {0:?}: expected once, daily HH:MM, weekly DAY HH:MM or a cron expression")]
    UnknownKind(String),
    /// A kind was given the wrong number of words.
    #[error("{kind} schedule expects {expected}")]
    Arity { kind: &'static str, expected: &'static str },
    /// A time of day is not HH:MM between 00:00 and 23:59.
    #[error("time {0:?} is not HH:MM between 00:00 and 23:59")]
    BadTime(String),
    /// A weekday name is not one of mon…sun.
    #[error("weekday {0:?} is not one of mon, tue, wed, thu, fri, sat, sun")]
    BadWeekday(String),
    /// A cron expression does not have exactly five fields.
    #[error("cron expression has {0} fields; expected 5: minute hour day-of-month month day-of-week")]
    FieldCount(usize),
    /// One cron field cannot be parsed.
    #[error("cron {field} field {text:?}: {reason}")]
    BadField { field: Field, text: String, reason: String },
    /// The day-of-month field names no day that exists in the chosen months.
    #[error("cron day-of-month field {dom:?} names no day that exists in month field {month:?}")]
    NeverRuns { dom: String, month: String },
}

/// A parsed cron expression: one bit per allowed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bit `d` for day `d` (1–31).
    dom: u32,
    /// Bit `m` for month `m` (1–12).
    months: u16,
    /// Bit `d` for weekday `d`, Sunday 0.
    dow: u8,
    /// Both day fields restricted: a day matches if either matches.
    days_either: bool,
    dom_restricted: bool,
    dow_restricted: bool,
}

impl Cron {
    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month) == 0 {
            return false;
        }
        let dom = self.dom & (1 << date.day) != 0;
        let dow = self.dow & (1 << date.weekday().from_sunday()) != 0;
        if self.days_either { dom || dow } else { (dom || !self.dom_restricted) && (dow || !self.dow_restricted) }
    }
}

impl FromStr for Cron {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Cron, ScheduleError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError::FieldCount(fields.len()));
        }
        let mut bits = [0u64; 5];
        for (i, field) in Field::ALL.into_iter().enumerate() {
            bits[i] = parse_field(field, fields[i])?;
        }
        // Day of week 7 is Sunday.
        let dow = ((bits[4] | (bits[4] >> 7)) & 0x7f) as u8;
        let dom_restricted = !fields[2].starts_with('*');
        let dow_restricted = !fields[4].starts_with('*');
        let cron = Cron {
            minutes: bits[0],
            hours: bits[1] as u32,
            dom: bits[2] as u32,
            months: bits[3] as u16,
            dow,
            days_either: dom_restricted && dow_restricted,
            dom_restricted,
            dow_restricted,
        };
        if dom_restricted && !dow_restricted {
            // 2000 is a leap year: every month at its longest.
            let possible = (1..=12u8)
                .any(|m| cron.months & (1 << m) != 0 && (1..=days_in_month(2000, m)).any(|d| cron.dom & (1 << d) != 0));
            if !possible {
                return Err(ScheduleError::NeverRuns { dom: fields[2].to_string(), month: fields[3].to_string() });
            }
        }
        Ok(cron)
    }
}

/// Parses one cron field into a bit set of its allowed values.
fn parse_field(field: Field, text: &str) -> Result<u64, ScheduleError> {
    let bad = |reason: String| ScheduleError::BadField { field, text: text.to_string(), reason };
    let (lo, hi) = field.bounds();
    let value = |s: &str| -> Result<u8, ScheduleError> {
        let v = match s.parse::<u8>() {
            Ok(v) => v,
            Err(_) => field.name_value(s).ok_or_else(|| bad(format!("{s:?} is not a number or name")))?,
        };
        if v < lo || v > hi {
            return Err(bad(format!("{v} is outside {lo}-{hi}")));
        }
        Ok(v)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(bad("empty list item".to_string()));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u8 = s.parse().map_err(|_| bad(format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(bad("step must be at least 1".to_string()));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(bad(format!("range {a}-{b} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `5/10` means from 5 to the end by 10, as in Vixie cron.
            (a, if step.is_some() { hi } else { a })
        };
        let mut v = start;
        loop {
            bits |= 1 << v;
            match v.checked_add(step.unwrap_or(1)) {
                Some(next) if next <= end => v = next,
                _ => break,
            }
        }
    }
    Ok(bits)
}

/// When a backup job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// One-time: runs when created ("run now") and never again.
    Once,
    /// Every day at a local time.
    Daily(TimeOfDay),
    /// Every week on a weekday at a local time.
    Weekly(Weekday, TimeOfDay),
    /// A cron-like expression in local time.
    Cron(Cron),
}

fn parse_time(text: &str) -> Result<TimeOfDay, ScheduleError> {
    let bad = || ScheduleError::BadTime(text.to_string());
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let hour: u8 = h.parse().map_err(|_| bad())?;
    let minute: u8 = m.parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 {
        return Err(bad());
    }
    Ok(TimeOfDay { hour, minute })
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some(first) = words.first() else {
            return Err(ScheduleError::Empty);
        };
        match first.to_ascii_lowercase().as_str() {
            "once" => match words.len() {
                1 => Ok(Schedule::Once),
                _ => Err(ScheduleError::Arity { kind: "once", expected: "no arguments" }),
            },
            "daily" => match words[1..] {
                [t] => Ok(Schedule::Daily(parse_time(t)?)),
                _ => Err(ScheduleError::Arity { kind: "daily", expected: "one time, HH:MM" }),
            },
            "weekly" => match words[1..] {
                [d, t] => {
                    let day = Weekday::from_name(d).ok_or_else(|| ScheduleError::BadWeekday(d.to_string()))?;
                    Ok(Schedule::Weekly(day, parse_time(t)?))
                }
                _ => Err(ScheduleError::Arity {
                    kind: "weekly",
                    expected: "a weekday and a time, e.g. weekly sun 03:00",
                }),
            },
            "cron" => Ok(Schedule::Cron(words[1..].join(" ").parse()?)),
            _ if words.len() == 5 => Ok(Schedule::Cron(text.parse()?)),
            _ => Err(ScheduleError::UnknownKind(text.trim().to_string())),
        }
    }
}

/// The first run strictly after `after`, in `zone`'s local time; `None` for
/// a one-time schedule (and for none within eight years, which parsing
/// rules out).
pub fn next_after(schedule: &Schedule, after: UnixTime, zone: &Zone) -> Option<UnixTime> {
    let all_minutes = |t: TimeOfDay| (1u64 << t.minute, 1u32 << t.hour);
    let (minutes, hours) = match schedule {
        Schedule::Once => return None,
        Schedule::Daily(t) | Schedule::Weekly(_, t) => all_minutes(*t),
        Schedule::Cron(c) => (c.minutes, c.hours),
    };
    let day_ok = |d: Date| match schedule {
        Schedule::Weekly(w, _) => d.weekday() == *w,
        Schedule::Cron(c) => c.day_matches(d),
        _ => true,
    };
    // Candidates more than two hours of wall clock before `after` cannot
    // fall after it, whatever the DST shift; skip them without resolving.
    let floor = zone.to_naive(after) - 2 * HOUR;
    let first_day = floor.div_euclid(DAY);
    for day in first_day..first_day + SEARCH_DAYS {
        let date = Date::from_days(day);
        if !day_ok(date) {
            continue;
        }
        for hour in (0..24u8).filter(|h| hours & (1 << h) != 0) {
            if date.naive_at(hour, 59) < floor {
                continue;
            }
            for minute in (0..60u8).filter(|m| minutes & (1 << m) != 0) {
                let naive = date.naive_at(hour, minute);
                if naive < floor {
                    continue;
                }
                let at = match zone.resolve(naive) {
                    LocalTime::Unique(t) => t,
                    LocalTime::Gap { jump } => jump,
                    LocalTime::Repeated { first, .. } => first,
                };
                if at > after {
                    return Some(at);
                }
            }
        }
    }
    None
}

/// The nominal interval of a schedule, for the "has not succeeded within
/// twice its interval" alert: the longest gap between consecutive runs in
/// the eight days after `anchor` (at least one gap is always measured, so a
/// monthly expression gets about a month). `None` for a one-time schedule.
pub fn interval(schedule: &Schedule, anchor: UnixTime, zone: &Zone) -> Option<i64> {
    let mut prev = next_after(schedule, anchor, zone)?;
    let mut longest = None;
    for _ in 0..INTERVAL_MAX_RUNS {
        let Some(next) = next_after(schedule, prev, zone) else { break };
        longest = Some(longest.map_or(next.0 - prev.0, |l: i64| l.max(next.0 - prev.0)));
        if next.0 - anchor.0 > INTERVAL_WINDOW {
            break;
        }
        prev = next;
    }
    longest
}

/// What a job should do at start-up, given when it last started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// A run was due while the head was down (the earliest missed slot is
    /// given): run once now, however many slots were missed.
    RunNow { missed: UnixTime },
    /// Nothing was missed; the next run is at this time (`None`: never).
    Wait(Option<UnixTime>),
}

/// Decides whether a run was missed while the head was down. `last_start`
/// is the start of the job's last run, `None` if it never ran; then the
/// job's creation time is the reference. A one-time job that never ran is
/// a missed run.
pub fn on_startup(
    schedule: &Schedule,
    last_start: Option<UnixTime>,
    created: UnixTime,
    now: UnixTime,
    zone: &Zone,
) -> Startup {
    if matches!(schedule, Schedule::Once) {
        return match last_start {
            None => Startup::RunNow { missed: created },
            Some(_) => Startup::Wait(None),
        };
    }
    let reference = last_start.unwrap_or(created);
    match next_after(schedule, reference, zone) {
        Some(slot) if slot <= now => Startup::RunNow { missed: slot },
        _ => Startup::Wait(next_after(schedule, now, zone)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::civil::DstRule;
    use proptest::prelude::*;

    fn cet() -> Zone {
        Zone::new(3600, Some(DstRule::Eu)).expect("valid offset")
    }

    /// A UTC instant from "YYYY-MM-DD HH:MM".
    fn utc(text: &str) -> UnixTime {
        let n = |a: usize, b: usize| text[a..b].parse::<u8>().expect("digits");
        let year: i32 = text[0..4].parse().expect("year");
        let date = Date::new(year, n(5, 7), n(8, 10)).expect("date");
        UnixTime(date.naive_at(n(11, 13), n(14, 16)))
    }

    fn sched(text: &str) -> Schedule {
        text.parse().expect("valid schedule")
    }

    #[test]
    fn parses_good_schedules() {
        let t = |hour, minute| TimeOfDay { hour, minute };
        assert_eq!(sched("once"), Schedule::Once);
        assert_eq!(sched("daily 02:30"), Schedule::Daily(t(2, 30)));
        assert_eq!(sched("  DAILY 7:05 "), Schedule::Daily(t(7, 5)));
        assert_eq!(sched("weekly Sun 23:59"), Schedule::Weekly(Weekday::Sun, t(23, 59)));
        for good in [
            "* * * * *",
            "cron */15 2-4 * * *",
            "0 0 1,15 * *",
            "5/10 * * jan-mar mon-fri",
            "0 3 * * 7",
            "0 3 29 2 *",
            "0 0 31 * *",
            "59 23 31 12 0-7/2",
        ] {
            assert!(matches!(sched(good), Schedule::Cron(_)), "{good}");
        }
    }

    #[test]
    fn refuses_bad_schedules_naming_the_field() {
        let bad_field = |text: &str, want: Field| match text.parse::<Schedule>() {
            Err(ScheduleError::BadField { field, .. }) => assert_eq!(field, want, "{text}"),
            other => panic!("{text}: {other:?}"),
        };
        bad_field("60 * * * *", Field::Minute);
        bad_field("* 24 * * *", Field::Hour);
        bad_field("* * 0 * *", Field::DayOfMonth);
        bad_field("* * 32 * *", Field::DayOfMonth);
        bad_field("* * * 13 *", Field::Month);
        bad_field("* * * foo *", Field::Month);
        bad_field("* * * * 8", Field::DayOfWeek);
        bad_field("*/0 * * * *", Field::Minute);
        bad_field("5-1 * * * *", Field::Minute);
        bad_field("1,,2 * * * *", Field::Minute);
        bad_field("* */x * * *", Field::Hour);
        bad_field("* * * * -1", Field::DayOfWeek);

        let cases: [(&str, ScheduleError); 9] = [
            ("", ScheduleError::Empty),
            ("hourly", ScheduleError::UnknownKind("hourly".into())),
            ("daily", ScheduleError::Arity { kind: "daily", expected: "one time, HH:MM" }),
            ("daily 24:00", ScheduleError::BadTime("24:00".into())),
            ("daily 2:5", ScheduleError::BadTime("2:5".into())),
            ("daily 0230", ScheduleError::BadTime("0230".into())),
            ("weekly sunday 03:00", ScheduleError::BadWeekday("sunday".into())),
            ("cron * * * *", ScheduleError::FieldCount(4)),
            ("0 0 30,31 2 *", ScheduleError::NeverRuns { dom: "30,31".into(), month: "2".into() }),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Schedule>(), Err(want), "{text:?}");
        }
        let msg = "* * * 13 *".parse::<Schedule>().expect_err("bad").to_string();
        assert!(msg.contains("month") && msg.contains("13"), "{msg}");
    }

    #[test]
    fn daily_and_weekly_in_utc() {
        let z = Zone::UTC;
        let cases = [
            ("daily 02:30", "2026-11-25 01:00", "2026-11-25 02:30"),
            ("daily 02:30", "2026-11-25 02:30", "2026-11-26 02:30"),
            ("weekly sun 03:00", "2026-11-25 14:00", "2026-11-29 03:00"),
            ("weekly wed 03:00", "2026-11-25 02:00", "2026-11-25 03:00"),
            ("*/15 * * * *", "2026-11-25 14:07", "2026-11-25 14:15"),
            ("0 9 * * 1-5", "2026-11-27 10:00", "2026-11-30 09:00"),
            ("0 0 1 * *", "2026-12-15 00:00", "2027-01-01 00:00"),
            // Both day fields restricted: either matches (the 1st or a Monday).
            ("0 0 1 * mon", "2026-11-25 00:00", "2026-11-30 00:00"),
        ];
        for (s, after, want) in cases {
            assert_eq!(next_after(&sched(s), utc(after), &z), Some(utc(want)), "{s} after {after}");
        }
        assert_eq!(next_after(&Schedule::Once, utc("2026-11-25 00:00"), &z), None);
    }

    #[test]
    fn month_ends_and_leap_days() {
        let z = Zone::UTC;
        let cases = [
            // The 31st skips 30-day months and February.
            ("0 1 31 * *", "2026-03-31 02:00", "2026-05-31 01:00"),
            ("0 1 31 * *", "2026-01-31 02:00", "2026-03-31 01:00"),
            ("0 1 30 * *", "2026-01-30 02:00", "2026-03-30 01:00"),
            // 29 February: next leap year; 2100 is not one.
            ("0 0 29 2 *", "2026-01-01 00:00", "2028-02-29 00:00"),
            ("0 0 29 2 *", "2096-02-29 00:00", "2104-02-29 00:00"),
            ("0 0 29 2 *", "1999-03-01 00:00", "2000-02-29 00:00"),
            ("0 0 * 2 *", "2028-02-28 12:00", "2028-02-29 00:00"),
            ("0 0 * 2 *", "2027-02-28 12:00", "2028-02-01 00:00"),
            ("daily 23:59", "2026-12-31 23:59", "2027-01-01 23:59"),
        ];
        for (s, after, want) in cases {
            assert_eq!(next_after(&sched(s), utc(after), &z), Some(utc(want)), "{s} after {after}");
        }
    }

    #[test]
    fn fixed_offsets() {
        let tokyo = Zone::new(9 * 3600, None).expect("offset");
        let ny_std = Zone::new(-5 * 3600, None).expect("offset");
        let s = sched("daily 02:30");
        assert_eq!(next_after(&s, utc("2026-11-25 00:00"), &tokyo), Some(utc("2026-11-25 17:30")));
        assert_eq!(next_after(&s, utc("2026-11-25 00:00"), &ny_std), Some(utc("2026-11-25 07:30")));
        // Weekday is the local one: Monday 01:00 in Tokyo is Sunday in UTC.
        let w = sched("weekly mon 01:00");
        assert_eq!(next_after(&w, utc("2026-11-25 00:00"), &tokyo), Some(utc("2026-11-29 16:00")));
    }

    #[test]
    fn spring_forward_runs_once_at_the_jump() {
        // CET → CEST on 2026-03-29: 02:00 local becomes 03:00 (01:00 UTC).
        let z = cet();
        let s = sched("daily 02:30");
        let first = next_after(&s, utc("2026-03-28 12:00"), &z);
        assert_eq!(first, Some(utc("2026-03-29 01:00")), "runs at 03:00 CEST");
        let second = next_after(&s, utc("2026-03-29 01:00"), &z);
        assert_eq!(second, Some(utc("2026-03-30 00:30")), "then 02:30 CEST next day");
        // Every 15 minutes through the gap: 01:45 CET, then 03:00 CEST once.
        let q = sched("*/15 * * * *");
        let mut t = utc("2026-03-29 00:40");
        let mut runs = Vec::new();
        for _ in 0..3 {
            t = next_after(&q, t, &z).expect("runs");
            runs.push(t);
        }
        assert_eq!(runs, vec![utc("2026-03-29 00:45"), utc("2026-03-29 01:00"), utc("2026-03-29 01:15")]);
        // US Eastern: 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let et = Zone::new(-5 * 3600, Some(DstRule::Us)).expect("offset");
        assert_eq!(next_after(&s, utc("2026-03-07 12:00"), &et), Some(utc("2026-03-08 07:00")));
    }

    #[test]
    fn fall_back_runs_once() {
        // CEST → CET on 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC).
        let z = cet();
        let s = sched("daily 02:30");
        let first = next_after(&s, utc("2026-10-24 12:00"), &z).expect("runs");
        assert_eq!(first, utc("2026-10-25 00:30"), "first 02:30, in CEST");
        let second = next_after(&s, first, &z);
        assert_eq!(second, Some(utc("2026-10-26 01:30")), "not again at 02:30 CET");
        // Asked in the middle of the repeated hour, it still waits a day.
        assert_eq!(next_after(&s, utc("2026-10-25 01:10"), &z), Some(utc("2026-10-26 01:30")));
        // US Eastern: 2026-11-01 01:30 happens at 05:30 and 06:30 UTC.
        let et = Zone::new(-5 * 3600, Some(DstRule::Us)).expect("offset");
        let d = sched("daily 01:30");
        let first = next_after(&d, utc("2026-11-01 00:00"), &et).expect("runs");
        assert_eq!(first, utc("2026-11-01 05:30"));
        assert_eq!(next_after(&d, first, &et), Some(utc("2026-11-02 06:30")));
    }

    #[test]
    fn missed_runs_run_once() {
        let z = Zone::UTC;
        let s = sched("daily 02:30");
        // Down from Monday 01:00 to Thursday 09:00: three slots, one run.
        let last = Some(utc("2026-11-22 02:30"));
        assert_eq!(
            on_startup(&s, last, utc("2026-01-01 00:00"), utc("2026-11-26 09:00"), &z),
            Startup::RunNow { missed: utc("2026-11-23 02:30") }
        );
        // Restarted before the next slot: wait for it.
        assert_eq!(
            on_startup(&s, Some(utc("2026-11-25 02:30")), utc("2026-01-01 00:00"), utc("2026-11-25 09:00"), &z),
            Startup::Wait(Some(utc("2026-11-26 02:30")))
        );
        // Never ran: the creation time is the reference.
        assert_eq!(
            on_startup(&s, None, utc("2026-11-24 10:00"), utc("2026-11-25 09:00"), &z),
            Startup::RunNow { missed: utc("2026-11-25 02:30") }
        );
        assert_eq!(
            on_startup(&s, None, utc("2026-11-25 03:00"), utc("2026-11-25 09:00"), &z),
            Startup::Wait(Some(utc("2026-11-26 02:30")))
        );
        // A one-time job runs if it never did, and never again.
        let created = utc("2026-11-25 08:00");
        assert_eq!(
            on_startup(&Schedule::Once, None, created, utc("2026-11-25 09:00"), &z),
            Startup::RunNow { missed: created }
        );
        assert_eq!(
            on_startup(&Schedule::Once, Some(created), created, utc("2026-11-25 09:00"), &z),
            Startup::Wait(None)
        );
    }

    #[test]
    fn intervals() {
        let z = cet();
        let at = utc("2026-11-25 12:00");
        assert_eq!(interval(&sched("daily 02:30"), at, &z), Some(DAY));
        assert_eq!(interval(&sched("weekly sun 02:30"), at, &z), Some(7 * DAY));
        assert_eq!(interval(&sched("0 9 * * 1-5"), at, &z), Some(3 * DAY));
        assert_eq!(interval(&sched("*/10 * * * *"), at, &z), Some(600));
        assert_eq!(interval(&sched("0 0 1 * *"), at, &z), Some(31 * DAY));
        assert_eq!(interval(&Schedule::Once, at, &z), None);
        // Across fall-back the day is 25 hours long.
        assert_eq!(interval(&sched("daily 12:00"), utc("2026-10-24 00:00"), &z), Some(25 * HOUR));
    }

    /// One cron field as text, from a small grammar: `*`, `*/n`, `a`,
    /// `a-b`, `a-b/n`, or a two-item list.
    fn arb_field(lo: u8, hi: u8) -> impl Strategy<Value = String> {
        let item = (lo..=hi, lo..=hi, 1u8..=7, 0u8..4).prop_map(move |(a, b, step, kind)| {
            let (a, b) = (a.min(b), a.max(b));
            match kind {
                0 => format!("{a}"),
                1 => format!("{a}-{b}"),
                2 => format!("{a}-{b}/{step}"),
                _ => format!("*/{step}"),
            }
        });
        prop_oneof![Just("*".to_string()), item.clone(), (item.clone(), item).prop_map(|(x, y)| format!("{x},{y}")),]
    }

    fn arb_cron() -> impl Strategy<Value = String> {
        (arb_field(0, 59), arb_field(0, 23), arb_field(1, 31), arb_field(1, 12), arb_field(0, 7))
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    proptest! {
        /// In zones without DST, the next run is the first minute after
        /// `after` whose local time matches, checked by brute force.
        #[test]
        fn cron_next_is_the_first_matching_minute(
            text in arb_cron(),
            after in 1_577_836_800i64..2_208_988_800,
            offset_quarters in -48i32..=56,
        ) {
            let Ok(Schedule::Cron(cron)) = text.parse::<Schedule>() else {
                // Only impossible day/month combinations are refused.
                let refused = matches!(text.parse::<Schedule>(), Err(ScheduleError::NeverRuns { .. }));
                prop_assert!(refused, "refused: {}", text);
                return Ok(());
            };
            let zone = Zone::new(offset_quarters * 900, None).expect("offset in range");
            let matches = |t: i64| {
                let naive = zone.to_naive(UnixTime(t));
                let date = Date::from_days(naive.div_euclid(DAY));
                let secs = naive.rem_euclid(DAY);
                cron.day_matches(date)
                    && cron.hours & (1 << (secs / HOUR)) != 0
                    && cron.minutes & (1 << ((secs % HOUR) / 60)) != 0
            };
            let next = next_after(&Schedule::Cron(cron.clone()), UnixTime(after), &zone);
            let next = next.expect("a parsed expression runs within 8 years").0;
            prop_assert!(next > after);
            prop_assert_eq!(next % 60, 0);
            prop_assert!(matches(next), "{} does not match {}", UnixTime(next).stamp(), text);
            // Nothing matching was skipped (checked up to three days back).
            let first_minute = (after.div_euclid(60) + 1) * 60;
            let mut m = first_minute.max(next - 3 * DAY);
            while m < next {
                prop_assert!(!matches(m), "skipped {} for {}", UnixTime(m).stamp(), text);
                m += 60;
            }
        }

        /// Across a year of DST changes, a daily job runs exactly once per
        /// local day, at its time or (when the clock skips it) at the jump.
        #[test]
        fn daily_runs_once_per_local_day(
            hour in 0u8..24,
            minute in 0u8..60,
            start in 1_577_836_800i64..2_208_988_800,
            us in any::<bool>(),
        ) {
            let zone = if us {
                Zone::new(-5 * 3600, Some(DstRule::Us))
            } else {
                Zone::new(3600, Some(DstRule::Eu))
            }
            .expect("offset in range");
            let schedule = Schedule::Daily(TimeOfDay { hour, minute });
            let mut t = UnixTime(start);
            let mut last_day: Option<i64> = None;
            for _ in 0..370 {
                let next = next_after(&schedule, t, &zone).expect("daily runs");
                prop_assert!(next > t);
                let naive = zone.to_naive(next);
                let day = naive.div_euclid(DAY);
                if let Some(prev) = last_day {
                    prop_assert_eq!(day, prev + 1, "at {}", next.stamp());
                }
                let at = naive.rem_euclid(DAY);
                let want = i64::from(hour) * HOUR + i64::from(minute) * 60;
                // Either on time or, in a skipped hour, just after the jump.
                prop_assert!(at == want || (at > want && at - want <= HOUR), "at {}", next.stamp());
                last_day = Some(day);
                t = next;
            }
        }
    }
}
