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
//!   it out (no coordinated omission). wrk measures at saturation, where p99 only mirrors
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

async fn session(base: &str, data_dir: &str) {
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
            let status = match c
                .post(&url)
                .header("x-forwarded-for", addr)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("rd", "/"),
                    ("username", &user),
                    ("password", "wrong"),
                ])
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            let _ = tx.send(status);
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

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("session") if args.len() == 4 => session(&args[2], &args[3]).await,
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
            eprintln!("usage: loadgen session URL DATA_DIR | loadgen flood URL RATE SECONDS | loadgen probe URL COOKIE RATE SECONDS");
            std::process::exit(2);
        }
    }
}
