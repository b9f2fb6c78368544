//! Node keys and the keys derived from them.
//!
//! Every node has an x25519 key pair, made from 32 random bytes on first
//! boot (`opie-sys` supplies the randomness and persists the secret). An
//! adopted pair of nodes shares a *pair key*: HKDF-SHA256 of their
//! Diffie-Hellman secret. Each control connection derives a *session key*
//! from the pair key and both sides' hello nonces, so frames of one
//! connection are worthless in another. Admins compare *fingerprints*
//! (the first 10 bytes of SHA-256 of a public key) on the ISU's console
//! and the adoption screen.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use thiserror::Error;
use x25519_dalek::{PublicKey, StaticSecret};

/// Kind tag of the node-key record on the state disk.
pub const NODE_KEY_MAGIC: [u8; 8] = *b"OPIEKEY\0";
/// Layout version of the node-key record: the 32 secret bytes.
pub const NODE_KEY_VERSION: u16 = 1;

/// A stored node-key record that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("node key record version {0} is not supported (expected {NODE_KEY_VERSION})")]
    Version(u16),
    #[error("node key record holds {0} bytes, expected 32")]
    Length(usize),
}

/// A node's long-term key pair.
pub struct NodeKey {
    secret: StaticSecret,
    public: [u8; 32],
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "NodeKey({})", fingerprint(&self.public))
    }
}

impl NodeKey {
    /// The key pair whose secret is `secret` (clamped by x25519).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret).to_bytes();
        NodeKey { secret, public }
    }

    /// Decodes a stored node-key record payload.
    pub fn decode(version: u16, payload: &[u8]) -> Result<Self, KeyError> {
        if version != NODE_KEY_VERSION {
            return Err(KeyError::Version(version));
        }
        let secret: [u8; 32] = payload.try_into().map_err(|_| KeyError::Length(payload.len()))?;
        Ok(NodeKey::from_secret(secret))
    }

    /// The secret's bytes, for the owner to persist.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The key this node shares with the holder of `peer_public`.
    pub fn pair_key(&self, peer_public: &[u8; 32]) -> [u8; 32] {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer_public));
        expand(None, shared.as_bytes(), b"opie pair key v1")
    }
}

/// The NBD fencing key an adopted head and ISU share (DESIGN §5): the
/// head signs its epoch claims with it, the ISU checks them.
pub fn fence_key(pair_key: &[u8; 32]) -> [u8; 32] {
    expand(None, pair_key, b"opie nbd fence key v1")
}

/// The key of one control connection.
pub fn session_key(pair_key: &[u8; 32], client_nonce: &[u8; 16], server_nonce: &[u8; 16]) -> [u8; 32] {
    let mut salt = [0u8; 32];
    salt[..16].copy_from_slice(client_nonce);
    salt[16..].copy_from_slice(server_nonce);
    expand(Some(&salt), pair_key, b"opie ctrl session v1")
}

fn expand(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(salt, ikm).expand(info, &mut out).expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// A public key's fingerprint as admins read it: 5 groups of 4 hex digits.
pub fn fingerprint(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    digest[..10].chunks(2).map(|c| format!("{:02x}{:02x}", c[0], c[1])).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_pair_and_session_keys() {
        let head = NodeKey::from_secret([1; 32]);
        let isu = NodeKey::from_secret([2; 32]);
        let k1 = head.pair_key(&isu.public());
        let k2 = isu.pair_key(&head.public());
        assert_eq!(k1, k2);
        let other = NodeKey::from_secret([3; 32]);
        assert_ne!(other.pair_key(&head.public()), k1);
        let s = session_key(&k1, &[4; 16], &[5; 16]);
        assert_eq!(s, session_key(&k2, &[4; 16], &[5; 16]));
        assert_ne!(s, session_key(&k1, &[5; 16], &[4; 16]));
        assert_eq!(fence_key(&k1), fence_key(&k2));
        assert_ne!(fence_key(&k1), k1);
    }

    #[test]
    fn secret_survives_persistence_and_fingerprints_are_readable() {
        let key = NodeKey::from_secret([9; 32]);
        let again = NodeKey::from_secret(key.secret_bytes());
        assert_eq!(again.public(), key.public());
        assert_eq!(NodeKey::decode(NODE_KEY_VERSION, &key.secret_bytes()).expect("decodes").public(), key.public());
        assert_eq!(NodeKey::decode(2, &key.secret_bytes()).err(), Some(KeyError::Version(2)));
        assert_eq!(NodeKey::decode(NODE_KEY_VERSION, &[0; 31]).err(), Some(KeyError::Length(31)));
        let fp = fingerprint(&key.public());
        assert_eq!(fp.len(), 24);
        assert_eq!(fp.matches('-').count(), 4);
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.secret_bytes())));
    }
}
