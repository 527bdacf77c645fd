//! A short run of the load generator (examples/loadgen.rs) against the real tinysse binary in
//! each publisher mode: every event must reach every subscriber exactly once and in each
//! publisher's order. Speed is reported by the loadgen but never checked here.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use util::*;

const SUBSCRIBERS: u64 = 300;
const EVENTS: u64 = 300;
/// Bound of one loadgen run (its own phases are bounded by `--timeout 60` each).
const RUN_BOUND: Duration = Duration::from_secs(150);

/// The loadgen binary of this test's profile, built (or brought up to date) once per test run.
/// `cargo test` builds examples too, but `cargo test --test loadgen_smoke` does not, and a
/// binary left from an earlier build may be stale; so the test asks cargo for it, in the same
/// target directory and profile, which costs nothing when it is current.
fn loadgen() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/loadgen_smoke-<hash> -> target/<profile>/examples/loadgen
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("test binary in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("a target dir above the profile dir");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", "loadgen", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => panic!("cannot tell the profile from {}", profile_dir.display()),
        }
        let (st, _, err) = run_bounded(cmd, Duration::from_secs(600));
        assert!(st.success(), "cargo build --example loadgen failed ({st}):\n{err}");
        let bin = profile_dir.join("examples").join("loadgen");
        assert!(bin.is_file(), "no loadgen at {}", bin.display());
        bin
    })
}

/// Runs the loadgen against a fresh server with `extra` flags; checks that every event arrived
/// exactly once and every publish was answered, and returns its JSON line.
fn smoke(extra: &[&str]) -> String {
    let server = Server::start_env(&["--max-clients", "1000", "--heartbeat", "0"], &[("RUST_LOG", "info")]);
    let mut cmd = Command::new(loadgen());
    cmd.arg("--url")
        .arg(format!("http://{}", server.addr))
        .args(["--subscribers", &SUBSCRIBERS.to_string(), "--events", &EVENTS.to_string()])
        .args(["--size", "64", "--idle-secs", "0", "--timeout", "60", "--json"])
        .args(["--pid", &server.pid().to_string()])
        .args(extra);
    let (st, out, err) = run_bounded(cmd, RUN_BOUND);
    let json = out.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("").to_string();
    let ctx =
        format!("loadgen {extra:?} exited {st}\nJSON: {json}\nstderr:\n{err}\nserver log:\n{}", server.log_text());
    let num = |key: &str| json_num(&json, key).unwrap_or_else(|| panic!("no numeric {key:?}; {ctx}"));
    assert!(st.success(), "{ctx}");
    assert_eq!(num("connected"), SUBSCRIBERS as f64, "{ctx}");
    for key in ["missing", "duplicate", "reordered", "malformed", "dropped", "publish_errors", "publish_abandoned"] {
        assert_eq!(num(key), 0.0, "{key}; {ctx}");
    }
    assert_eq!(num("deliveries"), (SUBSCRIBERS * EVENTS) as f64, "{ctx}");
    assert_eq!(num("answers"), EVENTS as f64, "{ctx}");
    assert!(json.contains("\"timed_out\":false"), "{ctx}");
    // The kernel's receive stamps are there, and no event or answer arrives after it is read.
    assert!(num("arrival_p99_ms") <= num("p99_ms"), "{ctx}");
    assert!(num("rtt_arrival_p99_ms") <= num("rtt_p99_ms"), "{ctx}");
    json
}

#[test]
fn pipelined_publisher_every_event_exactly_once() {
    let json = smoke(&["--publish-mode", "pipelined"]);
    assert!(json.contains("\"publish_mode\":\"pipelined\""), "{json}");
    assert_eq!(json_num(&json, "window"), Some(16.0), "{json}");
}

#[test]
fn waiting_publisher_every_event_exactly_once() {
    let json = smoke(&["--publish-mode", "wait"]);
    assert!(json.contains("\"publish_mode\":\"wait\""), "{json}");
    assert_eq!(json_num(&json, "window"), Some(1.0), "{json}");
}

#[test]
fn four_waiting_publishers_every_event_exactly_once() {
    let json = smoke(&["--publish-mode", "wait", "--publishers", "4"]);
    assert_eq!(json_num(&json, "publishers"), Some(4.0), "{json}");
}
