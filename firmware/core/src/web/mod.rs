//! The head's web page, without the web server (DESIGN §12, issue 7).
//!
//! Owns what the page decides: what each request gets ([`app`]), its HTML
//! ([`html`]), who is logged in and with which CSRF token ([`session`]),
//! how fast wrong passwords may be tried ([`limit`]), and the small parsers
//! for what a browser sends (form bodies, cookies). No sockets and no clock: the daemon's web thread
//! passes in request bytes, the current time and a random seed, and fetches
//! every fact it shows from the supervisor over the local socket.

pub mod app;
pub mod html;
pub mod limit;
pub mod session;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "opie_session";
/// Most fields a form body may carry; the rest are ignored.
const MAX_FORM_FIELDS: usize = 16;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Parses an `application/x-www-form-urlencoded` body (or a query string)
/// into name/value pairs, at most [`MAX_FORM_FIELDS`]; bad percent escapes
/// and invalid UTF-8 become U+FFFD rather than errors.
pub fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .take(MAX_FORM_FIELDS)
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// The first value of `name` in parsed form `fields`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                out.push(hex_value(bytes[i + 1]) << 4 | hex_value(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    }
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|part| part.trim().split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses exactly 64 hex digits into 32 bytes.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = &text.as_bytes()[2 * i..2 * i + 2];
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        *byte = hex_value(pair[0]) << 4 | hex_value(pair[1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
    }

    #[test]
    fn parses_form_bodies() {
        let f = parse_form("serial=ISU-1%2f2&as=member&pw=a+b%&x=%zz&y=%+1&=v&empty");
        assert_eq!(field(&f, "serial"), Some("ISU-1/2"));
        assert_eq!(field(&f, "as"), Some("member"));
        assert_eq!(field(&f, "pw"), Some("a b%"));
        assert_eq!(field(&f, "x"), Some("%zz"));
        assert_eq!(field(&f, "y"), Some("% 1"), "no sign accepted as a hex digit");
        assert_eq!(field(&f, "empty"), Some(""));
        assert_eq!(field(&f, "missing"), None);
        assert_eq!(parse_form(&"a=1&".repeat(100)).len(), MAX_FORM_FIELDS);
        assert_eq!(field(&parse_form("p=%C3%A9%FF"), "p"), Some("é\u{fffd}"));
    }

    #[test]
    fn finds_cookies() {
        let h = "theme=dark; opie_session=abc123;other=1";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc123"));
        assert_eq!(cookie(h, "other"), Some("1"));
        assert_eq!(cookie(h, "opie"), None);
    }

    #[test]
    fn hex_round_trips_and_refuses_bad_input() {
        let bytes = [0xab; 32];
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32("ab"), None);
        assert_eq!(unhex32(&"zz".repeat(32)), None);
        assert_eq!(unhex32(&"é".repeat(32)), None);
    }
}
