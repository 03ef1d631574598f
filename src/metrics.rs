//! Prometheus metrics (`[metrics]`): counters and histograms of what the gateway decides and
//! does, served as Prometheus text at `/metrics` on a listener of their own (loopback by
//! default), by `metrics-exporter-prometheus`.
//!
//! Labels are few and bounded: an app id, a decision, a status code, a method, a result, a
//! backend. Never a user, an address or a path. Nothing is recorded unless `[metrics]` is
//! configured: every helper below returns at once otherwise, so the request path pays one
//! atomic load.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `/metrics` is served.
    pub listen: SocketAddr,
}

/// The address metrics are served on in this process, once installed. The recorder is global:
/// one per process.
static SERVING: OnceLock<SocketAddr> = OnceLock::new();

/// Histogram buckets (seconds) for upstream and store latencies.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Starts serving metrics at `cfg.listen` and recording them. A second gateway in the same
/// process (tests) shares the first one's recorder if it asks for the same address.
pub fn install(cfg: &MetricsConfig) -> Result<(), String> {
    if let Some(serving) = SERVING.get() {
        return match *serving == cfg.listen {
            true => Ok(()),
            false => Err(format!(
                "metrics are already served on {serving} in this process"
            )),
        };
    }
    PrometheusBuilder::new()
        .with_http_listener(cfg.listen)
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("cannot serve metrics on {}: {e}", cfg.listen))?;
    let _ = SERVING.set(cfg.listen);
    describe();
    Ok(())
}

/// Whether metrics are recorded in this process (for work done only to feed them).
pub fn enabled() -> bool {
    SERVING.get().is_some()
}

fn describe() {
    describe_counter!(
        "stepgate_requests_total",
        "Requests answered, by app, decision and status."
    );
    describe_histogram!(
        "stepgate_upstream_seconds",
        "Time from sending a request to an app to its answer's header, by app."
    );
    describe_counter!(
        "stepgate_sign_ins_total",
        "Password sign-ins, by result (success, failure, busy, error)."
    );
    describe_counter!(
        "stepgate_second_factor_total",
        "Second-factor answers, by method and result."
    );
    describe_counter!(
        "stepgate_bans_total",
        "Bans handed out by the failure limits, by scope."
    );
    describe_counter!("stepgate_locks_total", "Accounts locked, by how.");
    describe_gauge!(
        "stepgate_sessions",
        "Sessions this gateway holds in its cache, by level (1fa, 2fa)."
    );
    describe_gauge!(
        "stepgate_sessions_live",
        "Live sessions in the store (recounted every 30 s)."
    );
    describe_counter!(
        "stepgate_notify_total",
        "Messages handed to a backend, by channel and result (sent, failed)."
    );
    describe_counter!(
        "stepgate_store_errors_total",
        "Store calls that failed, by backend."
    );
    describe_histogram!(
        "stepgate_store_seconds",
        "Time of one store call, by backend."
    );
}

/// One answered request. `app`: its id, or `-` when no app was chosen (the portal, a refusal
/// before routing).
pub fn request(app: &str, decision: &'static str, status: u16, upstream: Option<Duration>) {
    if !enabled() {
        return;
    }
    let app = app.to_owned();
    counter!("stepgate_requests_total", "app" => app.clone(), "decision" => decision, "status" => status.to_string())
        .increment(1);
    if let Some(took) = upstream {
        histogram!("stepgate_upstream_seconds", "app" => app).record(took.as_secs_f64());
    }
}

/// A password sign-in's result: `success`, `failure`, `busy` or `error`.
pub fn sign_in(result: &'static str) {
    if enabled() {
        counter!("stepgate_sign_ins_total", "result" => result).increment(1);
    }
}

/// A second-factor answer: the method tried, and `passed` or why not.
pub fn second_factor(method: &'static str, result: &'static str) {
    if enabled() {
        counter!("stepgate_second_factor_total", "method" => method, "result" => result)
            .increment(1);
    }
}

/// A ban handed out, by scope (`pair`, `address`, `user`).
pub fn ban(scope: &'static str) {
    if enabled() {
        counter!("stepgate_bans_total", "scope" => scope).increment(1);
    }
}

/// An account locked (`link`: "this wasn't me"; `approval`; `operator`).
pub fn lock(how: &'static str) {
    if enabled() {
        counter!("stepgate_locks_total", "how" => how).increment(1);
    }
}

/// The sessions cached, by level, and the live count in the store.
pub fn sessions(one_factor: usize, two_factor: usize, live: usize) {
    if enabled() {
        gauge!("stepgate_sessions", "level" => "1fa").set(one_factor as f64);
        gauge!("stepgate_sessions", "level" => "2fa").set(two_factor as f64);
        gauge!("stepgate_sessions_live").set(live as f64);
    }
}

/// A message handed to a notifier backend.
pub fn notify(channel: &'static str, sent: bool) {
    if enabled() {
        let result = if sent { "sent" } else { "failed" };
        counter!("stepgate_notify_total", "channel" => channel, "result" => result).increment(1);
    }
}

/// One store call of `backend`, how long it took and whether it failed.
pub fn store_call(backend: &'static str, took: Duration, failed: bool) {
    if enabled() {
        histogram!("stepgate_store_seconds", "backend" => backend).record(took.as_secs_f64());
        if failed {
            counter!("stepgate_store_errors_total", "backend" => backend).increment(1);
        }
    }
}
