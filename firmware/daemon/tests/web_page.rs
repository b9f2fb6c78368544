//! The web page end to end on a host: a head supervisor, `opie web` in
//! front of its local socket, and a plain HTTP client. Log-in (refused
//! before an admin password exists, wrong password, rate limit, cookie
//! flags), the status page, adopting a pending ISU with and without the
//! CSRF token, the JSON API, and log-out.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Node, OPIE, free_port};
use opie_core::api::{self, API_VERSION, REQUEST_MAGIC, RESPONSE_MAGIC, Request, Response};
use opie_core::config::{MIN_PASSWORD_ITERATIONS, PasswordHash};
use opie_core::web::limit::MAX_FAILURES;
use opie_proto::record::Record;

const PASSWORD: &str = "web-admin-pw";

/// One exchange on the supervisor's local socket, as `opie` does it.
fn local_call(socket: &Path, request: &Request) -> Response {
    let payload = api::encode(request).expect("encode");
    let bytes =
        Record { magic: REQUEST_MAGIC, version: API_VERSION, generation: 0, payload: &payload }.emit().expect("seal");
    let mut stream = UnixStream::connect(socket).expect("connect to the supervisor");
    stream.write_all(&bytes).expect("send");
    stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("answer");
    let record = Record::parse(&answer, RESPONSE_MAGIC).expect("response record");
    api::decode(record.version, record.payload).expect("decode")
}

/// Sets the admin password through the local API, as the console does.
fn set_password(socket: &Path, password: &str) {
    let Response::Config { mut config, .. } = local_call(socket, &Request::Config) else { panic!("no config") };
    config.admin_password = Some(PasswordHash::new(password, [3; 16], MIN_PASSWORD_ITERATIONS));
    let answer = local_call(socket, &Request::ApplyConfig(config));
    assert!(matches!(answer, Response::Applied { confirm_within_secs: None, .. }), "{answer:?}");
}

/// A running `opie web` on `port`; a child of this test is killed when
/// dropped.
struct WebServer {
    child: Option<Child>,
    port: u16,
}

impl WebServer {
    fn start(socket: &Path) -> WebServer {
        let port = free_port();
        let child = Command::new(OPIE)
            .args(["web", "--listen", &format!("127.0.0.1:{port}"), "--socket"])
            .arg(socket)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opie web");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "opie web did not listen");
            sleep(Duration::from_millis(20));
        }
        WebServer { child: Some(child), port }
    }

    /// One HTTP/1.1 request; the answer's status, header block and body.
    fn request(&self, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Answer {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if let Some(c) = cookie {
            head.push_str(&format!("Cookie: opie_session={c}\r\n"));
        }
        let body = form.unwrap_or("");
        if form.is_some() {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(head.as_bytes()).expect("send");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read answer");
        let (headers, body) = raw.split_once("\r\n\r\n").expect("header block");
        let status = headers.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
        Answer { status, headers: headers.to_string(), body: body.to_string() }
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.request("GET", path, cookie, None)
    }

    fn post(&self, path: &str, cookie: Option<&str>, form: &str) -> Answer {
        self.request("POST", path, cookie, Some(form))
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    /// The value of header `name` (case-insensitive name).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn redirects_to(&self, to: &str) -> bool {
        self.status == 303 && self.header("Location") == Some(to)
    }
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + 64].to_string()
}

#[test]
fn log_in_adopt_an_isu_with_csrf_and_log_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctrl = free_port();
    let head = Node::within(dir.path(), "head", "opie.role=head opie.hostname=head1");
    let _head_sup = head.start(&["--ctrl-listen", &format!("127.0.0.1:{ctrl}")]);
    let web = WebServer::start(&head.socket());

    // Nothing but the log-in page without a session.
    assert!(web.get("/", None).redirects_to("/login"));
    assert!(web.get("/isus", None).redirects_to("/login"));
    assert_eq!(web.get("/api/status", None).status, 401);
    assert_eq!(web.post("/isus", None, "serial=x&action=member").status, 403);
    // A body larger than any form is refused before it is read.
    let big = web.post("/login", None, &format!("password={}", "x".repeat(5000)));
    assert_eq!(big.status, 413, "{big:?}");

    // No admin password yet: the page says where to set one; nobody gets in.
    let page = web.get("/login", None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No admin password is set yet"), "{}", page.body);
    let refused = web.post("/login", None, "password=");
    assert_eq!(refused.status, 403);
    assert!(refused.header("Set-Cookie").is_none(), "{refused:?}");

    set_password(&head.socket(), PASSWORD);
    let page = web.get("/login", None);
    assert!(page.body.contains("type=\"password\""), "{}", page.body);
    let wrong = web.post("/login", None, "password=not-the-one");
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("Wrong password."), "{}", wrong.body);
    assert!(wrong.header("Set-Cookie").is_none(), "{wrong:?}");

    let ok = web.post("/login", None, &format!("password={PASSWORD}"));
    assert!(ok.redirects_to("/"), "{ok:?}");
    let set_cookie = ok.header("Set-Cookie").expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let session = set_cookie.trim_start_matches("opie_session=").split(';').next().expect("value").to_string();
    assert_eq!(session.len(), 64, "{set_cookie}");
    let cookie = Some(session.as_str());

    let status = web.get("/", cookie);
    assert_eq!(status.status, 200);
    assert!(status.body.contains("Status of head1"), "{}", status.body);
    assert!(status.body.contains("<th>Role</th><td>head</td>"), "{}", status.body);
    assert!(status.body.contains("<h2>RAID group</h2><p>group g1: waiting for members"), "{}", status.body);
    assert!(status.body.contains("Pause auto-refresh"), "{}", status.body);
    assert!(web.get("/?pause=1", cookie).body.contains("Resume auto-refresh"));
    assert_eq!(web.get("/no-such-page", cookie).status, 404);

    // An ISU introduces itself and shows as pending on the ISUs page.
    let isu = Node::within(dir.path(), "isu", "opie.role=isu opie.hostname=isu1");
    let _isu_sup = isu.start(&["--ctrl-head", &format!("127.0.0.1:{ctrl}"), "--serial", "ISU-0042"]);
    head.wait_for("isu: ISU-0042 key");
    let isus = web.get("/isus", cookie);
    assert_eq!(isus.status, 200);
    assert!(isus.body.contains("Adopt ISU-0042 as member"), "{}", isus.body);
    let token = csrf_of(&isus.body);

    // Without the token, or with a wrong one: refused, nothing changes.
    let forged = web.post("/isus", cookie, "serial=ISU-0042&action=member");
    assert_eq!(forged.status, 403);
    let forged = web.post("/isus", cookie, &format!("csrf={}&serial=ISU-0042&action=member", "0".repeat(64)));
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("Nothing was changed"), "{}", forged.body);
    assert!(head.status().contains("isu: ISU-0042 key"));
    assert!(head.status().contains("pending adoption"), "{}", head.status());

    // With it, the ISU is adopted and the page says so.
    let adopted = web.post("/isus", cookie, &format!("csrf={token}&serial=ISU-0042&action=member"));
    assert!(adopted.redirects_to("/isus"), "{adopted:?}");
    head.wait_for("adopted as member");
    let isus = web.get("/isus", cookie);
    assert!(isus.body.contains("adopted ISU-0042"), "the result is shown: {}", isus.body);
    assert!(isus.body.contains(">adopted as member<"), "{}", isus.body);
    assert!(isus.body.contains("No ISU is waiting for adoption."), "{}", isus.body);

    // The JSON behind the pages.
    let api = web.get("/api/status", cookie);
    assert_eq!(api.status, 200);
    assert_eq!(api.header("Content-Type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&api.body).expect("JSON status");
    assert_eq!(json["hostname"], "head1");
    assert_eq!(json["isus"][0]["serial"], "ISU-0042");

    // The same actions as JSON; a refusal says why.
    let none = web.post("/api/isus", cookie, "serial=ISU-9999&action=member");
    assert_eq!(none.status, 403, "{none:?}");
    assert!(none.body.contains("CSRF"), "{}", none.body);
    let unknown = web.post("/api/isus", cookie, &format!("csrf={token}&serial=ISU-9999&action=spare"));
    assert_eq!(unknown.status, 409, "{unknown:?}");
    let json: serde_json::Value = serde_json::from_str(&unknown.body).expect("JSON error");
    assert!(json["error"].as_str().is_some_and(|e| e.contains("no pending ISU")), "{json}");
    let bad = web.post("/api/isus", cookie, &format!("csrf={token}&serial=ISU-0042&action=retire"));
    assert_eq!(bad.status, 409, "{bad:?}");

    // Log-out needs the token too, then ends the session.
    assert_eq!(web.post("/logout", cookie, "").status, 403);
    let out = web.post("/logout", cookie, &format!("csrf={token}"));
    assert!(out.redirects_to("/login"), "{out:?}");
    assert!(out.header("Set-Cookie").is_some_and(|c| c.contains("Max-Age=0")), "{out:?}");
    assert!(web.get("/", cookie).redirects_to("/login"));
    assert_eq!(web.post("/isus", cookie, &format!("csrf={token}&serial=ISU-0042&action=spare")).status, 403);

    // Too many wrong passwords: then even the right one is refused.
    for _ in 0..MAX_FAILURES {
        assert_eq!(web.post("/login", None, "password=guess-again").status, 403);
    }
    let locked = web.post("/login", None, &format!("password={PASSWORD}"));
    assert_eq!(locked.status, 429, "{locked:?}");
    assert!(locked.body.contains("Too many wrong passwords"), "{}", locked.body);
    assert!(locked.header("Set-Cookie").is_none(), "{locked:?}");
}

#[test]
fn without_a_supervisor_the_page_says_so_and_it_stops_with_its_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nobody.sock");
    let port = free_port();
    // A parent that starts the page and exits, as a dying supervisor would.
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" web --listen \"$1\" --socket \"$2\" --stop-with-parent 2>/dev/null & sleep 1")
        .arg(OPIE)
        .arg(format!("127.0.0.1:{port}"))
        .arg(&socket)
        .spawn()
        .expect("spawn sh");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "opie web did not listen");
        sleep(Duration::from_millis(20));
    }
    let web = WebServer { child: None, port };
    let page = web.get("/login", None);
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.body.contains("The supervisor did not answer"), "{}", page.body);

    assert!(parent.wait().expect("sh").success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "opie web outlived its parent");
        sleep(Duration::from_millis(50));
    }
}
