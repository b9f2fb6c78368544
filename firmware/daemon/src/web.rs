//! `opie web`: the head's web page on the LAN (DESIGN §12, issue 7).
//!
//! A `tiny_http` server on one thread of its own. It owns only who is
//! logged in (`opie_core::web::session`) and the failed-login counts
//! (`opie_core::web::limit`); every fact it shows and every change it makes
//! goes through the supervisor's local socket, one request at a time, like
//! the serial console. Pages are rendered by `opie_core::web::html`.
//!
//! Pages: `/` (status), `/isus` (adopt or reject), `/login`, `/logout`.
//! JSON: `GET /api/status` (what both pages show) and `POST /api/isus`
//! (the ISUs page's form fields; answers `done` or `error`).
//!
//! Without a session only `/login` answers; every POST must carry the
//! session's CSRF token or it is refused with 403 and changes nothing. The
//! password is checked against the admin password hash of the running
//! config, fetched for each attempt; with none set yet the page sends the
//! admin to the serial console.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};
use opie_core::adoption::Function;
use opie_core::api::Request;
use opie_core::web::limit::LoginLimiter;
use opie_core::web::session::{Active, Sessions};
use opie_core::web::{self, SESSION_COOKIE, field, html, parse_form};
use thiserror::Error;
use tiny_http::{Header, Method, Server};

use crate::{DEFAULT_SOCKET, local, logging};

/// Where a head appliance serves the page: every address, port 80 (the LAN
/// side; the storage net has no reason to ask).
pub const LAN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
/// How often the server looks whether it should stop.
const POLL: Duration = Duration::from_millis(250);
/// Most bytes of a request body read (log-in and ISU forms are tiny).
const BODY_LIMIT: u64 = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to serve the page on.
    #[arg(long, default_value_t = LAN_LISTEN)]
    listen: SocketAddr,
    /// The supervisor's local socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

/// Errors that keep the web page from starting.
#[derive(Debug, Error)]
pub enum WebError {
    /// The listening socket could not be opened.
    #[error("web page cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: Box<dyn std::error::Error + Send + Sync> },
    /// No randomness for session ids.
    #[error("no randomness for web session ids: {0}")]
    Random(std::io::Error),
    /// The server stopped accepting requests.
    #[error("web server: {0}")]
    Serve(std::io::Error),
}

/// `opie web`: serves until the process is killed.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    logging::init("opie-web");
    let server = listen(args.listen)?;
    let (_keep, stop) = mpsc::channel();
    serve(server, &args.socket, &stop)?;
    Ok(())
}

/// A web page served on a thread of its own; dropping it stops the thread.
#[derive(Debug)]
pub struct WebThread {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WebThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens `addr` now (so the caller can report a failure) and serves the
/// page on a new thread.
pub fn spawn(addr: SocketAddr, socket: PathBuf) -> Result<WebThread, WebError> {
    let server = listen(addr)?;
    let (keep, stop) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        if let Err(e) = serve(server, &socket, &stop) {
            warn!("{e}");
        }
    });
    Ok(WebThread { stop: Some(keep), thread: Some(thread) })
}

fn listen(addr: SocketAddr) -> Result<Server, WebError> {
    let server = Server::http(addr).map_err(|source| WebError::Listen { addr, source })?;
    info!("web page listening on {addr}");
    Ok(server)
}

/// Answers requests until `stop` is sent to or its sender dropped.
fn serve(server: Server, socket: &Path, stop: &Receiver<()>) -> Result<(), WebError> {
    let seed = opie_sys::random::bytes::<32>().map_err(WebError::Random)?;
    let mut web = Web {
        socket: socket.to_path_buf(),
        sessions: Sessions::new(seed),
        limiter: LoginLimiter::new(),
        started: Instant::now(),
    };
    while let Err(TryRecvError::Empty) = stop.try_recv() {
        let Some(mut request) = server.recv_timeout(POLL).map_err(WebError::Serve)? else { continue };
        let reply = web.handle(&mut request);
        let mut response = tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
        for (name, value) in reply.headers {
            if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(header);
            }
        }
        if let Err(e) = request.respond(response) {
            warn!("web: answering a request: {e}");
        }
    }
    Ok(())
}

/// One answer: status, headers and body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn html(status: u16, body: String) -> Self {
        let headers = vec![
            ("Content-Type", "text/html; charset=utf-8".into()),
            ("Cache-Control", "no-store".into()),
            // No script at all; styles only inline; forms post here only.
            (
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'".into(),
            ),
            ("X-Frame-Options", "DENY".into()),
            ("X-Content-Type-Options", "nosniff".into()),
            ("Referrer-Policy", "no-referrer".into()),
        ];
        Reply { status, headers, body }
    }

    fn json(status: u16, body: String) -> Self {
        let headers = vec![
            ("Content-Type", "application/json".into()),
            ("Cache-Control", "no-store".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ];
        Reply { status, headers, body }
    }

    fn redirect(to: &str) -> Self {
        let mut reply = Reply::html(303, String::new());
        reply.headers.push(("Location", to.into()));
        reply
    }

    fn cookie(mut self, value: &str, max_age: Option<u64>) -> Self {
        let age = max_age.map_or(String::new(), |secs| format!("; Max-Age={secs}"));
        self.headers.push(("Set-Cookie", format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{age}")));
        self
    }
}

/// The web thread's own state: sessions and failed log-ins only.
struct Web {
    socket: PathBuf,
    sessions: Sessions,
    limiter: LoginLimiter,
    started: Instant,
}

impl Web {
    fn handle(&mut self, request: &mut tiny_http::Request) -> Reply {
        let now = self.started.elapsed().as_secs();
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let method = request.method().clone();
        let cookie = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Cookie"))
            .and_then(|h| web::cookie(h.value.as_str(), SESSION_COOKIE))
            .map(str::to_string);
        let cookie = cookie.as_deref();
        let peer = request.remote_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SocketAddr::ip);
        let form = if method == Method::Post {
            if request.body_length().is_none_or(|len| len as u64 > BODY_LIMIT) {
                let message = "A form must say its length and stay under 4 KiB.";
                return Reply::html(413, html::message_page("Form too large", message, None));
            }
            let mut body = String::new();
            if request.as_reader().take(BODY_LIMIT).read_to_string(&mut body).is_err() {
                return Reply::html(400, html::message_page("Bad request", "The form could not be read.", None));
            }
            parse_form(&body)
        } else {
            Vec::new()
        };

        if path == "/login" {
            return match method {
                Method::Get if self.sessions.check(cookie, now).is_some() => Reply::redirect("/"),
                Method::Get => self.login_form(200, None),
                Method::Post => self.login(peer, field(&form, "password").unwrap_or(""), now),
                _ => not_allowed(None),
            };
        }
        let Some(active) = self.sessions.check(cookie, now) else {
            return match (method, path) {
                (Method::Get, p) if p.starts_with("/api/") => json_error(401, "log in first"),
                (Method::Get, _) => Reply::redirect("/login"),
                _ => Reply::html(403, html::message_page("Not logged in", "Log in first; nothing was changed.", None)),
            };
        };
        if method == Method::Post && !self.sessions.csrf_ok(cookie, field(&form, "csrf"), now) {
            if path.starts_with("/api/") {
                return json_error(403, "no valid CSRF token; nothing was changed");
            }
            return Reply::html(
                403,
                html::message_page(
                    "Form refused",
                    "This form did not carry this session's security token (it may be from an old page or \
                     another site). Nothing was changed; reload the page and try again.",
                    Some(&active.csrf),
                ),
            );
        }
        match (method, path) {
            (Method::Get, "/") => {
                let pause = field(&parse_form(query), "pause") == Some("1");
                self.with_status(&active, |report| html::status_page(report, &active.csrf, !pause))
            }
            (Method::Get, "/isus") => {
                let flash = self.sessions.take_flash(cookie);
                self.with_status(&active, |report| html::isus_page(report, &active.csrf, flash.as_deref()))
            }
            (Method::Get, "/api/status") => match local::fetch_status(&self.socket) {
                Ok(report) => match serde_json::to_string(&report) {
                    Ok(json) => Reply::json(200, json),
                    Err(e) => json_error(500, &e.to_string()),
                },
                Err(e) => json_error(503, &e.to_string()),
            },
            (Method::Post, "/isus") => {
                let message = self.isu_action(&form).unwrap_or_else(|why| format!("Not done: {why}"));
                self.sessions.set_flash(cookie, message);
                Reply::redirect("/isus")
            }
            (Method::Post, "/api/isus") => match self.isu_action(&form) {
                Ok(done) => Reply::json(200, serde_json::json!({ "done": done }).to_string()),
                Err(why) => json_error(409, &why),
            },
            (Method::Post, "/logout") => {
                self.sessions.logout(cookie);
                Reply::redirect("/login").cookie("", Some(0))
            }
            (_, "/" | "/isus" | "/api/status" | "/api/isus" | "/logout") => not_allowed(Some(&active)),
            _ => Reply::html(404, html::message_page("Not found", "There is no such page.", Some(&active.csrf))),
        }
    }

    fn login_form(&self, status: u16, message: Option<&str>) -> Reply {
        match local::fetch_config(&self.socket) {
            Ok((config, _)) => Reply::html(status, html::login_page(config.admin_password.is_some(), message)),
            Err(e) => unreachable_supervisor(&e, None),
        }
    }

    fn login(&mut self, peer: IpAddr, password: &str, now: u64) -> Reply {
        if let Some(wait) = self.limiter.check(peer, now) {
            warn!("web: log-in from {peer} refused: too many failed attempts");
            let message = format!("Too many wrong passwords. Try again in {wait} seconds.");
            return self.login_form(429, Some(&message));
        }
        let config = match local::fetch_config(&self.socket) {
            Ok((config, _)) => config,
            Err(e) => return unreachable_supervisor(&e, None),
        };
        let Some(hash) = config.admin_password else {
            return Reply::html(403, html::login_page(false, None));
        };
        if hash.verify(password) {
            self.limiter.succeeded(peer);
            let active = self.sessions.login(now);
            info!("web: admin logged in from {peer}");
            Reply::redirect("/").cookie(&active.id, None)
        } else {
            self.limiter.failed(peer, now);
            warn!("web: wrong admin password from {peer}");
            Reply::html(403, html::login_page(true, Some("Wrong password.")))
        }
    }

    /// Adopts or rejects the ISU a form names (`serial`, `action`:
    /// member, spare or reject): what was done, or why not, in words.
    fn isu_action(&self, form: &[(String, String)]) -> Result<String, String> {
        let Some(serial) = field(form, "serial").filter(|s| !s.is_empty()) else {
            return Err("no ISU was named; nothing was changed".into());
        };
        let request = match field(form, "action") {
            Some("member") => Request::Adopt { serial: serial.into(), function: Function::Member },
            Some("spare") => Request::Adopt { serial: serial.into(), function: Function::Spare },
            Some("reject") => Request::Reject { serial: serial.into() },
            _ => return Err("unknown action (member, spare or reject); nothing was changed".into()),
        };
        let done = local::command(&self.socket, &request).map_err(|e| e.to_string())?;
        info!("web: {done}");
        Ok(done)
    }

    fn with_status(&self, active: &Active, render: impl FnOnce(&opie_core::status::StatusReport) -> String) -> Reply {
        match local::fetch_status(&self.socket) {
            Ok(report) => Reply::html(200, render(&report)),
            Err(e) => unreachable_supervisor(&e, Some(active)),
        }
    }
}

fn json_error(status: u16, message: &str) -> Reply {
    Reply::json(status, serde_json::json!({ "error": message }).to_string())
}

fn unreachable_supervisor(e: &local::LocalError, active: Option<&Active>) -> Reply {
    let message = format!("The supervisor did not answer: {e}. Try again in a moment.");
    Reply::html(503, html::message_page("Supervisor not answering", &message, active.map(|a| a.csrf.as_str())))
}

fn not_allowed(active: Option<&Active>) -> Reply {
    Reply::html(
        405,
        html::message_page("Not allowed", "This page does not take that method.", active.map(|a| a.csrf.as_str())),
    )
}
