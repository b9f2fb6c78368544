//! `/proc/mounts` (or `/proc/self/mounts`): what is mounted where.
//!
//! One mount per line, six space-separated fields (captured in
//! `testdata/storage/proc-mounts.txt`):
//!
//! ```text
//! /dev/opie_g1/data /srv/g1 ext4 rw,relatime,stripe=1024 0 0
//! source            target  type options               dump pass
//! ```
//!
//! Spaces, tabs, newlines and backslashes inside a field are written as
//! octal escapes (`\040`, `\011`, `\012`, `\134`) and decoded here.

use super::ParseError;

const T: &str = "/proc/mounts";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: Vec<String>,
}

impl Mount {
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

fn unescape(line: usize, raw: &str, field: &str) -> Result<String, ParseError> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let oct =
                b.get(i + 1..i + 4).ok_or_else(|| ParseError::BadLine { tool: T, line, text: raw.to_string() })?;
            if !oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                return Err(ParseError::BadLine { tool: T, line, text: raw.to_string() });
            }
            let v = oct.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(u8::try_from(v).map_err(|_| ParseError::BadLine { tool: T, line, text: raw.to_string() })?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ParseError::BadLine { tool: T, line, text: raw.to_string() })
}

pub fn parse(text: &str) -> Result<Vec<Mount>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = raw.split(' ').collect();
        if f.len() != 6 || f[..4].iter().any(|s| s.is_empty()) {
            return Err(ParseError::BadLine { tool: T, line: i + 1, text: raw.to_string() });
        }
        out.push(Mount {
            source: unescape(i + 1, raw, f[0])?,
            target: unescape(i + 1, raw, f[1])?,
            fstype: f[2].to_string(),
            options: f[3].split(',').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testdata;

    #[test]
    fn captured_mounts() {
        let m = parse(&testdata::text("proc-mounts.txt")).expect("parses");
        let data = m.iter().find(|m| m.target == "/srv/g1").expect("data volume mounted");
        assert_eq!(data.source, "/dev/opie_g1/data");
        assert_eq!(data.fstype, "ext4");
        assert!(!data.read_only());
        assert_eq!(m[0].target, "/");
    }

    #[test]
    fn escapes_and_garbage() {
        let m = parse("/dev/sdb1 /mnt/my\\040disk ext4 ro,relatime 0 0\n").expect("parses");
        assert_eq!(m[0].target, "/mnt/my disk");
        assert!(m[0].read_only());
        assert!(parse("/dev/sdb1 /mnt/x\\04 ext4 rw 0 0\n").is_err());
        assert!(parse("/dev/sdb1 /mnt/x\\999 ext4 rw 0 0\n").is_err());
        assert!(parse("/dev/sdb1 /mnt ext4\n").is_err());
        let text = testdata::text("proc-mounts.txt");
        for p in testdata::prefixes(&text) {
            let _ = parse(p);
        }
    }
}
