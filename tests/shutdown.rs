//! Stopping: a graceful stop closes the listener at once but lets in-flight requests finish
//! within the grace period; a fast stop ends the gateway and frees its port.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Behaviour, Gateway, Upstream};
use stepgate::app::Stop;
use tokio::sync::Notify;

/// Polls until a new TCP connection to `addr` is refused (10 s deadline); true if it was.
fn refused_within_deadline(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

/// Polls until `done` holds (10 s deadline).
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn graceful_stop_closes_the_listener_and_finishes_in_flight_requests() {
    let upstream = Upstream::with(
        "slowpoke",
        Behaviour {
            gate: Some(Arc::new(Notify::new())),
            ..Default::default()
        },
    );
    // The harness upstream holds back requests whose target starts with `/slow`.
    let rules = "[[rule]]\npath = \"^/slow\"\npolicy = \"bypass\"\n";
    let toml = common::config_with(&["127.0.0.1"], &[upstream.addr], rules)
        .replace("grace_period = \"2s\"", "grace_period = \"3s\"");
    assert!(toml.contains("grace_period = \"3s\""));
    let gw = Gateway::start(&toml);
    let addr = gw.addr;

    let in_flight = std::thread::spawn(move || common::get(addr, "/slow", &[]));
    wait_until("the upstream holds the request", || {
        !upstream.requests().is_empty()
    });

    assert!(
        !in_flight.is_finished(),
        "the upstream holds the response until released"
    );

    gw.signal(Stop::Graceful);
    assert!(
        refused_within_deadline(addr),
        "after a graceful stop, new connections are refused"
    );

    assert!(
        !in_flight.is_finished(),
        "the request is still in flight when the listener has closed"
    );
    upstream.release();
    let resp = in_flight.join().unwrap();
    assert_eq!(common::status(&resp), 200, "{resp}");
    assert!(resp.ends_with("\r\n\r\nupstream slowpoke"), "{resp}");
    assert_eq!(upstream.requests().len(), 1);

    gw.stop(Stop::Graceful);
}

#[test]
fn fast_stop_ends_the_gateway_and_frees_the_port() {
    let upstream = Upstream::start("quick");
    let gw = Gateway::start(&common::config_with(
        &["127.0.0.1"],
        &[upstream.addr],
        common::RULES,
    ));
    let addr = gw.addr;
    assert_eq!(common::status(&common::get(addr, "/public/x", &[])), 200);

    gw.stop(Stop::Fast); // returns once the gateway's thread has ended
    assert!(
        refused_within_deadline(addr),
        "after a fast stop, the port no longer accepts"
    );
}

/// The real binary, as `serve` sees it while it runs.
struct Running<'a> {
    addr: SocketAddr,
    config: &'a std::path::Path,
    log: &'a std::path::Path,
    pid: i32,
}

/// The real binary in front of `upstream`, with `[log] format = FORMAT`, its standard output
/// in a file (not a terminal, as under a service manager); `serve` runs while it is up. Stops
/// it with SIGTERM and returns what it wrote.
fn the_binary(upstream: &Upstream, format: &str, serve: impl FnOnce(&Running)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let toml = common::config_with(&["127.0.0.1"], &[upstream.addr], common::RULES)
        .replace("{port}", &port.to_string())
        .replace("{data}", &dir.path().join("data").display().to_string())
        .replacen("[log]\n", &format!("[log]\nformat = \"{format}\"\n"), 1);
    assert!(toml.contains("threads = 2"));
    let config = dir.path().join("stepgate.toml");
    std::fs::write(&config, toml).unwrap();
    let log = dir.path().join("stdout.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    /// Kills the binary if the test ends before it stopped (a failed check).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let mut child = KillOnDrop(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    common::wait_ready(addr);
    serve(&Running {
        addr,
        config: &config,
        log: &log,
        pid: child.0.id() as i32,
    });

    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            panic!("the gateway did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(refused_within_deadline(addr));
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(!out.contains('\u{1b}'), "colour codes in a file: {out}");
    assert!(
        !out.contains("log.file") && !out.contains(".cargo"),
        "build paths in the log: {out}"
    );
    out
}

/// Each pingora worker thread runs its own runtime, which the binary's `main` sets up and the
/// in-process test gateways cannot use (pingora#981). Here the real binary, with two workers,
/// serves many connections at once, each placed on one of them, then stops on SIGTERM. Its log
/// is JSON lines.
#[test]
fn the_binary_serves_from_every_worker_and_stops_on_sigterm() {
    let upstream = Upstream::start("per-thread");
    let out = the_binary(&upstream, "json", |run| {
        let addr = run.addr;
        // 16 connections at once: a worker that could not run its connections would leave
        // about half of them unanswered (`raw` gives up after 5 s).
        let clients: Vec<_> = (0..16)
            .map(|_| std::thread::spawn(move || common::get(addr, "/public/x", &[])))
            .collect();
        for c in clients {
            let resp = c.join().unwrap();
            assert_eq!(common::status(&resp), 200, "{resp}");
        }
    });
    assert_eq!(upstream.requests().len(), 16);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["target"] == "pingora_core::server"),
        "{out}"
    );
}

/// The human log format, written to a file, has no colour codes either.
#[test]
fn the_human_log_has_no_colour_codes_off_a_terminal() {
    let upstream = Upstream::start("human");
    let out = the_binary(&upstream, "human", |run| {
        assert_eq!(
            common::status(&common::get(run.addr, "/public/x", &[])),
            200
        );
    });
    assert!(out.contains("stepgate starting"), "{out}");
}

/// SIGHUP puts a changed file's rules in force without a failed request among those in flight,
/// and a file with problems is reported and changes nothing.
#[test]
fn sighup_reloads_the_rules_under_load_and_keeps_them_when_the_file_is_bad() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let upstream = Upstream::start("reload");
    let out = the_binary(&upstream, "human", |run| {
        let addr = run.addr;
        let late = || common::status(&common::get(addr, "/late/x", &[]));
        assert_eq!(late(), 401, "not a bypass route yet");
        let (stop, served, failed) = (
            AtomicBool::new(false),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        /// Stops the load when the checks end, passed or not (a failed check must not leave
        /// the scope waiting for it).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        std::thread::scope(|s| {
            let _stop = StopOnDrop(&stop);
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        match common::status(&common::get(addr, "/public/x", &[])) {
                            200 => served.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                });
            }
            let hangup = || {
                // SAFETY: kill only sends a signal to the child this test started.
                assert_eq!(unsafe { libc::kill(run.pid, libc::SIGHUP) }, 0);
            };
            let text = std::fs::read_to_string(run.config).unwrap();
            let first_rule = text.find("[[rule]]").unwrap();
            let changed = format!(
                "{}[[rule]]\npath = \"^/late/\"\npolicy = \"bypass\"\n\n{}",
                &text[..first_rule],
                &text[first_rule..]
            );
            std::fs::write(run.config, &changed).unwrap();
            hangup();
            wait_until("the new rule is in force", || late() == 200);

            // A bad file: reported, and the rules stay as they are.
            std::fs::write(
                run.config,
                format!("{changed}\n[[rule]]\npolicy = \"maybe\"\n"),
            )
            .unwrap();
            hangup();
            wait_until("the bad file is reported", || {
                std::fs::read_to_string(run.log)
                    .unwrap()
                    .contains("the configuration was not reloaded")
            });
            assert_eq!(late(), 200);
        });
        assert!(served.load(Ordering::Relaxed) > 0);
        assert_eq!(
            failed.load(Ordering::Relaxed),
            0,
            "requests failed across the reloads"
        );
    });
    assert!(out.contains("access rules reloaded"), "{out}");
    assert!(out.contains("rule[") && out.contains("policy"), "{out}");
}
