//! `stepgate admin`: the operator's commands on a gateway's data directory (its store), safe
//! while the gateway runs. A running gateway follows what they change: ended sessions within
//! 30 s (its session cache checks the store again), lifted bans within a minute (its
//! housekeeping reads the store's bans).
//!
//! Every command that names a user refuses a name the users file does not hold, so that a typo
//! acts on nobody silently. Listings print a table for a person, or with `--json` one JSON
//! document for scripts, on standard output; errors go to standard error with exit status 1.
//! What an operator changes is recorded in the audit trail (`*_by_operator` events).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use stepgate::amr::Amr;
use stepgate::audit::{rfc3339, AuditTrail};
use stepgate::browsers;
use stepgate::config::Config;
use stepgate::factor::Factors;
use stepgate::lockout;
use stepgate::store::{run_blocking, AuditEvent, BanRecord, SessionKey, SessionRecord, Store};

mod certificates;
mod devices;
mod migrate;

#[derive(Subcommand)]
pub enum Action {
    /// Issue a single-use token that lets USER start two-step setup without an emailed code
    /// (for users without a reachable registered email). Replaces an earlier token.
    EnrolmentToken {
        user: String,
        /// How long the token is valid (default: two_factor.enrolment_token_ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
    },
    /// Remove USER's authenticator app, phone, recovery codes, approver devices and tokens (a
    /// lost phone), end USER's sessions and forget their trusted browsers. The user sets up
    /// again at the next sign-in.
    /// Takes effect in a running gateway within 30 seconds.
    Reset2fa {
        user: String,
        /// Also forget the emergency contact email.
        #[arg(long)]
        forget_contact: bool,
    },
    /// Show USER's two-step verification state, whether the account is locked, and recent
    /// events.
    Status { user: String },
    /// List or end USER's sessions and saved sign-ins.
    #[command(subcommand)]
    Sessions(SessionsAction),
    /// Lock USER's account: end every session, forget trusted browsers and approver devices,
    /// cancel codes and links in flight; sign-in then fails until `unlock`.
    Lock {
        user: String,
        #[command(flatten)]
        out: Output,
    },
    /// Lift the lock on USER's account.
    Unlock {
        user: String,
        #[command(flatten)]
        out: Output,
    },
    /// List or lift the bans the failure limits handed out.
    #[command(subcommand)]
    Bans(BansAction),
    /// List USER's trusted browsers (those that skip the second factor), or forget them all.
    Trusted {
        user: String,
        /// Forget every trusted browser of USER (they ask for the second factor again).
        #[arg(long)]
        remove_all: bool,
        #[command(flatten)]
        out: Output,
    },
    /// List USER's approver devices (they approve sign-ins), or remove one or all.
    Devices {
        user: String,
        /// Remove the approver device with this ID.
        #[arg(long, conflicts_with = "remove_all")]
        remove: Option<String>,
        /// Remove every approver device of USER (a lost phone).
        #[arg(long)]
        remove_all: bool,
        #[command(flatten)]
        out: Output,
    },
    /// List USER's client certificates, register one from a file, or remove one.
    Certificates {
        user: String,
        /// Register the certificate in this file (PEM or DER), checked as the page does.
        #[arg(long, conflicts_with = "remove")]
        register: Option<PathBuf>,
        /// Remove the certificate with this fingerprint (SHA-256, hex).
        #[arg(long)]
        remove: Option<String>,
        /// Why it is removed (kept in the audit trail).
        #[arg(long, requires = "remove", default_value = "")]
        reason: String,
        #[command(flatten)]
        out: Output,
    },
    /// Copy this gateway's embedded store (SQLite) into an empty PostgreSQL database, in one
    /// transaction. Stop the gateway first: what it writes during the copy would be left behind.
    Migrate {
        /// The PostgreSQL URL to copy into (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE).
        #[arg(long, required_unless_present = "to_file", conflicts_with = "to_file")]
        to: Option<String>,
        /// A file holding that URL (so that the password need not be on the command line).
        #[arg(long)]
        to_file: Option<PathBuf>,
        #[command(flatten)]
        out: Output,
    },
    /// Show USER's audit trail, newest first.
    Audit {
        user: String,
        /// How many events at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub enum SessionsAction {
    /// List USER's sessions and saved sign-ins, oldest first.
    List {
        user: String,
        #[command(flatten)]
        out: Output,
    },
    /// End one of USER's sessions (by the ID `list` shows, or enough of its start to be
    /// unambiguous), or all of them with --all. Takes effect in a running gateway within 30
    /// seconds.
    End {
        user: String,
        /// The session's ID as `list` shows it, or its first few characters.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// End every session and saved sign-in of USER.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub enum BansAction {
    /// List the bans in force.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Lift a ban (SCOPE and KEY as `list` shows them). A running gateway stops applying it
    /// within a minute.
    Lift {
        #[arg(value_enum)]
        scope: Scope,
        /// The key as `list` shows it (or as `list --json` gives it in `key`).
        key: String,
        #[command(flatten)]
        out: Output,
    },
}

/// What a ban is on (as the store names it).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// One user name from one address.
    Pair,
    /// One address, for every user name.
    Address,
    /// One user name, from addresses the user has not signed in from lately.
    User,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Pair => "pair",
            Scope::Address => "address",
            Scope::User => "user",
        }
    }
}

#[derive(Args, Clone, Copy)]
pub struct Output {
    /// Print one JSON document (for scripts) instead of text.
    #[arg(long)]
    json: bool,
}

impl Output {
    /// Prints `text` for a person, or `doc` as JSON.
    fn print(self, text: &str, doc: &impl Serialize) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(doc)?);
        } else {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
        Ok(())
    }
}

impl Action {
    /// The user the action is about, if it is about one.
    fn user(&self) -> Option<&str> {
        match self {
            Action::EnrolmentToken { user, .. }
            | Action::Reset2fa { user, .. }
            | Action::Status { user }
            | Action::Sessions(SessionsAction::List { user, .. })
            | Action::Sessions(SessionsAction::End { user, .. })
            | Action::Lock { user, .. }
            | Action::Unlock { user, .. }
            | Action::Trusted { user, .. }
            | Action::Devices { user, .. }
            | Action::Certificates { user, .. }
            | Action::Audit { user, .. } => Some(user),
            Action::Bans(_) | Action::Migrate { .. } => None,
        }
    }

    /// Whether the action needs the second factors (and so the factor key).
    fn needs_factors(&self) -> bool {
        matches!(
            self,
            Action::EnrolmentToken { .. } | Action::Reset2fa { .. } | Action::Status { .. }
        )
    }
}

/// What every command works with.
struct Ctx {
    cfg: Config,
    store: Store,
    factors: Option<Factors>,
    /// The normalised name of the user the action is about (`""` for actions without one).
    user: String,
    now: u64,
}

/// Runs `stepgate admin --config PATH [--data-dir DIR] ACTION`.
pub fn run(path: PathBuf, data_dir: Option<PathBuf>, action: Action) -> ExitCode {
    let mut cfg = match Config::load(&path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = data_dir {
        cfg.server.data_dir = dir;
    }
    if let Action::Migrate { to, to_file, out } = action {
        return match migrate::run(&cfg, to, to_file, out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stepgate: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let user = match action.user() {
        None => String::new(),
        Some(raw) => match known_user(&cfg, raw) {
            Some(name) => name,
            None => {
                eprintln!("stepgate: no user \"{raw}\" in the users file");
                return ExitCode::FAILURE;
            }
        },
    };
    let opened = Store::open(&cfg.store, &cfg.server.data_dir)
        .map_err(stepgate::factor::FactorError::from)
        .and_then(|store| {
            let factors = match action.needs_factors() {
                true => Some(
                    Factors::open(
                        store.clone(),
                        &cfg.server.data_dir,
                        cfg.two_factor.secret_key_file.as_deref(),
                        stepgate::clock::system(),
                    )?
                    .with_passkeys(cfg.passkeys.as_ref())?,
                ),
                false => None,
            };
            Ok((store, factors))
        });
    let (store, factors) = match opened {
        Ok(f) => f,
        Err(e) => {
            eprintln!("stepgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx {
        cfg,
        store,
        factors,
        user,
        now: stepgate::clock::system().now_ms(),
    };
    match run_blocking(execute(&ctx, action)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stepgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The users file's name for `raw`, if it holds such a user.
fn known_user(cfg: &Config, raw: &str) -> Option<String> {
    let file = cfg.users_file.as_ref()?;
    let text = std::fs::read_to_string(file).ok()?;
    let users = stepgate::users::validate_users(file, &text).ok()?;
    let name = stepgate::users::normalize_username(raw)?;
    users.contains_key(&name).then_some(name)
}

async fn execute(ctx: &Ctx, action: Action) -> Result<()> {
    match action {
        Action::EnrolmentToken { ttl, .. } => enrolment_token(ctx, ttl).await,
        Action::Reset2fa { forget_contact, .. } => reset2fa(ctx, forget_contact).await,
        Action::Status { .. } => status(ctx).await,
        Action::Sessions(SessionsAction::List { out, .. }) => sessions_list(ctx, out).await,
        Action::Sessions(SessionsAction::End { id, out, .. }) => {
            sessions_end(ctx, id.as_deref(), out).await
        }
        Action::Lock { out, .. } => lock(ctx, out).await,
        Action::Unlock { out, .. } => unlock(ctx, out).await,
        Action::Bans(BansAction::List { out }) => bans_list(ctx, out).await,
        Action::Bans(BansAction::Lift { scope, key, out }) => {
            bans_lift(ctx, scope, &key, out).await
        }
        Action::Trusted {
            remove_all, out, ..
        } => trusted(ctx, remove_all, out).await,
        Action::Devices {
            remove,
            remove_all,
            out,
            ..
        } => {
            let remove = match (remove, remove_all) {
                (Some(id), _) => devices::Remove::One(id),
                (None, true) => devices::Remove::All,
                (None, false) => devices::Remove::None,
            };
            devices::devices(ctx, remove, out).await
        }
        Action::Certificates {
            register,
            remove,
            reason,
            out,
            ..
        } => {
            let change = match (&register, &remove) {
                (Some(file), _) => certificates::Change::Register(file),
                (None, Some(fp)) => certificates::Change::Remove {
                    fingerprint: fp,
                    reason: &reason,
                },
                (None, None) => certificates::Change::None,
            };
            certificates::certificates(ctx, change, out).await
        }
        Action::Audit { limit, out, .. } => audit(ctx, limit, out).await,
        Action::Migrate { .. } => bail!("migrate runs before the store is opened"),
    }
}

fn factors(ctx: &Ctx) -> &Factors {
    ctx.factors
        .as_ref()
        .expect("the factors are opened for the actions that need them")
}

async fn enrolment_token(ctx: &Ctx, ttl: Option<std::time::Duration>) -> Result<()> {
    let (user, ttl) = (
        &ctx.user,
        ttl.unwrap_or(ctx.cfg.two_factor.enrolment_token_ttl),
    );
    let token = factors(ctx).issue_enrolment_token(user, ttl).await?;
    println!("{token}");
    eprintln!(
        "enrolment token for {user}, valid for {}: give it to the user over a channel you trust; they enter it at the first step of two-step setup",
        humantime::format_duration(ttl)
    );
    Ok(())
}

async fn reset2fa(ctx: &Ctx, forget_contact: bool) -> Result<()> {
    let user = &ctx.user;
    factors(ctx).reset(user, !forget_contact).await?;
    // Whoever has the lost phone may hold a signed-in browser on it, or a trusted one.
    let ended = ctx.store.sessions().delete_sessions_of(user, None).await?;
    stepgate::browsers::forget_all(&ctx.store, user).await?;
    println!(
        "two-step verification of {user} removed, {} session(s) ended and trusted browsers forgotten; they set it up again at their next sign-in",
        ended.len()
    );
    Ok(())
}

async fn status(ctx: &Ctx) -> Result<()> {
    let user = &ctx.user;
    let s = factors(ctx).summary(user).await?;
    let locked = lockout::locked_since(&ctx.store, user).await?;
    let events = ctx.store.audit().audit_of(user, 10).await?;
    println!("user: {user}");
    match locked {
        Some(ms) => println!("account: locked since {}", when(ms)),
        None => println!("account: not locked"),
    }
    println!(
        "authenticator app: {}",
        if s.totp.is_some() { "on" } else { "off" }
    );
    println!("recovery codes left: {}", s.recovery_remaining);
    println!(
        "emergency contact email: {}",
        s.emergency_email.as_deref().unwrap_or("(none)")
    );
    println!("recent events (newest first):");
    for e in events {
        let from = e.client.as_deref().unwrap_or("-");
        println!(
            "  {} {} {} from {}",
            when(e.at_ms),
            clean(&e.event),
            clean(&e.detail),
            clean(from)
        );
    }
    Ok(())
}

/// One session as `sessions list --json` shows it.
#[derive(Serialize)]
struct SessionView {
    id: String,
    started: String,
    started_ms: u64,
    last_seen: String,
    last_seen_ms: u64,
    authenticated: String,
    authenticated_ms: u64,
    /// `1fa` or `2fa`; `unknown` for methods this build cannot read.
    level: &'static str,
    /// The authentication methods (RFC 8176), comma-separated as stored.
    amr: String,
    /// A saved sign-in ("keep me signed in").
    saved: bool,
    /// Signed in from an unfamiliar environment and not checked yet.
    needs_check: bool,
    address: String,
    browser: String,
    /// The trusted browser that stood in for the second factor, if one did.
    trusted_browser: Option<String>,
}

impl SessionView {
    fn new(key: &SessionKey, r: &SessionRecord) -> SessionView {
        SessionView {
            id: handle(key),
            started: rfc3339(r.created_ms),
            started_ms: r.created_ms,
            last_seen: rfc3339(r.last_seen_ms),
            last_seen_ms: r.last_seen_ms,
            authenticated: rfc3339(r.auth_ms),
            authenticated_ms: r.auth_ms,
            level: Amr::parse(&r.amr).map_or("unknown", |a| a.level().as_str()),
            amr: r.amr.clone(),
            saved: r.persistent,
            needs_check: r.needs_check,
            address: r.client.clone(),
            browser: r.agent.clone(),
            trusted_browser: (!r.trusted.is_empty()).then(|| r.trusted.clone()),
        }
    }
}

/// How the CLI names a session: the first 8 bytes of its key, in hex (the key is a hash of the
/// session ID, so this tells nothing about the cookie).
fn handle(key: &SessionKey) -> String {
    hex(&key[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

async fn sessions_list(ctx: &Ctx, out: Output) -> Result<()> {
    let user = &ctx.user;
    let mine = ctx.store.sessions().sessions_of(user).await?;
    let views: Vec<SessionView> = mine.iter().map(|(k, r)| SessionView::new(k, r)).collect();
    let text = if views.is_empty() {
        format!("{user} has no sessions\n")
    } else {
        let rows = views.iter().map(|v| {
            let level = match v.needs_check {
                true => format!("{} (unchecked)", v.level),
                false => v.level.to_owned(),
            };
            vec![
                v.id.clone(),
                when(v.started_ms),
                when(v.last_seen_ms),
                level,
                yes_no(v.saved).to_owned(),
                v.address.clone(),
                v.browser.clone(),
            ]
        });
        table(
            &[
                "ID",
                "STARTED",
                "LAST SEEN",
                "LEVEL",
                "SAVED SIGN-IN",
                "ADDRESS",
                "BROWSER",
            ],
            rows,
        )
    };
    out.print(
        &text,
        &SessionsDoc {
            user,
            sessions: views,
        },
    )
}

async fn sessions_end(ctx: &Ctx, id: Option<&str>, out: Output) -> Result<()> {
    let user = &ctx.user;
    let sessions = ctx.store.sessions();
    let ended: Vec<SessionKey> = match id {
        None => sessions.delete_sessions_of(user, None).await?,
        Some(id) => {
            let want = id.trim().to_ascii_lowercase();
            if want.is_empty() || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("\"{id}\" is not a session ID (hexadecimal, as `sessions list` shows it)");
            }
            let mine = sessions.sessions_of(user).await?;
            let found: Vec<&SessionKey> = mine
                .iter()
                .map(|(k, _)| k)
                .filter(|k| hex(&k[..]).starts_with(&want))
                .collect();
            match found[..] {
                [] => bail!(
                    "{user} has no session with the ID {want} (see `stepgate admin sessions list {user}`)"
                ),
                [key] => match sessions.delete_session(key).await? {
                    true => vec![*key],
                    false => bail!("the session {want} of {user} had already ended"),
                },
                _ => bail!(
                    "the ID {want} matches {} sessions of {user}; give more of it",
                    found.len()
                ),
            }
        }
    };
    let ids: Vec<String> = ended.iter().map(handle).collect();
    let text = match &ids[..] {
        [] => format!("{user} had no sessions\n"),
        _ => format!(
            "ended {} session(s) of {user}: {}\na running gateway refuses them within 30 s\n",
            ids.len(),
            ids.join(", ")
        ),
    };
    if !ids.is_empty() {
        let detail = match id {
            None => format!("all: {}", ids.join(",")),
            Some(_) => ids.join(","),
        };
        record(ctx, "sessions_ended_by_operator", detail).await?;
    }
    out.print(&text, &EndedDoc { user, ended: ids })
}

async fn lock(ctx: &Ctx, out: Output) -> Result<()> {
    let user = &ctx.user;
    if let Some(since) = lockout::locked_since(&ctx.store, user).await? {
        let text = format!(
            "{user} is already locked (since {}); nothing changed\n",
            when(since)
        );
        let doc = LockDoc {
            user,
            locked: true,
            changed: false,
            locked_since: rfc3339(since),
            locked_since_ms: since,
            sessions_ended: vec![],
            cancelled: 0,
        };
        return out.print(&text, &doc);
    }
    let locked = lockout::lock(&ctx.store, user, ctx.now).await?;
    let ended: Vec<String> = locked.sessions.iter().map(handle).collect();
    record(
        ctx,
        "locked_by_operator",
        format!(
            "{} session(s) ended, {} code(s) or link(s) cancelled",
            ended.len(),
            locked.cancelled
        ),
    )
    .await?;
    let text = format!(
        "{user} locked: {} session(s) ended, trusted browsers forgotten, {} code(s) or link(s) in flight cancelled\nsign-in fails until `stepgate admin unlock {user}`\n",
        ended.len(),
        locked.cancelled
    );
    let doc = LockDoc {
        user,
        locked: true,
        changed: true,
        locked_since: rfc3339(ctx.now),
        locked_since_ms: ctx.now,
        sessions_ended: ended,
        cancelled: locked.cancelled,
    };
    out.print(&text, &doc)
}

async fn unlock(ctx: &Ctx, out: Output) -> Result<()> {
    let user = &ctx.user;
    let was = lockout::unlock(&ctx.store, user).await?;
    let text = if was {
        record(ctx, "unlocked_by_operator", String::new()).await?;
        format!("{user} unlocked; they can sign in again\n")
    } else {
        format!("{user} was not locked; nothing changed\n")
    };
    let doc = UnlockDoc {
        user,
        locked: false,
        changed: was,
    };
    out.print(&text, &doc)
}

/// One ban as `bans list --json` shows it.
#[derive(Serialize)]
struct BanView {
    scope: String,
    /// The key as the store has it (`bans lift` takes it, or `shown`).
    key: String,
    /// The key with the separator shown as `/`.
    shown: String,
    /// The user name it is on, if it is on one.
    user: Option<String>,
    /// The address (IPv4, or IPv6 /64) it is on, if it is on one.
    address: Option<String>,
    /// On second-factor codes rather than passwords.
    codes: bool,
    until: String,
    until_ms: u64,
    /// How many bans in a row the key has had.
    level: u32,
    applies_to: String,
}

/// The separator in pair keys, and between the code limits' namespace and the user name.
const SEP: char = '\u{1f}';
const CODES: &str = "otp\u{1f}";

impl BanView {
    fn new(b: &BanRecord) -> BanView {
        let (named, address) = match b.scope.as_str() {
            "pair" => match b.key.rsplit_once(SEP) {
                Some((user, addr)) => (Some(user), Some(addr)),
                None => (None, None),
            },
            "address" => (None, Some(b.key.as_str())),
            "user" => (Some(b.key.as_str()), None),
            _ => (None, None),
        };
        let codes = named.is_some_and(|u| u.starts_with(CODES));
        let user = named.map(|u| u.strip_prefix(CODES).unwrap_or(u).to_owned());
        let what = if codes { "codes" } else { "sign-in" };
        let applies_to = match (b.scope.as_str(), &user, address) {
            ("pair", Some(u), Some(a)) => format!("{what} of {u} from {a}"),
            ("address", _, Some(a)) => format!("sign-in and codes from {a}, any user"),
            ("user", Some(u), _) => format!("{what} of {u} from addresses new to {u}"),
            _ => "(unknown)".to_owned(),
        };
        BanView {
            scope: b.scope.clone(),
            key: b.key.clone(),
            shown: shown_key(&b.key),
            user,
            address: address.map(str::to_owned),
            codes,
            until: rfc3339(b.until_ms),
            until_ms: b.until_ms,
            level: b.level,
            applies_to,
        }
    }
}

fn shown_key(key: &str) -> String {
    key.replace(SEP, "/")
}

async fn bans_list(ctx: &Ctx, out: Output) -> Result<()> {
    let bans = ctx.store.bans().active_bans(ctx.now).await?;
    let views: Vec<BanView> = bans.iter().map(BanView::new).collect();
    let text = if views.is_empty() {
        "no bans in force\n".to_owned()
    } else {
        let rows = views.iter().map(|v| {
            vec![
                v.scope.clone(),
                v.shown.clone(),
                when(v.until_ms),
                v.level.to_string(),
                v.applies_to.clone(),
            ]
        });
        table(&["SCOPE", "KEY", "UNTIL", "LEVEL", "APPLIES TO"], rows)
    };
    out.print(&text, &BansDoc { bans: views })
}

async fn bans_lift(ctx: &Ctx, scope: Scope, key: &str, out: Output) -> Result<()> {
    let scope = scope.as_str();
    // The key as listed (separators shown as `/`) or as stored; a listed form two bans share
    // is refused rather than guessed at.
    let running = ctx.store.bans().active_bans(ctx.now).await?;
    let matching: Vec<&BanRecord> = running
        .iter()
        .filter(|b| b.scope == scope && (b.key == key || shown_key(&b.key) == key))
        .collect();
    let exact = matching.iter().find(|b| b.key == key);
    let stored = match (exact, &matching[..]) {
        (Some(b), _) | (None, [b]) => b.key.clone(),
        (None, []) => key.to_owned(),
        (None, many) => bail!(
            "\"{key}\" matches {} {scope} bans; give the key as `bans list --json` shows it",
            many.len()
        ),
    };
    let found = running
        .iter()
        .find(|b| b.scope == scope && b.key == stored)
        .map(BanView::new);
    if !ctx.store.bans().delete_ban(scope, &stored).await? {
        bail!("no {scope} ban on \"{key}\" (see `stepgate admin bans list`); nothing was lifted");
    }
    // Gateways that share their limits in Redis hold the ban there too: lifted at once.
    if let Some(r) = &ctx.cfg.redis {
        let shared = stepgate::regulation::shared::SharedLimits::open(
            &r.url,
            &r.prefix,
            ctx.cfg.regulation.clone(),
            stepgate::clock::system(),
        )
        .map_err(|e| anyhow::anyhow!("lifted in the store, but Redis could not be reached: {e}"))?;
        if shared.lift(scope, &stored).await.is_err() {
            bail!("lifted in the store, but not in Redis (no answer); try again");
        }
    }
    let shown = shown_key(&stored);
    if let Some(user) = found.as_ref().and_then(|v| v.user.as_deref()) {
        record_for(
            ctx,
            user,
            "ban_lifted_by_operator",
            format!("{scope} {shown}"),
        )
        .await?;
    }
    let text = format!(
        "lifted the {scope} ban on {shown}; a running gateway stops applying it within a minute\n"
    );
    let doc = LiftDoc {
        lifted: true,
        scope,
        key: stored,
        ban: found,
    };
    out.print(&text, &doc)
}

/// One trusted browser as `trusted --json` shows it.
#[derive(Serialize)]
struct TrustedView {
    #[serde(flatten)]
    trusted: browsers::Trusted,
    first_used: String,
    last_used: String,
    expires: String,
}

async fn trusted(ctx: &Ctx, remove_all: bool, out: Output) -> Result<()> {
    let user = &ctx.user;
    let list = browsers::trusted(&ctx.store, user, ctx.now).await?;
    let views: Vec<TrustedView> = list
        .into_iter()
        .map(|t| TrustedView {
            first_used: rfc3339(t.first_used_ms),
            last_used: rfc3339(t.last_used_ms),
            expires: rfc3339(t.expires_ms),
            trusted: t,
        })
        .collect();
    if remove_all {
        browsers::forget_all(&ctx.store, user).await?;
        if !views.is_empty() {
            let detail = format!("{} trusted browser(s)", views.len());
            record(ctx, "trusted_browsers_removed_by_operator", detail).await?;
        }
        let text = format!(
            "forgot {} trusted browser(s) of {user}; they ask for the second factor again\n",
            views.len()
        );
        return out.print(
            &text,
            &RemovedDoc {
                user,
                removed: views,
            },
        );
    }
    let text = if views.is_empty() {
        format!("{user} has no trusted browsers\n")
    } else {
        let rows = views.iter().map(|v| {
            let t = &v.trusted;
            vec![
                t.id.clone(),
                t.browser.clone(),
                t.address.clone(),
                when(t.first_used_ms),
                when(t.last_used_ms),
                when(t.expires_ms),
            ]
        });
        table(
            &[
                "ID",
                "BROWSER",
                "ADDRESS",
                "FIRST USED",
                "LAST USED",
                "EXPIRES",
            ],
            rows,
        )
    };
    out.print(
        &text,
        &TrustedDoc {
            user,
            trusted: views,
        },
    )
}

/// One audit event as `audit --json` shows it.
#[derive(Serialize)]
struct EventView {
    at: String,
    at_ms: u64,
    event: String,
    detail: String,
    client: Option<String>,
}

async fn audit(ctx: &Ctx, limit: usize, out: Output) -> Result<()> {
    let user = &ctx.user;
    let events = ctx.store.audit().audit_of(user, limit).await?;
    let views: Vec<EventView> = events
        .into_iter()
        .map(|e| EventView {
            at: rfc3339(e.at_ms),
            at_ms: e.at_ms,
            event: e.event,
            detail: e.detail,
            client: e.client,
        })
        .collect();
    let text = if views.is_empty() {
        format!("no events for {user}\n")
    } else {
        let rows = views.iter().map(|v| {
            vec![
                when(v.at_ms),
                v.event.clone(),
                v.detail.clone(),
                v.client.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        });
        table(&["TIME", "EVENT", "DETAIL", "FROM"], rows)
    };
    out.print(
        &text,
        &EventsDoc {
            user,
            events: views,
        },
    )
}

// The JSON documents (`--json`), fields in the order they print.

#[derive(Serialize)]
struct SessionsDoc<'a> {
    user: &'a str,
    sessions: Vec<SessionView>,
}

#[derive(Serialize)]
struct EndedDoc<'a> {
    user: &'a str,
    /// The IDs of the sessions ended.
    ended: Vec<String>,
}

#[derive(Serialize)]
struct LockDoc<'a> {
    user: &'a str,
    locked: bool,
    /// `false` when the account was locked already (then nothing was done).
    changed: bool,
    locked_since: String,
    locked_since_ms: u64,
    sessions_ended: Vec<String>,
    /// Codes, setups and links in flight that were cancelled.
    cancelled: u64,
}

#[derive(Serialize)]
struct UnlockDoc<'a> {
    user: &'a str,
    locked: bool,
    /// `false` when the account was not locked.
    changed: bool,
}

#[derive(Serialize)]
struct BansDoc {
    bans: Vec<BanView>,
}

#[derive(Serialize)]
struct LiftDoc<'a> {
    lifted: bool,
    scope: &'a str,
    key: String,
    /// The ban as it was, if it was still running.
    ban: Option<BanView>,
}

#[derive(Serialize)]
struct TrustedDoc<'a> {
    user: &'a str,
    trusted: Vec<TrustedView>,
}

#[derive(Serialize)]
struct RemovedDoc<'a> {
    user: &'a str,
    removed: Vec<TrustedView>,
}

#[derive(Serialize)]
struct EventsDoc<'a> {
    user: &'a str,
    events: Vec<EventView>,
}

/// Records what the operator did to the action's user.
async fn record(ctx: &Ctx, event: &str, detail: String) -> Result<()> {
    record_for(ctx, &ctx.user, event, detail).await
}

/// Records an operator's event in the audit table and, if the gateway made it, the audit file.
/// The step is done by then: a failure says so and makes the command fail.
async fn record_for(ctx: &Ctx, user: &str, event: &str, detail: String) -> Result<()> {
    let data = &ctx.cfg.server.data_dir;
    let trail = AuditTrail::open_existing(ctx.store.clone(), data).unwrap_or_else(|e| {
        eprintln!("stepgate: warning: cannot append to the audit file: {e}");
        AuditTrail::store_only(ctx.store.clone())
    });
    let e = AuditEvent {
        at_ms: ctx.now,
        user: user.to_owned(),
        event: event.to_owned(),
        client: None,
        detail,
    };
    if let Err(err) = trail.record_checked(e).await {
        bail!("done, but it could not be recorded in the audit trail: {err}");
    }
    Ok(())
}

/// A time for a table: RFC 3339 UTC to the second.
fn when(ms: u64) -> String {
    rfc3339(ms - ms % 1000)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Control characters (a terminal escape in a stored browser name or detail) shown escaped.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            SEP => "/".to_owned(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![headers.iter().map(|h| (*h).to_owned()).collect()];
    lines.extend(rows.map(|r| r.iter().map(|c| clean(c)).collect()));
    let mut widths = vec![0; headers.len()];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let last = line.len().saturating_sub(1);
        for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        let end = text.trim_end_matches(' ').len();
        text.truncate(end);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up_and_escape_control_characters() {
        let rows = vec![
            vec!["a".to_owned(), "bé".to_owned(), "x".to_owned()],
            vec!["long".to_owned(), "\u{1b}[31m".to_owned(), "y".to_owned()],
        ];
        let text = table(&["A", "B", "C"], rows.into_iter());
        assert_eq!(
            text,
            "A     B           C\na     bé          x\nlong  \\u{1b}[31m  y\n"
        );
    }

    #[test]
    fn ban_keys_read_as_user_and_address() {
        let view = BanView::new(&BanRecord {
            scope: "pair".into(),
            key: "otp\u{1f}alice\u{1f}192.0.2.1".into(),
            until_ms: 1_764_577_800_000,
            level: 2,
        });
        assert_eq!(view.shown, "otp/alice/192.0.2.1");
        assert_eq!(view.user.as_deref(), Some("alice"));
        assert_eq!(view.address.as_deref(), Some("192.0.2.1"));
        assert!(view.codes);
        assert_eq!(view.applies_to, "codes of alice from 192.0.2.1");
        assert_eq!(when(1_764_577_800_123), "2025-12-01T08:30:00Z");
        assert_eq!(handle(&[0xab; 32]), "abababababababab");
    }
}
