//! Request hygiene on the wire: the decision is made on exactly what is forwarded, and nothing a
//! client sends passes for what the gateway vouches for.

mod common;

use common::*;

fn setup() -> (Upstream, Gateway) {
    let up = Upstream::start("app");
    let gw = Gateway::start(&config_with(&["127.0.0.1", "a.test"], &[up.addr], RULES));
    (up, gw)
}

#[test]
fn the_forwarded_path_is_the_normalised_one() {
    let (up, gw) = setup();
    let cases = [
        ("/public/a/./b/../c//d", "/public/a/c/d"),
        ("/public/%61%62c", "/public/abc"),
        ("/x/../public/y", "/public/y"),
        ("/public/q?x=%2F..//&y", "/public/q?x=%2F..//&y"),
        ("/public/%7euser%3a", "/public/~user%3A"),
    ];
    for (sent, forwarded) in cases {
        let resp = get(gw.addr, sent, &[]);
        assert_eq!(status(&resp), 200, "{sent}: {resp}");
        assert_eq!(up.last().target(), forwarded, "{sent}");
    }
}

#[test]
fn dot_segments_are_resolved_before_the_decision() {
    let (up, gw) = setup();
    // Looks like /public/ (bypass) but is /admin/ (two_factor): needs a session.
    for sneaky in [
        "/public/../admin/",
        "/public/%2e%2e/admin/",
        "/public/.%2E/admin/x",
    ] {
        assert_eq!(status(&get(gw.addr, sneaky, &[])), 401, "{sneaky}");
    }
    assert!(up.requests().is_empty());
}

#[test]
fn targets_that_cannot_be_normalised_safely_get_400() {
    let (up, gw) = setup();
    for bad in [
        "/public/..%2fadmin/",
        "/public/a%2Fb",
        "/public/a%5cb",
        "/public/a\\..\\admin",
        "/public/a%00",
        "/public/a%zz",
        "/public/..;/admin/",
        "/public/%2e%2e;/admin/",
    ] {
        let resp = get(gw.addr, bad, &[]);
        assert_eq!(status(&resp), 400, "{bad}: {resp}");
    }
    assert!(
        up.requests().is_empty(),
        "a refused request reached the upstream"
    );
}

#[test]
fn missing_duplicated_or_invalid_hosts_get_400() {
    let (up, gw) = setup();
    let bad = [
        "GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /public/x HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\nConnection: close\r\n\r\n"
            .to_owned(),
        "GET /public/x HTTP/1.1\r\nHost: a.test, b.test\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /public/x HTTP/1.1\r\nHost: user@a.test\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /public/x HTTP/1.1\r\nHost: a..test\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /public/x HTTP/1.1\r\nHost: a.test:99999\r\nConnection: close\r\n\r\n".to_owned(),
        "GET http://a.test/public/x HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n"
            .to_owned(),
    ];
    for req in &bad {
        let resp = raw(gw.addr, req.as_bytes()).unwrap();
        assert_eq!(status(&resp), 400, "{req:?}: {resp}");
    }
    assert!(up.requests().is_empty());
    // Normalised: case, trailing dot and default port.
    assert_eq!(
        status(&get(gw.addr, "/public/x", &["Host: A.TEST.:80"])),
        200
    );
    assert_eq!(up.last().header("host"), Some("a.test"));
    assert_eq!(
        status(&get(gw.addr, "/public/x", &["Host: a.test:8443"])),
        200
    );
    assert_eq!(up.last().header("host"), Some("a.test:8443"));
}

#[test]
fn client_identity_headers_are_removed_even_on_bypass_routes() {
    let (up, gw) = setup();
    let resp = get(
        gw.addr,
        "/public/x",
        &[
            "Remote-User: admin",
            "remote_user: admin",
            "REMOTE-GROUPS: admins",
            "Remote-Email: a@b",
            "Remote-Name: x",
            "Remote_Auth_Level: 2fa",
            "Remote-Auth-Methods: otp",
            "X-Stepgate-Assertion: forged",
            "Remote-User: again",
            "Remote-Userx: kept",
        ],
    );
    assert_eq!(status(&resp), 200);
    let seen = up.last();
    for h in [
        "remote-user",
        "remote-groups",
        "remote-email",
        "remote-name",
        "remote-auth-level",
        "remote-auth-methods",
        "x-stepgate-assertion",
    ] {
        assert!(
            !seen.has_header_like(h),
            "{h} reached the upstream: {seen:?}"
        );
    }
    assert_eq!(seen.header("remote-userx"), Some("kept"));
}

#[test]
fn configured_identity_header_names_are_removed_too() {
    let up = Upstream::start("app");
    let cfg = config_with(
        &["127.0.0.1"],
        &[up.addr],
        &format!("[identity.headers]\nuser = \"X-Auth-User\"\n{RULES}"),
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(
        status(&get(
            gw.addr,
            "/public/x",
            &["x_auth_user: admin", "X-AUTH-USER: admin"]
        )),
        200
    );
    assert!(!up.last().has_header_like("x-auth-user"));
}

#[test]
fn connection_tokens_never_remove_headers_the_gateway_sets() {
    let (up, gw) = setup();
    let resp = get(
        gw.addr,
        "/public/x",
        &["Connection: X-Forwarded-For, x_forwarded_proto, X-Forwarded-Host, Remote-User, X-Hop"],
    );
    assert_eq!(status(&resp), 200, "{resp}");
    let seen = up.last();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("127.0.0.1"));
}

#[test]
fn forwarded_headers_from_untrusted_clients_are_replaced() {
    let (up, gw) = setup();
    get(
        gw.addr,
        "/public/x",
        &[
            "X-Forwarded-For: 203.0.113.9",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: evil.test",
            "Forwarded: for=203.0.113.9",
        ],
    );
    let seen = up.last();
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.all("x-forwarded-host"), vec!["127.0.0.1"]);
    assert!(seen.header("forwarded").is_none());
}

#[test]
fn forwarded_headers_from_trusted_proxies_are_kept_and_extended() {
    let up = Upstream::start("app");
    let cfg = config_with(&["127.0.0.1"], &[up.addr], RULES).replace(
        "threads = 2",
        "threads = 2\ntrusted_proxies = [\"127.0.0.0/8\"]",
    );
    let gw = Gateway::start(&cfg);
    get(
        gw.addr,
        "/public/x",
        &[
            "X-Forwarded-For: 203.0.113.9",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: app.example",
        ],
    );
    let seen = up.last();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.example"));
}

#[test]
fn the_gateways_cookies_are_never_forwarded() {
    let (up, gw) = setup();
    get(
        gw.addr,
        "/public/x",
        &["Cookie: app=1; stepgate_session=secret; __Host-stepgate_session=s2; __Secure-stepgate_session=s3; stepgate_csrf=c1; __Host-stepgate_csrf=c2; other=2"],
    );
    assert_eq!(up.last().all("cookie"), vec!["app=1; other=2"]);
    get(gw.addr, "/public/x", &["Cookie: stepgate_session=secret"]);
    assert!(up.last().header("cookie").is_none());
}

#[test]
fn decisions_without_a_session_follow_the_contract() {
    let (up, gw) = setup();
    // Browser navigation: redirected to sign in, with the original URL.
    let resp = get(
        gw.addr,
        "/1fa/x?q=1",
        &["Accept: text/html,application/xhtml+xml"],
    );
    assert_eq!(status(&resp), 302, "{resp}");
    assert!(
        resp.contains("location: /_stepgate/login?rd=http%3A%2F%2F127.0.0.1%2F1fa%2Fx%3Fq%3D1\r\n"),
        "{resp}"
    );
    // Other clients: 401.
    assert_eq!(
        status(&get(gw.addr, "/1fa/x", &["Accept: application/json"])),
        401
    );
    assert_eq!(status(&get(gw.addr, "/", &[])), 401);
    let post = raw(gw.addr, b"POST /1fa/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(status(&post), 401);
    // Deny rules: 403 for everyone.
    assert_eq!(
        status(&get(gw.addr, "/deny/x", &["Accept: text/html"])),
        403
    );
    assert!(up.requests().is_empty());
}

#[test]
fn without_a_matching_rule_access_is_denied() {
    let up = Upstream::start("app");
    let gw = Gateway::start(&config_with(
        &["127.0.0.1"],
        &[up.addr],
        "[[rule]]\npath = \"^/open/\"\npolicy = \"bypass\"",
    ));
    assert_eq!(status(&get(gw.addr, "/open/x", &[])), 200);
    assert_eq!(status(&get(gw.addr, "/closed", &[])), 403);
    assert_eq!(status(&get(gw.addr, "/open", &[])), 403);
    assert_eq!(up.requests().len(), 1);
}

#[test]
fn ambiguous_framing_is_refused() {
    let (up, gw) = setup();
    // Content-Length with Transfer-Encoding: pingora's parser drops the length before any filter
    // runs (RFC 9112 §6.3: chunked wins) and closes the connection afterwards, so nothing can
    // be smuggled behind it. The upstream sees one chunked request, never the length.
    let smuggle = b"POST /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let resp = raw(gw.addr, smuggle).unwrap();
    assert_eq!(
        resp.matches("HTTP/1.1 ").count(),
        1,
        "a second request was read from the same connection: {resp}"
    );
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    assert_eq!(up.requests().len(), 1);
    assert!(up.last().header("content-length").is_none());
    assert_eq!(up.last().target(), "/public/x");
    let coded = b"POST /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n";
    assert_eq!(status(&raw(gw.addr, coded).unwrap()), 400);
    let folded =
        b"GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(gw.addr, folded).unwrap()), 400);
    let spaced =
        b"GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A : a\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(gw.addr, spaced).unwrap()), 400);
    let double = b"POST /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab";
    assert_eq!(status(&raw(gw.addr, double).unwrap()), 400);
    assert_eq!(
        up.requests().len(),
        1,
        "a refused request reached the upstream"
    );
}

#[test]
fn the_portal_answers_on_every_served_host() {
    let (up, gw) = setup();
    let resp = get(gw.addr, "/_stepgate/health", &["Host: a.test"]);
    assert_eq!(status(&resp), 200);
    assert!(resp.ends_with("{\"status\":\"ok\"}"));
    assert_eq!(status(&get(gw.addr, "/_stepgate/nothing", &[])), 404);
    assert!(up.requests().is_empty());
}

#[test]
fn trace_is_refused_and_never_reaches_an_app() {
    let (up, gw) = setup();
    for method in ["TRACE", "TRACK"] {
        let req = format!(
            "{method} /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: stepgate_session=secret\r\nConnection: close\r\n\r\n"
        );
        let resp = raw(gw.addr, req.as_bytes()).unwrap();
        assert_eq!(status(&resp), 405, "{resp}");
        assert!(!resp.contains("secret"), "{resp}");
    }
    assert!(up.requests().is_empty(), "a TRACE reached the upstream");
}

#[test]
fn an_absolute_form_target_is_served_like_its_origin_form() {
    let (up, gw) = setup();
    let resp = raw(
        gw.addr,
        b"GET http://127.0.0.1/public/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(up.last().target(), "/public/x?q=1");
    let other = raw(
        gw.addr,
        b"GET http://a.test/public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status(&other), 400, "{other}");
}

#[test]
fn oversized_headers_get_431_and_reach_no_app() {
    let (up, gw) = setup();
    let big = "x".repeat(8 * 1024);
    let mut req =
        String::from("GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for i in 0..5 {
        req.push_str(&format!("X-Big-{i}: {big}\r\n"));
    }
    req.push_str("\r\n");
    let resp = raw(gw.addr, req.as_bytes()).unwrap();
    assert_eq!(status(&resp), 431, "{resp}");
    assert!(up.requests().is_empty());
    // Just under the cap is fine.
    let ok = format!(
        "GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "x".repeat(30 * 1024)
    );
    assert_eq!(status(&raw(gw.addr, ok.as_bytes()).unwrap()), 200);
}

#[test]
fn url_and_method_override_headers_never_reach_an_app() {
    let (up, gw) = setup();
    let resp = get(
        gw.addr,
        "/public/x",
        &[
            "Host: 127.0.0.1",
            "X-Original-URL: /admin/",
            "X-Rewrite-URL: /admin/",
            "X-Forwarded-Uri: /admin/",
            "x_http_method_override: DELETE",
            "X-HTTP-Method: DELETE",
            "X-Method-Override: DELETE",
        ],
    );
    assert_eq!(status(&resp), 200, "{resp}");
    let seen = up.last();
    for h in [
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        assert!(!seen.has_header_like(h), "{h} reached the app");
    }
}

#[test]
fn paths_and_methods_a_lenient_app_reads_differently_meet_the_stricter_rule() {
    let up = Upstream::start("app");
    let rules = format!(
        "[[rule]]\npath = \"^/ro/\"\nmethods = [\"POST\", \"DELETE\"]\npolicy = \"deny\"\n\n\
         [[rule]]\npath = \"^/ro/\"\npolicy = \"bypass\"\n{RULES}"
    );
    let gw = Gateway::start(&config_with(&["127.0.0.1"], &[up.addr], &rules));
    let ask = |method: &str, path: &str| {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        status(&raw(gw.addr, req.as_bytes()).unwrap())
    };
    // The deny rule is written for /deny/: every reading of it that a lenient app would
    // serve as /deny/ is refused too.
    for path in [
        "/deny/x",
        "/DENY/x",
        "/Deny/x",
        "/deny;jsessionid=1/x",
        "/deny./x",
        "/deny%20/x",
        "/deny.%20./x",
    ] {
        assert_eq!(ask("GET", path), 403, "{path}");
    }
    // Double encoding and overlong dots are refused outright; real UTF-8 is fine.
    for path in [
        "/public/%252e%252e/deny/x",
        "/public/%C0%AE%C0%AE/deny/x",
        "/public/%E0%80%AE",
    ] {
        assert_eq!(ask("GET", path), 400, "{path}");
    }
    assert_eq!(ask("GET", "/public/%ED%95%9C%EA%B8%80"), 200);
    // A method rule holds whatever the method's case.
    assert_eq!(ask("GET", "/ro/x"), 200);
    assert_eq!(ask("POST", "/ro/x"), 403);
    assert_eq!(ask("post", "/ro/x"), 403);
    assert_eq!(ask("Delete", "/ro/x"), 403);
    // What is forwarded is the path as sent (normalised), not the lenient reading.
    assert_eq!(ask("GET", "/public/Mixed-Case"), 200);
    assert_eq!(up.last().target(), "/public/Mixed-Case");
    assert!(up
        .requests()
        .iter()
        .all(|r| !r.target().starts_with("/deny")));
}

/// Each request a raw upstream read: (its connection's number, its path).
type SeenOn = std::sync::Arc<std::sync::Mutex<Vec<(usize, String)>>>;

/// A raw upstream: `/public/both` is answered with both `Content-Length` and chunked framing,
/// anything else with its path; returns the address and, per request, (connection, path).
fn two_framings_upstream() -> (std::net::SocketAddr, SeenOn) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for (conn, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { return };
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    log.lock().unwrap().push((conn, path.clone()));
                    let answer = if path == "/public/both" {
                        // Read by its length, the body would end after "5\r\n" and the rest
                        // would pose as the next answer on this connection.
                        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_owned()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}",
                            path.len()
                        )
                    };
                    if s.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn an_upstream_answer_with_two_framings_is_read_by_its_chunks_and_cannot_desync_the_pool() {
    // pingora drops the length of an upstream answer that also says chunked before any filter
    // sees it (RFC 9112 §6.3), so the gateway cannot tell and refuse it (docs/deciding.md says
    // so). What it guarantees instead: the answer is read by its chunks to its exact end, the
    // client never sees both framings, and the next request on the same pooled connection gets
    // its own answer, not the remains of this one.
    let (upstream, seen) = two_framings_upstream();
    let gw = Gateway::start(&config_with(&["127.0.0.1"], &[upstream], RULES));
    let resp = get(gw.addr, "/public/both", &[]);
    assert_eq!(status(&resp), 200, "{resp}");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert!(body.contains("hello"), "{body:?}");
    for path in ["/public/next", "/public/after"] {
        let resp = get(gw.addr, path, &[]);
        assert_eq!(status(&resp), 200, "{resp}");
        assert!(resp.ends_with(path), "{path}: {resp}");
    }
    let seen = seen.lock().unwrap().clone();
    let both = seen.iter().find(|(_, p)| p == "/public/both").unwrap().0;
    assert!(
        seen.iter().any(|(c, p)| *c == both && p == "/public/next"),
        "the pooled connection was reused in step: {seen:?}"
    );
}
