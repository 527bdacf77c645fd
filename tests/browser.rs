//! The built-in page in a real browser: headless Chromium loads it from a running server and
//! checks live events, the `ping` listener, the progressive XHR demo and reconnection after
//! --stream-timeout. Needs Debian's chromium and npm playwright-core (.ci/run installs both).

mod util;

use std::process::Command;
use std::time::Duration;
use util::*;

#[test]
fn page_in_headless_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium (apt-get install -y chromium), as .ci/run does"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules/playwright-core").exists() {
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&dir);
        let (status, _, err) = run_bounded(npm, Duration::from_secs(180));
        assert!(status.success(), "npm install in tests/js failed: {err}");
    }
    let server = Server::start(&["--tick", "1", "--stream-timeout", "3", "--retry", "500"]);
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page.png");
    let mut node = Command::new("node");
    node.arg(dir.join("browser.mjs")).arg(format!("http://{}", server.addr)).arg(&shot).env("CHROMIUM", &chromium);
    let (status, out, err) = run_bounded(node, Duration::from_secs(90));
    println!("{out}");
    assert!(status.success(), "browser checks failed:\n{out}\n{err}");
    for check in
        ["published event appears", "ping listener fired", "xhr shows partial text", "every event shown exactly once"]
    {
        assert!(out.lines().any(|l| l.contains(check) && l.contains("\"ok\":true")), "{check} did not pass:\n{out}");
    }
    assert!(shot.exists());
}
