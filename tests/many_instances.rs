//! Several gateways on one PostgreSQL and one Redis (`store.redis_url`): failure limits count
//! across them, and Redis going away fails attempts closed until it is back. Skips with a
//! printed reason outside CI when no PostgreSQL or no Redis is reachable.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::db::Postgres;
use common::two_factor::ALICE;
use common::*;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

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
