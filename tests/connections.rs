//! Slow and idle connections are cut, and one address cannot hold more than its share
//! (`server.header_timeout`, `idle_timeout`, `body_timeout`, `max_connections_per_address`).
//! Limits are set to a second so each test waits little; every bound asserted is many times
//! the limit, so a slow machine cannot fail them, and pingora's own 60 s per read (the
//! behaviour before the limits) fails every one of them.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

fn gateway(server_keys: &str) -> (Upstream, Gateway) {
    let up = Upstream::start("app");
    let toml = config_with(&["127.0.0.1"], &[up.addr], RULES)
        .replacen("threads = 2\n", &format!("threads = 2\n{server_keys}\n"), 1)
        // The app's own read timeout must not be what cuts a stalled upload.
        .replace("read_timeout = \"3s\"", "read_timeout = \"60s\"");
    (up, Gateway::start(&toml))
}

/// Whether the gateway has closed `s`: a read sees the end (or a reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Reads one response with a `Content-Length` body; returns its head.
fn read_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("a response");
        assert!(
            n > 0,
            "closed before a response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return head.to_owned();
            }
        }
    }
}

const PUBLIC: &[u8] = b"GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[test]
fn a_header_trickled_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    let (up, gw) = gateway("header_timeout = \"1s\"");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    let started = Instant::now();
    // A byte every 200 ms: the whole header would take 8 s; each byte is well inside any
    // per-read timeout, so only a deadline on the whole header cuts it.
    let mut cut = false;
    for byte in PUBLIC {
        if s.write_all(&[*byte]).is_err() || closed_within(&mut s, Duration::from_millis(200)) {
            cut = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(cut, "the trickled header was read to its end in {took:?}");
    assert!(took >= Duration::from_millis(900), "cut early: {took:?}");
    assert!(took < Duration::from_secs(6), "cut late: {took:?}");
    assert!(up.requests().is_empty());

    // A header sent at once on a connection that waited a while is not affected: the deadline
    // counts from the connection's opening for its first request, so wait less than that.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(PUBLIC).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_new_connection_that_sends_nothing_is_closed() {
    let (_up, gw) = gateway("header_timeout = \"1s\"");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(8)),
        "still open after 8 s"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn an_idle_keep_alive_is_closed_at_the_idle_timeout_and_a_busy_one_is_not() {
    let (up, gw) = gateway("idle_timeout = \"1s\"\nheader_timeout = \"2s\"");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    // Requests back to back keep the connection: three on one, each under the idle limit.
    for _ in 0..3 {
        s.write_all(PUBLIC).unwrap();
        assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(up.requests().len(), 3);
    // Then idle: closed after the limit.
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(8)),
        "idle keep-alive still open after 8 s"
    );
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(600), "closed early: {idle:?}");
}

#[test]
fn a_stalled_body_is_cut_at_the_body_timeout() {
    let (up, gw) = gateway("body_timeout = \"1s\"");
    // To an app: the body stops after 10 of 100 bytes.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(
        b"POST /public/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(8)),
        "a stalled upload held the connection"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // To a portal form: answered 408 and closed.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(b"POST /_stepgate/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=al")
        .unwrap();
    let head = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(closed_within(&mut s, Duration::from_secs(8)));
    let _ = up;
}

#[test]
fn a_portal_form_trickled_within_each_read_timeout_is_cut_as_a_whole() {
    let (_up, gw) = gateway("body_timeout = \"1s\"");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(b"POST /_stepgate/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\n")
        .unwrap();
    // A byte every 300 ms: each read is inside the per-read limit; the form as a whole is not.
    let started = Instant::now();
    let mut answered = String::new();
    for _ in 0..40 {
        if s.write_all(b"a").is_err() {
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(n) if n > 0 => {
                answered = String::from_utf8_lossy(&buf[..n]).into_owned();
                break;
            }
            Ok(_) => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    assert!(
        answered.starts_with("HTTP/1.1 408"),
        "after {:?}: {answered:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// Opens a connection and completes one request on it, so the gateway counts it.
fn held(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(PUBLIC).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    s
}

/// Whether a new connection is served (`Some(true)`), refused (`Some(false)`).
fn served(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(PUBLIC).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) if n > 0 => {
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(
                head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 503"),
                "{head}"
            );
            head.starts_with("HTTP/1.1 200")
        }
        _ => false,
    }
}

#[test]
fn one_address_holds_at_most_its_cap_of_connections() {
    let (_up, gw) = gateway("max_connections_per_address = 3\nidle_timeout = \"30s\"");
    let first = held(gw.addr);
    let _second = held(gw.addr);
    let _third = held(gw.addr);
    assert!(!served(gw.addr), "a fourth connection was served");
    // One closes: its place is free again once the gateway has seen the close.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served(gw.addr) {
        assert!(
            Instant::now() < deadline,
            "the freed place was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn trusted_proxies_are_not_capped() {
    let (_up, gw) = gateway(
        "max_connections_per_address = 1\nidle_timeout = \"30s\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
    );
    let _held: Vec<TcpStream> = (0..4).map(|_| held(gw.addr)).collect();
    assert!(served(gw.addr));
}
