//! `stepgate check` and `stepgate hash-password` as an operator runs them: the real binary, real
//! files, and the exact lines it prints (see docs/cli.md).
//!
//! Each file is written to its own temporary directory and the binary runs in that directory with
//! a relative `--config`, so every message starts with the plain file name.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stepgate");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().expect("stepgate was killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// `stepgate check --config NAME` run in `dir`.
fn check_in(dir: &Path, name: &str) -> Run {
    finish(
        Command::new(BIN)
            .args(["check", "--config", name])
            .current_dir(dir)
            .output()
            .expect("run stepgate"),
    )
}

/// Writes `text` to `stepgate.toml` in a fresh directory and checks it there.
fn check_text(text: &str) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stepgate.toml"), text).unwrap();
    let run = check_in(dir.path(), "stepgate.toml");
    (dir, run)
}

/// The exact stdout of a failed check: one line per problem.
fn lines(problems: &[&str]) -> String {
    let mut s = problems.join("\n");
    s.push('\n');
    s
}

fn assert_fails_with(run: &Run, problems: &[&str]) {
    assert_eq!(
        run.stdout,
        lines(problems),
        "stdout differs; stderr: {}",
        run.stderr
    );
    assert_eq!(run.code, 1, "exit code; stdout: {}", run.stdout);
    assert_eq!(run.stderr, "");
}

/// A self-signed certificate for `example.test` in `dir`, as `cert.pem` and `key.pem`.
fn write_cert(dir: &Path) {
    let ck = rcgen::generate_simple_self_signed(vec!["example.test".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
}

#[test]
fn a_valid_minimal_file_passes() {
    let (_dir, run) = check_text(
        r#"[[listener]]
address = "127.0.0.1:8080"

[[app]]
id = "whoami"
hosts = ["localhost"]
builtin = "whoami"

[[rule]]
policy = "bypass"
"#,
    );
    assert_eq!(run.stdout, "stepgate.toml: ok\n", "stderr: {}", run.stderr);
    assert_eq!(run.code, 0);
    assert_eq!(run.stderr, "");
}

#[test]
fn every_problem_is_reported_at_once_in_line_order() {
    // One problem on each marked line; none of them hides another.
    let text = r#"[server]
data_dir = "./data"
colour = "blue"
grace_period = "ten seconds"
trusted_proxies = ["10.0.0.0/33"]

[[listener]]
address = "127.0.0.1"

[[listener]]
address = "127.0.0.1:8443"
protocol = "https"

[[listener]]
address = "127.0.0.1:9443"
protocol = "https"

[[listener.certificate]]
cert_file = "missing.pem"
key_file = "missing-key.pem"

[[app]]
id = "whoami"
hosts = ["a.example.test"]
builtin = "whoami"

[[app]]
id = "whoami"
hosts = ["b.example.test"]
builtin = "whoami"

[[rule]]
path = "^/(unclosed"
policy = "two_factor"

[[rule]]
policy = "maybe"
"#;
    let (_dir, run) = check_text(text);
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:3: server.colour: unknown key, remove it or check its spelling (found `colour`)",
            r#"stepgate.toml:4: server.grace_period: must be a duration such as "30s", "5m" or "12h" (found "ten seconds")"#,
            r#"stepgate.toml:5: server.trusted_proxies[0]: must be a network such as "10.0.0.0/8" or an IP address (found "10.0.0.0/33")"#,
            r#"stepgate.toml:8: listener[0].address: must be an IP address and port such as "127.0.0.1:8080" or "[::]:443" (found "127.0.0.1")"#,
            "stepgate.toml:10: listener[1].certificate: an https listener needs at least one [[listener.certificate]] (found none)",
            r#"stepgate.toml:19: listener[2].certificate[0].cert_file: cannot read the certificate file: no such file or directory (found "missing.pem")"#,
            r#"stepgate.toml:28: app[1].id: another app already has this id (found "whoami")"#,
            r#"stepgate.toml:33: rule[0].path: not a valid regular expression: unclosed group (found "^/(unclosed")"#,
            r#"stepgate.toml:37: rule[1].policy: must be "bypass", "one_factor", "two_factor" or "deny" (found "maybe")"#,
        ],
    );
}

#[test]
fn a_toml_syntax_error_reports_its_line() {
    let (_dir, run) = check_text(
        r#"[server]
data_dir = "./data"

[[listener]]
address = "127.0.0.1:8080"
protocol = http
"#,
    );
    assert_fails_with(
        &run,
        &["stepgate.toml:6: listener.protocol: invalid string, expected `\"`, `'` (found `h`)"],
    );
}

#[test]
fn unknown_keys_in_plain_sections_are_reported_with_their_lines() {
    let (_dir, run) = check_text(
        r#"colour = "blue"

[server]
dat_dir = "./data"

[identity]
extra = 1

[identity.headers]
usr = "X-User"

[[listener]]
address = "127.0.0.1:8080"
"#,
    );
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:1: colour: unknown key, remove it or check its spelling (found `colour`)",
            "stepgate.toml:4: server.dat_dir: unknown key, remove it or check its spelling (found `dat_dir`)",
            "stepgate.toml:7: identity.extra: unknown key, remove it or check its spelling (found `extra`)",
            "stepgate.toml:10: identity.headers.usr: unknown key, remove it or check its spelling (found `usr`)",
        ],
    );
}

#[test]
fn unknown_keys_at_every_depth_are_reported_with_their_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    std::fs::write(
        dir.path().join("stepgate.toml"),
        r#"colour = "blue"

[[listener]]
address = "127.0.0.1:8443"
protocol = "https"
backlog = 10

[[listener.certificate]]
cert_file = "cert.pem"
key_file = "key.pem"
flavour = "ec"

[[app]]
id = "wiki"
hosts = ["wiki.example.test"]
upstreams = ["https://127.0.0.1:3000"]
upstream_count = 2

[app.tls]
verify = false

[app.health_check]
every = "5s"

[[rule]]
policy = "bypass"
who = "alice"
"#,
    )
    .unwrap();
    let run = check_in(dir.path(), "stepgate.toml");
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:1: colour: unknown key, remove it or check its spelling (found `colour`)",
            "stepgate.toml:6: listener[0].backlog: unknown key, remove it or check its spelling (found `backlog`)",
            "stepgate.toml:11: listener[0].certificate[0].flavour: unknown key, remove it or check its spelling (found `flavour`)",
            "stepgate.toml:17: app[0].upstream_count: unknown key, remove it or check its spelling (found `upstream_count`)",
            "stepgate.toml:20: app[0].tls.verify: unknown key, remove it or check its spelling (found `verify`)",
            "stepgate.toml:23: app[0].health_check.every: unknown key, remove it or check its spelling (found `every`)",
            "stepgate.toml:27: rule[0].who: unknown key, remove it or check its spelling (found `who`)",
        ],
    );
}

#[test]
fn missing_required_keys_are_each_reported_at_their_table() {
    let (_dir, run) = check_text(
        r#"[[listener]]
protocol = "http"

[[app]]
hosts = ["a.test"]
builtin = "whoami"

[[rule]]
path = "^/"
"#,
    );
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:1: listener[0].address: this key is required (found none)",
            "stepgate.toml:4: app[0].id: this key is required (found none)",
            "stepgate.toml:8: rule[0].policy: this key is required (found none)",
        ],
    );
}

#[test]
fn the_metrics_listener_is_an_address_and_port() {
    let (_dir, run) = check_text(
        r#"[metrics]
listen = "localhost:9464"

[[listener]]
address = "127.0.0.1:8080"

[[app]]
id = "w"
hosts = ["a.test"]
builtin = "whoami"

[[rule]]
policy = "bypass"
"#,
    );
    assert_fails_with(
        &run,
        &["stepgate.toml:2: metrics.listen: must be an IP address and port such as \"127.0.0.1:8080\" or \"[::]:443\" (found \"localhost:9464\")"],
    );
}

#[test]
fn rules_that_need_sign_in_need_a_users_file() {
    let (_dir, run) = check_text(
        r#"[[listener]]
address = "127.0.0.1:8080"

[[rule]]
policy = "one_factor"
"#,
    );
    assert_fails_with(
        &run,
        &["stepgate.toml:1: users.file: rules ask for sign-in, so a users file is needed (found none)"],
    );
}

#[test]
fn keys_that_would_be_ignored_are_refused() {
    let (_dir, run) = check_text(
        r#"[[listener]]
address = "127.0.0.1:8080"
http2 = true

[[app]]
id = "who"
hosts = ["a.test"]
builtin = "whoami"
read_timeout = "1s"

[[app]]
id = "plain"
hosts = ["b.test"]
upstreams = ["http://127.0.0.1:3000"]

[app.tls]
verify_cert = false

[[app]]
id = "decided"
hosts = ["c.test"]
forward_auth = true
upstreams = ["http://127.0.0.1:3000"]

[[rule]]
subjects = ["user:alice"]
policy = "bypass"
"#,
    );
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:1: listener[0].http2: only goes with protocol = \"https\" (found protocol = \"http\")",
            "stepgate.toml:8: app[0].read_timeout: only goes with `upstreams`, not with a built-in app (found both)",
            "stepgate.toml:14: app[1].tls: [app.tls] only applies to https:// upstreams (found an http upstream)",
            "stepgate.toml:22: app[2].upstreams: an app with `forward_auth = true` is served by your own proxy, not through the gateway (found both)",
            "stepgate.toml:27: rule[0].subjects: a bypass rule lets everyone in, so it cannot name subjects; use one_factor or two_factor (found subjects)",
        ],
    );
}

#[test]
fn the_store_section_names_a_database_and_never_prints_its_password() {
    let (_dir, run) = check_text(
        r#"[[listener]]
address = "127.0.0.1:8080"

[store]
url = "mysql://stepgate:hunter2@db.test/stepgate"
redis_url = "rediss://:hunter2@127.0.0.1:6379/0"
"#,
    );
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:5: store.url: must be \"sqlite\", \"sqlite:PATH\" or a PostgreSQL URL such as \"postgres://stepgate@db.internal/stepgate\" (found \"mysql://stepgate:***@db.test/stepgate\")",
            "stepgate.toml:6: store.redis_url: must start with redis:// (TLS to Redis is not built in: reach a remote Redis over a tunnel) (found \"rediss://:***@127.0.0.1:6379/0\")",
        ],
    );
    let (_dir, run) = check_text(
        "[[listener]]\naddress = \"127.0.0.1:8080\"\n[store]\nredis_url = \"redis://127.0.0.1:6379\"\nredis_prefix = \"a b\"\n",
    );
    assert_fails_with(
        &run,
        &["stepgate.toml:4: store.redis_url: needs a PostgreSQL store.url: Redis shares the failure limits of several gateways, and SQLite is one gateway's own (found store.url = sqlite)"],
    );
    let (_dir, run) = check_text(
        "[[listener]]\naddress = \"127.0.0.1:8080\"\n[store]\nurl = \"postgres://stepgate:s3cret@127.0.0.1/stepgate\"\nurl_file = \"db.url\"\n",
    );
    assert_fails_with(
        &run,
        &["stepgate.toml:5: store.url_file: give either url or url_file, not both (found both)"],
    );
    for good in [
        "sqlite",
        "sqlite:state/other.db",
        "postgresql://stepgate@db.internal:5433/sg",
    ] {
        let (_dir, run) = check_text(&format!(
            "[[listener]]\naddress = \"127.0.0.1:8080\"\n[store]\nurl = \"{good}\"\n"
        ));
        assert_eq!(run.code, 0, "{good}: {}", run.stdout);
    }
}

/// The shipped files are checked from the crate root, where their relative paths point.
fn check_shipped(name: &str) {
    let run = check_in(Path::new(env!("CARGO_MANIFEST_DIR")), name);
    assert_eq!(
        run.stdout,
        format!("{name}: ok\n"),
        "stderr: {}",
        run.stderr
    );
    assert_eq!(run.code, 0);
}

#[test]
fn the_quickstart_config_passes() {
    check_shipped("config/quickstart.toml");
}

#[test]
fn the_example_config_passes() {
    check_shipped("config/example.toml");
}

/// dist/production.toml names files under /etc/stepgate and a data directory under /var/lib;
/// with those in place (the example certificate, the quickstart users, a password), it passes.
#[test]
fn the_production_example_passes_once_its_files_are_in_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("tls")).unwrap();
    for (from, to) in [
        (
            "config/example-certs/example.test.pem",
            "tls/example.com.pem",
        ),
        (
            "config/example-certs/example.test-key.pem",
            "tls/example.com-key.pem",
        ),
        ("config/quickstart-users.toml", "users.toml"),
        ("config/example-secrets/smtp-password", "smtp-password"),
    ] {
        std::fs::copy(root.join(from), etc.join(to)).unwrap();
    }
    let text = std::fs::read_to_string(root.join("dist/production.toml"))
        .unwrap()
        .replace("/etc/stepgate/", &format!("{}/", etc.display()))
        .replace(
            "/var/lib/stepgate",
            &dir.path().join("data").display().to_string(),
        );
    std::fs::write(dir.path().join("stepgate.toml"), text).unwrap();
    let run = check_in(dir.path(), "stepgate.toml");
    assert_eq!(run.stdout, "stepgate.toml: ok\n", "stderr: {}", run.stderr);
    assert_eq!(run.code, 0);
}

/// dist/stepgate.service passes `systemd-analyze verify` (with the binary where the unit
/// expects it: this build's, substituted).
#[test]
fn the_systemd_unit_verifies() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (CI=true)"
        );
        eprintln!("skipping: no systemd-analyze (apt-get install systemd)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root.join("dist/stepgate.service"))
        .unwrap()
        .replace("/usr/local/bin/stepgate", BIN);
    let path = dir.path().join("stepgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    // Only about this unit (the machine's own units may have complaints of their own).
    let about: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("stepgate.service"))
        .collect();
    assert!(about.is_empty(), "{said}");
}

#[test]
fn version_names_the_release_and_the_store_schema() {
    let run = finish(Command::new(BIN).arg("version").output().unwrap());
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        format!(
            "stepgate {} (store schema {})\n",
            env!("CARGO_PKG_VERSION"),
            stepgate::store::SCHEMA_VERSION
        )
    );
}

#[test]
fn hash_password_prints_an_argon2id_hash_that_verifies() {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stepgate");
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let run = finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let hash = run.stdout.strip_suffix('\n').expect("one line");
    assert!(hash.starts_with("$argon2id$"), "got {hash:?}");
    assert!(!hash.contains('\n'));

    let parsed = PasswordHash::new(hash).expect("a PHC string");
    let argon2 = argon2::Argon2::default();
    argon2
        .verify_password(b"secret", &parsed)
        .expect("verifies the password without the newline");
    assert!(argon2.verify_password(b"secret\n", &parsed).is_err());
    assert!(argon2.verify_password(b"other", &parsed).is_err());
}

#[test]
fn two_factor_and_notify_problems_are_reported_with_their_lines() {
    let text = r#"[two_factor]
required_from = "next monday"
grace_skips = -1
code_ttl = "20m"
issuer = "a:b"

[notify]
email = "pigeon"
sms = "smtp"

[notify.smtp]
host = "smtp.example.test"
tls = "none"
from = "not an address"

[notify.webhook]
url = "ftp://x"
retries = 11

[[listener]]
address = "127.0.0.1:8080"

[[app]]
id = "whoami"
hosts = ["localhost"]
builtin = "whoami"

[[rule]]
policy = "bypass"
"#;
    let (_dir, run) = check_text(text);
    assert_fails_with(
        &run,
        &[
            r#"stepgate.toml:2: two_factor.required_from: must be a date such as "2026-12-01" or an RFC 3339 time such as "2026-12-01T09:00:00+09:00" (found "next monday")"#,
            "stepgate.toml:3: two_factor.grace_skips: must be from 0 to 1000 (found -1)",
            r#"stepgate.toml:4: two_factor.code_ttl: must be at most 10m (found "20m")"#,
            r#"stepgate.toml:5: two_factor.issuer: must be a non-empty name without ':' (found "a:b")"#,
            r#"stepgate.toml:8: notify.email: must be one of "outbox", "smtp", "webhook" (found "pigeon")"#,
            r#"stepgate.toml:9: notify.sms: must be one of "outbox", "webhook" (found "smtp")"#,
            r#"stepgate.toml:13: notify.smtp.tls: "none" is allowed only for a loopback host; use "starttls" or "implicit" (found host "smtp.example.test")"#,
            r#"stepgate.toml:14: notify.smtp.from: must be an address such as "Acme <no-reply@acme.test>" (found "not an address")"#,
            r#"stepgate.toml:17: notify.webhook.url: must be an absolute http(s) URL (found "ftp://x")"#,
            "stepgate.toml:18: notify.webhook.retries: must be from 0 to 10 (found 11)",
        ],
    );
}

#[test]
fn webhook_form_auth_signing_and_secret_problems_are_reported_without_the_secrets() {
    let text = r#"[[listener]]
address = "127.0.0.1:8080"

[notify]
sms = "webhook"

[notify.webhook]
url = "https://sms.example.test/send"
body_format = "form"
body_template = '{"to": {{ to|tojson }}}'
basic_auth_user = "AC:01"
basic_auth_password = "inline-s3cret"
basic_auth_password_file = "missing-password"
signing_secret = "not-a-whsec-s3cret"
headers = { Authorization = "Bearer x", webhook-id = "fixed", X-Sig = "{{ body|hmac_sha256(secrets.nope) }}" }

[notify.webhook.form_fields]
To = "{{ to }"
Body = "{{ txt }}"

[notify.webhook.secrets]
key = "k"
key_file = "k.txt"
bad-name = "x"
"#;
    let (_dir, run) = check_text(text);
    assert_fails_with(
        &run,
        &[
            r#"stepgate.toml:10: notify.webhook.body_template: makes a JSON body, so it goes with body_format = "json"; a form body is made of form_fields (found body_format = "form")"#,
            r#"stepgate.toml:11: notify.webhook.basic_auth_user: must not contain ':', which separates the user from the password (found "AC:01")"#,
            "stepgate.toml:13: notify.webhook.basic_auth_password_file: give either basic_auth_password or basic_auth_password_file, not both (found both)",
            r#"stepgate.toml:14: notify.webhook.signing_secret: must be "whsec_" followed by the base64 of 24 to 64 random bytes (found a value without the "whsec_" prefix)"#,
            "stepgate.toml:15: notify.webhook.headers.Authorization: is set by basic_auth_user; keep either the header or the basic_auth keys (found both)",
            "stepgate.toml:15: notify.webhook.headers.webhook-id: is set by signing_secret (Standard Webhooks); keep either the header or the secret (found both)",
            r#"stepgate.toml:15: notify.webhook.headers.X-Sig: must render for every message (found the error "undefined value: hmac_sha256: the key is undefined (a misspelt variable or secret name?) (in headers.X-Sig:1)" with a sample message)"#,
            "stepgate.toml:18: notify.webhook.form_fields.To: the template does not compile: syntax error: unexpected `}`, expected end of variable block (in form_fields.To:1) (found a template)",
            r#"stepgate.toml:19: notify.webhook.form_fields.Body: must render for every message (found the error "undefined value (in form_fields.Body:1)" with a sample message)"#,
            "stepgate.toml:23: notify.webhook.secrets.key_file: give either key or key_file, not both (found both)",
            r#"stepgate.toml:24: notify.webhook.secrets.bad-name: must be a name of ASCII letters, digits and _, not starting with a digit, so that templates can say secrets.NAME (found "bad-name")"#,
        ],
    );
    assert!(!run.stdout.contains("s3cret"), "{}", run.stdout);
}

#[test]
fn webhook_json_bodies_refuse_form_keys_and_templates_that_are_not_json() {
    let dir = tempfile::tempdir().unwrap();
    // 5 bytes after whsec_, newline trimmed; the spec asks for 24 to 64.
    std::fs::write(dir.path().join("short-secret"), "whsec_c2hvcnQ=\n").unwrap();
    std::fs::write(
        dir.path().join("stepgate.toml"),
        r#"[[listener]]
address = "127.0.0.1:8080"

[notify]
sms = "webhook"

[notify.webhook]
url = "https://sms.example.test/send"
form_fields = { To = "{{ to }}" }
basic_auth_password = "s3cret"
signing_secret_file = "short-secret"
body_template = '{"text": "{{ text }}"}'
headers = { X-Text = "{{ text }}" }
secrets = { api_key_file = "missing-key" }
"#,
    )
    .unwrap();
    let run = check_in(dir.path(), "stepgate.toml");
    assert_fails_with(
        &run,
        &[
            r#"stepgate.toml:9: notify.webhook.form_fields: go with body_format = "form" (found no body_format, so JSON)"#,
            "stepgate.toml:10: notify.webhook.basic_auth_password: goes with basic_auth_user (found no basic_auth_user)",
            r#"stepgate.toml:11: notify.webhook.signing_secret_file: must be "whsec_" followed by the base64 of 24 to 64 random bytes (found 5 bytes)"#,
            r#"stepgate.toml:12: notify.webhook.body_template: must produce JSON for every message; encode values with the tojson filter, e.g. {"text": {{ text|tojson }}} (found output that is not JSON (expected `,` or `}` at line 1 column 17) with a sample message)"#,
            "stepgate.toml:13: notify.webhook.headers.X-Text: must render to a valid header value (found a control character or non-ASCII text with a sample message)",
            r#"stepgate.toml:14: notify.webhook.secrets.api_key_file: cannot read the file: No such file or directory (os error 2) (found "missing-key")"#,
        ],
    );

    let (_dir, run) = check_text(
        r#"[[listener]]
address = "127.0.0.1:8080"

[notify.webhook]
url = "https://sms.example.test/send"
body_format = "form"
basic_auth_user = "AC01"
"#,
    );
    assert_fails_with(
        &run,
        &[
            r#"stepgate.toml:6: notify.webhook.form_fields: body_format = "form" needs a form_fields table with at least one field (found none)"#,
            "stepgate.toml:7: notify.webhook.basic_auth_user: needs basic_auth_password or basic_auth_password_file (found neither)",
        ],
    );

    let (_dir, run) = check_text(
        "[[listener]]\naddress = \"127.0.0.1:8080\"\n[notify.webhook]\nurl = \"https://sms.example.test/send\"\nbody_format = \"xml\"\n",
    );
    assert_fails_with(
        &run,
        &[r#"stepgate.toml:5: notify.webhook.body_format: must be "json" or "form" (found "xml")"#],
    );
}

#[test]
fn a_webhook_with_every_new_key_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auth-token"), "t0ken\n").unwrap();
    std::fs::write(
        dir.path().join("signing-secret"),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ncp-secret"), "s3cret\n").unwrap();
    std::fs::write(
        dir.path().join("stepgate.toml"),
        r#"[[listener]]
address = "127.0.0.1:8080"

[notify]
sms = "webhook"

[notify.webhook]
url = "https://sms.example.test/send"
body_format = "form"
basic_auth_user = "AC0001"
basic_auth_password_file = "auth-token"
signing_secret_file = "signing-secret"
headers = { X-Timestamp = "{{ timestamp }}", X-Signature = '{{ (timestamp ~ "\n" ~ body)|hmac_sha256_base64(secrets.ncp_secret) }}', X-Hash = "{{ body|sha256 }}" }

[notify.webhook.form_fields]
To = "{{ to }}"
From = "+15005550006"
Body = "{{ text }}"

[notify.webhook.secrets]
ncp_secret_file = "ncp-secret"
access_key = "AK0001"
"#,
    )
    .unwrap();
    let run = check_in(dir.path(), "stepgate.toml");
    assert_eq!(run.stdout, "stepgate.toml: ok\n", "stderr: {}", run.stderr);
    assert_eq!(run.code, 0);
}

#[test]
fn passkey_problems_are_reported_with_their_lines() {
    let head = "[[listener]]\naddress = \"127.0.0.1:8080\"\n\n[[app]]\nid = \"whoami\"\nhosts = [\"localhost\"]\nbuiltin = \"whoami\"\n\n";
    let (_dir, run) = check_text(&format!(
        "{head}[passkeys]\nenabled = true\nrp_id = \"example.test\"\nrp_name = \"\"\norigins = [\"https://example.test\", \"http://app.example.test\", \"https://evil.test\", \"https://example.test/path\"]\n"
    ));
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:12: passkeys.rp_name: must not be empty (found \"\")",
            "stepgate.toml:13: passkeys.origins[1]: must be an https:// origin (http:// only for localhost) (found \"http://app.example.test\")",
            "stepgate.toml:13: passkeys.origins[2]: the host must be the rp_id or a name under it (found \"https://evil.test\")",
            "stepgate.toml:13: passkeys.origins[3]: must be an origin only: scheme, host and port, no path (found \"https://example.test/path\")",
        ],
    );
    let (_dir, run) = check_text(&format!(
        "{head}[passkeys]\nenabled = true\nrp_id = \"127.0.0.1\"\n"
    ));
    assert_fails_with(
        &run,
        &["stepgate.toml:11: passkeys.rp_id: must be a lowercase host name such as \"example.com\", without scheme or port; browsers refuse IP addresses (found \"127.0.0.1\")"],
    );
    let (_dir, run) = check_text(&format!("{head}[passkeys]\nenabled = true\n"));
    assert_fails_with(
        &run,
        &["stepgate.toml:9: passkeys.rp_id: this key is required (found none)"],
    );
    let (_dir, run) = check_text(&format!(
        "{head}[passkeys]\nenabled = true\nrp_id = \"localhost\"\norigins = [\"http://localhost:8080\"]\n"
    ));
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn client_certificate_problems_are_reported_with_their_lines() {
    let head = "[[app]]\nid = \"whoami\"\nhosts = [\"localhost\"]\nbuiltin = \"whoami\"\n\n";
    let cert = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/example-certs/example.test.pem"
    );
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/example-certs/example.test-key.pem"
    );
    let https = |table: &str| {
        format!(
            "{head}[[listener]]\naddress = \"127.0.0.1:8443\"\nprotocol = \"https\"\n[[listener.certificate]]\ncert_file = '{cert}'\nkey_file = '{key}'\n[listener.client_certificates]\n{table}"
        )
    };
    let (_dir, run) = check_text(&https("trust = \"pinned\"\n"));
    assert_fails_with(
        &run,
        &["stepgate.toml:13: listener[0].client_certificates.trust: must be \"registered\" or \"ca\" (found \"pinned\")"],
    );
    let (_dir, run) = check_text(&https("trust = \"ca\"\n"));
    assert_fails_with(
        &run,
        &["stepgate.toml:12: listener[0].client_certificates.ca_files: trust = \"ca\" needs at least one CA file (found none)"],
    );
    let (_dir, run) = check_text(&https("crl_files = ['/nonexistent/bank.crl']\n"));
    assert_fails_with(
        &run,
        &["stepgate.toml:12: listener[0].client_certificates: cannot use the files: /nonexistent/bank.crl: No such file or directory (os error 2)"],
    );
    let (_dir, run) = check_text(&format!(
        "{head}[[listener]]\naddress = \"127.0.0.1:8080\"\n[listener.client_certificates]\n\n[[rule]]\npolicy = \"bypass\"\nclient_certificate = true\n"
    ));
    assert_fails_with(
        &run,
        &[
            "stepgate.toml:8: listener[0].client_certificates: only goes with protocol = \"https\" (found protocol = \"http\")",
            "stepgate.toml:12: rule[0].client_certificate: only goes with policy \"one_factor\" or \"two_factor\" (found policy \"bypass\")",
        ],
    );
    let (_dir, run) = check_text(&https("trust = \"registered\"\n"));
    assert_eq!(run.code, 0, "{}", run.stdout);
}
