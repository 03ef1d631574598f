//! Config -> a pingora `Server` with its services, and a handle to run it: in `main` until a
//! signal, or on a thread of its own in tests, stopped through the handle.

use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use tokio::sync::{mpsc, Mutex};

use crate::access::AccessRules;
use crate::assertion::Signer;
use crate::auth::Auth;
use crate::clock::SharedClock;
use crate::config::{Config, ListenerKind, UpstreamConfig};
use crate::factor::Factors;
use crate::hygiene::HeaderHygiene;
use crate::identity::IdentityCache;
use crate::notify::Notifiers;
use crate::portal::csrf::Csrf;
use crate::portal::return_to::ReturnTo;
use crate::portal::Pages;
use crate::proxy::connections::{Guarded, Pacing};
use crate::proxy::upstream::{PoolParts, Upstream, UpstreamError};
use crate::proxy::{AppRuntime, Gateway, State};
use crate::redirect::RedirectToHttps;
use crate::regulation::Regulator;
use crate::routing::HostRouter;
use crate::session::{SessionEnded, Sessions};
use crate::store::Store;
use crate::tls::SniResolver;
use crate::users::{FileDirectory, PasswordVerifier, UserDirectory};
use crate::whoami::Whoami;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("users file: {0}")]
    Users(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("identity assertion keys: {0}")]
    Assertion(#[from] crate::assertion::AssertionError),
    #[error("second factors: {0}")]
    Factors(#[from] crate::factor::FactorError),
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::NotifyError),
    #[error("audit file in the data directory: {0}")]
    Audit(std::io::Error),
    #[error("CSRF key in the data directory: {0}")]
    Csrf(std::io::Error),
    #[error("cannot reach Redis at {url}: {cause}")]
    Redis { url: String, cause: String },
    #[error("cannot use the data directory {path}: {cause}")]
    DataDir { path: String, cause: std::io::Error },
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("cannot start the built-in whoami app: {0}")]
    Whoami(std::io::Error),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("access rules: {0}")]
    Rules(#[from] regex::Error),
    #[error("listener {0}: no certificate")]
    NoCertificate(std::net::SocketAddr),
    #[error("listener {address}: {cause}")]
    Listener {
        address: std::net::SocketAddr,
        cause: String,
    },
}

/// Cookie names the gateway owns (never forwarded upstream): every spelling of each, so that
/// neither a prefix nor a domain cookie slips through.
pub fn gateway_cookie_names() -> Vec<String> {
    use crate::session::cookie;
    let mut names = vec![
        cookie::PLAIN.to_owned(),
        cookie::HOST.to_owned(),
        cookie::SECURE.to_owned(),
    ];
    for helper in [
        crate::portal::login::FORM_COOKIE,
        crate::portal::login::LANG_COOKIE,
        crate::browsers::TRUST_COOKIE,
        crate::browsers::DEVICE_COOKIE,
    ] {
        names.extend([
            helper.to_owned(),
            format!("__Host-{helper}"),
            format!("__Secure-{helper}"),
        ]);
    }
    names
}

/// How the server's worker threads schedule connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// One single-threaded runtime per worker thread, each connection placed on one at accept
    /// (pingora's no-steal mode): no cross-thread scheduling on the request path, about 15% more
    /// requests a second than `WorkStealing` on the load benchmark. For a process that runs one
    /// gateway for its whole life, as the binary does.
    PerThread,
    /// tokio's work-stealing runtime. For a gateway sharing its process with gateways started
    /// and stopped before it (tests): in per-thread mode pingora can hand a new server the
    /// runtime of one that already stopped (cloudflare/pingora#981), and its connections hang.
    WorkStealing,
}

/// Builds the server and all its services from a validated config, on the system clock, for a
/// process of its own.
pub fn build(cfg: &Config) -> Result<Server, BuildError> {
    build_with_clock(cfg, crate::clock::system(), Runtime::PerThread)
}

/// Nobody: the directory when no users file is configured.
struct NoUsers;

impl UserDirectory for NoUsers {
    fn get(&self, _name: &str) -> Option<Arc<crate::users::User>> {
        None
    }
}

/// The data directory, created owner-only (0700); an existing one is tightened to that, since
/// it holds the database and the keys.
fn prepare_data_dir(dir: &std::path::Path) -> Result<(), BuildError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let failed = |cause| BuildError::DataDir {
        path: dir.display().to_string(),
        cause,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)
}

/// How long the audit trail keeps an event.
const AUDIT_RETENTION: std::time::Duration = std::time::Duration::from_secs(180 * 24 * 3600);

/// Bans waiting to be written to the store (they are rare; a burst beyond this is logged and
/// held in memory only).
const BAN_LOG: usize = 1024;

fn build_auth(
    cfg: &Config,
    clock: SharedClock,
    identities: Arc<IdentityCache>,
) -> Result<(Auth, Option<Arc<FileDirectory>>, BanLog), BuildError> {
    let data = &cfg.server.data_dir;
    let (users, directory): (Arc<dyn UserDirectory>, Option<Arc<FileDirectory>>) =
        match &cfg.users_file {
            Some(path) => {
                let dir = Arc::new(FileDirectory::load(path)?);
                (dir.clone(), Some(dir))
            }
            None => (Arc::new(NoUsers), None),
        };
    let store = Store::open(&cfg.store, data)?;
    let factors = Factors::open(
        store.clone(),
        data,
        cfg.two_factor.secret_key_file.as_deref(),
        clock.clone(),
    )?
    .with_passkeys(cfg.passkeys.as_ref())?;
    let followers: Vec<Arc<dyn SessionEnded>> = vec![identities];
    let (sessions, kept_bans) = crate::store::run_blocking(async {
        let sessions = Sessions::open(store.clone(), cfg.session.clone(), clock.clone(), followers);
        let bans = store.bans().active_bans(clock.now_ms());
        Ok::<_, crate::store::StoreError>((sessions.await?, bans.await?))
    })?;
    let sessions = sessions.with_id_key(factors.session_id_key());
    let (ban_tx, ban_rx) = tokio::sync::mpsc::channel(BAN_LOG);
    let regulator = Regulator::new(cfg.regulation.clone(), clock.clone()).with_ban_log(ban_tx);
    let restored = regulator.restore(&kept_bans);
    if restored > 0 {
        tracing::info!(target: "stepgate::regulation", restored, "bans kept from before the restart are back in force");
    }
    let auth = Auth {
        audit: crate::audit::AuditTrail::open(store.clone(), data).map_err(BuildError::Audit)?,
        sessions,
        users,
        verifier: PasswordVerifier::new(cfg.server.password_hash_concurrency),
        regulator,
        shared_limits: match &cfg.redis {
            Some(r) => Some(
                crate::regulation::shared::SharedLimits::open(
                    &r.url,
                    &r.prefix,
                    cfg.regulation.clone(),
                    clock.clone(),
                )
                .map_err(|cause| BuildError::Redis {
                    url: crate::store::redact_url(&r.url),
                    cause,
                })?,
            ),
            None => None,
        },
        signer: Signer::open(data, cfg.assertion.clone(), clock.clone())?,
        factors,
        notifiers: Notifiers::build(&cfg.notify, data)?,
        two_factor: cfg.two_factor.clone(),
        certificates: crate::certificates::Certificates::new(
            store.clone(),
            clock.clone(),
            cfg.certificate_listeners(),
        ),
        clock,
        store,
    };
    Ok((auth, directory, BanLog(tokio::sync::Mutex::new(ban_rx))))
}

/// New bans on their way to the store (drained by `Housekeeping`).
struct BanLog(tokio::sync::Mutex<tokio::sync::mpsc::Receiver<crate::store::BanRecord>>);

/// Builds the server with time from `clock` (tests use a manual clock).
pub fn build_with_clock(
    cfg: &Config,
    clock: SharedClock,
    runtime: Runtime,
) -> Result<Server, BuildError> {
    prepare_data_dir(&cfg.server.data_dir)?;
    if let Some(metrics) = &cfg.metrics {
        crate::metrics::install(metrics).map_err(BuildError::Metrics)?;
    }
    let conf = ServerConf {
        threads: cfg.server.threads,
        grace_period_seconds: Some(cfg.server.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(
            cfg.server.shutdown_timeout.as_secs_f64().ceil() as u64
        ),
        upstream_keepalive_pool_size: 256,
        work_stealing: runtime == Runtime::WorkStealing,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);

    let needs_whoami = cfg
        .apps
        .iter()
        .any(|a| matches!(a.upstream, UpstreamConfig::Whoami));
    let whoami_addr = if needs_whoami {
        let whoami = Whoami::bind().map_err(BuildError::Whoami)?;
        let addr = whoami.addr();
        server.add_service(background_service("whoami", whoami));
        addr
    } else {
        ([127, 0, 0, 1], 0).into()
    };

    let mut apps = Vec::with_capacity(cfg.apps.len());
    for app in &cfg.apps {
        let upstream = match &app.upstream {
            UpstreamConfig::Whoami => Upstream::Whoami(whoami_addr),
            UpstreamConfig::ForwardAuthOnly => Upstream::ForwardAuthOnly,
            UpstreamConfig::Servers(servers) => Upstream::Pool(Box::new(
                PoolParts::build(&app.id, servers)?.start(&mut server, &app.id),
            )),
        };
        apps.push(AppRuntime {
            id: app.id.clone(),
            upstream,
        });
    }

    let identities = Arc::new(IdentityCache::new(clock.clone()));
    let (auth, directory, bans) = build_auth(cfg, clock, Arc::clone(&identities))?;
    let pages = Pages::new(
        cfg.portal.clone(),
        Csrf::open(&cfg.server.data_dir).map_err(BuildError::Csrf)?,
        ReturnTo::new(
            cfg.portal.default_redirect.clone(),
            cfg.portal.allowed_redirect_hosts.clone(),
        ),
    );
    let state = State {
        router: HostRouter::new(
            cfg.apps
                .iter()
                .enumerate()
                .map(|(i, a)| (i, a.hosts.as_slice())),
        ),
        apps,
        rules: arc_swap::ArcSwap::from_pointee(AccessRules::compile(cfg.rules.clone())?),
        hygiene: HeaderHygiene::new(
            &cfg.identity_headers,
            &cfg.server.trusted_proxies,
            gateway_cookie_names(),
        ),
        pages,
        auth,
        identities,
        identity_headers: cfg.identity_headers.clone(),
        access_log: cfg.log.access_log,
        metrics: cfg.metrics.is_some(),
        body_timeout: cfg.server.body_timeout,
        hsts: cfg.server.hsts_max_age.map(|d| {
            http::HeaderValue::from_str(&format!("max-age={}", d.as_secs()))
                .expect("digits are a header value")
        }),
    };
    let state = Arc::new(state);
    server.add_service(background_service(
        "housekeeping",
        Housekeeping {
            state: Arc::clone(&state),
            directory,
            bans,
            // A process of its own (the binary) reloads its rules on SIGHUP; gateways inside a
            // test share one process and its signals, and do not.
            reload_from: (runtime == Runtime::PerThread).then(|| cfg.source.clone()),
        },
    ));
    let mut gateway = pingora::proxy::http_proxy(&server.configuration, Gateway { state });
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2_idle_timeout = Some(cfg.server.idle_timeout);
    gateway.server_options = Some(options);
    let guarded = Guarded::new(
        gateway,
        Pacing {
            header: cfg.server.header_timeout,
            idle: cfg.server.idle_timeout,
            body: cfg.server.body_timeout,
            per_address: cfg.server.max_connections_per_address,
            exempt: cfg.server.trusted_proxies.clone(),
        },
    );
    let at_cap = guarded.filter();
    let mut proxy = Service::new("stepgate proxy".to_owned(), guarded);
    proxy.set_connection_filter(at_cap);
    for listener in &cfg.listeners {
        ensure_bindable(listener.address)?;
        let address = listener.address.to_string();
        match &listener.kind {
            ListenerKind::Http => {
                if !listener.address.ip().is_loopback() {
                    tracing::warn!(%address, "plain-HTTP listener on a non-loopback address: cookies are sent without Secure; use it only behind a TLS-terminating proxy or for local try-outs");
                } else {
                    tracing::warn!(%address, "plain-HTTP listener: cookies are sent without Secure and without the __Host- prefix; for local try-outs only");
                }
                proxy.add_tcp(&address);
            }
            ListenerKind::Https {
                certificates,
                http2,
                client_certificates,
            } => {
                let resolver = SniResolver::new(certificates)
                    .ok_or(BuildError::NoCertificate(listener.address))?;
                let settings = match client_certificates {
                    // The presented leaf goes into each connection's TLS digest, where the
                    // request's check finds it (`certificates::on_request`).
                    Some(_) => {
                        TlsSettings::with_callbacks(Box::new(crate::certificates::KeepPresented))
                    }
                    None => TlsSettings::intermediate("", ""),
                };
                let mut tls = settings.map_err(|e| BuildError::Listener {
                    address: listener.address,
                    cause: e.to_string(),
                })?;
                if let Some(trust) = client_certificates {
                    tls.set_client_cert_verifier(trust.verifier());
                }
                tls.set_cert_resolver(Arc::new(resolver));
                if *http2 {
                    tls.enable_h2();
                }
                proxy.add_tls_with_settings(&address, None, tls);
            }
            ListenerKind::Redirect { https_port } => {
                let mut redirect = Service::new(
                    format!("redirect {address}"),
                    RedirectToHttps {
                        https_port: *https_port,
                    },
                );
                redirect.add_tcp(&address);
                server.add_service(redirect);
            }
        }
    }
    server.add_service(proxy);
    Ok(server)
}

/// Fails when the address cannot be listened on (in use, not local, no permission). pingora would
/// otherwise retry in the background while the process looks healthy.
fn ensure_bindable(address: std::net::SocketAddr) -> Result<(), BuildError> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    socket
        .and_then(|s| {
            // Like pingora's own listener, so a recent restart's TIME_WAIT sockets do not count.
            s.set_reuseaddr(true)?;
            s.bind(address)
        })
        .map_err(|e| BuildError::Listener {
            address,
            cause: format!("cannot listen: {e}"),
        })
}

/// Periodic upkeep: reloads the users file when it changes (every second), and every 30 s
/// ends expired sessions and writes session activity to the store, trims the failure limits and
/// drops the bans an operator lifted from the store, drops expired cached assertions and rotates
/// the signing key when it is due. On `SIGHUP`, reads the configuration file again and puts its
/// access rules in force.
struct Housekeeping {
    state: Arc<State>,
    directory: Option<Arc<FileDirectory>>,
    bans: BanLog,
    /// The configuration file `SIGHUP` reloads the rules from; `None`: no reload.
    reload_from: Option<std::path::PathBuf>,
}

/// The next `SIGHUP`, or never without a handler.
async fn next_hangup(hangups: &mut Option<tokio::signal::unix::Signal>) {
    match hangups {
        Some(h) => {
            h.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[async_trait]
impl pingora::services::background::BackgroundService for Housekeeping {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut events = self.state.auth.store.backend().session_events();
        let mut bans = self.bans.0.lock().await;
        let mut hangups = self.reload_from.as_ref().and_then(|_| {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| tracing::error!(target: "stepgate::reload", error = %e, "cannot listen for SIGHUP; no reload"))
                .ok()
        });
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
                _ = next_hangup(&mut hangups) => {
                    self.reload();
                    continue;
                }
                event = next_event(&mut events) => {
                    self.state.auth.sessions.apply(event);
                    continue;
                }
                Some(ban) = bans.recv() => {
                    self.keep_ban(&ban).await;
                    continue;
                }
            }
            n += 1;
            if let Some(dir) = &self.directory {
                if n == 1 {
                    self.forget_disabled(dir).await;
                }
                match dir.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!(target: "stepgate::users", users = dir.len(), "users file reloaded");
                        // Kept identity headers and assertions carry the old facts.
                        self.state.identities.clear();
                        self.forget_disabled(dir).await;
                    }
                    Ok(false) => {}
                    Err(_) => {} // logged by the directory; the previous users stay in force
                }
            }
            if n.is_multiple_of(30) {
                self.sweep().await;
            }
        }
        // Last bans and activity reach the store before the process ends.
        while let Ok(ban) = bans.try_recv() {
            self.keep_ban(&ban).await;
        }
        self.sweep().await;
    }
}

/// The next session event from other gateways; pending forever when the backend has no feed.
/// A lagging receiver lost events, which is a resync.
async fn next_event(
    events: &mut Option<tokio::sync::broadcast::Receiver<crate::store::SessionEvent>>,
) -> crate::store::SessionEvent {
    use tokio::sync::broadcast::error::RecvError;
    let Some(rx) = events.as_mut() else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(event) => event,
        Err(RecvError::Lagged(_)) => crate::store::SessionEvent::Resync,
        Err(RecvError::Closed) => {
            *events = None;
            std::future::pending().await
        }
    }
}

impl Housekeeping {
    /// A user the operator disabled loses their trusted browsers, so that enabling them again
    /// does not bring back a "don't ask again" from before (checked at start and on every
    /// reload of the users file).
    async fn forget_disabled(&self, dir: &FileDirectory) {
        for user in dir.disabled() {
            if let Err(e) = crate::browsers::forget_all(&self.state.auth.store, &user).await {
                tracing::error!(target: "stepgate::users", %user, error = %e, "could not forget the trusted browsers of a disabled user");
            }
        }
    }

    /// Writes a new ban to the store, and tells the regulator it is there (from then on, its
    /// absence from the store means an operator lifted it).
    async fn keep_ban(&self, ban: &crate::store::BanRecord) {
        let auth = &self.state.auth;
        match auth.store.bans().put_ban(ban).await {
            Ok(()) => auth.regulator.ban_kept(ban),
            Err(e) => {
                tracing::error!(target: "stepgate::regulation", error = %e, "could not keep a ban in the store")
            }
        }
    }

    /// Reads the configuration file again and, when it is valid as a whole, puts its access
    /// rules in force. A file with problems is reported, one line per problem, and the running
    /// configuration stays. Everything else in the file takes a restart.
    fn reload(&self) {
        let Some(path) = &self.reload_from else {
            return;
        };
        let rules = crate::config::Config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| AccessRules::compile(cfg.rules).map_err(|e| e.to_string()));
        match rules {
            Ok(rules) => {
                let n = rules.len();
                self.state.rules.store(Arc::new(rules));
                tracing::info!(target: "stepgate::reload", rules = n, "SIGHUP: access rules reloaded; other changes take a restart");
            }
            Err(problems) => {
                tracing::error!(target: "stepgate::reload", "SIGHUP: the configuration was not reloaded, the running one stays");
                for problem in problems.lines() {
                    tracing::error!(target: "stepgate::reload", "{problem}");
                }
            }
        }
    }

    async fn sweep(&self) {
        let auth = &self.state.auth;
        if let Err(e) = auth.sessions.housekeeping().await {
            tracing::error!(error = %e, "session housekeeping failed");
        }
        auth.regulator.cleanup();
        auth.certificates.reload_if_changed();
        // Bans an operator lifted (`stepgate admin bans lift`) stop applying here too.
        let read = auth.regulator.store_read();
        match auth.store.bans().active_bans(auth.clock.now_ms()).await {
            Ok(stored) => _ = auth.regulator.follow_store(read, &stored),
            Err(e) => tracing::error!(error = %e, "could not read the bans kept in the store"),
        }
        if let Err(e) = auth.store.bans().purge_bans(auth.clock.now_ms()).await {
            tracing::error!(error = %e, "ban housekeeping failed");
        }
        let audit_before = auth
            .clock
            .now_ms()
            .saturating_sub(AUDIT_RETENTION.as_millis() as u64);
        if let Err(e) = auth.store.audit().purge_audit(audit_before).await {
            tracing::error!(error = %e, "audit trail housekeeping failed");
        }
        self.state.identities.purge_expired();
        return_free_memory();
        if let Err(e) = auth
            .store
            .challenges()
            .purge_challenges(auth.clock.now_ms())
            .await
        {
            tracing::error!(error = %e, "challenge housekeeping failed");
        }
        match auth.signer.rotate_if_due() {
            Ok(true) => {
                tracing::info!(kid = %auth.signer.current_kid(), "assertion signing key rotated")
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "assertion key rotation failed"),
        }
    }
}

/// Runs until SIGTERM or SIGINT, then finishes in-flight requests within the grace period.
pub fn run(cfg: &Config) -> Result<(), BuildError> {
    let server = build(cfg)?;
    tracing::info!(listeners = ?cfg.listeners.iter().map(|l| l.address).collect::<Vec<_>>(), "stepgate starting");
    server.run(RunArgs {
        shutdown_signal: Box::new(UnixSignals),
    });
    tracing::info!("stepgate stopped");
    Ok(())
}

/// Asks the allocator (mimalloc, see `src/main.rs`) to give the memory that clean-up freed back
/// to the OS now: after a sign-in flood the limiter's tables shrink, and without this the freed
/// pages stay resident until the allocator happens to purge them (`benches/memory.rs` measures
/// both). Harmless when mimalloc is not the global allocator: its heaps are then empty.
pub fn return_free_memory() {
    // SAFETY: mi_collect only releases memory the allocator holds free; it takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// SIGTERM and SIGINT both shut down gracefully (pingora's default treats SIGINT as fast).
struct UnixSignals;

#[async_trait]
impl ShutdownSignalWatch for UnixSignals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
            _ = int.recv() => tracing::info!("SIGINT: finishing in-flight requests"),
        }
        ShutdownSignal::GracefulTerminate
    }
}

/// How to stop a gateway started with [`start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stop accepting, let in-flight requests finish within the grace period.
    Graceful,
    /// Stop now.
    Fast,
}

struct ChannelSignal(Mutex<mpsc::UnboundedReceiver<Stop>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        match self.0.lock().await.recv().await {
            Some(Stop::Graceful) => ShutdownSignal::GracefulTerminate,
            Some(Stop::Fast) | None => ShutdownSignal::FastShutdown,
        }
    }
}

/// A gateway running on a thread of its own (tests, embedding). Dropping it stops it fast.
pub struct RunningGateway {
    stop: mpsc::UnboundedSender<Stop>,
    thread: Option<JoinHandle<()>>,
}

/// Builds and starts a gateway without blocking; it runs until [`RunningGateway::stop`].
pub fn start(cfg: &Config) -> Result<RunningGateway, BuildError> {
    start_with_clock(cfg, crate::clock::system())
}

/// [`start`] with time from `clock`.
pub fn start_with_clock(cfg: &Config, clock: SharedClock) -> Result<RunningGateway, BuildError> {
    let server = build_with_clock(cfg, clock, Runtime::WorkStealing)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("stepgate".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(ChannelSignal(Mutex::new(rx))),
            })
        })
        .map_err(BuildError::Whoami)?;
    Ok(RunningGateway {
        stop: tx,
        thread: Some(thread),
    })
}

impl RunningGateway {
    /// Stops the gateway and waits until it has.
    pub fn stop(mut self, how: Stop) {
        self.stop_inner(how);
    }

    /// Signals a stop without waiting (to observe a graceful shutdown from outside).
    pub fn signal(&self, how: Stop) {
        let _ = self.stop.send(how);
    }

    fn stop_inner(&mut self, how: Stop) {
        let _ = self.stop.send(how);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop_inner(Stop::Fast);
    }
}
