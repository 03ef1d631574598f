//! The `stepgate` binary: CLI -> Config::load -> telemetry::init -> app::run; the operator's
//! `admin` commands are in `admin.rs`.

mod admin;

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
    /// Print the version, and the database schema version this build reads and writes.
    Version,
    /// Operator commands on the gateway's data directory (safe while it runs).
    Admin {
        #[arg(long)]
        config: PathBuf,
        /// Replaces the file's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: admin::Action,
    },
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
        Command::Version => {
            println!(
                "stepgate {} (store schema {})",
                env!("CARGO_PKG_VERSION"),
                stepgate::store::SCHEMA_VERSION
            );
            ExitCode::SUCCESS
        }
        Command::HashPassword => hash_password(),
        Command::Admin {
            config,
            data_dir,
            action,
        } => admin::run(config, data_dir, action),
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
