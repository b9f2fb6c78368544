//! `exportfs -v`: what the kernel NFS server exports now.
//!
//! One export per client (captured in `testdata/storage/exportfs-v.txt`):
//!
//! ```text
//! /srv/g1/docs  <TAB>10.77.0.0/24(sync,wdelay,hide,no_subtree_check,fsid=101,sec=sys,rw,...)
//! /srv/g1/pub   <TAB><world>(sync,...,ro,...,all_squash)
//! ```
//!
//! exportfs pads the path to a column; a path too long for it ends its
//! line and the client follows on the next, indented. `<world>` is `*`.
//! No exports print nothing (a valid, empty list).

use super::ParseError;

const T: &str = "exportfs -v";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub path: String,
    /// The client spec as given (`10.77.0.0/24`, `*` for `<world>`).
    pub client: String,
    pub options: Vec<String>,
}

impl Export {
    pub fn has(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

fn client(line: usize, raw: &str, spec: &str) -> Result<(String, Vec<String>), ParseError> {
    let bad = || ParseError::BadLine { tool: T, line, text: raw.to_string() };
    let (who, rest) = spec.split_once('(').ok_or_else(bad)?;
    let opts = rest.strip_suffix(')').ok_or_else(bad)?;
    if who.is_empty() {
        return Err(bad());
    }
    let who = if who == "<world>" { "*" } else { who };
    Ok((who.to_string(), opts.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect()))
}

pub fn parse(text: &str) -> Result<Vec<Export>, ParseError> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if raw.starts_with(char::is_whitespace) {
            // The client half of a wrapped entry.
            let (_, path) =
                pending.take().ok_or_else(|| ParseError::BadLine { tool: T, line, text: raw.to_string() })?;
            let (client, options) = client(line, raw, raw.trim())?;
            out.push(Export { path, client, options });
            continue;
        }
        if let Some((l, p)) = pending.take() {
            return Err(ParseError::BadLine { tool: T, line: l, text: p });
        }
        let mut words = raw.split_whitespace();
        let path = words.next().unwrap_or_default().to_string();
        match words.next() {
            Some(spec) => {
                if words.next().is_some() {
                    return Err(ParseError::BadLine { tool: T, line, text: raw.to_string() });
                }
                let (client, options) = client(line, raw, spec)?;
                out.push(Export { path, client, options });
            }
            None => pending = Some((line, path)),
        }
    }
    if let Some((line, text)) = pending {
        return Err(ParseError::BadLine { tool: T, line, text });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testdata;

    #[test]
    fn captured_exports() {
        let e = parse(&testdata::text("exportfs-v.txt")).expect("parses");
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].path.as_str(), e[0].client.as_str()), ("/srv/g1/docs", "10.77.0.0/24"));
        assert!(e[0].has("rw") && e[0].has("sync") && e[0].has("fsid=101"));
        assert_eq!((e[1].path.as_str(), e[1].client.as_str()), ("/srv/g1/pub", "*"));
        assert!(e[1].has("ro") && e[1].has("all_squash"));
        assert_eq!(parse(&testdata::text("exportfs-v-empty.txt")).expect("parses"), []);
    }

    #[test]
    fn wrapped_long_path_and_garbage() {
        let e = parse("/srv/a/very/long/path/that/does/not/fit\n\t\t10.0.0.0/8(rw,sync)\n").expect("parses");
        assert_eq!(e[0].path, "/srv/a/very/long/path/that/does/not/fit");
        assert_eq!(e[0].options, ["rw", "sync"]);
        assert!(parse("/srv/x\n").is_err());
        assert!(parse("\t10.0.0.0/8(rw)\n").is_err());
        assert!(parse("/srv/x  host(rw\n").is_err());
        let text = testdata::text("exportfs-v.txt");
        for p in testdata::prefixes(&text) {
            let _ = parse(p);
        }
    }
}
