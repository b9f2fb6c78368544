//! Who is logged in to the web page: session ids, their CSRF tokens and
//! expiry. Time (seconds on a monotonic clock) is an input; ids and tokens
//! come from a generator keyed by a 32-byte seed the daemon takes from the
//! kernel, so nothing here reads a clock or a random device.

use sha2::{Digest, Sha256};

use super::{hex, unhex32};

/// A session ends after this many seconds without a request.
pub const IDLE_SECS: u64 = 30 * 60;
/// A session ends this many seconds after log-in, used or not.
pub const MAX_AGE_SECS: u64 = 12 * 60 * 60;
/// Most sessions at once; a new log-in beyond it ends the least recently
/// used one, so no number of log-ins grows memory.
pub const MAX_SESSIONS: usize = 16;

/// Makes unpredictable 32-byte values: SHA-256 of the secret seed and a
/// counter, so knowing some outputs reveals neither the seed nor others.
#[derive(Clone)]
pub struct Tokens {
    seed: [u8; 32],
    counter: u64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed would let anyone forge every session id.
        write!(f, "Tokens {{ {} issued }}", self.counter)
    }
}

impl Tokens {
    pub fn new(seed: [u8; 32]) -> Self {
        Tokens { seed, counter: 0 }
    }

    /// The next 32 bytes.
    pub fn issue(&mut self) -> [u8; 32] {
        self.counter += 1;
        let mut h = Sha256::new();
        h.update(b"opie web token\0");
        h.update(self.seed);
        h.update(self.counter.to_le_bytes());
        h.finalize().into()
    }
}

/// One logged-in browser.
#[derive(Clone)]
struct Session {
    id: [u8; 32],
    csrf: [u8; 32],
    created: u64,
    last_used: u64,
    /// A message for the next page shown (the result of a form), once.
    flash: Option<String>,
}

/// What a request's session cookie is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The session id, as the cookie carries it.
    pub id: String,
    /// The CSRF token every form of this session must send back.
    pub csrf: String,
}

/// The logged-in sessions, at most [`MAX_SESSIONS`].
#[derive(Debug)]
pub struct Sessions {
    tokens: Tokens,
    sessions: Vec<Session>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session {{ created {}, last used {} }}", self.created, self.last_used)
    }
}

impl Sessions {
    pub fn new(seed: [u8; 32]) -> Self {
        Sessions { tokens: Tokens::new(seed), sessions: Vec::new() }
    }

    /// Starts a session after a good password; returns its cookie value.
    pub fn login(&mut self, now: u64) -> Active {
        self.expire(now);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self.sessions.iter().enumerate().min_by_key(|(_, s)| s.last_used).map(|(i, _)| i)
        {
            self.sessions.swap_remove(oldest);
        }
        let session =
            Session { id: self.tokens.issue(), csrf: self.tokens.issue(), created: now, last_used: now, flash: None };
        let active = Active { id: hex(&session.id), csrf: hex(&session.csrf) };
        self.sessions.push(session);
        active
    }

    /// The live session a cookie names, marked used at `now`.
    pub fn check(&mut self, cookie: Option<&str>, now: u64) -> Option<Active> {
        self.expire(now);
        let session = self.find(cookie?)?;
        session.last_used = now;
        Some(Active { id: hex(&session.id), csrf: hex(&session.csrf) })
    }

    /// Whether `token` is the CSRF token of the session `cookie` names
    /// (compared in constant time).
    pub fn csrf_ok(&mut self, cookie: Option<&str>, token: Option<&str>, now: u64) -> bool {
        self.expire(now);
        let Some(given) = token.and_then(unhex32) else { return false };
        let Some(session) = cookie.and_then(|c| self.find(c)) else { return false };
        session.csrf.iter().zip(given.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Ends the session `cookie` names, if any.
    pub fn logout(&mut self, cookie: Option<&str>) {
        if let Some(id) = cookie.and_then(unhex32) {
            self.sessions.retain(|s| s.id != id);
        }
    }

    /// Leaves a message for the session's next page.
    pub fn set_flash(&mut self, cookie: Option<&str>, message: String) {
        if let Some(session) = cookie.and_then(|c| self.find(c)) {
            session.flash = Some(message);
        }
    }

    /// Takes the message left for this page, if any.
    pub fn take_flash(&mut self, cookie: Option<&str>) -> Option<String> {
        cookie.and_then(|c| self.find(c)).and_then(|s| s.flash.take())
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether nobody is logged in.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn find(&mut self, cookie: &str) -> Option<&mut Session> {
        let id = unhex32(cookie)?;
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    fn expire(&mut self, now: u64) {
        self.sessions
            .retain(|s| now.saturating_sub(s.last_used) < IDLE_SECS && now.saturating_sub(s.created) < MAX_AGE_SECS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_call_and_per_seed() {
        let mut a = Tokens::new([1; 32]);
        let mut b = Tokens::new([2; 32]);
        let (a1, a2, b1) = (a.issue(), a.issue(), b.issue());
        assert_ne!(a1, a2);
        assert_ne!(a1, b1);
        assert_eq!(Tokens::new([1; 32]).issue(), a1, "same seed, same sequence");
        assert!(!format!("{a:?}").contains("1, 1"), "the seed stays out of Debug");
    }

    #[test]
    fn a_login_is_checked_by_its_cookie_only() {
        let mut s = Sessions::new([7; 32]);
        let active = s.login(100);
        assert_eq!(active.id.len(), 64);
        assert_ne!(active.id, active.csrf);
        assert_eq!(s.check(Some(&active.id), 101), Some(active.clone()));
        assert_eq!(s.check(None, 101), None);
        assert_eq!(s.check(Some("nonsense"), 101), None);
        assert_eq!(s.check(Some(&active.csrf), 101), None, "the CSRF token is not a session id");
        assert_eq!(s.check(Some(&hex(&[0; 32])), 101), None);
    }

    #[test]
    fn sessions_expire_when_idle_and_when_old() {
        let mut s = Sessions::new([7; 32]);
        let a = s.login(0);
        assert!(s.check(Some(&a.id), IDLE_SECS - 1).is_some(), "use renews it");
        assert!(s.check(Some(&a.id), 2 * IDLE_SECS - 2).is_some());
        assert!(s.check(Some(&a.id), 3 * IDLE_SECS).is_none(), "idle too long");
        assert!(s.is_empty());

        let b = s.login(0);
        let mut now = 0;
        while now + IDLE_SECS / 2 < MAX_AGE_SECS {
            now += IDLE_SECS / 2;
            assert!(s.check(Some(&b.id), now).is_some());
        }
        assert!(s.check(Some(&b.id), MAX_AGE_SECS).is_none(), "too old however busy");
    }

    #[test]
    fn the_count_is_bounded_and_the_least_recently_used_goes() {
        let mut s = Sessions::new([7; 32]);
        let first = s.login(0);
        let second = s.login(1);
        for t in 2..(MAX_SESSIONS as u64 + 10) {
            assert!(s.check(Some(&first.id), t).is_some());
            s.login(t);
            assert!(s.len() <= MAX_SESSIONS);
        }
        assert!(s.check(Some(&first.id), 100).is_some(), "kept in use");
        assert!(s.check(Some(&second.id), 100).is_none(), "evicted");
    }

    #[test]
    fn csrf_token_must_match_the_session() {
        let mut s = Sessions::new([7; 32]);
        let a = s.login(0);
        let b = s.login(0);
        assert!(s.csrf_ok(Some(&a.id), Some(&a.csrf), 1));
        assert!(!s.csrf_ok(Some(&a.id), Some(&b.csrf), 1), "another session's token");
        assert!(!s.csrf_ok(Some(&a.id), None, 1));
        assert!(!s.csrf_ok(Some(&a.id), Some(""), 1));
        assert!(!s.csrf_ok(None, Some(&a.csrf), 1));
        assert!(!s.csrf_ok(Some(&a.id), Some(&a.csrf), IDLE_SECS + 5), "expired session");
    }

    #[test]
    fn logout_ends_only_that_session_and_flash_is_shown_once() {
        let mut s = Sessions::new([7; 32]);
        let a = s.login(0);
        let b = s.login(0);
        s.set_flash(Some(&b.id), "adopted ISU-1".into());
        assert_eq!(s.take_flash(Some(&a.id)), None);
        assert_eq!(s.take_flash(Some(&b.id)).as_deref(), Some("adopted ISU-1"));
        assert_eq!(s.take_flash(Some(&b.id)), None);
        s.logout(Some(&a.id));
        assert!(s.check(Some(&a.id), 1).is_none());
        assert!(s.check(Some(&b.id), 1).is_some());
        s.logout(Some("junk"));
        assert_eq!(s.len(), 1);
    }
}
