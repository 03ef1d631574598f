//! stepgate: a two-step-verification reverse-proxy gateway on pingora.
//!
//! Start at `app` (config -> running server) and `proxy` (the per-request phases); the decision
//! itself is made in `proxy::route` with `access`.

pub mod access;
pub mod amr;
pub mod app;
pub mod assertion;
pub mod audit;
pub mod auth;
pub mod browsers;
pub mod certificates;
pub mod clock;
pub mod config;
pub mod decision;
pub mod devices;
pub mod diagnostics;
pub mod factor;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod hygiene;
pub mod i18n;
pub mod identity;
pub mod lockout;
pub mod metrics;
pub mod notify;
pub mod portal;
pub mod proxy;
pub mod redirect;
pub mod regulation;
pub mod routing;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod user_agent;
pub mod users;
pub mod whoami;
