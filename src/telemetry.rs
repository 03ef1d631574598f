//! Logging: a `tracing` subscriber (human or JSON, on standard output, coloured only on a
//! terminal) with pingora's `log` output bridged in.
//! The access line is an event with target `stepgate::access`.

use std::io::IsTerminal;

use tracing_log::AsLog;
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let installed = match cfg.format {
        LogFormat::Human => tracing::subscriber::set_global_default(builder.finish()),
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
    };
    installed.map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    // pingora logs through the `log` crate: its records go to tracing, but for one it raises
    // at the wrong level.
    log::set_boxed_logger(Box::new(PingoraLog(tracing_log::LogTracer::new())))
        .map_err(|e| format!("cannot install the log bridge: {e}"))?;
    log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    Ok(())
}

/// pingora's `log` records into tracing, as `tracing_log::LogTracer` does, without their
/// build paths, and for [`misleveled`] ones at their true level.
struct PingoraLog(tracing_log::LogTracer);

/// A record pingora logs at `error` for something harmless. The one known: its connector found
/// an idle upstream connection that the task watching it for a close had not let go of yet, so
/// it opens a new connection instead of reusing that one. Seen in normal browsing.
fn misleveled(record: &log::Record<'_>) -> bool {
    record.target() == "pingora_core::connectors"
        && record.args().as_str() == Some("failed to acquire reusable stream")
}

impl log::Log for PingoraLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if misleveled(record) {
            tracing::debug!(target: "stepgate::upstream", "an idle upstream connection was still being watched when a request wanted it; a new one was opened instead");
            return;
        }
        // Without the file, line and module: they are paths on the machine pingora was built
        // on, which say nothing to an operator (the target names the module).
        let bare = log::Record::builder()
            .level(record.level())
            .target(record.target())
            .args(*record.args())
            .build();
        self.0.log(&bare);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reusable_stream_race_is_taken_down_a_level() {
        let record = |target: &'static str, args: std::fmt::Arguments<'static>| {
            misleveled(
                &log::Record::builder()
                    .target(target)
                    .level(log::Level::Error)
                    .args(args)
                    .build(),
            )
        };
        assert!(record(
            "pingora_core::connectors",
            format_args!("failed to acquire reusable stream")
        ));
        assert!(!record(
            "pingora_core::connectors",
            format_args!("connection refused")
        ));
        assert!(!record(
            "pingora_proxy",
            format_args!("failed to acquire reusable stream")
        ));
    }
}
