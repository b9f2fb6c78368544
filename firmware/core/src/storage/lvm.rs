//! `pvs`, `vgs` and `lvs` reports.
//!
//! `opie_sys::host` runs them with fixed options and fields (the constants
//! below), so every line has the same columns:
//!
//! ```text
//! pvs --config 'log {command_names=0 prefix=""}' --noheadings --separator '|'
//!     --units b --nosuffix -o pv_name,vg_name,pv_size,pv_free
//! /dev/md0|opie_g1|92274688|16777216          (vg_name empty: PV in no VG)
//! vgs ... -o vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count
//! opie_g1|92274688|16777216|4194304|22|4
//! lvs ... -o lv_name,vg_name,lv_path,lv_size,lv_attr,origin
//! data|opie_g1|/dev/opie_g1/data|75497472|-wi-a-----|
//! snap|opie_g1|/dev/opie_g1/snap|4194304|swi-a-s---|data
//! ```
//!
//! Sizes are bytes. No LVM name can contain `|` (names are
//! `[a-zA-Z0-9+_.-]`), so splitting is exact. The `--config` override is
//! needed because the image's lvm.conf sets `log/command_names`, which
//! prefixes every output line with the command's name. An empty report
//! (no PVs, no VGs) is valid and parses to an empty list.

use super::{ParseError, number};

/// The options every report runs with (see the module header).
pub const REPORT_OPTIONS: [&str; 7] =
    ["--config", "log {command_names=0 prefix=\"\"}", "--noheadings", "--separator", "|", "--units", "b"];
/// Also passed: sizes as bare numbers.
pub const NO_SUFFIX: &str = "--nosuffix";
pub const PVS_FIELDS: &str = "pv_name,vg_name,pv_size,pv_free";
pub const VGS_FIELDS: &str = "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count";
pub const LVS_FIELDS: &str = "lv_name,vg_name,lv_path,lv_size,lv_attr,origin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    pub name: String,
    /// `None` when the PV belongs to no VG yet.
    pub vg: Option<String>,
    pub size: u64,
    pub free: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vg {
    pub name: String,
    pub size: u64,
    pub free: u64,
    pub extent_size: u64,
    pub extent_count: u64,
    pub free_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lv {
    pub name: String,
    pub vg: String,
    /// `/dev/<vg>/<lv>`.
    pub path: String,
    pub size: u64,
    /// The 10-character attribute string (`-wi-a-----`).
    pub attr: String,
    /// For a snapshot, the LV it is a snapshot of.
    pub origin: Option<String>,
}

impl Lv {
    /// Attribute 5 is the state: `a` when the LV is active (has a device node).
    pub fn active(&self) -> bool {
        self.attr.as_bytes().get(4) == Some(&b'a')
    }
    /// Attribute 1 is the volume type: `s` snapshot, `o` origin of one.
    pub fn is_snapshot(&self) -> bool {
        matches!(self.attr.as_bytes().first(), Some(b's' | b'S'))
    }
}

fn rows<'a>(tool: &'static str, text: &'a str, columns: usize) -> Result<Vec<(usize, Vec<&'a str>)>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() != columns || fields[0].is_empty() {
            return Err(ParseError::BadLine { tool, line: i + 1, text: line.to_string() });
        }
        out.push((i + 1, fields));
    }
    Ok(out)
}

fn opt(s: &str) -> Option<String> {
    if s.is_empty() { None } else { Some(s.to_string()) }
}

pub fn parse_pvs(text: &str) -> Result<Vec<Pv>, ParseError> {
    const T: &str = "pvs";
    rows(T, text, 4)?
        .into_iter()
        .map(|(_, f)| {
            Ok(Pv {
                name: f[0].to_string(),
                vg: opt(f[1]),
                size: number(T, "pv_size", f[2])?,
                free: number(T, "pv_free", f[3])?,
            })
        })
        .collect()
}

pub fn parse_vgs(text: &str) -> Result<Vec<Vg>, ParseError> {
    const T: &str = "vgs";
    rows(T, text, 6)?
        .into_iter()
        .map(|(line, f)| {
            let vg = Vg {
                name: f[0].to_string(),
                size: number(T, "vg_size", f[1])?,
                free: number(T, "vg_free", f[2])?,
                extent_size: number(T, "vg_extent_size", f[3])?,
                extent_count: number(T, "vg_extent_count", f[4])?,
                free_count: number(T, "vg_free_count", f[5])?,
            };
            if vg.free_count > vg.extent_count {
                return Err(ParseError::BadLine { tool: T, line, text: f.join("|") });
            }
            Ok(vg)
        })
        .collect()
}

pub fn parse_lvs(text: &str) -> Result<Vec<Lv>, ParseError> {
    const T: &str = "lvs";
    rows(T, text, 6)?
        .into_iter()
        .map(|(line, f)| {
            if f[4].len() < 5 {
                return Err(ParseError::BadLine { tool: T, line, text: f.join("|") });
            }
            Ok(Lv {
                name: f[0].to_string(),
                vg: f[1].to_string(),
                path: f[2].to_string(),
                size: number(T, "lv_size", f[3])?,
                attr: f[4].to_string(),
                origin: opt(f[5]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testdata;

    #[test]
    fn pvs_with_and_without_a_vg() {
        let p = parse_pvs(&testdata::text("pvs-novg.txt")).expect("parses");
        assert_eq!(p, [Pv { name: "/dev/md0".into(), vg: None, size: 96468992, free: 96468992 }]);
        let p = parse_pvs(&testdata::text("pvs.txt")).expect("parses");
        assert_eq!(p[0].vg.as_deref(), Some("opie_g1"));
        assert_eq!(p[0].free, 16777216);
    }

    #[test]
    fn vgs_before_and_after_the_data_volume() {
        assert_eq!(parse_vgs(&testdata::text("vgs-none.txt")).expect("parses"), []);
        let v = parse_vgs(&testdata::text("vgs.txt")).expect("parses");
        assert_eq!(
            v[0],
            Vg {
                name: "opie_g1".into(),
                size: 92274688,
                free: 92274688,
                extent_size: 4194304,
                extent_count: 22,
                free_count: 22
            }
        );
        let v = parse_vgs(&testdata::text("vgs-after-lv.txt")).expect("parses");
        assert_eq!((v[0].extent_count, v[0].free_count), (22, 4));
    }

    #[test]
    fn lvs_data_volume_and_snapshot() {
        assert_eq!(parse_lvs(&testdata::text("lvs-empty.txt")).expect("parses"), []);
        let l = parse_lvs(&testdata::text("lvs.txt")).expect("parses");
        assert_eq!(l[0].path, "/dev/opie_g1/data");
        assert_eq!(l[0].size, 75497472);
        assert!(l[0].active() && !l[0].is_snapshot());
        let l = parse_lvs(&testdata::text("lvs-snapshot.txt")).expect("parses");
        assert_eq!(l[1].name, "snap");
        assert!(l[1].is_snapshot());
        assert_eq!(l[1].origin.as_deref(), Some("data"));
        assert_eq!(l[0].origin, None);
    }

    #[test]
    fn truncated_and_garbled_reports_never_panic() {
        for name in ["pvs.txt", "vgs.txt", "lvs-snapshot.txt"] {
            let text = testdata::text(name);
            for p in testdata::prefixes(&text) {
                let _ = (parse_pvs(p), parse_vgs(p), parse_lvs(p));
            }
        }
        // A line cut mid-way has too few columns: refused, never half-read.
        let text = testdata::text("lvs.txt");
        assert!(matches!(parse_lvs(&text[..20]), Err(ParseError::BadLine { tool: "lvs", line: 1, .. })));
        assert!(matches!(
            parse_vgs("opie_g1|9|9|4|twenty|2\n"),
            Err(ParseError::BadNumber { what: "vg_extent_count", .. })
        ));
        assert!(matches!(parse_vgs("opie_g1|9|9|4|2|3\n"), Err(ParseError::BadLine { .. })));
        assert!(matches!(parse_pvs("  pvs  /dev/md0|opie_g1|1|1\n"), Ok(v) if v[0].name == "pvs  /dev/md0"));
    }
}
