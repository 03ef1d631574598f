//! Routing by host, 404 for unknown hosts, round robin, active health checks, and the branded
//! pages for upstream faults: all asserted on what the upstreams received.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn two_apps(a: &Upstream, b: &Upstream) -> String {
    format!(
        r#"[server]
data_dir = "{{data}}"
threads = 2
[log]
access_log = false
[[listener]]
address = "127.0.0.1:{{port}}"
[[app]]
id = "a"
hosts = ["a.test"]
upstreams = ["{}"]
[[app]]
id = "b"
hosts = ["*.b.test", "127.0.0.1"]
upstreams = ["{}"]
[[rule]]
policy = "bypass"
"#,
        a.addr, b.addr
    )
}

#[test]
fn requests_go_to_the_app_that_serves_the_host() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let gw = Gateway::start(&two_apps(&a, &b));
    assert!(get(gw.addr, "/x", &["Host: a.test"]).ends_with("upstream a"));
    assert!(get(gw.addr, "/y", &["Host: A.Test.:80"]).ends_with("upstream a"));
    assert!(get(gw.addr, "/z", &["Host: deep.one.b.test"]).ends_with("upstream b"));
    assert_eq!(a.requests().len(), 2);
    assert_eq!(b.requests().len(), 1);
    // The host is forwarded normalised: lower case, no trailing dot, no default port.
    assert_eq!(a.last().header("host"), Some("a.test"));
    assert_eq!(b.last().target(), "/z");
}

#[test]
fn a_host_no_app_serves_gets_404_and_is_never_proxied() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let gw = Gateway::start(&two_apps(&a, &b));
    for host in ["other.test", "b.test", "a.test.evil", "xa.test"] {
        let resp = get(gw.addr, "/x", &[&format!("Host: {host}")]);
        assert_eq!(status(&resp), 404, "{host}: {resp}");
    }
    assert!(a.requests().is_empty() && b.requests().is_empty());
}

#[test]
fn round_robin_spreads_requests_over_the_upstreams() {
    let (one, two) = (Upstream::start("one"), Upstream::start("two"));
    let gw = Gateway::start(&config_with(
        &["127.0.0.1"],
        &[one.addr, two.addr],
        "[[rule]]\npolicy = \"bypass\"",
    ));
    for _ in 0..10 {
        assert_eq!(status(&get(gw.addr, "/", &[])), 200);
    }
    assert_eq!(one.requests().len(), 5);
    assert_eq!(two.requests().len(), 5);
}

#[test]
fn a_failing_health_check_takes_an_upstream_out_of_rotation() {
    let good = Upstream::start("good");
    let bad = Upstream::with(
        "bad",
        Behaviour {
            status: 503,
            health_status: 503,
            ..Default::default()
        },
    );
    let extra = "[app.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n\n[[rule]]\npolicy = \"bypass\"";
    let gw = Gateway::start(&config_with(&["127.0.0.1"], &[good.addr, bad.addr], extra));
    // Wait (bounded) until the checker has marked `bad` down: ten answers in a row from `good`.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut streak = 0;
    while streak < 10 {
        assert!(
            Instant::now() < deadline,
            "the unhealthy upstream stayed in rotation"
        );
        streak = if get(gw.addr, "/", &[]).ends_with("upstream good") {
            streak + 1
        } else {
            0
        };
    }
    assert!(
        bad.health_checks() > 0,
        "the health check never ran against the bad upstream"
    );
    let before = bad.requests().len();
    for _ in 0..20 {
        assert!(get(gw.addr, "/", &[]).ends_with("upstream good"));
    }
    assert_eq!(
        bad.requests().len(),
        before,
        "requests still reached the unhealthy upstream"
    );
}

#[test]
fn an_unreachable_upstream_gets_a_branded_502_without_detail() {
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = Gateway::start(&config_with(
        &["127.0.0.1"],
        &[dead],
        "[[rule]]\npolicy = \"bypass\"",
    ));
    let resp = get(gw.addr, "/", &["Accept-Language: ko"]);
    assert_eq!(status(&resp), 502, "{resp}");
    assert!(resp.contains("서비스 응답 오류"), "{resp}");
    assert!(resp
        .to_ascii_lowercase()
        .contains("cache-control: no-store"));
    for leak in ["refused", "127.0.0.1:", "pingora", "error:"] {
        assert!(
            !resp.to_ascii_lowercase().contains(leak),
            "page leaks {leak}: {resp}"
        );
    }
}

#[test]
fn an_upstream_that_does_not_answer_in_time_gets_504() {
    let slow = Upstream::with(
        "slow",
        Behaviour {
            gate: Some(Default::default()),
            ..Default::default()
        },
    );
    let cfg = config_with(
        &["127.0.0.1"],
        &[slow.addr],
        "[[rule]]\npolicy = \"bypass\"",
    )
    .replace("read_timeout = \"3s\"", "read_timeout = \"1s\"");
    let gw = Gateway::start(&cfg);
    let resp = get(gw.addr, "/slow", &[]);
    assert_eq!(status(&resp), 504, "{resp}");
    assert!(resp.contains("Service timed out"));
    slow.release();
}

#[test]
fn a_listener_address_in_use_fails_the_start_instead_of_retrying_silently() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = config_with(&["127.0.0.1"], &[], "[[rule]]\npolicy = \"deny\"")
        .replace("{port}", &port.to_string())
        .replace("{data}", &dir.path().display().to_string())
        .replace("upstreams = []", "builtin = \"whoami\"")
        .replace("connect_timeout = \"2s\"\nread_timeout = \"3s\"\n", "");
    let cfg = stepgate::config::Config::from_toml(std::path::Path::new("t.toml"), &text).unwrap();
    let err = stepgate::app::start(&cfg)
        .err()
        .expect("start must fail while the port is taken");
    assert!(
        err.to_string()
            .contains(&format!("listener 127.0.0.1:{port}: cannot listen")),
        "{err}"
    );
}
