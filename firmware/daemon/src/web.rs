//! `opie web`: the head's web page on the LAN (DESIGN §12, issue 7).
//!
//! A `tiny_http` server on one thread of its own: it turns each HTTP
//! request into an `opie_core::web::app::Request`, lets the sans-I/O
//! `App` decide the answer, and writes it back with the headers every
//! page gets. The thread owns only the `App` (sessions, failed log-ins);
//! every fact it shows and every change it makes goes through the
//! supervisor's local socket, one request at a time, like the serial
//! console.
//!
//! A head appliance's supervisor runs it as a child process
//! ([`supervise`]) and starts it again if it exits: with `panic = "abort"`
//! a crash in the page must not take the node's state owner along. The
//! child stops by itself when the supervisor that started it is gone.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::parent_id;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{info, warn};
use opie_core::api::Request as ApiRequest;
use opie_core::config::PasswordHash;
use opie_core::status::StatusReport;
use opie_core::web::app::{App, BODY_LIMIT, Body, Content, Method, Request, Supervisor};
use smol::Timer;
use thiserror::Error;
use tiny_http::{Header, Server};

use crate::{DEFAULT_SOCKET, local, logging};

/// Where a head appliance serves the page: every address, port 80 (the LAN
/// side; the storage net has no reason to ask).
pub const LAN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
/// How often the server looks whether it should stop.
const POLL: Duration = Duration::from_millis(250);
/// Pause before starting a web page that exited.
const RESTART_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to serve the page on.
    #[arg(long, default_value_t = LAN_LISTEN)]
    listen: SocketAddr,
    /// The supervisor's local socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Stop when the process that started this one exits (the supervisor
    /// passes it, so a restarted supervisor's page can take the port).
    #[arg(long, hide = true)]
    stop_with_parent: bool,
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

/// `opie web`: serves until the process is killed (or, with
/// `--stop-with-parent`, until its parent exits).
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    logging::init("opie-web");
    let server = listen(args.listen)?;
    let parent = parent_id();
    serve(server, &args.socket, || args.stop_with_parent && parent_id() != parent)?;
    Ok(())
}

/// Runs `opie web --listen LISTEN` for the supervisor at `socket` as a
/// child process for as long as the supervisor runs, starting it again
/// when it exits.
pub async fn supervise(listen: SocketAddr, socket: PathBuf) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/opie"));
    loop {
        let mut command = smol::process::Command::new(&exe);
        command.arg("web").arg("--listen").arg(listen.to_string()).arg("--socket").arg(&socket);
        let outcome = match command.arg("--stop-with-parent").spawn() {
            Ok(mut child) => {
                info!("web page started on {listen}");
                match child.status().await {
                    Ok(status) => format!("web page exited ({status})"),
                    Err(e) => format!("web page lost: {e}"),
                }
            }
            Err(e) => format!("web page cannot start: {e}"),
        };
        warn!("{outcome}; starting it again in {}s", RESTART_AFTER.as_secs());
        Timer::after(RESTART_AFTER).await;
    }
}

fn listen(addr: SocketAddr) -> Result<Server, WebError> {
    let server = Server::http(addr).map_err(|source| WebError::Listen { addr, source })?;
    info!("web page listening on {addr}");
    Ok(server)
}

/// The real supervisor, over its local socket.
struct LocalSocket<'a>(&'a Path);

impl Supervisor for LocalSocket<'_> {
    fn status(&mut self) -> Result<StatusReport, String> {
        local::fetch_status(self.0).map_err(|e| e.to_string())
    }

    fn admin_password(&mut self) -> Result<Option<PasswordHash>, String> {
        local::fetch_config(self.0).map(|(config, _)| config.admin_password).map_err(|e| e.to_string())
    }

    fn command(&mut self, request: &ApiRequest) -> Result<String, String> {
        local::command(self.0, request).map_err(|e| e.to_string())
    }
}

/// Answers requests until `stop` says so.
fn serve(server: Server, socket: &Path, stop: impl Fn() -> bool) -> Result<(), WebError> {
    let seed = opie_sys::random::bytes::<32>().map_err(WebError::Random)?;
    let mut app = App::new(seed);
    let started = Instant::now();
    while !stop() {
        let Some(request) = server.recv_timeout(POLL).map_err(WebError::Serve)? else { continue };
        answer(&mut app, request, started.elapsed().as_secs(), &mut LocalSocket(socket));
    }
    Ok(())
}

/// Reads one request, lets the app decide, writes the reply.
fn answer(app: &mut App, mut request: tiny_http::Request, now: u64, sup: &mut dyn Supervisor) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = match request.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    };
    let cookie = request.headers().iter().find(|h| h.field.equiv("Cookie")).map(|h| h.value.as_str().to_string());
    let peer = request.remote_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SocketAddr::ip);
    let mut text = String::new();
    let body = match (method, request.body_length()) {
        (Method::Post, Some(len)) if len <= BODY_LIMIT => {
            match request.as_reader().take(BODY_LIMIT as u64).read_to_string(&mut text) {
                Ok(_) => Body::Form(&text),
                // Not UTF-8 or cut short: no form, so no token either.
                Err(_) => Body::Empty,
            }
        }
        (Method::Post, _) => Body::TooLarge,
        _ => Body::Empty,
    };
    let reply = app.handle(&Request { method, path, query, cookie_header: cookie.as_deref(), body, peer }, now, sup);

    let mut status = reply.status;
    let (content_type, body) = match reply.content {
        Content::Html(page) => ("text/html; charset=utf-8", page),
        Content::JsonStatus(report) => match serde_json::to_string(&report) {
            Ok(text) => ("application/json", text),
            Err(e) => {
                status = 500;
                ("application/json", serde_json::json!({ "error": e.to_string() }).to_string())
            }
        },
        Content::JsonDone(done) => ("application/json", serde_json::json!({ "done": done }).to_string()),
        Content::JsonError(why) => ("application/json", serde_json::json!({ "error": why }).to_string()),
    };
    let mut headers = vec![
        ("Content-Type", content_type.to_string()),
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
    headers.extend(reply.location.map(|to| ("Location", to.to_string())));
    headers.extend(reply.set_cookie.map(|c| ("Set-Cookie", c)));
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    for (name, value) in headers {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    if let Err(e) = request.respond(response) {
        warn!("web: answering a request: {e}");
    }
}
