//! Fenced NBD export names: how a head proves its epoch to an ISU inside
//! the NBD handshake (DESIGN §5 "Fencing").
//!
//! This module owns the byte layout of the claim and its MAC. Whether a
//! valid claim is accepted (higher, equal, lower than the epoch the ISU has
//! granted) is decided by `opie_core::fence`; persisting the granted epoch
//! is `opie-sys`'s job.
//!
//! Stock NBD clients only send an export name, so the claim rides in it:
//!
//! ```text
//! NAME@epoch=E;head=H;mac=M
//!
//! NAME  the export name (UTF-8; may itself contain '@': the claim is the
//!       part after the LAST '@')
//! E     the epoch, decimal u64 without leading zeros (so each claim has
//!       exactly one spelling)
//! H     the claiming head's identity, 1..=64 bytes of [A-Za-z0-9._:-]
//! M     64 lowercase hex digits: HMAC-SHA256(key, message)
//!
//! message = "opie-fence-v1"          13 bytes, domain and version
//!           u32 big-endian len(NAME)
//!           NAME
//!           u64 big-endian E
//!           u8 len(H)
//!           H
//! ```
//!
//! The key is the fencing key the ISU was given (the pair key the head and
//! the ISU share after adoption). Every field of the claim is inside the
//! MAC, each with its length, so no bytes of one claim can be re-read as a
//! different (export, epoch, head). What the MAC stops: anyone without the
//! key claiming any epoch, and in particular replaying an observed name
//! with a higher epoch (the epoch is covered). What it does not stop: a
//! replay of the very same name, which claims the same epoch for the same
//! head; `opie_core::fence` accepts that only while that head still holds
//! the epoch, so it gains nothing a party able to see and inject on the
//! storage net could not already do to the live NBD stream (NBD carries no
//! per-request authentication).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// Domain separation and version of the MAC input.
pub const FENCE_DOMAIN: &[u8] = b"opie-fence-v1";
/// Longest head identity.
pub const MAX_HEAD_LEN: usize = 64;
/// Bytes of a fencing key.
pub const KEY_LEN: usize = 32;
/// Hex digits of the MAC in the name.
pub const MAC_HEX_LEN: usize = 64;

/// Why an export name does not carry a well-formed claim.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FenceNameError {
    /// The name has no `@epoch=` suffix: a plain export name.
    #[error("export name carries no epoch claim")]
    Plain,
    /// The suffix is not `epoch=E;head=H;mac=M` in that order.
    #[error("epoch claim is not in the form NAME@epoch=E;head=H;mac=HEX")]
    Layout,
    /// The epoch is not a canonical decimal u64.
    #[error("epoch {0:?} is not a decimal number without leading zeros")]
    Epoch(String),
    /// The head identity is empty, too long or has other characters.
    #[error("head identity must be 1 to {MAX_HEAD_LEN} characters of A-Z a-z 0-9 . _ : -")]
    Head,
    /// The MAC is not 64 lowercase hex digits.
    #[error("mac must be {MAC_HEX_LEN} lowercase hex digits")]
    MacFormat,
}

/// A parsed claim: what the head says, not yet checked against a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedName<'a> {
    pub export: &'a str,
    pub epoch: u64,
    pub head: &'a str,
    pub mac: [u8; 32],
}

fn head_ok(head: &str) -> bool {
    (1..=MAX_HEAD_LEN).contains(&head.len())
        && head.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn message(export: &str, epoch: u64, head: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(FENCE_DOMAIN.len() + 4 + export.len() + 8 + 1 + head.len());
    m.extend_from_slice(FENCE_DOMAIN);
    m.extend_from_slice(&u32::try_from(export.len()).unwrap_or(u32::MAX).to_be_bytes());
    m.extend_from_slice(export.as_bytes());
    m.extend_from_slice(&epoch.to_be_bytes());
    // head_ok bounds the length to 64, so it fits a byte.
    m.push(u8::try_from(head.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(head.as_bytes());
    m
}

fn hmac(key: &[u8; KEY_LEN]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC-SHA256 takes keys of any length")
}

/// The MAC of a claim under `key`.
pub fn fence_mac(key: &[u8; KEY_LEN], export: &str, epoch: u64, head: &str) -> [u8; 32] {
    let mut mac = hmac(key);
    mac.update(&message(export, epoch, head));
    mac.finalize().into_bytes().into()
}

impl<'a> FencedName<'a> {
    /// Parses `name`. [`FenceNameError::Plain`] means there is no claim at
    /// all (a plain export name); other errors mean a malformed claim.
    pub fn parse(name: &'a str) -> Result<Self, FenceNameError> {
        let Some((export, claim)) = name.rsplit_once('@') else {
            return Err(FenceNameError::Plain);
        };
        let Some(rest) = claim.strip_prefix("epoch=") else {
            return Err(FenceNameError::Plain);
        };
        let mut fields = rest.split(';');
        let (Some(epoch), Some(head), Some(mac), None) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(FenceNameError::Layout);
        };
        let head = head.strip_prefix("head=").ok_or(FenceNameError::Layout)?;
        let mac = mac.strip_prefix("mac=").ok_or(FenceNameError::Layout)?;
        let canonical = epoch.bytes().all(|b| b.is_ascii_digit()) && (epoch == "0" || !epoch.starts_with('0'));
        let epoch_value =
            epoch.parse::<u64>().ok().filter(|_| canonical).ok_or_else(|| FenceNameError::Epoch(epoch.to_owned()))?;
        if !head_ok(head) {
            return Err(FenceNameError::Head);
        }
        if mac.len() != MAC_HEX_LEN || !mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(FenceNameError::MacFormat);
        }
        let mut bytes = [0u8; 32];
        for (i, out) in bytes.iter_mut().enumerate() {
            let pair = &mac[2 * i..2 * i + 2];
            *out = u8::from_str_radix(pair, 16).map_err(|_| FenceNameError::MacFormat)?;
        }
        Ok(FencedName { export, epoch: epoch_value, head, mac: bytes })
    }

    /// Builds the claim for (`export`, `epoch`, `head`) signed with `key`.
    /// Fails only when `head` is not a valid identity.
    pub fn sign(key: &[u8; KEY_LEN], export: &'a str, epoch: u64, head: &'a str) -> Result<Self, FenceNameError> {
        if !head_ok(head) {
            return Err(FenceNameError::Head);
        }
        Ok(FencedName { export, epoch, head, mac: fence_mac(key, export, epoch, head) })
    }

    /// The export name to send.
    pub fn emit(&self) -> String {
        let hex: String = self.mac.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}@epoch={};head={};mac={hex}", self.export, self.epoch, self.head)
    }

    /// True when the MAC is right under `key` (constant-time comparison).
    pub fn verify(&self, key: &[u8; KEY_LEN]) -> bool {
        let mut mac = hmac(key);
        mac.update(&message(self.export, self.epoch, self.head));
        mac.verify_slice(&self.mac).is_ok()
    }
}

/// Parses a fencing key file's contents: 64 hex digits (surrounding
/// whitespace ignored) or exactly 32 raw bytes.
pub fn parse_key(contents: &[u8]) -> Option<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    if let Ok(text) = std::str::from_utf8(contents) {
        let text = text.trim();
        if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, out) in key.iter_mut().enumerate() {
                *out = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
            }
            return Some(key);
        }
    }
    if contents.len() == KEY_LEN {
        key.copy_from_slice(contents);
        return Some(key);
    }
    None
}

/// Fuzz and test helper: a string that parses as a claim emits back to
/// exactly the same string (the layout has one spelling per claim), and
/// no input panics the parser.
pub fn check_fence_name_round_trip(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(claim) = FencedName::parse(text)
    {
        assert_eq!(claim.emit(), text);
        assert_eq!(FencedName::parse(&claim.emit()), Ok(claim));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn signed_names_round_trip_and_verify() {
        for (export, epoch, head) in [("disk", 5, "head1"), ("a@b", 0, "x"), ("", u64::MAX, "h.1:2-3_4")] {
            let claim = FencedName::sign(&KEY, export, epoch, head).expect("valid head");
            let text = claim.emit();
            let parsed = FencedName::parse(&text).expect("parses");
            assert_eq!(parsed, claim);
            assert!(parsed.verify(&KEY));
            assert!(!parsed.verify(&[8; 32]));
        }
    }

    /// Changing any covered field, or the key, breaks the MAC: an observed
    /// name cannot be edited into a higher epoch, another head or export.
    #[test]
    fn edited_claims_do_not_verify() {
        let good = FencedName::sign(&KEY, "disk", 5, "head1").expect("sign");
        for forged in [
            FencedName { epoch: 6, ..good.clone() },
            FencedName { epoch: u64::MAX, ..good.clone() },
            FencedName { head: "head2", ..good.clone() },
            FencedName { export: "disk2", ..good.clone() },
        ] {
            let text = forged.emit();
            let parsed = FencedName::parse(&text).expect("well-formed");
            assert!(!parsed.verify(&KEY), "{text} verified");
        }
        // Moving bytes between export and head changes the lengths inside
        // the MAC input, so it does not verify either.
        assert_ne!(message("ab", 1, "c"), message("a", 1, "bc"));
    }

    /// The documented layout, checked against Python's hmac module:
    /// `hmac.new(bytes([7]*32), b"opie-fence-v1" + bytes([0,0,0,4]) + b"disk"
    ///  + (5).to_bytes(8, "big") + bytes([5]) + b"head1", hashlib.sha256)`.
    #[test]
    fn known_answer() {
        let name = FencedName::sign(&KEY, "disk", 5, "head1").expect("sign").emit();
        assert_eq!(
            name,
            "disk@epoch=5;head=head1;mac=cf4d723227d7eba2279f5b4e520469562893f90616dd06fb547cbd33aa7d82c2"
        );
    }

    #[test]
    fn malformed_claims_are_refused() {
        let mac = "0".repeat(64);
        let cases: Vec<(String, FenceNameError)> = vec![
            ("disk".into(), FenceNameError::Plain),
            ("disk@other".into(), FenceNameError::Plain),
            ("disk@epoch=5".into(), FenceNameError::Layout),
            (format!("disk@epoch=5;mac={mac};head=h"), FenceNameError::Layout),
            (format!("disk@epoch=5;head=h;mac={mac};x=1"), FenceNameError::Layout),
            (format!("disk@epoch=05;head=h;mac={mac}"), FenceNameError::Epoch("05".into())),
            (format!("disk@epoch=+5;head=h;mac={mac}"), FenceNameError::Epoch("+5".into())),
            (format!("disk@epoch=;head=h;mac={mac}"), FenceNameError::Epoch(String::new())),
            (
                format!("disk@epoch=18446744073709551616;head=h;mac={mac}"),
                FenceNameError::Epoch("18446744073709551616".into()),
            ),
            (format!("disk@epoch=5;head=;mac={mac}"), FenceNameError::Head),
            (format!("disk@epoch=5;head=a b;mac={mac}"), FenceNameError::Head),
            (format!("disk@epoch=5;head={};mac={mac}", "h".repeat(65)), FenceNameError::Head),
            ("disk@epoch=5;head=h;mac=00".into(), FenceNameError::MacFormat),
            (format!("disk@epoch=5;head=h;mac={}", "A".repeat(64)), FenceNameError::MacFormat),
        ];
        for (name, want) in cases {
            assert_eq!(FencedName::parse(&name), Err(want), "{name}");
        }
        assert_eq!(FencedName::sign(&KEY, "d", 1, "bad head"), Err(FenceNameError::Head));
    }

    #[test]
    fn arbitrary_names_never_panic_and_valid_ones_round_trip() {
        let good = FencedName::sign(&KEY, "d@x", 12, "h").expect("sign").emit();
        check_fence_name_round_trip(good.as_bytes());
        // Every prefix and every single-byte change of a valid claim.
        let bytes = good.as_bytes();
        for cut in 0..bytes.len() {
            check_fence_name_round_trip(&bytes[..cut]);
            for replacement in [b'@', b';', b'=', b'0', b'a', 0xff] {
                let mut changed = bytes.to_vec();
                changed[cut] = replacement;
                check_fence_name_round_trip(&changed);
            }
        }
    }

    #[test]
    fn key_files_parse_as_hex_or_raw() {
        let hex = "0102030405060708091011121314151617181920212223242526272829303132\n";
        let key = parse_key(hex.as_bytes()).expect("hex key");
        assert_eq!(key[0], 1);
        assert_eq!(key[31], 0x32);
        assert_eq!(parse_key(&[9u8; 32]), Some([9u8; 32]));
        assert_eq!(parse_key(b"short"), None);
        assert_eq!(parse_key(&[1u8; 33]), None);
    }
}
