//! The `stepgate` binary: CLI -> Config::load -> telemetry::init -> app::run.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stepgate::config::Config;

/// glibc's allocator cost about a quarter of the proxy's user time per request (pingora
/// allocates and frees buffers and header maps on every request); mimalloc's per-thread free
/// lists make that a fraction. Measured with `benches/load.sh`; see benches/README.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stepgate",
    version,
    about = "A two-step-verification reverse-proxy gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Replaces the address of the first plain-HTTP listener in the file.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Replaces the file's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a configuration file and print every problem.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Read one password from stdin and print its argon2id hash.
    HashPassword,
    /// Operator commands on the gateway's data directory (safe while it runs).
    Admin {
        #[arg(long)]
        config: PathBuf,
        /// Replaces the file's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Issue a single-use token that lets USER start two-step setup without an emailed code
    /// (for users without a reachable registered email). Replaces an earlier token.
    EnrolmentToken {
        user: String,
        /// How long the token is valid (default: two_factor.enrolment_token_ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
    },
    /// Remove USER's authenticator app, recovery codes and tokens (a lost phone), and end USER's
    /// sessions. The user sets up again at the next sign-in. Takes effect in a running gateway
    /// within 30 seconds.
    Reset2fa {
        user: String,
        /// Also forget the emergency contact email.
        #[arg(long)]
        forget_contact: bool,
    },
    /// Show USER's two-step verification state.
    Status { user: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            listen,
            data_dir,
        } => run(config, listen, data_dir),
        Command::Check { config } => check(config),
        Command::HashPassword => hash_password(),
        Command::Admin {
            config,
            data_dir,
            action,
        } => admin(config, data_dir, action),
    }
}

fn admin(path: PathBuf, data_dir: Option<PathBuf>, action: AdminAction) -> ExitCode {
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
    let (AdminAction::EnrolmentToken { user, .. }
    | AdminAction::Reset2fa { user, .. }
    | AdminAction::Status { user }) = &action;
    // The user must exist, so that a typo does not silently act on nobody.
    let known = cfg.users_file.as_ref().and_then(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        let users = stepgate::users::validate_users(f, &text).ok()?;
        let name = stepgate::users::normalize_username(user)?;
        users.contains_key(&name).then_some(name)
    });
    let Some(user) = known else {
        eprintln!("stepgate: no user \"{user}\" in the users file");
        return ExitCode::FAILURE;
    };
    let opened = stepgate::store::Store::open(&cfg.store, &cfg.server.data_dir)
        .map_err(stepgate::factor::FactorError::from)
        .and_then(|store| {
            let factors = stepgate::factor::Factors::open(
                store.clone(),
                &cfg.server.data_dir,
                cfg.two_factor.secret_key_file.as_deref(),
                stepgate::clock::system(),
            )?;
            Ok((store, factors))
        });
    let (store, factors) = match opened {
        Ok(f) => f,
        Err(e) => {
            eprintln!("stepgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = stepgate::store::run_blocking(async {
        match action {
            AdminAction::EnrolmentToken { ttl, .. } => {
                let ttl = ttl.unwrap_or(cfg.two_factor.enrolment_token_ttl);
                factors.issue_enrolment_token(&user, ttl).await.map(|token| {
                    println!("{token}");
                    eprintln!(
                        "enrolment token for {user}, valid for {}: give it to the user over a channel you trust; they enter it at the first step of two-step setup",
                        humantime::format_duration(ttl)
                    );
                })
            }
            AdminAction::Reset2fa { forget_contact, .. } => {
                factors.reset(&user, !forget_contact).await?;
                // Whoever has the lost phone may hold a signed-in browser on it.
                let ended = store.sessions().delete_sessions_of(&user, None).await?;
                println!(
                    "two-step verification of {user} removed and {} session(s) ended; they set it up again at their next sign-in",
                    ended.len()
                );
                Ok(())
            }
            AdminAction::Status { .. } => {
                let s = factors.summary(&user).await?;
                let events = store.audit().audit_of(&user, 10).await?;
                println!("user: {user}");
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
                    let at = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms),
                    );
                    let from = e.client.as_deref().unwrap_or("-");
                    println!("  {at} {} {} from {from}", e.event, e.detail);
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stepgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: PathBuf, listen: Option<SocketAddr>, data_dir: Option<PathBuf>) -> ExitCode {
    let mut cfg = match Config::load(&path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = listen {
        cfg.override_listen(addr);
    }
    if let Some(dir) = data_dir {
        cfg.server.data_dir = dir;
    }
    if let Err(e) = stepgate::telemetry::init(&cfg.log) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    match stepgate::app::run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("stepgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks a gateway config, or a users file (a top-level `users` table and no `listener`/`app`).
/// A file that cannot be read or parsed goes to the gateway check, which reports why.
fn check(path: PathBuf) -> ExitCode {
    let result = match std::fs::read_to_string(&path) {
        Ok(text) if stepgate::users::looks_like_users_file(&text) => {
            stepgate::users::validate_users(&path, &text).map(drop)
        }
        _ => Config::load(&path).map(drop),
    };
    match result {
        Ok(()) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("stepgate: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = input
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!("stepgate: empty password");
        return ExitCode::FAILURE;
    }
    let salt = SaltString::generate(&mut OsRng);
    match argon2::Argon2::default().hash_password(password.as_bytes(), &salt) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stepgate: {e}");
            ExitCode::FAILURE
        }
    }
}
