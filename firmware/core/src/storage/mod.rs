//! Storage on the head (DESIGN §6, issue 6 "External tools"): what mdadm,
//! LVM, e2fsprogs, exportfs and the kernel say, typed, and the planner that
//! decides how a RAID group is first set up and later assembled.
//!
//! Owns:
//! - the parsers of every tool output Opie reads (`mdadm`, `mdstat`, `lvm`,
//!   `exportfs`, `mounts`) and the on-disk signature probe (`probe`), each a
//!   pure function from text or bytes to a typed value or a [`ParseError`];
//! - the names Opie gives arrays, volume groups and volumes (`names`);
//! - the group planner (`plan`): observed state in, the next typed
//!   [`plan::Step`] out.
//!
//! Leaves to others: running the tools and reading devices is
//! `opie_sys::host` (the one `Host` trait); executing a plan step by step is
//! `opie_sys::storage_driver`; the fake host for tests is
//! `opie_testkit::fake_host`.
//!
//! Why the parsers live here and not in `opie-proto`: proto holds the
//! formats Opie itself defines and emits (NBD, lease, control frames,
//! records), each with an emitter and a round trip. These are other
//! programs' reports that Opie only reads, and their only consumer is the
//! planner in this module, whose inputs they are. Keeping them beside it
//! keeps the typed values (an `Examine`, a `Detail`) in one crate with the
//! decisions made on them; they are still pure and fuzzable.
//!
//! Every parser is tested on real output captured from a Debian trixie
//! guest (`testdata/storage/`, made by `tests/qemu/capture_storage_outputs.py`)
//! and on truncated and garbled variants: a clear error, never a panic.

pub mod exportfs;
pub mod lvm;
pub mod mdadm;
pub mod mdstat;
pub mod mounts;
pub mod names;
pub mod plan;
pub mod probe;

use thiserror::Error;

/// Why a tool's output could not be read. `tool` names the command whose
/// output it was, so a log line says which program surprised us.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The output was empty where the tool always prints something.
    #[error("{tool}: empty output")]
    Empty { tool: &'static str },
    /// A key or field every well-formed output carries is missing.
    #[error("{tool}: no {key} in output")]
    Missing { tool: &'static str, key: &'static str },
    /// A number did not parse (or overflowed 64 bits).
    #[error("{tool}: {what} is not a number: {value:?}")]
    BadNumber { tool: &'static str, what: &'static str, value: String },
    /// A line had a shape this parser does not know.
    #[error("{tool}: line {line}: cannot read {text:?}")]
    BadLine { tool: &'static str, line: usize, text: String },
}

/// Every storage parser on the same bytes (as text, lossily): the body of
/// the `storage_reports` cargo-fuzz target. A value or a `ParseError`,
/// never a panic; nothing to round-trip, these formats are only read.
pub fn fuzz_parse_all(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = mdadm::parse_examine(&text);
    let _ = mdadm::parse_detail(&text);
    let _ = mdstat::parse(&text);
    let _ = lvm::parse_pvs(&text);
    let _ = lvm::parse_vgs(&text);
    let _ = lvm::parse_lvs(&text);
    let _ = exportfs::parse(&text);
    let _ = mounts::parse(&text);
    let _ = probe::probe(data);
}

/// Parses a decimal u64 for a parser's error reporting.
pub(crate) fn number(tool: &'static str, what: &'static str, value: &str) -> Result<u64, ParseError> {
    value.trim().parse::<u64>().map_err(|_| ParseError::BadNumber { tool, what, value: value.to_string() })
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Access to the captured outputs in `firmware/core/testdata/storage`.
    use std::path::PathBuf;

    pub fn path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/storage").join(name)
    }

    pub fn text(name: &str) -> String {
        std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("testdata {name}: {e}"))
    }

    pub fn bytes(name: &str) -> Vec<u8> {
        std::fs::read(path(name)).unwrap_or_else(|e| panic!("testdata {name}: {e}"))
    }

    /// Every prefix at a char boundary (lines cut anywhere), for truncation tests.
    pub fn prefixes(s: &str) -> impl Iterator<Item = &str> {
        (0..s.len()).filter(|i| s.is_char_boundary(*i)).map(move |i| &s[..i])
    }
}

#[cfg(test)]
mod garbled {
    //! Every parser on arbitrary text and on captured outputs with bytes
    //! replaced: a value or a `ParseError`, never a panic.
    use proptest::prelude::*;

    use super::testdata;

    const CAPTURES: [&str; 10] = [
        "examine-member.txt",
        "detail-clean.txt",
        "detail-reshape.txt",
        "mdstat-resync.txt",
        "mdstat-reshape.txt",
        "pvs.txt",
        "vgs-after-lv.txt",
        "lvs-snapshot.txt",
        "exportfs-v.txt",
        "proc-mounts.txt",
    ];

    fn all_parsers(text: &str) {
        super::fuzz_parse_all(text.as_bytes());
    }

    proptest! {
        #[test]
        fn arbitrary_text(text in "\\PC{0,400}") {
            all_parsers(&text);
        }

        #[test]
        fn captures_with_bytes_replaced(
            which in 0..CAPTURES.len(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(
                vec![b' ', b'\n', b'|', b'[', b']', b'(', b')', b'=', b':', b'/', b'%', b'0', b'9', b'\\', b'\t', b'x']
            )), 1..8),
        ) {
            let mut bytes = testdata::text(CAPTURES[which]).into_bytes();
            if bytes.is_empty() {
                return Ok(());
            }
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            all_parsers(&String::from_utf8_lossy(&bytes));
        }
    }
}
