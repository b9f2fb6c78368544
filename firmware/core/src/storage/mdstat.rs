//! `/proc/mdstat`: which arrays run, their health and any resync,
//! recovery or reshape in progress.
//!
//! Layout (kernel 6.12, captured in `testdata/storage/mdstat-*.txt`):
//!
//! ```text
//! Personalities : [raid6] [raid5] [raid4] [raid1]
//! md0 : active raid5 vdd[3] vdc[1] vdb[0]              name : state [(read-only)] level members
//!       94208 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [UU_]
//!       [>....................]  recovery =  4.3% (2052/47104) finish=0.3min speed=2052K/sec
//!       bitmap: 1/1 pages [4KB], 65536KB chunk
//!                                                      (blank line between arrays)
//! unused devices: <none>
//! ```
//!
//! Members are `name[slot]` with optional flags: `(F)` faulty, `(S)` spare,
//! `(W)` write-mostly, `(J)` journal, `(R)` replacement. An inactive array
//! has no level (`md0 : inactive vdb[0](S)`). The progress line names the
//! operation (`resync`, `recovery`, `reshape`, `check`, `repair`) or shows
//! `resync=DELAYED` / `resync=PENDING` when it waits.

use super::{ParseError, number};

const T: &str = "/proc/mdstat";

/// One member as mdstat lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdstatMember {
    /// Kernel name ("vdb", "nbd0"), without /dev.
    pub name: String,
    /// md's descriptor slot number (the `[n]`), not the raid role.
    pub slot: u32,
    pub faulty: bool,
    pub spare: bool,
}

/// A background operation and how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// "resync", "recovery", "reshape", "check", "repair".
    pub operation: String,
    /// Percent done (0.0-100.0); `None` while DELAYED or PENDING.
    pub percent: Option<f32>,
    /// (done, total) in KiB blocks, when shown.
    pub blocks: Option<(u64, u64)>,
    /// The kernel's estimate in minutes, when shown.
    pub finish_min: Option<f32>,
    /// KiB/s, when shown.
    pub speed_kib: Option<u64>,
}

/// One array's entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MdstatArray {
    /// "md0" (without /dev).
    pub name: String,
    pub active: bool,
    pub read_only: bool,
    /// "raid5", ...; `None` for an inactive array.
    pub level: Option<String>,
    pub members: Vec<MdstatMember>,
    /// Size in KiB blocks (the second line), when shown.
    pub blocks: Option<u64>,
    /// `[n/m]`: raid devices wanted and working, when shown.
    pub devices: Option<(u32, u32)>,
    /// `[UU_]` as text, when shown.
    pub health: Option<String>,
    pub progress: Option<Progress>,
}

impl MdstatArray {
    /// Running with fewer working devices than it wants.
    pub fn degraded(&self) -> bool {
        matches!(self.devices, Some((want, have)) if have < want)
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mdstat {
    pub personalities: Vec<String>,
    pub arrays: Vec<MdstatArray>,
}

impl Mdstat {
    pub fn array(&self, name: &str) -> Option<&MdstatArray> {
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        self.arrays.iter().find(|a| a.name == name)
    }
}

fn bad(line: usize, text: &str) -> ParseError {
    ParseError::BadLine { tool: T, line, text: text.to_string() }
}

fn parse_member(line: usize, text: &str, word: &str) -> Result<MdstatMember, ParseError> {
    let (name, rest) = word.split_once('[').ok_or_else(|| bad(line, text))?;
    let (slot, flags) = rest.split_once(']').ok_or_else(|| bad(line, text))?;
    if name.is_empty() {
        return Err(bad(line, text));
    }
    Ok(MdstatMember {
        name: name.to_string(),
        slot: u32::try_from(number(T, "member slot", slot)?).map_err(|_| bad(line, text))?,
        faulty: flags.contains("(F)"),
        spare: flags.contains("(S)"),
    })
}

/// `[3/2]` -> (3, 2).
fn parse_counts(word: &str) -> Option<(u32, u32)> {
    let inner = word.strip_prefix('[')?.strip_suffix(']')?;
    let (a, b) = inner.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn parse_progress(line: usize, text: &str) -> Result<Progress, ParseError> {
    let t = text.trim();
    // "resync=DELAYED" / "resync=PENDING"
    if let Some((op, state)) = t.split_once('=')
        && !op.contains(' ')
        && (state == "DELAYED" || state == "PENDING")
    {
        return Ok(Progress {
            operation: op.to_string(),
            percent: None,
            blocks: None,
            finish_min: None,
            speed_kib: None,
        });
    }
    // "[>....]  recovery =  4.3% (2052/47104) finish=0.3min speed=2052K/sec"
    let after_bar =
        t.strip_prefix('[').and_then(|r| r.split_once(']')).map(|(_, r)| r).ok_or_else(|| bad(line, text))?;
    let (op, rest) = after_bar.split_once('=').ok_or_else(|| bad(line, text))?;
    let op = op.trim();
    if op.is_empty() || op.contains(' ') {
        return Err(bad(line, text));
    }
    let mut words = rest.split_whitespace();
    let pct = words.next().and_then(|w| w.strip_suffix('%')).ok_or_else(|| bad(line, text))?;
    let percent: f32 = pct.parse().map_err(|_| bad(line, text))?;
    let mut p =
        Progress { operation: op.to_string(), percent: Some(percent), blocks: None, finish_min: None, speed_kib: None };
    for w in words {
        if let Some(b) = w.strip_prefix('(').and_then(|b| b.strip_suffix(')')) {
            let (d, tot) = b.split_once('/').ok_or_else(|| bad(line, text))?;
            p.blocks = Some((number(T, "progress blocks", d)?, number(T, "progress blocks", tot)?));
        } else if let Some(f) = w.strip_prefix("finish=").and_then(|f| f.strip_suffix("min")) {
            p.finish_min = Some(f.parse().map_err(|_| bad(line, text))?);
        } else if let Some(s) = w.strip_prefix("speed=").and_then(|s| s.strip_suffix("K/sec")) {
            p.speed_kib = Some(number(T, "speed", s)?);
        }
    }
    Ok(p)
}

/// Parses the whole of `/proc/mdstat`.
pub fn parse(text: &str) -> Result<Mdstat, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty { tool: T });
    }
    let mut out = Mdstat::default();
    let mut saw_unused = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if let Some(p) = raw.strip_prefix("Personalities :") {
            out.personalities = p.split_whitespace().map(|w| w.trim_matches(['[', ']']).to_string()).collect();
            continue;
        }
        if raw.starts_with("unused devices:") {
            saw_unused = true;
            continue;
        }
        if !raw.starts_with(char::is_whitespace) {
            // "md0 : active raid5 vdd[3] vdc[1] vdb[0]"
            let (name, rest) = raw.split_once(" : ").ok_or_else(|| bad(line, raw))?;
            let mut words = rest.split_whitespace().peekable();
            let state = words.next().ok_or_else(|| bad(line, raw))?;
            let active = match state {
                "active" => true,
                "inactive" => false,
                _ => return Err(bad(line, raw)),
            };
            let mut read_only = false;
            while let Some(w) = words.peek() {
                if w.starts_with('(') {
                    read_only |= w.contains("read-only");
                    words.next();
                } else {
                    break;
                }
            }
            let mut level = None;
            if let Some(w) = words.peek()
                && !w.contains('[')
            {
                level = Some(w.to_string());
                words.next();
            }
            let members = words.map(|w| parse_member(line, raw, w)).collect::<Result<Vec<_>, _>>()?;
            out.arrays.push(MdstatArray {
                name: name.trim().to_string(),
                active,
                read_only,
                level,
                members,
                blocks: None,
                devices: None,
                health: None,
                progress: None,
            });
            continue;
        }
        // Indented lines belong to the last array.
        let array = out.arrays.last_mut().ok_or_else(|| bad(line, raw))?;
        let t = raw.trim();
        if t.starts_with("bitmap:") {
            continue;
        }
        if t.starts_with('[') || t.contains("=DELAYED") || t.contains("=PENDING") {
            array.progress = Some(parse_progress(line, raw)?);
            continue;
        }
        let mut words = t.split_whitespace();
        let first = words.next().unwrap_or("");
        if words.next() == Some("blocks") {
            array.blocks = Some(number(T, "array blocks", first)?);
            for w in t.split_whitespace() {
                if let Some(c) = parse_counts(w) {
                    array.devices = Some(c);
                } else if w.starts_with('[')
                    && w.ends_with(']')
                    && w.len() > 2
                    && w[1..w.len() - 1].bytes().all(|b| b == b'U' || b == b'_')
                {
                    array.health = Some(w[1..w.len() - 1].to_string());
                }
            }
            continue;
        }
        // Other detail lines (e.g. "unused" continuation, ppl, journal) are
        // not needed for decisions and are skipped.
    }
    if !saw_unused {
        // The kernel always ends with "unused devices:"; without it the
        // read was cut short and the last array may be incomplete.
        return Err(ParseError::Missing { tool: T, key: "unused devices line" });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testdata;

    fn read(name: &str) -> Mdstat {
        parse(&testdata::text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn clean_array() {
        let m = read("mdstat-clean.txt");
        assert_eq!(m.personalities, ["raid6", "raid5", "raid4", "raid1"]);
        let a = m.array("/dev/md0").expect("md0");
        assert!(a.active && !a.read_only && !a.degraded());
        assert_eq!(a.level.as_deref(), Some("raid5"));
        let names: Vec<_> = a.members.iter().map(|m| (m.name.as_str(), m.slot)).collect();
        assert_eq!(names, [("vdd", 3), ("vdc", 1), ("vdb", 0)]);
        assert_eq!(a.blocks, Some(94208));
        assert_eq!(a.devices, Some((3, 3)));
        assert_eq!(a.health.as_deref(), Some("UUU"));
        assert_eq!(a.progress, None);
    }

    #[test]
    fn initial_sync_of_a_new_raid5_is_a_recovery() {
        // md builds a new RAID5 degraded and recovers onto the last member.
        let a = read("mdstat-resync.txt").arrays.remove(0);
        assert!(a.degraded());
        let p = a.progress.expect("progress");
        assert_eq!(p.operation, "recovery");
        assert_eq!(p.percent, Some(3.2));
        assert_eq!(p.blocks, Some((1848, 47104)));
        assert_eq!(p.finish_min, Some(0.4));
        assert_eq!(p.speed_kib, Some(1848));
    }

    #[test]
    fn degraded_recovery_and_reshape() {
        let d = read("mdstat-degraded.txt").arrays.remove(0);
        assert!(d.degraded() && d.progress.is_none());
        assert_eq!(d.health.as_deref(), Some("UU_"));
        assert_eq!(d.members.len(), 2);
        let r = read("mdstat-recovery.txt").arrays.remove(0);
        assert_eq!(r.progress.as_ref().map(|p| p.operation.as_str()), Some("recovery"));
        let s = read("mdstat-reshape.txt").arrays.remove(0);
        assert_eq!(s.devices, Some((4, 4)));
        assert_eq!(s.progress.as_ref().map(|p| p.operation.as_str()), Some("reshape"));
        let after = read("mdstat-after-reshape.txt").arrays.remove(0);
        assert_eq!((after.blocks, after.devices, after.progress), (Some(141312), Some((4, 4)), None));
        assert!(read("mdstat-empty.txt").arrays.is_empty());
    }

    #[test]
    fn captured_inactive_array() {
        // array_state "inactive": stopped, members kept, a whitespace-only line.
        let a = read("mdstat-inactive.txt").arrays.remove(0);
        assert!(!a.active && a.level.is_none());
        assert_eq!(a.members.len(), 3);
        assert_eq!((a.blocks, a.devices, a.progress), (Some(92160), None, None));
    }

    #[test]
    fn inactive_read_only_faulty_and_delayed_forms() {
        let text = "Personalities : [raid5]\n\
            md1 : inactive vdb[0](S) vdc[1](S)\n      65536 blocks super 1.2\n\n\
            md0 : active (auto-read-only) raid5 nbd2[2](F) nbd1[1] nbd0[0]\n\
            \x20     94208 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [UU_]\n\
            \x20       resync=DELAYED\n\nunused devices: <none>\n";
        let m = parse(text).expect("parses");
        let md1 = m.array("md1").expect("md1");
        assert!(!md1.active && md1.level.is_none() && md1.members.iter().all(|m| m.spare));
        let md0 = m.array("md0").expect("md0");
        assert!(md0.read_only && md0.degraded());
        assert!(md0.members[0].faulty && !md0.members[1].faulty);
        assert_eq!(md0.progress.as_ref().map(|p| (p.operation.as_str(), p.percent)), Some(("resync", None)));
    }

    #[test]
    fn truncated_and_garbled_never_panic_and_cuts_are_errors() {
        for name in ["mdstat-clean.txt", "mdstat-resync.txt", "mdstat-reshape.txt", "mdstat-degraded.txt"] {
            let text = testdata::text(name);
            for p in testdata::prefixes(&text) {
                // Any prefix that lost the final line is refused.
                if !p.contains("unused devices:") {
                    assert!(parse(p).is_err(), "{name}: accepted a cut at {}", p.len());
                }
            }
        }
        assert_eq!(parse(""), Err(ParseError::Empty { tool: T }));
        assert!(matches!(
            parse("md0 : exploding raid5 vdb[0]\nunused devices: <none>\n"),
            Err(ParseError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            parse("md0 : active raid5 vdb[x]\nunused devices: <none>\n"),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("      94208 blocks\nunused devices: <none>\n"),
            Err(ParseError::BadLine { line: 1, .. })
        ));
        assert!(parse("md0 : active raid5 vdb[0]\n      [==>..]  recovery = lots\nunused devices: <none>\n").is_err());
    }
}
