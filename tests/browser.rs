//! Real browsers: headless Chromium (Debian's, driven by npm playwright-core) loads the built-in
//! page and its /tinysse.js from a running server: live events, reconnection, tabs sharing one
//! connection, tokens, and HTTP/2 through nginx. Needs chromium, nginx and openssl (.ci/run
//! installs them) and Node.

mod util;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use util::*;

fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium (apt-get install -y chromium), as .ci/run does"
    );
    chromium
}

/// tests/js, with its npm packages installed.
fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules/playwright-core").exists() {
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&dir);
        let (status, _, err) = run_bounded(npm, Duration::from_secs(180));
        assert!(status.success(), "npm install in tests/js failed: {err}");
    }
    dir
}

/// Runs `node tests/js/<script> <args>` (bounded) and asserts it passed, and that each of
/// `checks` printed a passing line; returns its output.
fn node(script: &str, args: &[&str], checks: &[&str]) -> String {
    // One Chromium at a time: several at once on a small machine only make every wait longer.
    static BROWSER: Mutex<()> = Mutex::new(());
    let _one = BROWSER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut node = Command::new("node");
    node.arg(js_dir().join(script)).args(args).env("CHROMIUM", chromium());
    let (status, out, err) = run_bounded(node, Duration::from_secs(150));
    println!("{out}");
    assert!(status.success(), "{script} failed:\n{out}\n{err}");
    for check in checks {
        assert!(
            out.lines().any(|l| l.contains(&format!("\"check\":\"{check}")) && l.contains("\"ok\":true")),
            "{check} did not pass:\n{out}"
        );
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn page_in_headless_chromium() {
    let server = Server::start(&["--tick", "1", "--stream-timeout", "3", "--retry", "500"]);
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page.png");
    let shot_arg = shot.to_string_lossy();
    node(
        "browser.mjs",
        &[&format!("http://{}", server.addr), &shot_arg],
        &["published event appears", "ping listener fired", "xhr shows partial text", "every event shown exactly once"],
    );
    assert!(shot.exists());
}

/// Eight tabs, one stream; the leader closes and 20 events published at once reach the seven
/// others once each, in order; a tab's topic filter gets a stream of its own.
#[test]
fn tabs_share_one_connection_and_survive_the_leader_closing() {
    let server = Server::start(&["--retry", "500"]);
    let shots = tmp("tabs");
    node(
        "tabs.mjs",
        &[&format!("http://{}", server.addr), "share", "", &shots.to_string_lossy()],
        &[
            "one connection for all tabs",
            "one leader, the rest followers",
            "every tab shows a published event",
            "still one connection",
            "events that reuse an id all show",
            "after the leader closed, every tab shows all 20 once, in order",
            "a new leader took over",
            "one connection again",
            "topic filter shows only its topics",
            "publish result says when this tab will not show the event",
        ],
    );
}

/// The same on an origin that is not a secure context (plain http:// to a name, as a Pi on a
/// LAN is), where browsers have no Web Locks and the tabs elect a leader over BroadcastChannel.
#[test]
fn tabs_share_one_connection_without_web_locks() {
    let server = Server::start(&["--retry", "500"]);
    node(
        "tabs.mjs",
        &[&format!("http://{}", server.addr), "insecure"],
        &[
            "origin is not a secure context",
            "no Web Locks: one connection for all tabs",
            "no Web Locks: every tab shows a published event",
            "no Web Locks: after the leader closed, every tab shows all 20 once, in order",
            "no Web Locks: one connection again",
        ],
    );
}

#[test]
fn page_passes_the_token_in_its_address_to_the_stream() {
    let server = Server::start(&["--subscribe-token", "s3cret"]);
    let shots = tmp("subscribe-token");
    node(
        "tabs.mjs",
        &[&format!("http://{}", server.addr), "subscribe-token", "s3cret", &shots.to_string_lossy()],
        &[
            "page with ?token= receives events",
            "xhr demo passes the token on",
            "page without the token says how to pass it",
        ],
    );
}

#[test]
fn page_publishes_with_the_token_typed_in_its_form() {
    let server = Server::start(&["--publish-token", "p4ss"]);
    let shots = tmp("publish-token");
    node(
        "tabs.mjs",
        &[&format!("http://{}", server.addr), "publish-token", "p4ss", &shots.to_string_lossy()],
        &[
            "publish without the token explains 401",
            "publish with a wrong token explains 401",
            "form publishes with the typed token",
            "its event shows with its name",
            "403 loopback-only says what to do",
        ],
    );
}

/// The module's SSE parser in Node, every input also split at every byte.
#[test]
fn tinysse_js_parses_sse_by_the_whatwg_rules() {
    let out =
        node("parser.mjs", &[], &["CRLF line ends", "CR line ends", "a leading BOM is dropped", "retry: digits only"]);
    assert!(!out.contains("\"ok\":false"), "{out}");
}

fn need(bin: &str, package: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {bin}")).output().unwrap().status.success();
    assert!(found, "{bin} not found: install Debian's {package} (as .ci/run does)");
}

/// docs/nginx-http2.conf for real: nginx with a self-signed certificate in front of tinysse; one
/// page opens 10 EventSources over HTTP/2 and all receive an event (straight to tinysse over
/// HTTP/1.1, only 6 connect).
#[test]
fn http2_proxy_lets_one_page_open_ten_streams() {
    need("nginx", "nginx");
    need("openssl", "openssl");
    let server = Server::start(&[]);
    let dir = tmp("h2");
    let mut openssl = Command::new("openssl");
    openssl
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"));
    let (status, _, err) = run_bounded(openssl, Duration::from_secs(60));
    assert!(status.success(), "openssl req failed: {err}");

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let doc = include_str!("../docs/nginx-http2.conf");
    for needle in ["127.0.0.1:8080", "listen 443 ssl http2;", "/etc/nginx/tinysse.crt", "/etc/nginx/tinysse.key"] {
        assert!(doc.contains(needle), "docs/nginx-http2.conf no longer has {needle:?}");
    }
    let conf = doc
        .replace("127.0.0.1:8080", &server.addr.to_string())
        .replace("listen 443 ssl http2;", &format!("listen 127.0.0.1:{port} ssl http2;"))
        .replace("/etc/nginx/tinysse.crt", &dir.join("cert.pem").to_string_lossy())
        .replace("/etc/nginx/tinysse.key", &dir.join("key.pem").to_string_lossy());
    let _nginx = start_nginx(&dir, &conf, port);
    node(
        "h2.mjs",
        &[&format!("https://127.0.0.1:{port}"), &format!("http://{}", server.addr)],
        &[
            "HTTP/1.1: only 6 of 10 EventSources connect",
            "the page came over HTTP/2",
            "HTTP/2: all 10 EventSources open",
            "HTTP/2: all 10 receive a published event",
            "HTTP/2: the built-in page streams through the proxy",
        ],
    );
}
