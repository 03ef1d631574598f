//! Forward-auth behind real proxies: nginx (`auth_request`) and Caddy (`forward_auth`), each
//! started by the test in front of a recording upstream, with the gateway deciding for an app it
//! never proxies to (`forward_auth = true`). The whole journey goes through the proxy: the
//! redirect to sign in, the sign-in, the two-step guide and setup, the challenge on a new
//! browser; identity and forwarded headers a client makes up never reach the app. The endpoints
//! are also asked directly, as Traefik and Envoy ask them. Skips, saying why, where nginx or
//! Caddy is not installed, unless `CI=true`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::two_factor::{key_on, last_code_to, ALICE, BOB};
use common::*;
use stepgate::clock::{Clock, ManualClock};

/// The first of `paths` that exists, or `None` after printing why the test skips (a failure
/// under `CI=true`).
fn installed(what: &str, paths: &[&str]) -> Option<String> {
    let found = paths.iter().find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(!ci(), "{what} is not installed (CI=true)");
        eprintln!("skipping: {what} is not installed (apt-get install {what})");
    }
    found.map(|p| (*p).to_owned())
}

/// A proxy process of the test's own, stopped when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Runs `cmd` (its files in `dir`, its standard error in `dir/stderr.log`) until it listens
    /// on `port`.
    fn spawn(mut cmd: Command, dir: tempfile::TempDir, port: u16) -> Proxy {
        let log = dir.path().join("stderr.log");
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the proxy starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_listening(addr, &mut child, &log);
        Proxy {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(addr: SocketAddr, child: &mut Child, log: &Path) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the proxy exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the proxy did not listen on {addr}");
}

/// The identity headers the proxy copies from the gateway's answer to the request it forwards.
const IDENTITY: [(&str, &str); 7] = [
    ("Remote-User", "remote_user"),
    ("Remote-Email", "remote_email"),
    ("Remote-Groups", "remote_groups"),
    ("Remote-Name", "remote_name"),
    ("Remote-Auth-Level", "remote_auth_level"),
    ("Remote-Auth-Methods", "remote_auth_methods"),
    ("X-Stepgate-Assertion", "x_stepgate_assertion"),
];

/// nginx in front of `upstream` for `wiki.test`, asking the gateway at `gateway`: the snippet
/// of docs/forward-auth.md, with the test's ports.
fn nginx(gateway: SocketAddr, upstream: SocketAddr) -> Option<Proxy> {
    let bin = installed("nginx", &["/usr/sbin/nginx", "/usr/bin/nginx"])?;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let mut copy = String::new();
    let mut pass = String::new();
    for (header, var) in IDENTITY {
        copy.push_str(&format!(
            "            auth_request_set $stepgate_{var} $upstream_http_{var};\n"
        ));
        pass.push_str(&format!(
            "            proxy_set_header {header} $stepgate_{var};\n"
        ));
    }
    let user = if is_root() { "user root;" } else { "" };
    let conf = format!(
        r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream stepgate {{ server {gateway}; }}
    server {{
        listen 127.0.0.1:{port};
        server_name wiki.test;
        absolute_redirect off;

        # The portal, on the app's own host.
        location /_stepgate/ {{
            proxy_pass http://stepgate;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
        # The gateway's decision on each request.
        location = /_stepgate-authz {{
            internal;
            proxy_pass http://stepgate/_stepgate/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
        # A 401 with a Location is a browser to send to the portal.
        location @stepgate-login {{
            if ($stepgate_location) {{ return 302 $stepgate_location; }}
            return 401;
        }}
        location / {{
            auth_request /_stepgate-authz;
            auth_request_set $stepgate_location $upstream_http_location;
{copy}            error_page 401 = @stepgate-login;
{pass}            proxy_pass http://{upstream};
        }}
    }}
}}
"#
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"));
    Some(Proxy::spawn(cmd, dir, port))
}

/// Caddy in front of `upstream` for `wiki.test`, asking the gateway at `gateway` (the Caddyfile
/// of docs/forward-auth.md, with the test's ports).
fn caddy(gateway: SocketAddr, upstream: SocketAddr) -> Option<Proxy> {
    let bin = installed("caddy", &["/usr/bin/caddy", "/usr/local/bin/caddy"])?;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let copy: Vec<&str> = IDENTITY.iter().map(|(h, _)| *h).collect();
    let conf = format!(
        r#"{{
	admin off
	auto_https off
	storage file_system {d}/data
}}
http://wiki.test:{port} {{
	bind 127.0.0.1
	# The portal, on the app's own host.
	handle /_stepgate/* {{
		reverse_proxy {gateway}
	}}
	handle {{
		# The gateway's decision on each request.
		forward_auth {gateway} {{
			uri /_stepgate/authz/forward-auth
			copy_headers {copy}
		}}
		reverse_proxy {upstream}
	}}
}}
"#,
        copy = copy.join(" ")
    );
    std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.path().join("Caddyfile"))
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path());
    Some(Proxy::spawn(cmd, dir, port))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The gateway, deciding for `wiki.test` (served by the proxy in front) with the quickstart's
/// rules, trusting loopback as its proxy.
fn gateway(up: &Upstream, clock: std::sync::Arc<ManualClock>) -> Gateway {
    let toml = signin_config(
        up.addr,
        "[[app]]\nid = \"wiki\"\nhosts = [\"wiki.test\"]\nforward_auth = true\n",
    )
    .replacen(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        1,
    );
    let now = clock.now_ms();
    clock.set_ms(now - now % 30_000 + 10_000);
    Gateway::start_with_clock(&toml, clock)
}

/// A browser on `proxy` asking for `wiki.test`, which also sends made-up identity and
/// forwarded headers with every request.
fn browser(proxy: &Proxy) -> Browser {
    let mut b = Browser::new(proxy.addr);
    b.host = "wiki.test".into();
    b.extra = vec![
        "Remote-User: mallory".into(),
        "Remote-Auth-Level: 2fa".into(),
        "X-Original-URL: http://wiki.test/public/x".into(),
        "X-Forwarded-Uri: /public/x".into(),
    ];
    b
}

/// The journey through `proxy`, which answers the gateway's "sign in" with `login_status`.
fn journey(proxy: &Proxy, gw: &Gateway, up: &Upstream, clock: &ManualClock) {
    let mut alice = browser(proxy);
    // Anonymous: a browser is sent to sign in, with the original URL to come back to.
    let first = alice.get("/docs/page?x=1");
    assert_eq!(first.status, 302, "{first:?}");
    assert_eq!(
        first.header("location"),
        Some("/_stepgate/login?rd=http%3A%2F%2Fwiki.test%2Fdocs%2Fpage%3Fx%3D1")
    );
    // Not a browser: 401. A deny rule: 403. Made-up forwarded headers change nothing.
    let mut api = Browser::new(proxy.addr);
    api.host = "wiki.test".into();
    api.extra = vec!["X-Original-URL: http://wiki.test/public/x".into()];
    let r = api.request("POST", "/docs/page", Some("a=1"));
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(alice.get("/deny/x").status, 403);
    assert!(up.requests().is_empty(), "nothing reached the app");

    // A bypass route: served, and none of the made-up identity reaches the app.
    // (nginx drops a header set to an empty value; Caddy passes it on empty.)
    assert_eq!(alice.get("/public/x").status, 200);
    let seen = up.last();
    for name in ["remote-user", "remote-auth-level"] {
        assert!(
            seen.all(name).iter().all(|v| v.is_empty()),
            "{name}: {seen:?}"
        );
    }

    // Sign in through the proxy, then a one-factor route: the app sees alice, once.
    let signed = alice.sign_in(ALICE.0, ALICE.1, "http://wiki.test/1fa/x");
    assert_eq!(signed.status, 303, "{signed:?}");
    assert_eq!(
        signed.header("location"),
        Some("http://wiki.test/1fa/x"),
        "back to the app"
    );
    assert_eq!(alice.get("/1fa/x").status, 200);
    let seen = up.last();
    assert_eq!(seen.all("remote-user"), vec!["alice"], "{seen:?}");
    assert_eq!(seen.header("remote-auth-level"), Some("1fa"));
    assert!(seen
        .header("x-stepgate-assertion")
        .is_some_and(|a| a.split('.').count() == 3));

    // A two-factor route: the guide, then setup, all through the proxy.
    let guide = alice.get("/x");
    assert_eq!(guide.status, 302);
    assert_eq!(
        guide.header("location"),
        Some("/_stepgate/guide?rd=http%3A%2F%2Fwiki.test%2Fx")
    );
    assert_eq!(alice.get(&location_target(&guide)).status, 200);
    let setup = alice.get("/_stepgate/setup?rd=http%3A%2F%2Fwiki.test%2Fx");
    let sent = alice.submit(&setup, "/setup", &[]);
    let email = "alice@example.test";
    let proved = alice.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &last_code_to(gw, email))],
    );
    let app_page = alice.submit(&proved, "/setup", &[("email", email)]);
    let key = key_on(&app_page);
    let done = alice.submit(
        &app_page,
        "/setup",
        &[("code", &totp_code(&key, clock.now_secs()))],
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(alice.get("/x").status, 200);
    assert_eq!(up.last().header("remote-auth-level"), Some("2fa"));

    // A new browser: sign-in, then the challenge, then in.
    let mut laptop = browser(proxy);
    assert_eq!(
        laptop
            .sign_in(ALICE.0, ALICE.1, "http://wiki.test/x")
            .status,
        303
    );
    let asked = laptop.get("/x");
    assert_eq!(
        asked.header("location"),
        Some("/_stepgate/2fa?rd=http%3A%2F%2Fwiki.test%2Fx")
    );
    let challenge = laptop.get(&location_target(&asked));
    clock.advance(Duration::from_secs(30));
    let passed = laptop.submit(
        &challenge,
        "/2fa",
        &[("code", &totp_code(&key, clock.now_secs()))],
    );
    assert_eq!(passed.status, 303, "{passed:?}");
    assert_eq!(laptop.get("/x").status, 200);
    let seen = up.last();
    assert_eq!(seen.all("remote-user"), vec!["alice"]);
    assert_eq!(seen.header("remote-auth-methods"), Some("pwd,otp"));

    // A user outside a rule's subjects: refused; an admin: asked for the guide like anyone.
    assert_eq!(laptop.get("/admin/x").status, 403);
    let mut bob = browser(proxy);
    assert_eq!(bob.sign_in(BOB.0, BOB.1, "http://wiki.test/").status, 303);
    assert_eq!(bob.get("/admin/x").status, 302);
}

/// The journey behind the proxy `start` starts (given the gateway's and the app's addresses).
fn behind(start: fn(SocketAddr, SocketAddr) -> Option<Proxy>) {
    let up = Upstream::start("wiki");
    let clock = ManualClock::now();
    let gw = gateway(&up, clock.clone());
    let Some(proxy) = start(gw.addr, up.addr) else {
        return;
    };
    journey(&proxy, &gw, &up, &clock);
}

#[test]
fn nginx_auth_request_in_front() {
    behind(nginx);
}

#[test]
fn caddy_forward_auth_in_front() {
    behind(caddy);
}

#[test]
fn the_endpoints_answer_only_trusted_proxies_and_never_2xx_without_an_original() {
    let up = Upstream::start("wiki");
    let clock = ManualClock::now();
    let gw = gateway(&up, clock.clone());
    let ask = |path: &str, headers: &[&str]| status(&get(gw.addr, path, headers));
    let nginx_ok = [
        "Host: 127.0.0.1",
        "X-Original-URL: http://wiki.test/public/x",
        "X-Original-Method: GET",
    ];
    assert_eq!(ask("/_stepgate/authz/auth-request", &nginx_ok), 200);
    let traefik_ok = [
        "Host: 127.0.0.1",
        "X-Forwarded-Method: GET",
        "X-Forwarded-Proto: http",
        "X-Forwarded-Host: wiki.test",
        "X-Forwarded-Uri: /public/x",
    ];
    assert_eq!(ask("/_stepgate/authz/forward-auth", &traefik_ok), 200);
    // Anything missing or malformed: 400.
    for i in 1..nginx_ok.len() {
        let mut some = nginx_ok.to_vec();
        some.remove(i);
        assert_eq!(ask("/_stepgate/authz/auth-request", &some), 400, "{some:?}");
    }
    for i in 1..traefik_ok.len() {
        let mut some = traefik_ok.to_vec();
        some.remove(i);
        assert_eq!(ask("/_stepgate/authz/forward-auth", &some), 400, "{some:?}");
    }
    let bad_host = [
        "Host: 127.0.0.1",
        "X-Original-URL: http://wi ki.test/",
        "X-Original-Method: GET",
    ];
    assert_eq!(ask("/_stepgate/authz/auth-request", &bad_host), 400);
    // A host no app serves: refused, never allowed.
    let unknown = [
        "Host: 127.0.0.1",
        "X-Original-URL: http://other.test/public/x",
        "X-Original-Method: GET",
    ];
    assert_eq!(ask("/_stepgate/authz/auth-request", &unknown), 403);
    // The answer is never cached and depends on the cookie.
    let answer = get(gw.addr, "/_stepgate/authz/auth-request", &nginx_ok);
    let answer = Response::parse(&answer);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("vary"), Some("Cookie"));
    // Every identity header is there, empty without a user (so a proxy overwrites them).
    for (name, _) in IDENTITY {
        assert_eq!(
            answer.header(&name.to_ascii_lowercase()),
            Some(""),
            "{name}"
        );
    }
    // What Traefik sends for a signed-in browser (its forwardAuth middleware copies the
    // request's headers and describes it in X-Forwarded-*): 200 with who it is; without the
    // session, a browser is sent to sign in (Traefik passes the 302 on), an API client 401.
    let mut alice = Browser::new(gw.addr);
    assert_eq!(alice.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    let cookie = format!(
        "Cookie: stepgate_session={}",
        alice.cookie("stepgate_session").unwrap()
    );
    let traefik = |extra: &[&str]| {
        let mut h = vec![
            "Host: 127.0.0.1",
            "X-Forwarded-Method: GET",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: wiki.test",
            "X-Forwarded-Uri: /1fa/page?q=1",
            "X-Forwarded-For: 203.0.113.7",
            "X-Real-Ip: 203.0.113.7",
        ];
        h.extend_from_slice(extra);
        Response::parse(&get(gw.addr, "/_stepgate/authz/forward-auth", &h))
    };
    let ok = traefik(&[&cookie, "Accept: text/html"]);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("remote-user"), Some("alice"));
    assert_eq!(ok.header("remote-auth-level"), Some("1fa"));
    let away = traefik(&["Accept: text/html"]);
    assert_eq!(away.status, 302);
    assert_eq!(
        away.header("location"),
        Some("/_stepgate/login?rd=https%3A%2F%2Fwiki.test%2F1fa%2Fpage%3Fq%3D1")
    );
    assert_eq!(traefik(&[]).status, 401);

    // What Envoy's ext_authz HTTP service sends (with `cookie`, `accept`, `x-forwarded-proto`
    // and `x-forwarded-for` among its allowed headers): the original method, the endpoint
    // followed by the original path, and the original Host.
    let envoy = |method: &str, path: &str, extra: &[&str]| {
        let mut req = format!(
            "{method} /_stepgate/authz/ext-authz{path} HTTP/1.1\r\nhost: wiki.test\r\n\
             x-forwarded-proto: https\r\nx-forwarded-for: 203.0.113.7\r\n\
             content-length: 0\r\nconnection: close\r\n"
        );
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        Response::parse(&raw(gw.addr, req.as_bytes()).unwrap())
    };
    let ok = envoy("GET", "/1fa/page?q=1", &[&cookie, "accept: text/html"]);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("remote-user"), Some("alice"));
    let away = envoy("GET", "/1fa/page?q=1", &["accept: text/html"]);
    assert_eq!(away.status, 302);
    assert_eq!(
        away.header("location"),
        Some("/_stepgate/login?rd=https%3A%2F%2Fwiki.test%2F1fa%2Fpage%3Fq%3D1")
    );
    assert_eq!(envoy("POST", "/1fa/page", &[]).status, 401);
    assert_eq!(envoy("DELETE", "/deny/x", &[&cookie]).status, 403);

    // The forward-auth app itself is never proxied to.
    assert_eq!(
        status(&get(gw.addr, "/public/x", &["Host: wiki.test"])),
        404
    );
    assert!(up.requests().is_empty());

    // A gateway that does not trust the peer answers 403 to everything.
    let strict = Gateway::start(&signin_config(
        up.addr,
        "[[app]]\nid = \"wiki\"\nhosts = [\"wiki.test\"]\nforward_auth = true\n",
    ));
    assert_eq!(
        status(&get(
            strict.addr,
            "/_stepgate/authz/auth-request",
            &nginx_ok
        )),
        403
    );
    assert_eq!(
        status(&get(
            strict.addr,
            "/_stepgate/authz/forward-auth",
            &traefik_ok
        )),
        403
    );
}
