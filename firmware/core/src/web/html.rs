//! The web page's HTML, rendered from typed data. Every text that comes
//! from outside (serials, host names, reports, alerts, messages) goes
//! through [`escape`]; states are written in words, colour only repeats
//! them. Pages work without JavaScript and fit a phone's width.

use std::fmt::Write as _;

use crate::adoption::Standing;
use crate::status::{ConfigOrigin, IsuStatus, StatusReport};

use super::escape;

/// Seconds between reloads of the status page while auto-refresh is on.
pub const REFRESH_SECS: u32 = 10;

const STYLE: &str = "body{font-family:sans-serif;margin:0 auto;padding:0.5em;max-width:60em;line-height:1.4}\
nav{display:flex;flex-wrap:wrap;gap:1em;align-items:center;border-bottom:1px solid #888;padding-bottom:0.5em}\
nav form{margin:0}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:0.3em;\
border-bottom:1px solid #ccc;vertical-align:top}.scroll{overflow-x:auto}.ok{color:#060}.warn{color:#a50}\
.bad{color:#b00}.msg{border:1px solid #888;padding:0.5em;background:#eef}button,input{font-size:1em;\
padding:0.3em}code{word-break:break-all}";

/// One page: title, navigation when logged in (`csrf` is the session's
/// token, for the log-out form), and an optional auto-refresh.
fn layout(title: &str, csrf: Option<&str>, refresh: Option<u32>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if let Some(secs) = refresh {
        let _ = write!(out, "<meta http-equiv=\"refresh\" content=\"{secs}\">");
    }
    let _ = write!(out, "<title>{} - Opie</title><style>{STYLE}</style></head><body>", escape(title));
    if let Some(token) = csrf {
        let _ = write!(
            out,
            "<nav><strong>Opie</strong><a href=\"/\">Status</a><a href=\"/isus\">ISUs</a>\
             <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form></nav>",
            escape(token)
        );
    }
    let _ = writeln!(out, "<h1>{}</h1>{body}</body></html>", escape(title));
    out
}

/// The log-in page. Without an admin password there is nothing to log in
/// with: the page says where to set one.
pub fn login_page(password_set: bool, message: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"msg\" role=\"alert\">{}</p>", escape(m));
    }
    if password_set {
        body.push_str(
            "<form method=\"post\" action=\"/login\"><p><label for=\"password\">Admin password</label><br>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" \
             autofocus required></p><p><button type=\"submit\">Log in</button></p></form>",
        );
    } else {
        body.push_str(
            "<p>No admin password is set yet, so nobody can log in here. Finish set-up on the \
             node's serial console (<code>opie console</code>): it asks for the admin password.</p>",
        );
    }
    layout("Log in", None, None, &body)
}

/// A message page (an error, or the supervisor not answering), with
/// navigation when logged in.
pub fn message_page(title: &str, message: &str, csrf: Option<&str>) -> String {
    layout(title, csrf, None, &format!("<p class=\"msg\">{}</p>", escape(message)))
}

/// An ISU's standing in words, with a class that colours the same word.
fn standing(s: Standing) -> (&'static str, String) {
    match s {
        Standing::Pending => ("warn", "pending adoption".into()),
        Standing::Adopted(f) => ("ok", format!("adopted as {}", f.as_str())),
        Standing::Rejected => ("bad", "rejected".into()),
    }
}

fn isu_row(out: &mut String, isu: &IsuStatus) {
    let (class, words) = standing(isu.standing);
    let (link_class, link) = if isu.connected { ("ok", "connected") } else { ("bad", "not connected") };
    let _ = write!(
        out,
        "<tr><td>{}</td><td class=\"{class}\">{words}</td><td class=\"{link_class}\">{link}</td><td>{}</td>\
         <td><code>{}</code></td></tr>",
        escape(&isu.serial),
        escape(isu.reported.as_deref().unwrap_or("no report yet")),
        escape(&isu.fingerprint),
    );
}

const ISU_HEAD: &str =
    "<div class=\"scroll\"><table><tr><th>Serial</th><th>Standing</th><th>Link</th><th>Report</th><th>Key</th></tr>";

fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// The status page: this node, its RAID group in words, every ISU and the
/// alerts. `refresh` turns the auto-refresh on; the page links to the
/// other state (pause or resume).
pub fn status_page(report: &StatusReport, csrf: &str, refresh: bool) -> String {
    let mut b = String::new();
    if refresh {
        let _ =
            write!(b, "<p>Refreshes every {REFRESH_SECS} seconds. <a href=\"/?pause=1\">Pause auto-refresh</a></p>");
    } else {
        b.push_str("<p>Auto-refresh is paused. <a href=\"/\">Resume auto-refresh</a></p>");
    }
    b.push_str("<h2>Alerts</h2>");
    if report.alerts.is_empty() {
        b.push_str("<p class=\"ok\">No alerts.</p>");
    } else {
        b.push_str("<ul>");
        for alert in report.alerts.iter().rev() {
            let _ = write!(b, "<li class=\"bad\">Alert: {}</li>", escape(alert));
        }
        b.push_str("</ul>");
    }
    let origin = match report.config_origin {
        ConfigOrigin::Stored => "stored",
        ConfigOrigin::Preseeded => "preseeded from boot parameters",
        ConfigOrigin::Factory => "factory defaults: finish set-up on the serial console",
    };
    let addr = report.storage_addr.map_or_else(|| "leased, none yet".to_string(), |a| a.to_string());
    b.push_str("<h2>This node</h2><div class=\"scroll\"><table>");
    for (key, value) in [
        ("Host name", report.hostname.clone()),
        ("Role", report.role.to_string()),
        ("Firmware", format!("opie {}", report.version)),
        ("Up for", duration(report.uptime_secs)),
        ("Settings", format!("{origin}, generation {}", report.config_generation)),
        ("Storage network", format!("{} {addr}", report.storage_iface)),
    ] {
        let _ = write!(b, "<tr><th>{key}</th><td>{}</td></tr>", escape(&value));
    }
    for (key, value) in [("Lease", &report.lease), ("Head link", &report.head_link), ("Export", &report.export)] {
        if let Some(v) = value {
            let _ = write!(b, "<tr><th>{key}</th><td>{}</td></tr>", escape(v));
        }
    }
    b.push_str("</table></div><h2>RAID group</h2>");
    match &report.storage {
        Some(s) => {
            let _ = write!(b, "<p>{}</p>", escape(s));
        }
        None => b.push_str("<p>This node has no RAID group.</p>"),
    }
    b.push_str("<h2>ISUs</h2>");
    if report.isus.is_empty() {
        b.push_str("<p>No ISU has introduced itself yet.</p>");
    } else {
        let pending = report.isus.iter().filter(|i| i.standing == Standing::Pending).count();
        if pending > 0 {
            let _ =
                write!(b, "<p class=\"warn\">{pending} pending adoption: <a href=\"/isus\">adopt or reject</a></p>");
        }
        b.push_str(ISU_HEAD);
        for isu in &report.isus {
            isu_row(&mut b, isu);
        }
        b.push_str("</table></div>");
    }
    let title = format!("Status of {}", report.hostname);
    layout(&title, Some(csrf), refresh.then_some(REFRESH_SECS), &b)
}

/// The ISUs page: pending ISUs with adopt (member or spare) and reject
/// buttons, then every other ISU. `flash` is the result of the last form.
pub fn isus_page(report: &StatusReport, csrf: &str, flash: Option<&str>) -> String {
    let mut b = String::new();
    if let Some(m) = flash {
        let _ = write!(b, "<p class=\"msg\" role=\"status\">{}</p>", escape(m));
    }
    let token = escape(csrf);
    b.push_str("<h2>Pending adoption</h2>");
    let pending: Vec<&IsuStatus> = report.isus.iter().filter(|i| i.standing == Standing::Pending).collect();
    if pending.is_empty() {
        b.push_str("<p>No ISU is waiting for adoption.</p>");
    } else {
        b.push_str(
            "<p>Compare each key with the one the ISU's console shows before adopting it. A member \
             joins the RAID group; a spare waits to replace a failed member.</p>",
        );
        for isu in pending {
            let serial = escape(&isu.serial);
            let link = if isu.connected { "connected" } else { "not connected" };
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/isus\"><p><strong>{serial}</strong> ({link})<br>Key \
                 <code>{}</code></p><input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
                 <input type=\"hidden\" name=\"serial\" value=\"{serial}\"><p>\
                 <button type=\"submit\" name=\"action\" value=\"member\">Adopt {serial} as member</button> \
                 <button type=\"submit\" name=\"action\" value=\"spare\">Adopt {serial} as spare</button> \
                 <button type=\"submit\" name=\"action\" value=\"reject\">Reject {serial}</button></p></form>",
                escape(&isu.fingerprint),
            );
        }
    }
    b.push_str("<h2>Known ISUs</h2>");
    let known: Vec<&IsuStatus> = report.isus.iter().filter(|i| i.standing != Standing::Pending).collect();
    if known.is_empty() {
        b.push_str("<p>No ISU has been adopted or rejected yet.</p>");
    } else {
        b.push_str(ISU_HEAD);
        for isu in known {
            isu_row(&mut b, isu);
        }
        b.push_str("</table></div>");
    }
    layout("ISUs", Some(csrf), None, &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adoption::Function;
    use crate::config::Role;

    fn isu(serial: &str, standing: Standing) -> IsuStatus {
        IsuStatus {
            serial: serial.into(),
            fingerprint: "aaaa-bbbb".into(),
            standing,
            connected: true,
            reported: Some("normal".into()),
        }
    }

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            role: Role::Head,
            hostname: "head1".into(),
            uptime_secs: 3725,
            storage: Some("group g1: waiting for members (1 of 3)".into()),
            isus: vec![
                isu("<script>alert(1)</script>", Standing::Pending),
                isu("ISU-2", Standing::Adopted(Function::Spare)),
                isu("ISU-3", Standing::Rejected),
            ],
            alerts: vec!["disk <b>vdb</b> failed".into()],
            ..StatusReport::default()
        }
    }

    /// Every page is a whole document, readable on a phone, without script.
    fn assert_page(html: &str) {
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("name=\"viewport\""), "{html}");
        assert!(html.trim_end().ends_with("</html>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn status_page_says_role_group_isus_and_alerts_in_words() {
        let html = status_page(&report(), "tok", true);
        assert_page(&html);
        assert!(html.contains("<title>Status of head1 - Opie</title>"), "{html}");
        assert!(html.contains("<th>Role</th><td>head</td>"), "{html}");
        assert!(html.contains("<h2>RAID group</h2><p>group g1: waiting for members (1 of 3)</p>"), "{html}");
        assert!(html.contains(">adopted as spare<") && html.contains(">rejected<"), "{html}");
        assert!(html.contains(">pending adoption<") && html.contains(">connected<"), "{html}");
        assert!(html.contains("1 pending adoption"), "{html}");
        assert!(html.contains("Alert: disk &lt;b&gt;vdb&lt;/b&gt; failed"), "{html}");
        assert!(html.contains("1 h 2 min"), "{html}");
        assert!(html.contains("http-equiv=\"refresh\"") && html.contains("Pause auto-refresh"), "{html}");
        let paused = status_page(&report(), "tok", false);
        assert!(!paused.contains("http-equiv=\"refresh\""), "{paused}");
        assert!(paused.contains("Resume auto-refresh"), "{paused}");
    }

    #[test]
    fn script_in_a_serial_is_escaped_everywhere() {
        for html in [status_page(&report(), "tok", true), isus_page(&report(), "tok", Some("<script>x</script>"))] {
            assert!(!html.contains("<script"), "{html}");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        }
    }

    #[test]
    fn isus_page_offers_adopt_and_reject_for_pending_only_with_the_token() {
        let mut r = report();
        r.isus[0].serial = "ISU-1".into();
        let html = isus_page(&r, "c0ffee", Some("adopted ISU-9"));
        assert_page(&html);
        assert!(html.contains("<p class=\"msg\" role=\"status\">adopted ISU-9</p>"), "{html}");
        assert!(html.contains("Adopt ISU-1 as member") && html.contains("Adopt ISU-1 as spare"), "{html}");
        assert!(html.contains("Reject ISU-1"), "{html}");
        assert!(!html.contains("Adopt ISU-2"), "only pending ISUs get buttons: {html}");
        // One form per pending ISU plus log-out, each with the token.
        assert_eq!(html.matches("<form").count(), 2, "{html}");
        assert_eq!(html.matches("name=\"csrf\" value=\"c0ffee\"").count(), 2, "{html}");
        let none = isus_page(&StatusReport::default(), "t", None);
        assert!(none.contains("No ISU is waiting for adoption."), "{none}");
        assert!(none.contains("No ISU has been adopted or rejected yet."), "{none}");
    }

    #[test]
    fn login_page_says_to_use_the_console_without_a_password() {
        let html = login_page(false, None);
        assert_page(&html);
        assert!(html.contains("No admin password is set yet"), "{html}");
        assert!(!html.contains("<form"), "nothing to submit: {html}");
        assert!(!html.contains("<nav"), "no navigation before log-in: {html}");
        let html = login_page(true, Some("Wrong <password>."));
        assert!(html.contains("type=\"password\"") && html.contains("action=\"/login\""), "{html}");
        assert!(html.contains("Wrong &lt;password&gt;."), "{html}");
    }

    #[test]
    fn message_page_has_navigation_only_with_a_session() {
        assert!(!message_page("Not found", "No such page.", None).contains("<nav"));
        let html = message_page("Not found", "No <such> page.", Some("t"));
        assert_page(&html);
        assert!(html.contains("<nav") && html.contains("No &lt;such&gt; page."), "{html}");
    }
}
