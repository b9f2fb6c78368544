//! What the web page answers to each request: routing, log-in, sessions,
//! CSRF checks and the ISU actions, as one state machine. The daemon's web
//! thread turns HTTP into a [`Request`], passes the time and a
//! [`Supervisor`] that asks the real one over the local socket, and writes
//! the [`Reply`] back; tests pass a fake supervisor.
//!
//! Pages: `/` (status), `/isus` (adopt or reject), `/login`, `/logout`.
//! JSON: `GET /api/status` (what both pages show) and `POST /api/isus`
//! (the ISUs page's form fields; answers `done` or `error`). Without a
//! session only `/login` answers; every POST must carry the session's CSRF
//! token or it is refused with 403 and changes nothing.

use std::net::IpAddr;

use log::{info, warn};

use crate::adoption::Function;
use crate::api::Request as ApiRequest;
use crate::config::PasswordHash;
use crate::status::StatusReport;

use super::limit::LoginLimiter;
use super::session::{Active, Sessions};
use super::{SESSION_COOKIE, field, html, parse_form};

/// Most bytes of a request body accepted (log-in and ISU forms are tiny).
pub const BODY_LIMIT: usize = 4096;

/// The supervisor as the web page sees it: each call is one exchange on
/// the local socket; an `Err` is the reason in words.
pub trait Supervisor {
    /// The node's status.
    fn status(&mut self) -> Result<StatusReport, String>;
    /// The running config's admin password hash, `None` while unset.
    fn admin_password(&mut self) -> Result<Option<PasswordHash>, String>;
    /// A request answered with what was done, or why not.
    fn command(&mut self, request: &ApiRequest) -> Result<String, String>;
}

/// The HTTP method, as far as the page cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

/// A POST body as the server received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// No body (GET), or an empty one.
    Empty,
    /// A form body of at most [`BODY_LIMIT`] bytes.
    Form(&'a str),
    /// Longer than [`BODY_LIMIT`], or of unknown length: not read.
    TooLarge,
}

/// One request, parsed by the server.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: Method,
    /// The path without the query.
    pub path: &'a str,
    pub query: &'a str,
    /// The `Cookie:` header, if any.
    pub cookie_header: Option<&'a str>,
    pub body: Body<'a>,
    /// The client's address (rate limiting).
    pub peer: IpAddr,
}

/// What a reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Html(String),
    /// `GET /api/status`: the report, for the server to serialise.
    JsonStatus(Box<StatusReport>),
    /// `{"done": text}`.
    JsonDone(String),
    /// `{"error": text}`.
    JsonError(String),
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Where a 303 sends the browser.
    pub location: Option<&'static str>,
    /// A `Set-Cookie` header value.
    pub set_cookie: Option<String>,
    pub content: Content,
}

impl Reply {
    fn html(status: u16, page: String) -> Self {
        Reply { status, location: None, set_cookie: None, content: Content::Html(page) }
    }

    fn redirect(to: &'static str) -> Self {
        Reply { status: 303, location: Some(to), set_cookie: None, content: Content::Html(String::new()) }
    }

    fn json_error(status: u16, message: &str) -> Self {
        Reply { status, location: None, set_cookie: None, content: Content::JsonError(message.into()) }
    }
}

/// The session cookie for `value`; `Max-Age=0` when `expire`.
fn session_cookie(value: &str, expire: bool) -> String {
    let age = if expire { "; Max-Age=0" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{age}")
}

/// The web page's state: who is logged in and failed log-ins. No node
/// state: every fact comes from the [`Supervisor`] for each request.
#[derive(Debug)]
pub struct App {
    sessions: Sessions,
    limiter: LoginLimiter,
}

impl App {
    /// `seed`: 32 random bytes for session ids and CSRF tokens.
    pub fn new(seed: [u8; 32]) -> Self {
        App { sessions: Sessions::new(seed), limiter: LoginLimiter::new() }
    }

    /// Answers one request at `now` (seconds on a monotonic clock).
    pub fn handle(&mut self, req: &Request<'_>, now: u64, sup: &mut dyn Supervisor) -> Reply {
        let cookie = req.cookie_header.and_then(|h| super::cookie(h, SESSION_COOKIE));
        let form = match req.body {
            Body::TooLarge => {
                let message = "A form must say its length and stay under 4 KiB.";
                return Reply::html(413, html::message_page("Form too large", message, None));
            }
            Body::Form(text) => parse_form(text),
            Body::Empty => Vec::new(),
        };
        let api = req.path.starts_with("/api/");

        if req.path == "/login" {
            return match req.method {
                Method::Get if self.sessions.check(cookie, now).is_some() => Reply::redirect("/"),
                Method::Get => login_form(sup, 200, None),
                Method::Post => self.login(sup, req.peer, field(&form, "password").unwrap_or(""), now),
                Method::Other => not_allowed(None),
            };
        }
        let Some(active) = self.sessions.check(cookie, now) else {
            return match req.method {
                _ if api => Reply::json_error(401, "log in first"),
                Method::Get => Reply::redirect("/login"),
                _ => Reply::html(403, html::message_page("Not logged in", "Log in first; nothing was changed.", None)),
            };
        };
        if req.method == Method::Post && !self.sessions.csrf_ok(cookie, field(&form, "csrf"), now) {
            if api {
                return Reply::json_error(403, "no valid CSRF token; nothing was changed");
            }
            let message = "This form did not carry this session's security token (it may be from an old page \
                           or another site). Nothing was changed; reload the page and try again.";
            return Reply::html(403, html::message_page("Form refused", message, Some(&active.csrf)));
        }
        match (req.method, req.path) {
            (Method::Get, "/") => {
                let pause = field(&parse_form(req.query), "pause") == Some("1");
                with_status(sup, &active, |report| html::status_page(report, &active.csrf, !pause))
            }
            (Method::Get, "/isus") => {
                let flash = self.sessions.take_flash(cookie);
                with_status(sup, &active, |report| html::isus_page(report, &active.csrf, flash.as_deref()))
            }
            (Method::Get, "/api/status") => match sup.status() {
                Ok(report) => Reply {
                    status: 200,
                    location: None,
                    set_cookie: None,
                    content: Content::JsonStatus(Box::new(report)),
                },
                Err(why) => Reply::json_error(503, &why),
            },
            (Method::Post, "/isus") => {
                let message = isu_action(sup, &form).unwrap_or_else(|why| format!("Not done: {why}"));
                self.sessions.set_flash(cookie, message);
                Reply::redirect("/isus")
            }
            (Method::Post, "/api/isus") => match isu_action(sup, &form) {
                Ok(done) => Reply { status: 200, location: None, set_cookie: None, content: Content::JsonDone(done) },
                Err(why) => Reply::json_error(409, &why),
            },
            (Method::Post, "/logout") => {
                self.sessions.logout(cookie);
                Reply { set_cookie: Some(session_cookie("", true)), ..Reply::redirect("/login") }
            }
            (_, "/" | "/isus" | "/api/status" | "/api/isus" | "/logout") => not_allowed(Some(&active)),
            _ if api => Reply::json_error(404, "no such API"),
            _ => Reply::html(404, html::message_page("Not found", "There is no such page.", Some(&active.csrf))),
        }
    }

    fn login(&mut self, sup: &mut dyn Supervisor, peer: IpAddr, password: &str, now: u64) -> Reply {
        if let Some(wait) = self.limiter.check(peer, now) {
            warn!("web: log-in from {peer} refused: too many failed attempts");
            let message = format!("Too many wrong passwords. Try again in {wait} seconds.");
            return login_form(sup, 429, Some(&message));
        }
        let hash = match sup.admin_password() {
            Ok(Some(hash)) => hash,
            Ok(None) => return Reply::html(403, html::login_page(false, None)),
            Err(why) => return unreachable_supervisor(&why, None),
        };
        if hash.verify(password) {
            self.limiter.succeeded(peer);
            let active = self.sessions.login(now);
            info!("web: admin logged in from {peer}");
            Reply { set_cookie: Some(session_cookie(&active.id, false)), ..Reply::redirect("/") }
        } else {
            self.limiter.failed(peer, now);
            warn!("web: wrong admin password from {peer}");
            Reply::html(403, html::login_page(true, Some("Wrong password.")))
        }
    }
}

fn login_form(sup: &mut dyn Supervisor, status: u16, message: Option<&str>) -> Reply {
    match sup.admin_password() {
        Ok(hash) => Reply::html(status, html::login_page(hash.is_some(), message)),
        Err(why) => unreachable_supervisor(&why, None),
    }
}

/// Adopts or rejects the ISU a form names (`serial`, `action`: member,
/// spare or reject): what was done, or why not, in words.
fn isu_action(sup: &mut dyn Supervisor, form: &[(String, String)]) -> Result<String, String> {
    let Some(serial) = field(form, "serial").filter(|s| !s.is_empty()) else {
        return Err("no ISU was named; nothing was changed".into());
    };
    let request = match field(form, "action") {
        Some("member") => ApiRequest::Adopt { serial: serial.into(), function: Function::Member },
        Some("spare") => ApiRequest::Adopt { serial: serial.into(), function: Function::Spare },
        Some("reject") => ApiRequest::Reject { serial: serial.into() },
        _ => return Err("unknown action (member, spare or reject); nothing was changed".into()),
    };
    let done = sup.command(&request)?;
    info!("web: {done}");
    Ok(done)
}

fn with_status(sup: &mut dyn Supervisor, active: &Active, render: impl FnOnce(&StatusReport) -> String) -> Reply {
    match sup.status() {
        Ok(report) => Reply::html(200, render(&report)),
        Err(why) => unreachable_supervisor(&why, Some(active)),
    }
}

fn unreachable_supervisor(why: &str, active: Option<&Active>) -> Reply {
    let message = format!("The supervisor did not answer: {why}. Try again in a moment.");
    Reply::html(503, html::message_page("Supervisor not answering", &message, active.map(|a| a.csrf.as_str())))
}

fn not_allowed(active: Option<&Active>) -> Reply {
    let message = "This page does not take that method.";
    Reply::html(405, html::message_page("Not allowed", message, active.map(|a| a.csrf.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adoption::Standing;
    use crate::config::{MIN_PASSWORD_ITERATIONS, Role};
    use crate::status::IsuStatus;
    use crate::web::limit::MAX_FAILURES;
    use crate::web::session::IDLE_SECS;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 20));

    /// A supervisor with one pending ISU that records what it was asked.
    struct Fake {
        report: StatusReport,
        password: Option<PasswordHash>,
        commands: Vec<ApiRequest>,
        down: bool,
    }

    impl Fake {
        fn new() -> Self {
            let isu = IsuStatus {
                serial: "ISU-1".into(),
                fingerprint: "aaaa-bbbb".into(),
                standing: Standing::Pending,
                connected: true,
                reported: None,
            };
            let report =
                StatusReport { role: Role::Head, hostname: "head1".into(), isus: vec![isu], ..StatusReport::default() };
            Fake {
                report,
                password: Some(PasswordHash::new("right-password", [1; 16], MIN_PASSWORD_ITERATIONS)),
                commands: Vec::new(),
                down: false,
            }
        }
    }

    impl Supervisor for Fake {
        fn status(&mut self) -> Result<StatusReport, String> {
            if self.down { Err("connection refused".into()) } else { Ok(self.report.clone()) }
        }
        fn admin_password(&mut self) -> Result<Option<PasswordHash>, String> {
            if self.down { Err("connection refused".into()) } else { Ok(self.password.clone()) }
        }
        fn command(&mut self, request: &ApiRequest) -> Result<String, String> {
            self.commands.push(request.clone());
            match request {
                ApiRequest::Adopt { serial, function } if serial == "ISU-1" => {
                    self.report.isus[0].standing = Standing::Adopted(*function);
                    Ok(format!("adopted {serial} as {}", function.as_str()))
                }
                _ => Err("no pending ISU with that serial or key".into()),
            }
        }
    }

    fn req<'a>(method: Method, path: &'a str, cookie: Option<&'a str>, body: Body<'a>) -> Request<'a> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request { method, path, query, cookie_header: cookie, body, peer: PEER }
    }

    fn html(reply: &Reply) -> &str {
        match &reply.content {
            Content::Html(page) => page,
            other => panic!("not HTML: {other:?}"),
        }
    }

    /// Logs in; returns the `Cookie:` header and the CSRF token.
    fn login(app: &mut App, sup: &mut Fake, now: u64) -> (String, String) {
        let reply = app.handle(&req(Method::Post, "/login", None, Body::Form("password=right-password")), now, sup);
        assert_eq!((reply.status, reply.location), (303, Some("/")), "{reply:?}");
        let set = reply.set_cookie.expect("cookie");
        assert!(set.ends_with("; Path=/; HttpOnly; SameSite=Strict"), "{set}");
        let header = set.split(';').next().expect("pair").to_string();
        let page = app.handle(&req(Method::Get, "/isus", Some(&header), Body::Empty), now, sup);
        let page = html(&page);
        let at = page.find("name=\"csrf\" value=\"").expect("token") + 19;
        (header, page[at..at + 64].to_string())
    }

    #[test]
    fn without_a_session_only_login_answers() {
        let (mut app, mut sup) = (App::new([9; 32]), Fake::new());
        for path in ["/", "/isus", "/nowhere", "/?pause=1"] {
            let r = app.handle(&req(Method::Get, path, None, Body::Empty), 0, &mut sup);
            assert_eq!((r.status, r.location), (303, Some("/login")), "{path}");
        }
        let r = app.handle(&req(Method::Get, "/api/status", Some("opie_session=junk"), Body::Empty), 0, &mut sup);
        assert_eq!(r.content, Content::JsonError("log in first".into()));
        assert_eq!(r.status, 401);
        for path in ["/isus", "/logout", "/api/isus"] {
            let r = app.handle(&req(Method::Post, path, None, Body::Form("serial=ISU-1&action=member")), 0, &mut sup);
            assert!(matches!(r.status, 401 | 403), "{path}: {r:?}");
        }
        assert!(sup.commands.is_empty());
        let r = app.handle(&req(Method::Get, "/login", None, Body::Empty), 0, &mut sup);
        assert_eq!(r.status, 200);
        assert!(html(&r).contains("type=\"password\""));
    }

    #[test]
    fn no_admin_password_logs_nobody_in() {
        let (mut app, mut sup) = (App::new([9; 32]), Fake::new());
        sup.password = None;
        let r = app.handle(&req(Method::Get, "/login", None, Body::Empty), 0, &mut sup);
        assert!(html(&r).contains("No admin password is set yet"));
        let r = app.handle(&req(Method::Post, "/login", None, Body::Form("password=")), 0, &mut sup);
        assert_eq!(r.status, 403);
        assert_eq!(r.set_cookie, None);
    }

    #[test]
    fn wrong_passwords_are_refused_then_rate_limited() {
        let (mut app, mut sup) = (App::new([9; 32]), Fake::new());
        for _ in 0..MAX_FAILURES {
            let r = app.handle(&req(Method::Post, "/login", None, Body::Form("password=guess")), 5, &mut sup);
            assert_eq!((r.status, r.set_cookie.as_deref()), (403, None));
            assert!(html(&r).contains("Wrong password."));
        }
        let right = Body::Form("password=right-password");
        let r = app.handle(&req(Method::Post, "/login", None, right), 6, &mut sup);
        assert_eq!((r.status, r.set_cookie.as_deref()), (429, None));
        assert!(html(&r).contains("Too many wrong passwords. Try again in 299 seconds."), "{}", html(&r));
        // Another address is not locked out; after the window this one isn't.
        let other = Request {
            peer: IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 21)),
            ..req(Method::Post, "/login", None, right)
        };
        assert_eq!(app.handle(&other, 6, &mut sup).status, 303);
        login(&mut app, &mut sup, 400);
    }

    #[test]
    fn every_post_needs_the_sessions_csrf_token() {
        let (mut app, mut sup) = (App::new([9; 32]), Fake::new());
        let (cookie, _token) = login(&mut app, &mut sup, 0);
        let (_, other_token) = login(&mut app, &mut sup, 0);
        for path in ["/isus", "/api/isus", "/logout"] {
            for body in [
                "serial=ISU-1&action=member".to_string(),
                format!("csrf={other_token}&serial=ISU-1&action=member"),
                "csrf=&serial=ISU-1&action=member".to_string(),
            ] {
                let r = app.handle(&req(Method::Post, path, Some(&cookie), Body::Form(&body)), 1, &mut sup);
                assert_eq!(r.status, 403, "{path} {body}: {r:?}");
            }
        }
        assert!(sup.commands.is_empty(), "nothing reached the supervisor");
        let r = app.handle(&req(Method::Get, "/", Some(&cookie), Body::Empty), 1, &mut sup);
        assert_eq!(r.status, 200, "the session survived the refusals");
    }

    #[test]
    fn adopting_through_the_form_shows_the_result_once() {
        let (mut app, mut sup) = (App::new([9; 32]), Fake::new());
        let (cookie, token) = login(&mut app, &mut sup, 0);
        let body = format!("csrf={token}&serial=ISU-1&action=spare");
        let r = app.handle(&req(Method::Post, "/isus", Some(&cookie), Body::Form(&body)), 1, &mut sup);
        assert_eq!((r.status, r.location), (303, Some("/isus")));
        assert_eq!(sup.commands, vec![ApiRequest::Adopt { serial: "ISU-1".into(), function: Function::Spare }]);
        let page = app.handle(&req(Method::Get, "/isus", Some(&cookie), Body::Empty), 2, &mut sup);
        assert!(html(&page).contains("role=\"status\">adopted ISU-1 as spare</p>"), "{}", html(&page));
        assert!(html(&page).contains(">adopted as spare<"));
        let again = app.handle(&req(Method::Get, "/isus", Some(&cookie), Body::Empty), 3, &mut sup);
        assert!(!html(&again).contains("role=\"status\""), "shown once");

        let body = format!("csrf={token}&serial=ISU-7&action=reject");
        app.handle(&req(Method::Post, "/isus", Some(&cookie), Body::Form(&body)), 4, &mut sup);
        let page = app.handle(&req(Method::Get, "/isus", Some(&cookie), Body::Empty), 5, &mut sup);
        assert!(html(&page).contains("Not done: no pending ISU"), "{}", html(&page));
    }

    #[test]
    fn the_json_api_answers_status_and_isu_actions() {
        let (mut app, mut sup) = (App::new([9; 32]), Fake::new());
        let (cookie, token) = login(&mut app, &mut sup, 0);
        let r = app.handle(&req(Method::Get, "/api/status", Some(&cookie), Body::Empty), 1, &mut sup);
        assert_eq!(r.content, Content::JsonStatus(Box::new(sup.report.clone())));
        let body = format!("csrf={token}&serial=ISU-1&action=dance");
        let r = app.handle(&req(Method::Post, "/api/isus", Some(&cookie), Body::Form(&body)), 1, &mut sup);
        assert_eq!(r.status, 409);
        assert!(sup.commands.is_empty(), "an unknown action asks nothing");
        let body = format!("csrf={token}&serial=ISU-1&action=member");
        let r = app.handle(&req(Method::Post, "/api/isus", Some(&cookie), Body::Form(&body)), 1, &mut sup);
        assert_eq!((r.status, r.content), (200, Content::JsonDone("adopted ISU-1 as member".into())));
        let r = app.handle(&req(Method::Get, "/api/nothing", Some(&cookie), Body::Empty), 1, &mut sup);
        assert_eq!(r.status, 404);
    }

    #[test]
    fn logout_idle_expiry_and_odd_requests() {
        let (mut app, mut sup) = (App::new([9; 32]), Fake::new());
        let (cookie, token) = login(&mut app, &mut sup, 0);
        let r = app.handle(&req(Method::Get, "/login", Some(&cookie), Body::Empty), 1, &mut sup);
        assert_eq!(r.location, Some("/"), "logged in already");
        assert_eq!(app.handle(&req(Method::Other, "/", Some(&cookie), Body::Empty), 1, &mut sup).status, 405);
        assert_eq!(app.handle(&req(Method::Get, "/logout", Some(&cookie), Body::Empty), 1, &mut sup).status, 405);
        assert_eq!(app.handle(&req(Method::Get, "/nowhere", Some(&cookie), Body::Empty), 1, &mut sup).status, 404);
        let r = app.handle(&req(Method::Post, "/isus", Some(&cookie), Body::TooLarge), 1, &mut sup);
        assert_eq!(r.status, 413);
        sup.down = true;
        let r = app.handle(&req(Method::Get, "/", Some(&cookie), Body::Empty), 1, &mut sup);
        assert_eq!(r.status, 503);
        assert!(html(&r).contains("connection refused"));
        sup.down = false;

        let body = format!("csrf={token}");
        let r = app.handle(&req(Method::Post, "/logout", Some(&cookie), Body::Form(&body)), 2, &mut sup);
        assert_eq!(r.location, Some("/login"));
        assert!(r.set_cookie.is_some_and(|c| c.contains("Max-Age=0")));
        let r = app.handle(&req(Method::Get, "/", Some(&cookie), Body::Empty), 3, &mut sup);
        assert_eq!(r.location, Some("/login"), "the session ended");

        let (cookie, _) = login(&mut app, &mut sup, 10);
        let r = app.handle(&req(Method::Get, "/", Some(&cookie), Body::Empty), 10 + IDLE_SECS, &mut sup);
        assert_eq!(r.location, Some("/login"), "idle too long");
    }
}
