//! Several gateways on one PostgreSQL and one Redis (`store.redis_url`): three behind one
//! address share sessions, and every ending (sign-out elsewhere, reset, lock) reaches the others
//! within a second; failure limits count across them; a gateway stopped in a load loop loses no
//! acknowledged session; Redis going away fails attempts closed until it is back. Skips with a
//! printed reason outside CI when no PostgreSQL or no Redis is reachable.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::db::Postgres;
use common::two_factor::ALICE;
use common::*;

/// Whether a Redis answers PING at `addr`.
fn pong(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The machine's Redis on its usual port, or `None` (skipping, with the reason) outside CI.
fn local_redis() -> Option<SocketAddr> {
    let addr: SocketAddr = ([127, 0, 0, 1], 6379).into();
    if pong(addr) {
        return Some(addr);
    }
    assert!(!ci(), "CI=true and no Redis answers at {addr}");
    eprintln!("skipped: no Redis answers at {addr}; start one to include this test");
    None
}

/// A Redis server of the test's own on a port of its own, stopped and started at will.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let mut r = OwnRedis {
            port: free_port(),
            child: None,
        };
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(!ci(), "CI=true and no redis-server to start");
            eprintln!("skipped: no redis-server to start (Debian package redis-server)");
            return None;
        }
        r.up();
        Some(r)
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pong(self.addr()) {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
    }
}

/// A prefix of its own per test run, so tests sharing one Redis never share keys.
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test:{test}:{}:{nanos}:", std::process::id())
}

fn gateway(up: &Upstream, db: &Postgres, redis: SocketAddr, prefix: &str) -> Gateway {
    Gateway::start(&signin_config(
        up.addr,
        &format!(
            "[store]\nurl = \"{}\"\nredis_url = \"redis://{redis}\"\nredis_prefix = \"{prefix}\"\n",
            db.url
        ),
    ))
}

#[test]
fn failures_on_two_gateways_add_up_to_one_budget() {
    let Some(db) = Postgres::create("many_budget") else {
        return;
    };
    let Some(redis) = local_redis() else {
        return;
    };
    let up = Upstream::start("app");
    let prefix = prefix("budget");
    let (a, b) = (
        gateway(&up, &db, redis, &prefix),
        gateway(&up, &db, redis, &prefix),
    );
    // Three wrong passwords on A and two on B: five in all, the limit (each gateway alone has
    // seen fewer).
    for (gw, n) in [(&a, 3), (&b, 2)] {
        for _ in 0..n {
            let r = Browser::new(gw.addr).sign_in(ALICE.0, "wrong-password", "/");
            assert_eq!(r.status, 401, "{r:?}");
        }
    }
    // Now even the right password is refused, on either gateway, as during any ban.
    for gw in [&b, &a] {
        let mut x = Browser::new(gw.addr);
        let r = x.sign_in(ALICE.0, ALICE.1, "/");
        assert_eq!(r.status, 401, "the shared budget was not spent: {r:?}");
        assert!(x.cookie("stepgate_session").is_none());
    }
    // Bob, from the same address, is not banned (the address has 5 of its 20).
    assert_eq!(
        Browser::new(b.addr)
            .sign_in("bob", "bob-password-1", "/")
            .status,
        303
    );
    assert!(up.requests().is_empty());

    // The ban no single gateway saw is kept in the store, where the operator sees it, and
    // lifting it there lifts it for every gateway at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = common::two_factor::admin(&a, &["bans", "list", "--json"]);
        if listed.contains("alice") || Instant::now() > deadline {
            break listed;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        listed.contains("\"shown\": \"alice/127.0.0.1\""),
        "{listed}"
    );
    let said = common::two_factor::admin(&a, &["bans", "lift", "pair", "alice/127.0.0.1"]);
    assert!(said.contains("lifted the pair ban"), "{said}");
    for gw in [&a, &b] {
        let r = Browser::new(gw.addr).sign_in(ALICE.0, ALICE.1, "/");
        assert_eq!(r.status, 303, "{r:?}");
    }
}

#[test]
fn redis_stopped_fails_attempts_closed_and_they_come_back_with_it() {
    let Some(db) = Postgres::create("many_redis_down") else {
        return;
    };
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    let up = Upstream::start("app");
    let gw = gateway(&up, &db, redis.addr(), &prefix("down"));
    let mut alice = Browser::new(gw.addr);
    assert_eq!(alice.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    assert_eq!(alice.get("/1fa/x").status, 200);

    redis.down();
    // A sign-in cannot be counted: refused with 503, the password not even checked.
    let mut b = Browser::new(gw.addr);
    let r = b.sign_in(ALICE.0, ALICE.1, "/");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(b.cookie("stepgate_session").is_none());
    // What needs no count keeps working: a session already made, a bypass route.
    assert_eq!(alice.get("/1fa/x").status, 200);
    assert_eq!(status(&get(gw.addr, "/public/x", &[])), 200);

    redis.up();
    common::two_factor::signed_in_once_back(gw.addr, "Redis");
}

/// Three gateways on one PostgreSQL, one Redis and one data directory (the keys they share),
/// with loopback as a trusted proxy so that a test can come from several addresses; `extra`
/// goes into the configuration.
fn three(
    up: &Upstream,
    db: &Postgres,
    redis: SocketAddr,
    prefix: &str,
    extra: &str,
) -> (Vec<Gateway>, tempfile::TempDir) {
    let shared = tempfile::tempdir().unwrap();
    let toml = signin_config(
        up.addr,
        &format!(
            "{extra}\n[store]\nurl = \"{}\"\nredis_url = \"redis://{redis}\"\nredis_prefix = \"{prefix}\"\n",
            db.url
        ),
    )
    .replace("{data}", &shared.path().join("data").display().to_string())
    .replacen(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        1,
    );
    let gws = (0..3).map(|_| Gateway::start(&toml)).collect();
    (gws, shared)
}

/// A browser on `gw` coming from `address` (through the trusted proxy).
fn from(gw: &Gateway, address: &str) -> Browser {
    let mut b = Browser::new(gw.addr);
    b.extra.push(format!("X-Forwarded-For: {address}"));
    b
}

/// `b`'s cookies and address, sent to `gw`.
fn same_browser_on(b: &Browser, gw: &Gateway) -> Browser {
    let mut other = b.clone();
    other.addr = gw.addr;
    other
}

/// The promise of docs/deployment.md: an ending on one gateway is refused on another within
/// one second of the answer that ended it. Polls `b` (cached where it is, so only an event
/// from another gateway can end it) until it is sent to sign in.
fn refused_within_a_second(b: &mut Browser, ended: Instant, what: &str) {
    loop {
        let r = b.get("/1fa/x");
        if r.status == 302 {
            let to = r.header("location").unwrap_or("");
            assert!(to.starts_with("/_stepgate/login"), "{what}: {r:?}");
            eprintln!("{what}: refused after {:?}", ended.elapsed());
            return;
        }
        assert_eq!(r.status, 200, "{what}: {r:?}");
        assert!(
            ended.elapsed() < Duration::from_secs(1),
            "{what}: still let in {:?} after it ended",
            ended.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The link of the newest message to `to` of those the gateways wrote, as a request target.
fn last_link_to(gw: &Gateway, to: &str) -> String {
    let mail = common::two_factor::mail_to(gw, to);
    let link = mail.last().expect("a message")["link"]
        .as_str()
        .expect("with a link")
        .to_owned();
    link[link.find("/_stepgate").unwrap()..].to_owned()
}

#[test]
fn three_gateways_share_sessions_and_every_ending_reaches_the_others_within_a_second() {
    let Some(db) = Postgres::create("many_three") else {
        return;
    };
    let Some(redis) = local_redis() else {
        return;
    };
    let up = Upstream::start("app");
    let (gws, _shared) = three(
        &up,
        &db,
        redis,
        &prefix("three"),
        "[two_factor]\nrequired_from = \"2099-01-01\"\n",
    );
    let (a, b, c) = (&gws[0], &gws[1], &gws[2]);
    const HOME: &str = "198.51.100.7";

    // Signed in on A: the same browser is signed in on B and C at once.
    let mut laptop = from(a, HOME);
    assert_eq!(laptop.sign_in(ALICE.0, ALICE.1, "/1fa/").status, 303);
    assert_eq!(laptop.get("/1fa/x").status, 200);
    for gw in [b, c] {
        assert_eq!(same_browser_on(&laptop, gw).get("/1fa/x").status, 200);
        assert_eq!(up.last().header("remote-user"), Some("alice"));
    }

    // "Sign out everywhere else" on C: the laptop's session, cached on A, is refused there.
    let mut phone = from(c, HOME);
    assert_eq!(phone.sign_in(ALICE.0, ALICE.1, "/1fa/").status, 303);
    let list = phone.get("/_stepgate/sessions");
    assert_eq!(phone.submit(&list, "/sessions/end-others", &[]).status, 303);
    refused_within_a_second(&mut laptop, Instant::now(), "signed out everywhere on C");
    assert_eq!(phone.get("/1fa/x").status, 200);

    // A password reset asked on A and completed on B: the phone's session on C ends.
    let mut anon = from(a, HOME);
    let ask = anon.get("/_stepgate/reset");
    anon.submit(&ask, "/reset", &[("username", "alice")]);
    let mut on_b = from(b, HOME);
    let form = on_b.get(&last_link_to(b, "alice@example.test"));
    assert_eq!(form.status, 200, "{form:?}");
    const NEW: &str = "correct horse battery staple 7";
    let done = on_b.submit(&form, "/reset", &[("new_password", NEW)]);
    assert_eq!(done.status, 200, "{done:?}");
    refused_within_a_second(&mut phone, Instant::now(), "password reset on B");
    for gw in [a, c] {
        assert_eq!(from(gw, HOME).sign_in(ALICE.0, ALICE.1, "/").status, 401);
    }

    // A sign-in from elsewhere (on C) is alerted; "this wasn't me" on B locks the account, and
    // the session at home (on A) and the stranger's (on C) end.
    let mut home = from(a, HOME);
    assert_eq!(home.sign_in(ALICE.0, NEW, "/1fa/").status, 303);
    assert_eq!(home.get("/1fa/x").status, 200);
    let mut stranger = from(c, "203.0.113.9");
    assert_eq!(stranger.sign_in(ALICE.0, NEW, "/1fa/").status, 303);
    let checked = stranger.get("/1fa/x");
    assert!(
        checked
            .header("location")
            .unwrap_or("")
            .starts_with("/_stepgate/check"),
        "{checked:?}"
    );
    let mut owner = Browser::new(b.addr);
    let confirm = owner.get(&last_link_to(c, "alice@example.test"));
    assert_eq!(confirm.status, 200, "{confirm:?}");
    assert!(confirm.body.contains("203.0.113.9"), "{}", confirm.body);
    assert_eq!(owner.submit(&confirm, "/lock", &[]).status, 200);
    refused_within_a_second(&mut home, Instant::now(), "account locked on B");
    let gone = stranger.get("/1fa/x");
    assert!(
        gone.header("location")
            .unwrap_or("")
            .starts_with("/_stepgate/login"),
        "{gone:?}"
    );
    for gw in [a, b, c] {
        assert_eq!(from(gw, HOME).sign_in(ALICE.0, NEW, "/").status, 401);
    }
}

/// Sign-ins spread over three gateways while one of them is stopped: every sign-in that was
/// answered with a session is good on the two left, because a session is in PostgreSQL before
/// its cookie is sent.
#[test]
fn a_gateway_stopped_during_a_load_loop_loses_no_acknowledged_session() {
    let Some(db) = Postgres::create("many_stop") else {
        return;
    };
    let Some(redis) = local_redis() else {
        return;
    };
    let up = Upstream::start("app");
    let (mut gws, _shared) = three(
        &up,
        &db,
        redis,
        &prefix("stop"),
        "[session]\nmax_per_user = 1000\n[two_factor]\nrequired_from = \"2099-01-01\"\n",
    );
    let addrs: Vec<SocketAddr> = gws.iter().map(|g| g.addr).collect();
    let a = gws.remove(0);
    const CLIENTS: usize = 3;
    const EACH: usize = 24;
    let tried = std::sync::atomic::AtomicUsize::new(0);
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let mut refused_by_a = 0;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (addrs, tried, acknowledged) = (&addrs, &tried, &acknowledged);
                s.spawn(move || {
                    let mut gone = 0;
                    for i in 0..EACH {
                        let at = addrs[(t + i) % addrs.len()];
                        let mut b = Browser::new(at);
                        match try_sign_in(&mut b) {
                            Some(true) => acknowledged.lock().unwrap().push((at, b)),
                            Some(false) if at != addrs[0] => {
                                panic!("a running gateway refused a sign-in")
                            }
                            Some(false) | None => {
                                assert_eq!(at, addrs[0], "only the stopped gateway is gone");
                                gone += 1;
                            }
                        }
                        tried.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    gone
                })
            })
            .collect();
        // A third of the way through, A stops at once (connections cut, nothing drained).
        while tried.load(std::sync::atomic::Ordering::SeqCst) < CLIENTS * EACH / 3 {
            std::thread::sleep(Duration::from_millis(2));
        }
        a.stop(stepgate::app::Stop::Fast);
        refused_by_a = workers.into_iter().map(|w| w.join().unwrap()).sum();
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    let on_a = acknowledged
        .iter()
        .filter(|(at, _)| *at == addrs[0])
        .count();
    assert!(on_a > 0, "A acknowledged sign-ins before it stopped");
    assert!(refused_by_a > 0, "A was stopped during the loop");
    assert_eq!(acknowledged.len() + refused_by_a, CLIENTS * EACH);
    for (at, b) in &acknowledged {
        for gw in &gws {
            let r = same_browser_on(b, gw).get("/1fa/x");
            assert_eq!(
                r.status, 200,
                "a session acknowledged by {at} is lost on {}",
                gw.addr
            );
        }
    }
}

/// A sign-in through the real form that tolerates a gateway going away: `Some(true)` when it
/// was answered with a session, `Some(false)` when refused, `None` when no answer came.
fn try_sign_in(b: &mut Browser) -> Option<bool> {
    let page = b
        .try_request("GET", "/_stepgate/login?rd=%2F1fa%2F", None)
        .ok()?;
    let form = forms(&page.body)
        .into_iter()
        .find(|f| f.action.ends_with("/login"))?;
    let mut fields = form.fields.clone();
    for (k, v) in [("username", ALICE.0), ("password", ALICE.1)] {
        fields.retain(|(n, _)| n != k);
        fields.push((k.to_owned(), v.to_owned()));
    }
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish();
    let done = b.try_request("POST", &form.action, Some(&body)).ok()?;
    Some(done.status == 303 && b.cookie("stepgate_session").is_some())
}

/// The shared limits on their own, against the local Redis, on a manual clock.
mod shared_limits {
    use super::*;
    use std::net::IpAddr;
    use std::sync::Arc;
    use stepgate::clock::{Clock, ManualClock};
    use stepgate::regulation::shared::{Refused, SharedLimits};
    use stepgate::regulation::RegulationConfig;

    fn limits(test: &str, cfg: RegulationConfig) -> Option<(SharedLimits, Arc<ManualClock>)> {
        let redis = local_redis()?;
        let clock = ManualClock::new(1_800_000_000_000);
        let limits = SharedLimits::open(
            &format!("redis://{redis}"),
            &prefix(test),
            cfg,
            clock.clone(),
        )
        .expect("connects");
        Some((limits, clock))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_burst_has_no_more_attempts_checked_than_the_limit() {
        let Some((limits, _clock)) = limits("burst", RegulationConfig::default()) else {
            return;
        };
        runtime().block_on(async {
            let tries = (0..12).map(|_| limits.reserve("alice", ip("192.0.2.1")));
            let answers = futures_util::future::join_all(tries).await;
            let granted: Vec<_> = answers.into_iter().filter_map(Result::ok).collect();
            assert_eq!(granted.len(), 5, "the pair's limit is 5");
            for a in granted {
                a.failed().await;
            }
            // Five failures: banned, the right answer included.
            assert!(matches!(
                limits.reserve("alice", ip("192.0.2.1")).await,
                Err(Refused::Until(_))
            ));
        });
    }

    #[test]
    fn bans_double_when_failures_go_on_and_a_success_clears_the_pair() {
        let cfg = RegulationConfig::default();
        let (ban, max_ban) = (cfg.ban, cfg.max_ban);
        let Some((limits, clock)) = limits("backoff", cfg) else {
            return;
        };
        let addr = ip("192.0.2.2");
        runtime().block_on(async {
            let fail = || async {
                limits
                    .reserve("bob", addr)
                    .await
                    .unwrap()
                    .failed()
                    .await
                    .until_ms
            };
            // Five failures: a ban of `ban`.
            let mut until = None;
            for _ in 0..5 {
                until = fail().await;
            }
            let first = until.expect("the fifth failure bans");
            assert_eq!(first - clock.now_ms(), ban.as_millis() as u64);
            // Once it ends, the count is still full: the next failure brings a ban twice as long.
            clock.set_ms(first + 1);
            let second = fail()
                .await
                .expect("a failure right after a ban bans again");
            assert_eq!(second - clock.now_ms(), 2 * ban.as_millis() as u64);
            // After it, a success clears the pair, back-off level included: five failures more
            // for the next ban, of `ban` again.
            clock.set_ms(second + 1);
            limits.reserve("bob", addr).await.unwrap().succeeded().await;
            let mut until = None;
            for _ in 0..5 {
                assert!(until.is_none(), "banned before the fifth failure");
                until = fail().await;
            }
            assert_eq!(until.unwrap() - clock.now_ms(), ban.as_millis() as u64);
            assert!(2 * ban <= max_ban);
        });
    }

    #[test]
    fn the_per_user_throttle_spares_known_addresses_on_every_gateway() {
        let cfg = RegulationConfig {
            max_failures_per_user: 3,
            ..RegulationConfig::default()
        };
        let Some((limits, _clock)) = limits("known", cfg) else {
            return;
        };
        let home = ip("198.51.100.7");
        runtime().block_on(async {
            limits
                .reserve("carol", home)
                .await
                .unwrap()
                .succeeded()
                .await;
            for i in 1..=3 {
                let stranger = ip(&format!("203.0.113.{i}"));
                limits
                    .reserve("carol", stranger)
                    .await
                    .unwrap()
                    .failed()
                    .await;
            }
            assert!(
                matches!(
                    limits.reserve("carol", ip("203.0.113.9")).await,
                    Err(Refused::Until(_))
                ),
                "the account is throttled at new addresses"
            );
            let at_home = limits.reserve("carol", home).await;
            assert!(at_home.is_ok(), "but not at home: {at_home:?}");
        });
    }

    #[test]
    fn an_address_banned_by_its_owner_is_banned_for_everyone() {
        let Some((limits, clock)) = limits("ban_address", RegulationConfig::default()) else {
            return;
        };
        let addr = ip("192.0.2.4");
        runtime().block_on(async {
            let until = limits.ban_address(addr).await.unwrap();
            assert!(until > clock.now_ms());
            for user in ["erin", "frank"] {
                assert_eq!(
                    limits.reserve(user, addr).await.err(),
                    Some(Refused::Until(until))
                );
            }
            assert!(limits.reserve("erin", ip("192.0.2.5")).await.is_ok());
        });
    }

    #[test]
    fn an_attempt_dropped_unsettled_gives_its_place_back() {
        let cfg = RegulationConfig {
            max_failures: 1,
            ..RegulationConfig::default()
        };
        let Some((limits, _clock)) = limits("dropped", cfg) else {
            return;
        };
        let addr = ip("192.0.2.3");
        runtime().block_on(async {
            let held = limits.reserve("dave", addr).await.unwrap();
            assert!(
                limits.reserve("dave", addr).await.is_err(),
                "one in flight fills a limit of 1"
            );
            drop(held);
            let deadline = Instant::now() + Duration::from_secs(10);
            while limits.reserve("dave", addr).await.is_err() {
                assert!(Instant::now() < deadline, "the place was not given back");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
}
