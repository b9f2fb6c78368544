//! Epoch fencing on the ISU (DESIGN §5 "Fencing", STYLE "generation
//! fencing"): which NBD claims an ISU accepts, given the epoch it granted.
//!
//! An ISU persists one [`Grant`]: the highest epoch it has granted and the
//! head it granted it to. A head proves its claim in the export name
//! (`opie_proto::fence` owns that layout and the MAC). [`judge`] is the one
//! comparison: a higher epoch is accepted and becomes the new grant (the
//! caller persists it before answering, then drops every connection of an
//! older grant), an equal epoch only from the head that holds it (a
//! reconnect of the same session), a lower one never. [`admit`] wraps it
//! with the parsing and MAC check, for the NBD server's catalog.
//!
//! Nothing here touches the disk or a socket: `opie_sys::fence_store`
//! persists the grant, the daemon drops connections.

use opie_proto::fence::{FenceNameError, FencedName, KEY_LEN, MAX_HEAD_LEN};
use thiserror::Error;

/// Kind tag of the epoch record on the state disk.
pub const EPOCH_MAGIC: [u8; 8] = *b"OPIEEPO\0";
/// Layout version of the epoch record payload.
pub const EPOCH_VERSION: u16 = 1;

/// The epoch an ISU has granted, and to which head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub epoch: u64,
    pub head: String,
}

/// A stored epoch record that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EpochRecordError {
    /// The record was written by a newer or unknown format.
    #[error("epoch record version {0} is not supported (expected {EPOCH_VERSION})")]
    Version(u16),
    /// The payload does not have the documented layout.
    #[error("epoch record payload is malformed")]
    Malformed,
}

impl Grant {
    /// The record payload:
    ///
    /// ```text
    /// offset size field
    ///      0    8 epoch, u64 little-endian
    ///      8    1 n = length of the head identity (<= 64)
    ///      9    n head identity (UTF-8)
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.head.len());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.push(u8::try_from(self.head.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.head.as_bytes());
        out
    }

    /// Decodes a payload written by [`Grant::encode`].
    pub fn decode(version: u16, payload: &[u8]) -> Result<Self, EpochRecordError> {
        if version != EPOCH_VERSION {
            return Err(EpochRecordError::Version(version));
        }
        let epoch = payload.get(..8).ok_or(EpochRecordError::Malformed)?;
        let epoch = u64::from_le_bytes(epoch.try_into().map_err(|_| EpochRecordError::Malformed)?);
        let len = usize::from(*payload.get(8).ok_or(EpochRecordError::Malformed)?);
        let head =
            payload.get(9..).filter(|h| h.len() == len && len <= MAX_HEAD_LEN).ok_or(EpochRecordError::Malformed)?;
        let head = std::str::from_utf8(head).map_err(|_| EpochRecordError::Malformed)?;
        Ok(Grant { epoch, head: head.to_owned() })
    }
}

/// The outcome of comparing a claim with the current grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A higher epoch (or the first one): persist it as the new grant,
    /// then drop every connection of the old one.
    Advance,
    /// The epoch this head already holds: a further connection of the
    /// same session.
    Current,
    /// Lower than the granted epoch: a stale head.
    Stale { granted: u64 },
    /// The granted epoch, claimed by a head that does not hold it.
    Taken { granted: u64, holder: String },
}

impl Verdict {
    /// True when the claim may be served.
    pub fn admits(&self) -> bool {
        matches!(self, Verdict::Advance | Verdict::Current)
    }

    /// Why the claim of `epoch` by `head` is refused (sent to the head and
    /// logged), or None when it is admitted.
    pub fn refusal(&self, epoch: u64, head: &str) -> Option<String> {
        match self {
            Verdict::Advance | Verdict::Current => None,
            Verdict::Stale { granted } => {
                Some(format!("stale epoch {epoch} from {head:?}: epoch {granted} is granted"))
            }
            Verdict::Taken { granted, holder } => Some(format!("epoch {granted} is held by {holder:?}, not {head:?}")),
        }
    }
}

/// The one comparison of a claim (`epoch` by `head`) with the grant:
/// higher is accepted, lower refused, equal accepted only from the holder.
pub fn judge(granted: Option<&Grant>, epoch: u64, head: &str) -> Verdict {
    match granted {
        None => Verdict::Advance,
        Some(g) if epoch > g.epoch => Verdict::Advance,
        Some(g) if epoch < g.epoch => Verdict::Stale { granted: g.epoch },
        Some(g) if g.head == head => Verdict::Current,
        Some(g) => Verdict::Taken { granted: g.epoch, holder: g.head.clone() },
    }
}

/// What the NBD server does with an export name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<'a> {
    /// Fencing is off (no key): the name is a plain export name.
    Unfenced { export: &'a str },
    /// A valid claim that may be served; `verdict` is `Advance` or `Current`.
    Admit { export: &'a str, claim: Grant, verdict: Verdict },
    /// Refused; the reason is sent to the client (NBD_REP_ERR_POLICY) and
    /// logged.
    Refuse { reason: String },
}

/// Decides on `name` given the fencing key (None: fencing off) and the
/// current grant.
pub fn admit<'a>(key: Option<&[u8; KEY_LEN]>, name: &'a str, granted: Option<&Grant>) -> Admission<'a> {
    let parsed = FencedName::parse(name);
    let Some(key) = key else {
        return match parsed {
            Err(FenceNameError::Plain) => Admission::Unfenced { export: name },
            _ => Admission::Refuse { reason: "this server runs without fencing: send a plain export name".into() },
        };
    };
    let claim = match parsed {
        Ok(claim) => claim,
        Err(FenceNameError::Plain) => {
            return Admission::Refuse {
                reason: "fencing is on: the export name must carry @epoch=E;head=H;mac=HEX".into(),
            };
        }
        Err(e) => return Admission::Refuse { reason: e.to_string() },
    };
    if !claim.verify(key) {
        return Admission::Refuse { reason: format!("epoch {} claim by {:?}: bad mac", claim.epoch, claim.head) };
    }
    let verdict = judge(granted, claim.epoch, claim.head);
    match verdict.refusal(claim.epoch, claim.head) {
        Some(reason) => Admission::Refuse { reason },
        None => Admission::Admit {
            export: claim.export,
            claim: Grant { epoch: claim.epoch, head: claim.head.to_owned() },
            verdict,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(epoch: u64, head: &str) -> Grant {
        Grant { epoch, head: head.into() }
    }

    /// The comparison table (STYLE: one function, one table).
    #[test]
    fn judge_table() {
        let table: &[(Option<Grant>, u64, &str, Verdict)] = &[
            (None, 0, "a", Verdict::Advance),
            (None, 5, "a", Verdict::Advance),
            (Some(g(5, "a")), 6, "b", Verdict::Advance),
            (Some(g(5, "a")), 6, "a", Verdict::Advance),
            (Some(g(5, "a")), u64::MAX, "b", Verdict::Advance),
            (Some(g(5, "a")), 5, "a", Verdict::Current),
            (Some(g(5, "a")), 5, "b", Verdict::Taken { granted: 5, holder: "a".into() }),
            (Some(g(5, "a")), 4, "a", Verdict::Stale { granted: 5 }),
            (Some(g(5, "a")), 0, "b", Verdict::Stale { granted: 5 }),
            (Some(g(u64::MAX, "a")), u64::MAX, "a", Verdict::Current),
            (Some(g(0, "a")), 0, "b", Verdict::Taken { granted: 0, holder: "a".into() }),
        ];
        for (granted, epoch, head, want) in table {
            let got = judge(granted.as_ref(), *epoch, head);
            assert_eq!(&got, want, "grant {granted:?}, claim {epoch} by {head}");
            assert_eq!(got.admits(), matches!(want, Verdict::Advance | Verdict::Current));
            assert_eq!(got.refusal(*epoch, head).is_none(), got.admits());
        }
    }

    /// Driving judge with any sequence of claims, applying every Advance as
    /// the caller must: the granted epoch never goes backwards, and a
    /// claim below it is never admitted.
    #[test]
    fn grants_never_go_backwards() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut granted: Option<Grant> = None;
        for _ in 0..10_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let epoch = state % 8;
            let head = ["a", "b", "c"][(state >> 8) as usize % 3];
            let before = granted.as_ref().map(|g| g.epoch);
            let verdict = judge(granted.as_ref(), epoch, head);
            if let Some(b) = before {
                assert!(!verdict.admits() || epoch >= b);
            }
            if verdict == Verdict::Advance {
                granted = Some(g(epoch, head));
            }
            if let (Some(b), Some(now)) = (before, granted.as_ref()) {
                assert!(now.epoch >= b);
            }
        }
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        for grant in [g(0, "a"), g(6, "head2"), g(u64::MAX, &"h".repeat(64))] {
            assert_eq!(Grant::decode(EPOCH_VERSION, &grant.encode()), Ok(grant));
        }
        let bytes = g(6, "head2").encode();
        assert_eq!(Grant::decode(2, &bytes), Err(EpochRecordError::Version(2)));
        for cut in 0..bytes.len() {
            assert_eq!(Grant::decode(EPOCH_VERSION, &bytes[..cut]), Err(EpochRecordError::Malformed));
        }
        let mut long = bytes.clone();
        long.push(b'x');
        assert_eq!(Grant::decode(EPOCH_VERSION, &long), Err(EpochRecordError::Malformed));
    }

    #[test]
    fn admission_checks_layout_mac_and_epoch() {
        let key = [3u8; 32];
        let name = |epoch, head| FencedName::sign(&key, "disk", epoch, head).expect("sign").emit();
        let granted = g(5, "a");
        // Fencing off: plain names only.
        assert_eq!(admit(None, "disk", Some(&granted)), Admission::Unfenced { export: "disk" });
        assert!(matches!(admit(None, &name(6, "a"), None), Admission::Refuse { .. }));
        // Fencing on.
        assert!(matches!(admit(Some(&key), "disk", None), Admission::Refuse { .. }));
        assert!(matches!(admit(Some(&key), "disk@epoch=x;head=a;mac=00", None), Admission::Refuse { .. }));
        let forged = FencedName::sign(&[4u8; 32], "disk", 9, "b").expect("sign").emit();
        match admit(Some(&key), &forged, Some(&granted)) {
            Admission::Refuse { reason } => assert!(reason.contains("bad mac"), "{reason}"),
            other => panic!("forged claim admitted: {other:?}"),
        }
        let n6 = name(6, "b");
        assert_eq!(
            admit(Some(&key), &n6, Some(&granted)),
            Admission::Admit { export: "disk", claim: g(6, "b"), verdict: Verdict::Advance }
        );
        let n5 = name(5, "a");
        assert_eq!(
            admit(Some(&key), &n5, Some(&granted)),
            Admission::Admit { export: "disk", claim: g(5, "a"), verdict: Verdict::Current }
        );
        match admit(Some(&key), &name(4, "a"), Some(&granted)) {
            Admission::Refuse { reason } => assert!(reason.contains("stale epoch 4"), "{reason}"),
            other => panic!("stale claim admitted: {other:?}"),
        }
        match admit(Some(&key), &name(5, "b"), Some(&granted)) {
            Admission::Refuse { reason } => assert!(reason.contains("held by"), "{reason}"),
            other => panic!("taken epoch admitted: {other:?}"),
        }
    }
}
