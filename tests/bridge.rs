//! Beyond one device: the --stdin bridge, fed by hand and by a real MQTT broker
//! (mosquitto_pub -> mosquitto -> mosquitto_sub -v | tinysse --stdin --stdin-format topic), and
//! two instances fed from the same broker behind a real nginx reverse proxy. Needs Debian's
//! mosquitto, mosquitto-clients and nginx (.ci/run installs them).

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + T;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn need(bin: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {bin}")).output().unwrap().status.success();
    assert!(found, "{bin} not found: install Debian's mosquitto, mosquitto-clients and nginx (as .ci/run does)");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A mosquitto broker on a free loopback port.
fn broker(dir: &std::path::Path) -> (Guard, u16) {
    need("mosquitto");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")).unwrap();
    let child =
        Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_port(port);
    (Guard(child), port)
}

/// `mosquitto_sub -v -t 'sensors/#' | tinysse --stdin --stdin-format topic`.
fn bridged_instance(mqtt: u16) -> (Guard, Server) {
    need("mosquitto_sub");
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &mqtt.to_string(), "-v", "-t", "sensors/#"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = Stdio::from(sub.stdout.take().unwrap());
    let mut cmd = Server::command(&[("RUST_LOG", "info")]);
    cmd.args(["--listen", "127.0.0.1:0", "--stdin", "--stdin-format", "topic", "--heartbeat", "0"]);
    (Guard(sub), Server::spawn_with_stdin(cmd, pipe))
}

fn mqtt_publish(port: u16, topic: &str, payload: &str) {
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-m", payload])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mosquitto_pub {topic}");
}

/// Publishes `sensors/sync` until every stream has seen one: then the bridges are subscribed.
fn sync(mqtt: u16, streams: &mut [SseStream]) {
    for s in streams.iter_mut() {
        let deadline = Instant::now() + T;
        loop {
            mqtt_publish(mqtt, "sensors/sync", "ready");
            match s.next_frame(Duration::from_millis(300)) {
                Ok(Some(f)) if f.data_str() == "ready" => break,
                _ => assert!(Instant::now() < deadline, "bridge never delivered"),
            }
        }
    }
    // Drain further sync events that raced with the loop above.
    std::thread::sleep(Duration::from_millis(300));
}

fn data_until(s: &mut SseStream, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let d = s.next_event(T).data_str();
        if d == "ready" {
            continue;
        }
        got.push(d.clone());
        if d == last {
            return got;
        }
    }
}

#[test]
fn stdin_lines_become_events_and_eof_keeps_serving() {
    let mut cmd = Server::command(&[("RUST_LOG", "info")]);
    cmd.args(["--listen", "127.0.0.1:0", "--stdin", "--max-event-bytes", "100"]);
    let (reader, mut writer) = std::io::pipe().unwrap();
    let server = Server::spawn_with_stdin(cmd, Stdio::from(reader));
    let mut s = SseStream::open(server.addr, "/events");
    writer.write_all(b"first line\r\nsecond ").unwrap();
    writer.write_all(b"half\n").unwrap();
    writer.write_all(format!("{}\nafter the long one\n", "x".repeat(5000)).as_bytes()).unwrap();
    writer.write_all(format!("{}\n", "y".repeat(150)).as_bytes()).unwrap();
    writer.write_all(b"last, without newline").unwrap();
    drop(writer);
    let got: Vec<String> = (0..4).map(|_| s.next_event(T).data_str()).collect();
    assert_eq!(got, ["first line", "second half", "after the long one", "last, without newline"]);
    assert!(server.wait_logs(T, |l| l.iter().any(|l| l.contains("stdin closed; still serving"))));
    let logs = server.log_text();
    assert!(logs.contains("line longer than"), "{logs}");
    assert!(logs.contains("event data too large"), "{logs}");
    let id = publish(server.addr, "over http");
    assert_eq!(s.next_event(T).id.as_deref(), Some(id.as_str()));
}

#[test]
fn stdin_that_cannot_be_polled_is_reported_once_and_ignored() {
    let mut cmd = Server::command(&[("RUST_LOG", "info")]);
    cmd.args(["--listen", "127.0.0.1:0", "--stdin"]);
    let server = Server::spawn_with_stdin(cmd, Stdio::null());
    assert_eq!(get(server.addr, "/stats").status, 200);
    let reports = server.logs().iter().filter(|l| l.contains("--stdin")).count();
    assert_eq!(reports, 1, "{}", server.log_text());
}

#[test]
fn mqtt_broker_to_sse_subscribers_filtered_by_topic() {
    let dir = temp_dir("mqtt");
    let (_broker, mqtt) = broker(&dir);
    let (_sub, server) = bridged_instance(mqtt);
    let mut temps = SseStream::open(server.addr, "/events?topic=sensors/temperature");
    let mut all = SseStream::open(server.addr, "/events?topic=sensors/*");
    sync(mqtt, std::slice::from_mut(&mut all));
    for i in 0..5 {
        mqtt_publish(mqtt, "sensors/temperature", &format!("{{\"c\": 2{i}.5}}"));
        mqtt_publish(mqtt, "sensors/humidity", &format!("{{\"rh\": 4{i}}}"));
    }
    let got = data_until(&mut all, "{\"rh\": 44}");
    assert_eq!(got.len(), 10, "{got:?}");
    let temps_got: Vec<String> = (0..5).map(|_| temps.next_event(T).data_str()).collect();
    assert_eq!(temps_got, (0..5).map(|i| format!("{{\"c\": 2{i}.5}}")).collect::<Vec<_>>());
    let f = temps.next_frame(Duration::from_millis(300));
    assert!(f.is_err(), "humidity must not reach a temperature subscriber: {f:?}");
}

#[test]
fn two_instances_behind_nginx_deliver_every_event_to_everyone() {
    need("nginx");
    let dir = temp_dir("proxy");
    let (_broker, mqtt) = broker(&dir);
    let (_sub_a, a) = bridged_instance(mqtt);
    let (_sub_b, b) = bridged_instance(mqtt);
    let port = free_port();
    let conf = include_str!("../docs/nginx-tinysse.conf")
        .replace("127.0.0.1:8081", &a.addr.to_string())
        .replace("127.0.0.1:8082", &b.addr.to_string())
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    let _nginx = start_nginx(&dir, &conf, port);
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Round robin puts two subscribers on each instance.
    let mut streams: Vec<SseStream> = (0..4).map(|_| SseStream::open(proxy, "/events?topic=sensors/*")).collect();
    let deadline = Instant::now() + T;
    while stat(a.addr, "subscribers") + stat(b.addr, "subscribers") < 4.0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((stat(a.addr, "subscribers"), stat(b.addr, "subscribers")), (2.0, 2.0));
    sync(mqtt, &mut streams);
    let sent: Vec<String> = (0..20).map(|i| format!("reading {i}")).collect();
    for (i, payload) in sent.iter().enumerate() {
        mqtt_publish(mqtt, if i % 2 == 0 { "sensors/a" } else { "sensors/b" }, payload);
    }
    for s in &mut streams {
        assert_eq!(data_until(s, "reading 19"), sent, "every event, in order, on either instance");
    }
}
