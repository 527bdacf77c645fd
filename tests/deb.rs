//! The Debian packages, for real: `cargo deb` builds them, `dpkg-deb` shows what they hold, the
//! amd64 one is installed, run, removed and purged in throwaway Debian roots (one where systemd
//! is not running, one booted by systemd-nspawn), and the arm64 and armhf ones run under
//! qemu-user. Needs root, cargo-deb, mmdebstrap, systemd-nspawn, qemu-user and the cross
//! toolchains: `.ci/run` installs them.
#![cfg(target_os = "linux")]

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use util::{SseStream, T, run_bounded, secs};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Debian suites of the throwaway roots: the bases of Raspberry Pi OS bookworm and of the
/// current Raspberry Pi OS, trixie.
const SUITES: &[&str] = &["bookworm", "trixie"];
/// What the packages depend on, the same on every architecture. Written out rather than left
/// to dpkg-shlibdeps, which gives cross builds `libc6:arm64 (>= 2.36)`, the cross toolchain's
/// glibc; `binary_needs_only` keeps it true of the binaries.
const DEPENDS: &str = "libc6 (>= 2.34), libgcc-s1, passwd, systemd | systemd-standalone-sysusers | systemd-sysusers";
/// Flags that other work in progress adds; accepted in /etc/default/tinysse before `--help` lists
/// them, with the defaults they will have. Empty this once `--help` shows them.
const PENDING_FLAGS: &[(&str, &str)] = &[];

/// Every file the package installs: mode, owner, path (and a symlink's target).
const CONTENTS: &[&str] = &[
    "-rw------- 0/0 ./etc/default/tinysse",
    "-rwxr-xr-x 0/0 ./usr/bin/tinysse",
    "-rw-r--r-- 0/0 ./usr/lib/systemd/system/tinysse-mqtt.service",
    "lrwxrwxrwx 0/0 ./usr/lib/systemd/system/tinysse-mqtt.service.d/sandbox.conf -> ../tinysse.service.d/sandbox.conf",
    "-rw-r--r-- 0/0 ./usr/lib/systemd/system/tinysse.service",
    "-rw-r--r-- 0/0 ./usr/lib/systemd/system/tinysse.service.d/sandbox.conf",
    "-rw-r--r-- 0/0 ./usr/lib/sysusers.d/tinysse.conf",
    "-rw-r--r-- 0/0 ./usr/share/doc/tinysse/CHANGELOG.md",
    "-rw-r--r-- 0/0 ./usr/share/doc/tinysse/README.md",
    "-rw-r--r-- 0/0 ./usr/share/doc/tinysse/copyright",
    "-rw-r--r-- 0/0 ./usr/share/doc/tinysse/examples/nginx-tinysse.conf",
    "-rw-r--r-- 0/0 ./usr/share/doc/tinysse/raspberry-pi.md",
];

// ---------------------------------------------------------------------------
// Commands, bounded
// ---------------------------------------------------------------------------

/// Runs `argv` to completion within `limit`; returns (success, stdout, stderr).
fn run(limit: Duration, argv: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    let started = Instant::now();
    let (st, out, err) = run_bounded(cmd, limit);
    if started.elapsed() > Duration::from_secs(20) {
        eprintln!("[{:.0?}] {}", started.elapsed(), argv.join(" "));
    }
    (st.success(), out, err)
}

/// Runs `argv`, asserts it succeeds, returns its stdout.
fn ok(limit: Duration, argv: &[&str]) -> String {
    let (success, out, err) = run(limit, argv);
    assert!(success, "`{}` failed\nstdout:\n{out}\nstderr:\n{err}", argv.join(" "));
    out
}

fn target_dir() -> PathBuf {
    // CARGO_BIN_EXE_tinysse is <target>/debug/tinysse (or <target>/<triple>/debug/tinysse).
    let bin = Path::new(env!("CARGO_BIN_EXE_tinysse"));
    bin.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

fn work_dir() -> PathBuf {
    let dir = target_dir().join("deb-test");
    std::fs::create_dir_all(&dir).expect("create target/deb-test");
    dir
}

fn require_root() {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    assert_eq!(uid, 0, "tests/deb.rs installs packages into throwaway roots and needs root (CI runs as root)");
}

// ---------------------------------------------------------------------------
// The packages
// ---------------------------------------------------------------------------

/// `cargo deb [--target TRIPLE]`; returns the .deb it wrote.
fn cargo_deb(target: Option<&str>) -> PathBuf {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut argv = vec![env!("CARGO"), "deb", "--manifest-path", manifest];
    if let Some(t) = target {
        argv.extend(["--target", t]);
    }
    let out = ok(Duration::from_secs(1200), &argv);
    let path = PathBuf::from(out.lines().last().unwrap_or_default().trim());
    assert!(path.extension().is_some_and(|e| e == "deb") && path.exists(), "cargo deb printed no .deb path:\n{out}");
    path
}

fn amd64_deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| cargo_deb(None))
}

/// `dpkg-deb --contents`, reduced to mode, owner and path (and link target), directories left out.
fn contents(deb: &Path) -> Vec<String> {
    let listing = ok(T, &["dpkg-deb", "--contents", deb.to_str().unwrap()]);
    let mut files: Vec<String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode owner size date time path [-> target]
            format!("{} {} {}", f[0], f[1], f[5..].join(" "))
        })
        .collect();
    files.sort_by(|a, b| a.split(' ').nth(2).cmp(&b.split(' ').nth(2)));
    files
}

fn field(deb: &Path, name: &str) -> String {
    ok(T, &["dpkg-deb", "--field", deb.to_str().unwrap(), name]).trim().to_string()
}

#[test]
fn amd64_package_holds_the_binary_units_user_and_settings() {
    let deb = amd64_deb();
    let size = std::fs::metadata(deb).expect("stat .deb").len();
    eprintln!("{}: {size} bytes", deb.display());
    // A stripped binary of about 470 KB compresses to about 200 KB; debug info or stray files
    // would show here.
    assert!(size < 600_000, "{} is {size} bytes", deb.display());

    let info = ok(T, &["dpkg-deb", "--info", deb.to_str().unwrap()]);
    eprintln!("{info}");
    for (name, want) in [
        ("Package", "tinysse".to_string()),
        ("Version", format!("{VERSION}-1")),
        ("Architecture", "amd64".to_string()),
        ("Depends", DEPENDS.to_string()),
        ("Section", "net".to_string()),
    ] {
        assert_eq!(field(deb, name), want, "control field {name}");
    }

    let control = work_dir().join("control-amd64");
    let _ = std::fs::remove_dir_all(&control);
    ok(T, &["dpkg-deb", "--control", deb.to_str().unwrap(), control.to_str().unwrap()]);
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let members: BTreeSet<String> =
        std::fs::read_dir(&control).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(members, ["conffiles", "control", "postinst", "postrm", "prerm"].map(String::from).into());
    assert_eq!(read("conffiles").trim(), "/etc/default/tinysse");
    let postinst = read("postinst");
    let prerm = read("prerm");
    let postrm = read("postrm");
    for script in [&postinst, &prerm, &postrm] {
        assert!(!script.contains("#DEBHELPER#"), "a DEBHELPER token was left unreplaced:\n{script}");
        assert!(script.contains("\nset -e\n"), "no set -e:\n{script}");
    }
    // The user exists before the unit starts; starting waits for a running systemd.
    let user = postinst.find("systemd-sysusers").expect("postinst creates the user");
    let start = postinst.find("deb-systemd-invoke $_dh_action tinysse.service").expect("postinst starts tinysse");
    assert!(user < start, "postinst starts the service before creating its user:\n{postinst}");
    assert!(postinst.contains("deb-systemd-helper enable tinysse.service"));
    // tinysse-mqtt conflicts with tinysse: never started on install, only restarted on upgrade
    // (`$2` set) when running (try-restart).
    assert!(
        !postinst.contains("invoke start tinysse-mqtt") && !postinst.contains("$_dh_action tinysse-mqtt"),
        "tinysse-mqtt must not start on install:\n{postinst}"
    );
    assert!(postinst.contains("deb-systemd-invoke try-restart tinysse-mqtt.service"));
    assert!(prerm.contains("deb-systemd-invoke stop tinysse.service"));
    // Purge removes the state and the user after the generated systemd clean-up.
    let purge_units = postrm.find("deb-systemd-helper purge tinysse.service").expect("postrm purges the unit");
    let purge_state = postrm.find("rm -rf \"${DPKG_ROOT:-}/var/lib/tinysse\"").expect("postrm removes the state");
    assert!(purge_units < purge_state && postrm.contains("userdel tinysse"), "{postrm}");

    let files = contents(deb);
    eprintln!("{}", files.join("\n"));
    assert_eq!(files, CONTENTS, "dpkg-deb --contents {}", deb.display());

    binary_needs_only(&unpack(deb, "amd64").join("usr/bin/tinysse"));
}

/// `dpkg-deb --extract` into target/deb-test/unpacked-NAME.
fn unpack(deb: &Path, name: &str) -> PathBuf {
    let dir = work_dir().join(format!("unpacked-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    ok(T, &["dpkg-deb", "--extract", deb.to_str().unwrap(), dir.to_str().unwrap()]);
    dir
}

/// The binary links only libc (at most GLIBC_2.34) and libgcc_s: what `DEPENDS` promises.
fn binary_needs_only(bin: &Path) {
    let bin = bin.to_str().unwrap();
    let dynamic = ok(T, &["readelf", "--dynamic", "--wide", bin]);
    let needed: BTreeSet<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert_eq!(needed, BTreeSet::from(["libc.so.6", "libgcc_s.so.1"]), "{bin} links");
    let versions = ok(T, &["readelf", "--version-info", "--wide", bin]);
    let newest = versions
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("GLIBC_ symbol versions");
    assert!(newest <= (2, 34), "{bin} needs GLIBC_{}.{}; raise libc6 in DEPENDS", newest.0, newest.1);
}

// ---------------------------------------------------------------------------
// /etc/default/tinysse
// ---------------------------------------------------------------------------

/// `--help`'s flags and their `[default: ...]`.
fn help_defaults() -> BTreeMap<String, String> {
    let mut cmd = util::Server::command(&[]);
    cmd.arg("--help");
    let (st, out, err) = run_bounded(cmd, T);
    assert!(st.success(), "--help: {err}");
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            let name = rest.split_whitespace().next().unwrap_or_default().to_string();
            if name == "help" || name == "version" {
                current = None;
                continue;
            }
            current = Some(name);
        } else if trimmed.starts_with('-') {
            current = None;
        }
        if let (Some(name), Some(i)) = (&current, line.find("[default: ")) {
            let value = &line[i + "[default: ".len()..];
            flags.insert(name.clone(), value.trim_end_matches(']').to_string());
        }
    }
    assert!(flags.contains_key("listen") && flags.contains_key("cors-origin"), "help not understood:\n{out}");
    flags
}

#[test]
fn default_file_lists_every_flag_with_its_default() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tinysse.default")).unwrap();
    let mut flags = help_defaults();
    for (name, default) in PENDING_FLAGS {
        flags.entry(name.to_string()).or_insert_with(|| default.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut set = Vec::new();
    let mut env = Vec::new();
    for line in text.lines() {
        let (commented, assignment) = match line.strip_prefix('#') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some((key, value)) = assignment.split_once('=') else { continue };
        if !key.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') || key.is_empty() {
            assert!(commented, "not a variable assignment: {line}");
            continue;
        }
        if key == "RUST_LOG" {
            assert_eq!(value, "info", "{line}");
            continue;
        }
        let name = key.strip_prefix("TINYSSE_").unwrap_or_else(|| panic!("not a TINYSSE_ variable: {line}"));
        let flag = name.to_ascii_lowercase().replace('_', "-");
        let default = flags.get(&flag).unwrap_or_else(|| panic!("{key} is no flag of tinysse --help"));
        assert!(seen.insert(flag.clone()), "{key} appears twice");
        if !commented {
            set.push(line.to_string());
            continue;
        }
        let shown = match default.as_str() {
            "none" | "off" | "any origin, without credentials" => None,
            d => Some(d),
        };
        match shown {
            Some(d) => assert_eq!(value, d, "{line}: --{flag} defaults to {d}"),
            None => assert!(value.is_empty() || value == "false", "{line}: --{flag} has no value by default"),
        }
        if !value.is_empty() && !PENDING_FLAGS.iter().any(|(p, _)| *p == flag) {
            env.push((key.to_string(), value.to_string()));
        }
    }
    let missing: Vec<&String> = flags.keys().filter(|f| !seen.contains(*f)).collect();
    assert!(missing.is_empty(), "flags missing from deploy/tinysse.default: {missing:?}");
    // The package's one change from the defaults: history kept on disk in the state directory.
    assert_eq!(set, ["TINYSSE_HISTORY_FILE=/var/lib/tinysse/history"]);

    // Every default, set for real, is accepted (values are checked before --help is answered).
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut cmd = util::Server::command(&env_refs);
    cmd.arg("--help");
    let (st, _, err) = run_bounded(cmd, T);
    assert!(st.success(), "the defaults of deploy/tinysse.default are refused: {err}");
}

// ---------------------------------------------------------------------------
// Throwaway Debian roots
// ---------------------------------------------------------------------------

/// What the roots have beyond apt's minimal system: the package's dependencies (`dpkg -i`
/// installs none), curl for the requests made inside, and a broker and its clients for
/// tinysse-mqtt.service.
const BASE_PACKAGES: &str = "systemd,passwd,curl,mosquitto,mosquitto-clients";

/// A minimal Debian of `suite`, made once by mmdebstrap and kept as a tarball under target/.
fn base_tarball(suite: &str) -> PathBuf {
    static MADE: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let tar = work_dir().join(format!("{suite}-{}.tar", BASE_PACKAGES.replace(',', "-")));
    if !tar.exists() {
        // mmdebstrap picks the output format from the name: keep .tar last.
        let partial = tar.with_extension("partial.tar");
        let include = format!("--include={BASE_PACKAGES}");
        ok(
            Duration::from_secs(900),
            &["mmdebstrap", "--quiet", "--variant=apt", &include, suite, partial.to_str().unwrap()],
        );
        std::fs::rename(&partial, &tar).expect("rename tarball");
    }
    tar
}

/// A fresh root from the tarball, deleted on drop.
struct Root {
    path: PathBuf,
}

impl Root {
    fn new(suite: &str, name: &str) -> Root {
        require_root();
        let path = work_dir().join(format!("root-{suite}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        // Made before the extraction, so that a failed one is cleaned up too.
        let root = Root { path };
        ok(Duration::from_secs(300), &["tar", "-C", root.str(), "-xf", base_tarball(suite).to_str().unwrap()]);
        root
    }

    fn str(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn file(&self, path: &str) -> PathBuf {
        self.path.join(path.trim_start_matches('/'))
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.file(path)).unwrap_or_default()
    }

    /// Every path on the root's own file system with its owner and mode (and a symlink's
    /// target), as seen from outside: mounts made inside a booted container are not on disk.
    fn snapshot(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![self.path.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let p = entry.path();
                let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
                let rel = p.strip_prefix(&self.path).unwrap().to_string_lossy().into_owned();
                if VOLATILE.iter().any(|v| rel.starts_with(v)) {
                    continue;
                }
                let link = std::fs::read_link(&p).map(|t| format!(" -> {}", t.display())).unwrap_or_default();
                out.insert(format!("/{rel} {}:{} {:o}{link}", m.uid(), m.gid(), m.mode()));
                if m.is_dir() {
                    stack.push(p);
                }
            }
        }
        out
    }

    /// The account databases, whose lines a snapshot does not show.
    fn accounts(&self) -> String {
        ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"].map(|f| self.read(f)).join("\n")
    }
}

/// Paths that change by themselves in a booted container (logs, dpkg's and systemd's own
/// bookkeeping of time and randomness), and the backups (`/etc/shadow-`...) that the account
/// tools write whenever they change a database: systemd-sysusers made them on trixie, userdel
/// rewrites them on every suite. `Root::accounts` checks the databases themselves.
const VOLATILE: &[&str] = &[
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "proc/",
    "sys/",
    "dev/",
    "run/",
    "tmp/",
    "var/log/",
    "var/lib/systemd/random-seed",
    "var/lib/systemd/timers",
    "var/lib/systemd/catalog",
    "var/cache/ldconfig",
    "etc/machine-id",
];

impl Drop for Root {
    fn drop(&mut self) {
        // Never delete through a mount point left behind (a container's /proc, say).
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if mounts.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(self.str()))) {
            eprintln!("{} still has mounts; left in place", self.str());
            return;
        }
        let _ = run(Duration::from_secs(120), &["rm", "-rf", "--one-file-system", self.str()]);
    }
}

/// Paths a `dpkg -r` may leave and only `dpkg -P` removes: the conffile, systemd's enable and
/// mask links and deb-systemd-helper's state, dpkg's record of the package, the state directory.
fn purge_only(path: &str) -> bool {
    let p = path.split(' ').next().unwrap_or_default();
    p == "/etc/default/tinysse"
        || p.starts_with("/etc/systemd/system/") && p.contains("tinysse")
        || p.starts_with("/var/lib/systemd/deb-systemd-helper-")
        || p.starts_with("/var/lib/dpkg/info/tinysse.")
        || p == "/var/lib/tinysse"
        || p.starts_with("/var/lib/tinysse/")
}

fn assert_removed_then_purged(
    root: &Root,
    before: &BTreeSet<String>,
    accounts: &str,
    remove: impl Fn(),
    purge: impl Fn(),
) {
    remove();
    let after_remove = root.snapshot();
    let left: Vec<&String> = after_remove.difference(before).collect();
    let unexpected: Vec<&&String> = left.iter().filter(|p| !purge_only(p)).collect();
    assert!(unexpected.is_empty(), "dpkg -r left more than configuration and state: {unexpected:#?}");
    assert!(!root.file("usr/bin/tinysse").exists() && !root.file("usr/lib/systemd/system/tinysse.service").exists());
    eprintln!("left by dpkg -r, removed by dpkg -P: {left:#?}");

    purge();
    let after_purge = root.snapshot();
    let added: Vec<&String> = after_purge.difference(before).collect();
    let lost: Vec<&String> = before.difference(&after_purge).collect();
    assert!(added.is_empty() && lost.is_empty(), "after dpkg -P: added {added:#?}, lost {lost:#?}");
    assert_eq!(root.accounts(), accounts, "the tinysse user or group outlived the purge");
}

fn copy_deb_into(root: &Root, deb: &Path) -> String {
    let inside = "/root/tinysse.deb";
    std::fs::copy(deb, root.file(inside)).expect("copy .deb into the root");
    inside.to_string()
}

fn expected_version() -> String {
    format!("tinysse {VERSION} ({})\n", env!("TINYSSE_BUILD_TARGET"))
}

#[test]
fn installs_and_purges_where_systemd_is_not_running() {
    for suite in SUITES {
        eprintln!("== {suite}");
        install_and_purge_without_systemd(suite);
    }
}

fn install_and_purge_without_systemd(suite: &str) {
    let deb = amd64_deb();
    let root = Root::new(suite, "dpkg");
    let before = root.snapshot();
    let accounts = root.accounts();
    let deb = deb.to_str().unwrap();

    // dpkg runs the maintainer scripts chrooted into the root, where no systemd runs: the
    // scripts create the user and enable the unit, and leave starting it to the next boot.
    ok(Duration::from_secs(120), &["dpkg", "--root", root.str(), "-i", deb]);
    assert!(root.read("etc/passwd").lines().any(|l| l.starts_with("tinysse:") && l.ends_with(":/usr/sbin/nologin")));
    assert!(root.read("etc/group").lines().any(|l| l.starts_with("tinysse:")));
    let wants = root.file("etc/systemd/system/multi-user.target.wants/tinysse.service");
    assert!(std::fs::symlink_metadata(&wants).is_ok(), "tinysse.service is not enabled");
    let mqtt_wants = root.file("etc/systemd/system/multi-user.target.wants/tinysse-mqtt.service");
    assert!(std::fs::symlink_metadata(&mqtt_wants).is_err(), "tinysse-mqtt.service must stay disabled");

    let version = ok(T, &["chroot", root.str(), "tinysse", "--version"]);
    assert_eq!(version, expected_version());
    // verify exits 0 on a bad value in a drop-in (it only warns): nothing printed is the pass.
    let (success, out, err) = run(
        Duration::from_secs(60),
        &["chroot", root.str(), "systemd-analyze", "verify", "tinysse.service", "tinysse-mqtt.service"],
    );
    assert!(success && out.is_empty() && err.is_empty(), "systemd-analyze verify:\n{out}{err}");

    assert_removed_then_purged(
        &root,
        &before,
        &accounts,
        || drop(ok(Duration::from_secs(120), &["dpkg", "--root", root.str(), "-r", "tinysse"])),
        || drop(ok(Duration::from_secs(120), &["dpkg", "--root", root.str(), "-P", "tinysse"])),
    );
}

// ---------------------------------------------------------------------------
// A booted container
// ---------------------------------------------------------------------------

/// systemd booted in a root by systemd-nspawn, with a network namespace of its own (only its
/// loopback), so the packaged service really starts and nothing reaches the host's ports.
struct Container {
    nspawn: Child,
    leader: u32,
    log: PathBuf,
}

impl Container {
    fn boot(root: &Root) -> Container {
        // mmdebstrap writes no /etc/hosts, which every installed system has; without it
        // `mosquitto_sub -h localhost` cannot resolve the broker.
        std::fs::write(root.file("etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n").unwrap();
        let log = work_dir().join(format!("nspawn-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .args(["--quiet", "--register=no", "--keep-unit", "--private-network", "--boot", "--console=pipe"])
            .arg("--directory")
            .arg(&root.path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("systemd-nspawn (apt-get install systemd-container)");
        let mut container = Container { nspawn, leader: 0, log };
        // The container's init is the nspawn child that has become systemd.
        let deadline = Instant::now() + Duration::from_secs(60);
        let pid = container.nspawn.id();
        while container.leader == 0 {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            for child in children.split_whitespace() {
                if std::fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|c| c.trim() == "systemd") {
                    container.leader = child.parse().unwrap();
                }
            }
            if let Ok(Some(st)) = container.nspawn.try_wait() {
                panic!("systemd-nspawn exited ({st}):\n{}", container.log_text());
            }
            assert!(Instant::now() < deadline, "no systemd in the container:\n{}", container.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        // systemctl fails until systemd listens on its private socket, then waits for the boot.
        loop {
            let (_, state, err) =
                container.run(Duration::from_secs(120), &["systemctl", "is-system-running", "--wait"]);
            if matches!(state.trim(), "running" | "degraded") {
                break;
            }
            assert!(Instant::now() < deadline, "the container did not boot ({state}{err}):\n{}", container.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        container
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `argv` inside the container (all its namespaces, its root).
    fn run(&self, limit: Duration, argv: &[&str]) -> (bool, String, String) {
        let leader = self.leader.to_string();
        let mut full = vec!["nsenter", "--target", &leader, "--all", "--root", "--wd"];
        full.extend_from_slice(argv);
        run(limit, &full)
    }

    fn ok(&self, limit: Duration, argv: &[&str]) -> String {
        let (success, out, err) = self.run(limit, argv);
        assert!(success, "`{}` in the container failed\nstdout:\n{out}\nstderr:\n{err}", argv.join(" "));
        out
    }

    fn systemctl(&self, verb: &str, unit: &str) -> String {
        self.run(T, &["systemctl", verb, unit]).1.trim().to_string()
    }

    fn wait_active(&self, unit: &str) {
        let deadline = Instant::now() + T;
        while self.systemctl("is-active", unit) != "active" {
            let log = || self.run(T, &["journalctl", "--no-pager", "-u", unit]).1;
            assert!(Instant::now() < deadline, "{unit} did not start:\n{}", log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `url` with the container's curl until it answers (bounded); returns the body.
    fn wait_http(&self, url: &str) -> String {
        let deadline = Instant::now() + T;
        loop {
            let (up, body, err) = self.run(T, &["curl", "-sS", "--fail", "--max-time", "2", url]);
            if up {
                return body;
            }
            assert!(Instant::now() < deadline, "{url} in the container: {err}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The overall exposure `systemd-analyze security` gives the unit (0 = best, 10 = worst).
    fn exposure(&self, unit: &str) -> f64 {
        let out = self.ok(Duration::from_secs(60), &["systemd-analyze", "security", "--no-pager", unit]);
        let line = out.lines().find(|l| l.contains("Overall exposure level")).expect("exposure line");
        eprintln!("{}", line.trim());
        line.split(": ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM asks nspawn to shut the container down cleanly; SIGKILL if it does not.
        let pid = self.nspawn.id().to_string();
        let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
        if util::wait_child(&mut self.nspawn, Duration::from_secs(30)).is_none() {
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
        // The console log is kept for a failed test only.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

#[test]
fn runs_enabled_and_started_under_systemd_until_purged() {
    for suite in SUITES {
        eprintln!("== {suite}");
        run_under_systemd_until_purged(suite);
    }
}

fn run_under_systemd_until_purged(suite: &str) {
    let deb = amd64_deb();
    let root = Root::new(suite, "boot");
    let inside = copy_deb_into(&root, deb);
    let container = Container::boot(&root);
    let before = root.snapshot();
    let accounts = root.accounts();

    container.ok(Duration::from_secs(120), &["dpkg", "-i", &inside]);
    assert_eq!(container.systemctl("is-enabled", "tinysse.service"), "enabled");
    assert_eq!(container.systemctl("is-enabled", "tinysse-mqtt.service"), "disabled");
    container.wait_active("tinysse.service");
    assert_eq!(container.systemctl("is-active", "tinysse-mqtt.service"), "inactive");

    // It runs as the package's user, with the state directory that user owns.
    let main_pid = container.ok(T, &["systemctl", "show", "--value", "--property", "MainPID", "tinysse.service"]);
    let status = container.ok(T, &["cat", &format!("/proc/{}/status", main_pid.trim())]);
    let uid = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line").to_string();
    let passwd = root.read("etc/passwd");
    let user = passwd.lines().find(|l| l.starts_with("tinysse:")).expect("tinysse user");
    let tinysse_uid = user.split(':').nth(2).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|u| u == tinysse_uid), "{uid} is not tinysse ({tinysse_uid})");
    let state = std::fs::metadata(root.file("var/lib/tinysse")).expect("/var/lib/tinysse");
    assert_eq!((state.uid().to_string(), state.mode() & 0o7777), (tinysse_uid.to_string(), 0o750));

    // Subscribe and publish over the container's loopback, with its curl.
    let (_, stream, _) = container
        .run(Duration::from_secs(30), &["curl", "-sS", "-N", "--max-time", "3", "http://127.0.0.1:8080/events"]);
    assert!(stream.starts_with("retry: 3000\n"), "GET /events in the container: {stream:?}");
    let id = container.ok(T, &["curl", "-sS", "--fail", "-d", "data=from the package", "http://127.0.0.1:8080/events"]);
    assert!(!id.trim().is_empty() && id.trim().bytes().all(|b| b.is_ascii_digit()), "publish answered {id:?}");
    if help_defaults().contains_key("history-file") {
        // /etc/default/tinysse sets --history-file: the journal is on disk (within one --fsync
        // period, 1 s by default), in the state directory, the service user's.
        let deadline = Instant::now() + T;
        let journal = loop {
            match std::fs::metadata(root.file("var/lib/tinysse/history")) {
                Ok(m) if m.len() > 0 => break m,
                _ => assert!(Instant::now() < deadline, "no /var/lib/tinysse/history after a publish"),
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(journal.uid().to_string(), tinysse_uid);
    } else {
        // Until the journal exists, a file stands in for it: purge must remove a full directory.
        std::fs::write(root.file("var/lib/tinysse/history"), b"stand-in").unwrap();
    }

    let (success, out, err) = container
        .run(Duration::from_secs(60), &["systemd-analyze", "verify", "tinysse.service", "tinysse-mqtt.service"]);
    assert!(success && out.is_empty() && err.is_empty(), "systemd-analyze verify:\n{out}{err}");
    // Both units read one sandbox drop-in; docs/raspberry-pi.md quotes these figures.
    for unit in ["tinysse.service", "tinysse-mqtt.service"] {
        let dropins = container.ok(T, &["systemctl", "show", "--value", "--property", "DropInPaths", unit]);
        assert!(dropins.contains(&format!("/usr/lib/systemd/system/{unit}.d/sandbox.conf")), "{unit}: {dropins}");
        let exposure = container.exposure(unit);
        assert!(exposure <= 1.5, "{unit}: systemd-analyze security exposure {exposure}, expected at most 1.5");
    }

    // The MQTT variant instead, as docs/raspberry-pi.md section 5 says: a message on the local
    // broker reaches a subscriber through `mosquitto_sub | tinysse`, inside the same sandbox.
    container.ok(T, &["systemctl", "disable", "--now", "tinysse.service"]);
    container.ok(T, &["systemctl", "enable", "--now", "tinysse-mqtt.service"]);
    container.wait_active("tinysse-mqtt.service");
    container.wait_http("http://127.0.0.1:8080/stats");
    container.ok(T, &["mosquitto_pub", "-h", "localhost", "-t", "sensors/kitchen", "-m", r#"{"t":21.5}"#]);
    let deadline = Instant::now() + T;
    while !container.wait_http("http://127.0.0.1:8080/stats").contains(r#""published": 1"#) {
        assert!(Instant::now() < deadline, "the MQTT message was not published");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Subscribed after the publish: an unknown Last-Event-ID replays what history holds.
    let (_, stream, _) = container.run(
        Duration::from_secs(30),
        &["curl", "-sS", "-N", "--max-time", "3", "http://127.0.0.1:8080/events?topic=sensors/*&lastEventId=0"],
    );
    assert!(stream.contains("data: {\"t\":21.5}\n"), "tinysse-mqtt served: {stream:?}");

    assert_removed_then_purged(
        &root,
        &before,
        &accounts,
        || {
            container.ok(Duration::from_secs(120), &["dpkg", "-r", "tinysse"]);
            assert_eq!(container.systemctl("is-active", "tinysse.service"), "inactive", "dpkg -r left it running");
            let (up, _, _) = container.run(T, &["curl", "-sS", "--max-time", "2", "http://127.0.0.1:8080/stats"]);
            assert!(!up, "something still answers on port 8080 after dpkg -r");
        },
        || drop(container.ok(Duration::from_secs(120), &["dpkg", "-P", "tinysse"])),
    );
}

// ---------------------------------------------------------------------------
// Cross builds
// ---------------------------------------------------------------------------

#[test]
fn arm64_and_armhf_packages_run_under_qemu() {
    let amd64 = contents(amd64_deb());
    let (_, installed, _) = run(T, &["rustup", "target", "list", "--installed"]);
    for (triple, arch, qemu, sysroot) in [
        ("aarch64-unknown-linux-gnu", "arm64", "qemu-aarch64", "/usr/aarch64-linux-gnu"),
        ("armv7-unknown-linux-gnueabihf", "armhf", "qemu-arm", "/usr/arm-linux-gnueabihf"),
    ] {
        if !installed.lines().any(|l| l.trim() == triple) {
            // Its std comes from the Rust distribution server, which this machine cannot reach.
            eprintln!("SKIPPED {arch}: the rust target {triple} is not installed (rustup target add {triple})");
            continue;
        }
        let deb = cargo_deb(Some(triple));
        eprintln!("{}: {} bytes", deb.display(), std::fs::metadata(&deb).unwrap().len());
        assert_eq!(field(&deb, "Architecture"), arch);
        assert_eq!(field(&deb, "Depends"), DEPENDS);
        assert_eq!(contents(&deb), amd64, "{arch} holds other files than amd64");

        let bin = unpack(&deb, arch).join("usr/bin/tinysse");
        binary_needs_only(&bin);
        let bin = bin.to_str().unwrap();
        let version = ok(Duration::from_secs(60), &[qemu, "-L", sysroot, bin, "--version"]);
        assert_eq!(version, format!("tinysse {VERSION} ({triple})\n"));

        // The emulated server serves a subscriber and a publish, and exits 0 on SIGTERM.
        let mut cmd = Command::new(qemu);
        cmd.args(["-L", sysroot, bin, "--listen", "127.0.0.1:0", "--heartbeat", "0"]).env("RUST_LOG", "info");
        let mut server = util::Server::spawn(cmd);
        let mut sub = SseStream::open(server.addr, "/events");
        let id = util::publish(server.addr, &format!("hello from {arch}"));
        let event = sub.next_event(T);
        assert_eq!((event.id.as_deref(), event.data_str()), (Some(id.as_str()), format!("hello from {arch}")));
        server.signal("TERM");
        let status = server.wait_exit(secs(10.0)).expect("exit after SIGTERM");
        assert!(status.success(), "{arch}: {status}");
    }
}
