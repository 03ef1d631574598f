//! Helper for `benches/load.sh`: the parts of the load benchmark that wrk cannot do.
//!
//! - `loadgen session URL DATA_DIR`: signs `alice` in through the real portal, sets up her
//!   authenticator (the emailed code is read from `DATA_DIR/outbox.jsonl`, the app's code is
//!   computed here) and prints `stepgate_session=<id>` of the resulting two-factor session.
//! - `loadgen flood URL RATE SECONDS`: posts wrong passwords to the sign-in form at RATE per
//!   second for SECONDS, each from a different address (`X-Forwarded-For`, honoured because the
//!   benchmark gateway trusts loopback as a proxy) and for a different user name, which is the
//!   worst case for the gateway: no per-address or per-user ban ever stops it, so every post
//!   would be hashed. Prints how the posts were answered.
//! - `loadgen probe URL COOKIE RATE SECONDS`: GETs URL with COOKIE at a fixed RATE per second
//!   over keep-alive connections and prints `rps p50_ms p99_ms errors`. Latency counts from when
//!   each request was due, not when it was sent, so a stall is not hidden by the client waiting
//!   it out (no coordinated omission).
//! - `loadgen soak URL COOKIE SECRET_FILE SECONDS`: the mixed traffic of `benches/soak.sh`, all
//!   at once for SECONDS: COOKIE's two-factor session proxied at 200 req/s; bob signing in,
//!   opening a page and signing out twice a second (session churn); 5 wrong passwords a second
//!   from ever new addresses and names, and one every 2 s for alice from one address (bans come
//!   and go); and every 31 s alice signing in again through the challenge from an address of
//!   her own, every third time a wrong code first, then the right one from her authenticator
//!   (its base32 key in SECRET_FILE). Prints each kind's answers. wrk measures at saturation, where p99 only mirrors
//!   throughput; this measures the latency a request sees at a steady, sub-saturation load,
//!   which is what "the flood must not hurt proxied traffic" is about.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use stepgate::factor::totp::{self, Algorithm};

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x2b;", "+")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn hidden(body: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let start = body.find(&key)? + key.len();
    let end = body[start..].find('"')? + start;
    Some(unescape(&body[start..end]))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn post(c: &reqwest::Client, url: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let r = c
        .post(url)
        .form(fields)
        .send()
        .await
        .expect("gateway answers");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

async fn session(base: &str, data_dir: &str, secret_file: Option<&str>) {
    let c = client();
    let login = c
        .get(format!("{base}/_stepgate/login"))
        .send()
        .await
        .expect("login page");
    let csrf = hidden(&login.text().await.unwrap(), "csrf").expect("csrf on the login page");
    let (status, _) = post(
        &c,
        &format!("{base}/_stepgate/login"),
        &[
            ("csrf", &csrf),
            ("rd", "/"),
            ("username", "alice"),
            ("password", "alice-password-1"),
        ],
    )
    .await;
    assert_eq!(status, 303, "sign-in");
    let setup = format!("{base}/_stepgate/setup");
    let page = c
        .get(format!("{setup}?rd=%2F"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&page, "csrf").expect("csrf on the setup page");
    let step = |name: &'static str, extra: Vec<(&'static str, String)>| {
        let mut f: Vec<(&str, String)> = vec![
            ("csrf", csrf.clone()),
            ("rd", "/".into()),
            ("step", name.into()),
        ];
        f.extend(extra);
        f
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let c = c.clone();
        let setup = setup.clone();
        async move {
            let r = c
                .post(&setup)
                .form(&fields)
                .send()
                .await
                .expect("setup answers");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
    };
    let (status, _) = send(step("send", vec![])).await;
    assert_eq!(status, 200, "code sent");
    let outbox = std::fs::read_to_string(format!("{data_dir}/outbox.jsonl")).expect("outbox");
    let last: serde_json::Value = serde_json::from_str(outbox.lines().last().unwrap()).unwrap();
    let code = last["code"].as_str().expect("code").to_owned();
    send(step("prove", vec![("code", code)])).await;
    let (_, page) = send(step(
        "contact",
        vec![("email", "alice@example.test".into())],
    ))
    .await;
    let start = page.find("<code class=\"key\">").expect("key on the page") + 18;
    let key: String = page[start..]
        .split("</code>")
        .next()
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let secret = data_encoding::BASE32_NOPAD
        .decode(key.as_bytes())
        .expect("base32 key");
    if let Some(file) = secret_file {
        std::fs::write(file, &key).expect("secret file written");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = format!("{:06}", totp::totp(&secret, now, 6, Algorithm::Sha1));
    let activate = c
        .post(&setup)
        .form(&step("activate", vec![("code", code)]))
        .send()
        .await
        .expect("activate");
    assert_eq!(activate.status().as_u16(), 200, "authenticator turned on");
    let cookie = activate
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("stepgate_session="))
        .expect("a two-factor session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    println!("{cookie}");
}

/// A wrong password for `user`, "from" `addr` (the benchmark gateway trusts loopback as a proxy);
/// the answer's status, 0 for none.
async fn wrong_password(c: &reqwest::Client, url: &str, csrf: &str, addr: &str, user: &str) -> u16 {
    match c
        .post(url)
        .header("x-forwarded-for", addr)
        .form(&[
            ("csrf", csrf),
            ("rd", "/"),
            ("username", user),
            ("password", "wrong"),
        ])
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn flood(base: &str, rate: u64, seconds: u64) {
    let c = client();
    let login = c
        .get(format!("{base}/_stepgate/login"))
        .send()
        .await
        .expect("login page");
    let csrf = hidden(&login.text().await.unwrap(), "csrf").expect("csrf");
    let url = format!("{base}/_stepgate/login");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u16>();
    let started = Instant::now();
    let total = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        tick.tick().await;
        let (c, url, csrf, tx) = (c.clone(), url.clone(), csrf.clone(), tx.clone());
        tokio::spawn(async move {
            let addr = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let user = format!("flood{i}");
            let _ = tx.send(wrong_password(&c, &url, &csrf, &addr, &user).await);
        });
    }
    drop(tx);
    let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
    while let Some(s) = rx.recv().await {
        *counts.entry(s).or_default() += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let answers: Vec<String> = counts.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    println!(
        "flood: {total} posts in {secs:.1} s ({:.0}/s); answers {}",
        total as f64 / secs,
        answers.join(" ")
    );
}

async fn probe(url: &str, cookie: &str, rate: u64, seconds: u64) {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("http client");
    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<Duration>>();
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let (c, url, cookie, tx) = (c.clone(), url.to_owned(), cookie.to_owned(), tx.clone());
        tokio::spawn(async move {
            let ok = c
                .get(&url)
                .header("cookie", cookie)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            let ok = match ok {
                Some(r) => r.bytes().await.is_ok(),
                None => false,
            };
            let _ = tx.send(ok.then(|| due.elapsed()));
        });
    }
    drop(tx);
    let mut lat = Vec::with_capacity(total as usize);
    let mut errors = 0u64;
    while let Some(r) = rx.recv().await {
        match r {
            Some(d) => lat.push(d),
            None => errors += 1,
        }
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{:.1} {:.3} {:.3} {errors}",
        lat.len() as f64 / seconds as f64,
        pct(0.5),
        pct(0.99)
    );
}

/// Answers seen by the soak, by kind of traffic and status (0: no answer).
type Tally = std::sync::Arc<std::sync::Mutex<BTreeMap<(&'static str, u16), u64>>>;

fn count(tally: &Tally, kind: &'static str, status: u16) {
    *tally.lock().unwrap().entry((kind, status)).or_default() += 1;
}

async fn get_page(c: &reqwest::Client, url: &str) -> (u16, String) {
    match c.get(url).timeout(Duration::from_secs(10)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

async fn post_form(c: &reqwest::Client, url: &str, fields: &[(&str, &str)]) -> u16 {
    match c
        .post(url)
        .form(fields)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Signs `user` in on a fresh client, every request "from" `from` when given (through
/// `X-Forwarded-For`); the client and the sign-in's status.
async fn signed_in(
    base: &str,
    user: &str,
    password: &str,
    from: Option<&str>,
) -> (reqwest::Client, u16) {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(addr) = from {
        headers.insert("x-forwarded-for", addr.parse().expect("an address"));
    }
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("http client");
    let (_, page) = get_page(&c, &format!("{base}/_stepgate/login?rd=%2F")).await;
    let csrf = hidden(&page, "csrf").unwrap_or_default();
    let status = post_form(
        &c,
        &format!("{base}/_stepgate/login"),
        &[
            ("csrf", &csrf),
            ("rd", "/"),
            ("username", user),
            ("password", password),
        ],
    )
    .await;
    (c, status)
}

/// Signs out through the account page's form.
async fn sign_out(c: &reqwest::Client, base: &str) -> u16 {
    let (_, page) = get_page(c, &format!("{base}/_stepgate/account")).await;
    let csrf = hidden(&page, "csrf").unwrap_or_default();
    post_form(c, &format!("{base}/_stepgate/logout"), &[("csrf", &csrf)]).await
}

async fn soak(base: &str, cookie: &str, secret_file: &str, seconds: u64) {
    let key = std::fs::read_to_string(secret_file).expect("secret file");
    let secret = data_encoding::BASE32_NOPAD
        .decode(key.trim().as_bytes())
        .expect("base32 key");
    let tally: Tally = Default::default();
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();

    // Proxied requests on the two-factor session, at a steady rate.
    let (t, b, ck) = (tally.clone(), base.to_owned(), cookie.to_owned());
    tasks.spawn(async move {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            let (c, t, url, ck) = (c.clone(), t.clone(), format!("{b}/app/x"), ck.clone());
            tokio::spawn(async move {
                let status = match c
                    .get(&url)
                    .header("cookie", ck)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                count(&t, "proxied", status);
            });
        }
    });

    // Session churn: bob signs in, opens a page, signs out.
    let (t, b) = (tally.clone(), base.to_owned());
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            let (c, status) = signed_in(&b, "bob", "bob-password-1", None).await;
            count(&t, "churn_sign_in", status);
            let (status, _) = get_page(&c, &format!("{b}/_stepgate/account")).await;
            count(&t, "churn_page", status);
            count(&t, "churn_sign_out", sign_out(&c, &b).await);
        }
    });

    // Wrong passwords: strangers from ever new addresses, and alice from one address.
    let (t, b) = (tally.clone(), base.to_owned());
    tasks.spawn(async move {
        let c = client();
        let (_, page) = get_page(&c, &format!("{b}/_stepgate/login")).await;
        let csrf = hidden(&page, "csrf").unwrap_or_default();
        let url = format!("{b}/_stepgate/login");
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut i: u64 = 0;
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            i += 1;
            let (addr, user) = if i.is_multiple_of(10) {
                ("192.0.2.7".to_owned(), "alice".to_owned())
            } else {
                (
                    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
                    format!("stranger{i}"),
                )
            };
            let status = wrong_password(&c, &url, &csrf, &addr, &user).await;
            count(&t, "wrong_password", status);
        }
    });

    // Codes: alice through the challenge once per step (from an address of her own, so her
    // wrong codes count there), every third time a wrong code first.
    let (t, b) = (tally.clone(), base.to_owned());
    tasks.spawn(async move {
        // The first a step after the session's own setup, whose code may not be used again.
        let step = Duration::from_secs(31);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
        let mut round: u32 = 0;
        while tokio::time::Instant::now() + step < end {
            tick.tick().await;
            round += 1;
            let from = Some("192.0.2.99");
            let (c, status) = signed_in(&b, "alice", "alice-password-1", from).await;
            count(&t, "code_sign_in", status);
            let challenge = format!("{b}/_stepgate/2fa?rd=%2F");
            let url = format!("{b}/_stepgate/2fa");
            if round.is_multiple_of(3) {
                let (_, page) = get_page(&c, &challenge).await;
                let csrf = hidden(&page, "csrf").unwrap_or_default();
                let fields = [("csrf", csrf.as_str()), ("rd", "/"), ("code", "000000")];
                count(&t, "code_wrong", post_form(&c, &url, &fields).await);
            }
            let (_, page) = get_page(&c, &challenge).await;
            let csrf = hidden(&page, "csrf").unwrap_or_default();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let code = format!("{:06}", totp::totp(&secret, now, 6, Algorithm::Sha1));
            count(
                &t,
                "code_right",
                post_form(&c, &url, &[("csrf", &csrf), ("rd", "/"), ("code", &code)]).await,
            );
            let (status, _) = get_page(&c, &format!("{b}/app/x")).await;
            count(&t, "code_then_app", status);
            count(&t, "code_sign_out", sign_out(&c, &b).await);
        }
    });

    while tasks.join_next().await.is_some() {}
    // Requests still in flight get their answers (each has a 10 s timeout).
    tokio::time::sleep(Duration::from_secs(11)).await;
    for ((kind, status), n) in tally.lock().unwrap().iter() {
        println!("{kind} {status} {n}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("session") if args.len() == 4 || args.len() == 5 => {
            session(&args[2], &args[3], args.get(4).map(String::as_str)).await
        }
        Some("soak") if args.len() == 6 => {
            soak(
                &args[2],
                &args[3],
                &args[4],
                args[5].parse().expect("seconds"),
            )
            .await
        }
        Some("flood") if args.len() == 5 => {
            flood(
                &args[2],
                args[3].parse().expect("rate"),
                args[4].parse().expect("seconds"),
            )
            .await
        }
        Some("probe") if args.len() == 6 => {
            probe(
                &args[2],
                &args[3],
                args[4].parse().expect("rate"),
                args[5].parse().expect("seconds"),
            )
            .await
        }
        _ => {
            eprintln!("usage: loadgen session URL DATA_DIR [SECRET_FILE] | loadgen soak URL COOKIE SECRET_FILE SECONDS | loadgen flood URL RATE SECONDS | loadgen probe URL COOKIE RATE SECONDS");
            std::process::exit(2);
        }
    }
}
