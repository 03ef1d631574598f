//! Logging: a `tracing` subscriber (human or JSON) with pingora's `log` output bridged in.
//! The access line is an event with target `stepgate::access`.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// `[log]`: what is logged, and how.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `info,stepgate=debug`.
    pub level: String,
    pub access_log: bool,
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(cfg: &LogConfig) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(&cfg.level),
    }
    .map_err(|e| format!("invalid log filter: {e}"))?;
    // pingora logs through the `log` crate; `try_init` also installs `tracing_log::LogTracer`,
    // which forwards those records into tracing.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let result = match cfg.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the log subscriber: {e}"))
}
