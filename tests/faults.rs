//! Faults: the store, the data disk, SMTP and the webhook failing under a running gateway.
//! Every request that needs a decision from what failed fails closed (503, never proxied, never
//! a sign-in page that pretends nothing is wrong), routes that need nothing keep working,
//! nothing acknowledged is lost, and service comes back by itself. Skips with a printed reason
//! when no PostgreSQL server is reachable, or no tmpfs can be mounted, outside CI.

mod common;

use std::time::{Duration, Instant};

use common::db::Postgres;
use common::two_factor::ALICE;
use common::*;

/// A gateway on a database of the test's own, with alice signed in and served once.
struct OnPostgres {
    db: Postgres,
    up: Upstream,
    gw: Gateway,
    alice: Browser,
    /// The session cookie of bob's sign-in on another gateway with the same database and keys:
    /// `gw` has never seen it, so it must read it from the store (a made-up cookie would be
    /// refused without asking the store).
    unseen: String,
    _data: tempfile::TempDir,
}

fn on_postgres(name: &str) -> Option<OnPostgres> {
    let db = Postgres::create(name)?;
    let up = Upstream::start("app");
    let data = tempfile::tempdir().unwrap();
    let toml = signin_config(up.addr, &format!("[store]\nurl = \"{}\"\n", db.url))
        .replace("{data}", &data.path().join("data").display().to_string());
    let gw = Gateway::start(&toml);
    let mut alice = Browser::new(gw.addr);
    assert_eq!(alice.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    assert_eq!(alice.get("/1fa/x").status, 200);
    let other = Gateway::start(&toml);
    let mut bob = Browser::new(other.addr);
    assert_eq!(bob.sign_in("bob", "bob-password-1", "/").status, 303);
    let unseen = bob.cookie("stepgate_session").unwrap().to_owned();
    Some(OnPostgres {
        db,
        up,
        gw,
        alice,
        unseen,
        _data: data,
    })
}

#[test]
fn postgresql_down_fails_closed_and_the_gateway_recovers_by_itself() {
    let Some(OnPostgres {
        db, up, gw, unseen, ..
    }) = on_postgres("faults_down")
    else {
        return;
    };
    let before = up.requests().len();

    db.cut_off(true);
    // Needs nothing from the store: still served.
    assert_eq!(
        status(&get(gw.addr, "/public/x", &["Host: 127.0.0.1"])),
        200
    );
    // A session the gateway has not seen must be read from the store: 503, not the app, and
    // not a sign-in page either.
    let mut stranger = Browser::new(gw.addr);
    stranger.cookies.push(("stepgate_session".into(), unseen));
    let refused = stranger.get("/1fa/x");
    assert_eq!(refused.status, 503, "{refused:?}");
    // A sign-in needs the account: 503 (the password is not even checked).
    let mut b = Browser::new(gw.addr);
    let signing = b.sign_in(ALICE.0, ALICE.1, "/");
    assert_eq!(signing.status, 503, "{signing:?}");
    assert!(b.cookie("stepgate_session").is_none());
    assert_eq!(
        up.requests().len(),
        before + 1,
        "only the bypass route reached the app"
    );

    db.cut_off(false);
    // Back by itself: the pool reconnects, no restart.
    common::two_factor::signed_in_once_back(gw.addr, "the database");
}

/// The first run of exactly six digits in a message (its code), soft line breaks undone.
fn code_in(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if run == 6 {
            return text[i..i + 6].to_owned();
        }
        i += run.max(1);
    }
    panic!("no code in the message:\n{text}");
}

/// Alice, signed in, at setup's first step (the code to her email); the page to submit.
fn at_the_send_step(gw: &Gateway) -> (Browser, Response) {
    let mut b = Browser::new(gw.addr);
    common::two_factor::signed_in_at_guide(&mut b, ALICE);
    let setup = b.get("/_stepgate/setup?rd=%2Fapp");
    assert_eq!(setup.status, 200, "{setup:?}");
    (b, setup)
}

const SEND_FAILED: &str = "We could not send the code. Try again in a moment.";

#[test]
fn smtp_down_or_hanging_fails_the_send_clearly_and_a_returning_server_gets_the_code() {
    let port = free_port();
    let smtp_addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (up, gw, _clock) = common::two_factor::start(&format!(
        "[notify]\nemail = \"smtp\"\n\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"stepgate@example.test\"\ntimeout = \"2s\"\n"
    ));
    let (mut b, setup) = at_the_send_step(&gw);

    // Down: nothing listens. The page says so (503), and nothing moved on.
    let down = b.submit(&setup, "/setup", &[]);
    assert_eq!(down.status, 503, "{down:?}");
    assert!(down.body.contains(SEND_FAILED), "{}", down.body);

    // Hanging: accepted, never answered. Refused within the delivery timeout, not held for ever.
    let hanging = common::smtp::Smtp::silent_at(smtp_addr);
    let started = Instant::now();
    let slow = b.submit(&down, "/setup", &[]);
    let took = started.elapsed();
    assert_eq!(slow.status, 503, "{slow:?}");
    assert!(slow.body.contains(SEND_FAILED));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    drop(hanging);

    // Back: the same step sends, and the code the page acknowledged is the one that arrived.
    let smtp = common::smtp::Smtp::at(smtp_addr);
    let sent = b.submit(&slow, "/setup", &[]);
    assert_eq!(sent.status, 200, "{sent:?}");
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(mail[0].contains("alice@example.test"));
    let proved = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &code_in(&mail[0]))],
    );
    assert_eq!(proved.status, 200, "{proved:?}");
    assert!(proved.body.contains("name=\"email\""), "{}", proved.body);
    assert!(up.requests().is_empty(), "nothing reached the app");
}

#[test]
fn a_webhook_down_failing_or_hanging_fails_the_send_clearly_and_recovers() {
    let port = free_port();
    let hook: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // The webhook backend is the same for SMS and email; email is the step every setup has.
    let (up, gw, _clock) = common::two_factor::start(&format!(
        "[notify]\nemail = \"webhook\"\n\n[notify.webhook]\nurl = \"http://{hook}/hook\"\ntimeout = \"1s\"\nretries = 1\nbackoff = \"100ms\"\n"
    ));
    let (mut b, setup) = at_the_send_step(&gw);

    // Down.
    let down = b.submit(&setup, "/setup", &[]);
    assert_eq!(down.status, 503, "{down:?}");
    assert!(down.body.contains(SEND_FAILED));

    // Failing: 500 to both attempts (the first and its one retry).
    let failing = Upstream::at(
        "hook",
        Behaviour {
            status: 500,
            ..Behaviour::default()
        },
        hook,
    );
    let refused = b.submit(&down, "/setup", &[]);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(failing.requests().len(), 2, "one attempt and one retry");
    drop(failing);

    // Hanging: accepted, never answered; each attempt ends at its timeout.
    let hanging = common::smtp::Smtp::silent_at(hook);
    let started = Instant::now();
    let slow = b.submit(&refused, "/setup", &[]);
    let took = started.elapsed();
    assert_eq!(slow.status, 503, "{slow:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "two attempts of 1 s each: {took:?}"
    );
    drop(hanging);

    // Back: the same step sends, and the code the page acknowledged is the one that arrived.
    let receiver = Upstream::at("hook", Behaviour::default(), hook);
    let sent = b.submit(&slow, "/setup", &[]);
    assert_eq!(sent.status, 200, "{sent:?}");
    let message: serde_json::Value =
        serde_json::from_str(&receiver.last().body).expect("a JSON message");
    assert_eq!(message["to"], "alice@example.test");
    let code = message["code"].as_str().expect("the code").to_owned();
    let proved = b.submit(
        &sent,
        "/_stepgate/setup",
        &[("step", "prove"), ("code", &code)],
    );
    assert_eq!(proved.status, 200, "{proved:?}");
    assert!(proved.body.contains("name=\"email\""));
    assert!(up.requests().is_empty(), "nothing reached the app");
}

#[test]
fn postgresql_hanging_fails_closed_within_the_call_timeout_and_recovers() {
    let Some(OnPostgres {
        db,
        up,
        gw,
        alice,
        unseen,
        ..
    }) = on_postgres("faults_slow")
    else {
        return;
    };
    let before = up.requests().len();

    // Every statement on the sessions table now waits (another session holds it locked).
    let locked = db.lock("sessions");
    // A session the gateway has not seen must be read from there: the request is answered 503
    // when the store's call times out (10 s), never proxied, never held for ever.
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    use std::io::{Read, Write};
    s.write_all(
        format!(
            "GET /1fa/x HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: stepgate_session={}\r\nConnection: close\r\n\r\n",
            unseen
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let took = started.elapsed();
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(took < Duration::from_secs(25), "{took:?}");
    // Needs nothing from the store: served meanwhile.
    assert_eq!(status(&get(gw.addr, "/public/x", &[])), 200);
    assert_eq!(
        up.requests().len(),
        before + 1,
        "only the bypass route reached the app"
    );

    drop(locked);
    // The session acknowledged before the stall is still good, and new sign-ins work again.
    let mut again = Browser::new(gw.addr);
    again.cookies = alice.cookies.clone();
    assert_eq!(again.get("/1fa/x").status, 200);
    let mut b = Browser::new(gw.addr);
    assert_eq!(b.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    assert_eq!(b.get("/1fa/x").status, 200);
}

/// A small tmpfs of the test's own, unmounted when dropped: a data directory that can be filled
/// or made read-only. `None` (with the reason printed) where mounting is not allowed, outside CI.
struct Disk {
    dir: tempfile::TempDir,
}

impl Disk {
    fn mount(size: &str) -> Option<Disk> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Disk { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(!common::ci(), "CI=true and no tmpfs can be mounted: {why}");
                eprintln!("skipped: cannot mount a tmpfs for a full or read-only disk ({why}); run as root to include it");
                None
            }
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Remounts it `ro` or `rw`; a stopped gateway's last files may take a moment to close
    /// (busy until then), so this tries for up to 10 s.
    fn remount(&self, how: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = std::process::Command::new("mount")
                .args(["-o", &format!("remount,{how}")])
                .arg(self.path())
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "remount {how}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes a file until the disk has no room left.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).and_then(|_| f.sync_data()).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn gateway_on(disk: &Disk, up: &Upstream) -> Gateway {
    let data = disk.path().join("data");
    Gateway::start(&signin_config(up.addr, "").replace("{data}", &data.display().to_string()))
}

#[test]
fn a_full_data_disk_fails_sign_ins_closed_and_loses_no_acknowledged_session() {
    let Some(disk) = Disk::mount("8m") else {
        return;
    };
    let up = Upstream::start("app");
    let mut gw = gateway_on(&disk, &up);
    let mut before = Browser::new(gw.addr);
    assert_eq!(before.sign_in(ALICE.0, ALICE.1, "/").status, 303);

    disk.fill();
    // Each sign-in is either kept (303) or refused with the error page (503), never anything
    // else; with no room, refusals come within a few (each needs new space in the database).
    let mut kept = vec![before];
    let mut refused = 0;
    for _ in 0..40 {
        let mut b = Browser::new(gw.addr);
        let r = b.sign_in(ALICE.0, ALICE.1, "/");
        match r.status {
            303 => kept.push(b),
            503 => {
                refused += 1;
                assert!(b.cookie("stepgate_session").is_none(), "{r:?}");
                if refused == 3 {
                    break;
                }
            }
            other => panic!("a sign-in on a full disk answered {other}: {r:?}"),
        }
    }
    assert_eq!(refused, 3, "no sign-in was refused on a full disk");
    assert_eq!(up.requests().len(), 0);

    // Room again: sign-ins work without a restart.
    disk.free();
    kept.push(common::two_factor::signed_in_once_back(
        gw.addr,
        "room on the disk",
    ));
    // Every session a sign-in acknowledged is still there after a restart.
    gw.restart();
    for b in &mut kept {
        assert_eq!(
            b.get("/1fa/x").status,
            200,
            "an acknowledged session was lost"
        );
    }
}

#[test]
fn a_read_only_data_disk_is_refused_at_start_with_its_cause_and_loses_nothing() {
    // A file system goes read-only under open files only by the kernel's own hand (after an
    // I/O error); what an operator meets is a data directory read-only when the gateway starts.
    let Some(disk) = Disk::mount("16m") else {
        return;
    };
    let up = Upstream::start("app");
    let text = signin_config(up.addr, "")
        .replace("{data}", &disk.path().join("data").display().to_string());
    let gw = Gateway::start(&text);
    let mut before = Browser::new(gw.addr);
    assert_eq!(before.sign_in(ALICE.0, ALICE.1, "/").status, 303);
    gw.stop(stepgate::app::Stop::Fast);

    disk.remount("ro");
    let conf = tempfile::tempdir().unwrap();
    let path = conf.path().join("stepgate.toml");
    std::fs::write(&path, text.replace("{port}", &free_port().to_string())).unwrap();
    let cfg = stepgate::config::Config::load(&path).unwrap();
    let refused = stepgate::app::start(&cfg)
        .err()
        .expect("a gateway started on a read-only data directory")
        .to_string();
    assert!(
        refused.contains("cannot use the data directory")
            && refused.contains("Read-only file system"),
        "{refused}"
    );

    disk.remount("rw");
    let gw = Gateway::start(&text);
    let mut again = Browser::new(gw.addr);
    again.cookies = before.cookies.clone();
    assert_eq!(
        again.get("/1fa/x").status,
        200,
        "the acknowledged session was lost"
    );
}
