//! What a message says: the wording of every one-time code and security notice, in English and
//! Korean, as an email (subject and body) or as one short line for SMS and push.
//!
//! The wording lives in minijinja templates compiled into the binary (`notify/templates/`, one per
//! kind and language, all extending `layout.<lang>.txt`). Each template defines the blocks
//! `title` (the subject after `[service] `), `body` (the email between greeting and sign-off),
//! `line` (the SMS/push text after `[service] `), and may override `greeting` and `link`.
//! Rendering never fails the caller: if a template cannot be rendered, a fixed plain text in the
//! same language takes its place (and the problem is logged).

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use minijinja::{context, Environment, UndefinedBehavior};

use crate::i18n::Lang;

/// How a message reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message, ready to send. `Debug` prints neither the code, the text nor the link.
#[derive(Clone, serde::Serialize)]
pub struct Message {
    pub channel: Channel,
    /// An email address, a phone number (E.164) or a push target, by channel.
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The one-time code the text carries, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The URL the text asks the user to open, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Which message this is (`MessageKind::name`, e.g. `"enrolment_code"`), for logs.
    #[serde(skip)]
    pub kind: &'static str,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |present: bool| present.then_some("<redacted>");
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("kind", &self.kind)
            .field("to", &super::mask_recipient(&self.to))
            .field("subject", &self.subject)
            .field("text", &"<redacted>")
            .field("code", &hidden(self.code.is_some()))
            .field("link", &hidden(self.link.is_some()))
            .finish()
    }
}

/// When, from which address and on which browser a change was made: security notices of a
/// change say so, so that the user can tell their own change from someone else's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The client address the gateway saw (socket or trusted proxy).
    pub address: String,
    /// A short description of the browser, e.g. "Chrome on Android".
    pub browser: String,
}

impl Origin {
    /// `2026-12-01 08:30 UTC`.
    fn when(&self) -> String {
        let secs = i64::try_from(self.at_ms / 1000).unwrap_or(i64::MAX);
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()),
            Err(_) => "-".to_owned(),
        }
    }
}

/// What happened, with the facts the wording needs.
#[derive(Debug, Clone, Copy)]
pub enum MessageKind<'a> {
    /// A one-time code proving the user owns their registered email before first enrolment.
    EnrolmentCode {
        code: &'a str,
    },
    /// A one-time code verifying a newly entered emergency contact email.
    EmergencyEmailCode {
        code: &'a str,
    },
    /// A second factor was added. `factor` is a key (`totp`, `webauthn`, `passkey`, `sms`,
    /// `email`, `recovery_codes`) localized here, or a label used as given.
    FactorAdded {
        factor: &'a str,
        origin: &'a Origin,
    },
    FactorRemoved {
        factor: &'a str,
        origin: &'a Origin,
    },
    /// The authenticator of kind `factor` was replaced by a new one; the old one stopped working.
    FactorReplaced {
        factor: &'a str,
        origin: &'a Origin,
    },
    /// The emergency contact email was changed to `new` (masked).
    EmergencyEmailChanged {
        new: &'a str,
        origin: &'a Origin,
    },
    RecoveryCodeUsed {
        remaining: usize,
    },
    RecoveryCodesRegenerated {
        origin: &'a Origin,
    },
    /// An already-used authenticator code was presented again (possible phishing/replay).
    CodeReplayed,
    /// A correct password was followed by failed second-factor attempts.
    SecondFactorFailed,
}

impl MessageKind<'_> {
    /// A stable snake_case name, also the template's file stem.
    pub fn name(&self) -> &'static str {
        match self {
            MessageKind::EnrolmentCode { .. } => "enrolment_code",
            MessageKind::EmergencyEmailCode { .. } => "emergency_email_code",
            MessageKind::FactorAdded { .. } => "factor_added",
            MessageKind::FactorRemoved { .. } => "factor_removed",
            MessageKind::FactorReplaced { .. } => "factor_replaced",
            MessageKind::EmergencyEmailChanged { .. } => "emergency_email_changed",
            MessageKind::RecoveryCodeUsed { .. } => "recovery_code_used",
            MessageKind::RecoveryCodesRegenerated { .. } => "recovery_codes_regenerated",
            MessageKind::CodeReplayed => "code_replayed",
            MessageKind::SecondFactorFailed => "second_factor_failed",
        }
    }

    /// When and where the change this notice reports was made, if it reports one.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            MessageKind::FactorAdded { origin, .. }
            | MessageKind::FactorRemoved { origin, .. }
            | MessageKind::FactorReplaced { origin, .. }
            | MessageKind::EmergencyEmailChanged { origin, .. }
            | MessageKind::RecoveryCodesRegenerated { origin } => Some(origin),
            _ => None,
        }
    }

    /// The one-time code this message carries, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            MessageKind::EnrolmentCode { code } | MessageKind::EmergencyEmailCode { code } => {
                Some(code)
            }
            _ => None,
        }
    }
}

/// Composes a message from templates, in Korean or English. `lang` is "en" or "ko" (a tag such as
/// "ko-KR" counts as "ko"; anything else = en). `service` is the operator's service name; `user`
/// the user's display name; `link` an optional URL the user should open (e.g. the account page),
/// put in both the text and `link`.
pub fn compose(
    kind: &MessageKind<'_>,
    lang: &str,
    channel: Channel,
    to: &str,
    service: &str,
    user: &str,
    link: Option<&str>,
) -> Message {
    let lang = Lang::from_tag(lang).unwrap_or(Lang::En);
    let (subject, text) = match render(templates(), kind, lang, channel, service, user, link) {
        Ok(parts) => parts,
        Err(e) => {
            // The error names the template and line, never the values.
            tracing::error!(
                target: super::LOG_TARGET,
                kind = kind.name(),
                lang = lang.tag(),
                error = %e,
                "message template failed; sending the fixed fallback text"
            );
            fallback(kind, lang, service, link)
        }
    };
    Message {
        channel,
        to: to.to_owned(),
        subject,
        text,
        code: kind.code().map(str::to_owned),
        link: link.map(str::to_owned),
        kind: kind.name(),
    }
}

/// `(file name, source)` of every template, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.en.txt", include_str!("templates/layout.en.txt")),
    ("layout.ko.txt", include_str!("templates/layout.ko.txt")),
    (
        "enrolment_code.en.txt",
        include_str!("templates/enrolment_code.en.txt"),
    ),
    (
        "enrolment_code.ko.txt",
        include_str!("templates/enrolment_code.ko.txt"),
    ),
    (
        "emergency_email_code.en.txt",
        include_str!("templates/emergency_email_code.en.txt"),
    ),
    (
        "emergency_email_code.ko.txt",
        include_str!("templates/emergency_email_code.ko.txt"),
    ),
    (
        "factor_added.en.txt",
        include_str!("templates/factor_added.en.txt"),
    ),
    (
        "factor_added.ko.txt",
        include_str!("templates/factor_added.ko.txt"),
    ),
    (
        "factor_removed.en.txt",
        include_str!("templates/factor_removed.en.txt"),
    ),
    (
        "factor_removed.ko.txt",
        include_str!("templates/factor_removed.ko.txt"),
    ),
    (
        "factor_replaced.en.txt",
        include_str!("templates/factor_replaced.en.txt"),
    ),
    (
        "factor_replaced.ko.txt",
        include_str!("templates/factor_replaced.ko.txt"),
    ),
    (
        "emergency_email_changed.en.txt",
        include_str!("templates/emergency_email_changed.en.txt"),
    ),
    (
        "emergency_email_changed.ko.txt",
        include_str!("templates/emergency_email_changed.ko.txt"),
    ),
    (
        "recovery_code_used.en.txt",
        include_str!("templates/recovery_code_used.en.txt"),
    ),
    (
        "recovery_code_used.ko.txt",
        include_str!("templates/recovery_code_used.ko.txt"),
    ),
    (
        "recovery_codes_regenerated.en.txt",
        include_str!("templates/recovery_codes_regenerated.en.txt"),
    ),
    (
        "recovery_codes_regenerated.ko.txt",
        include_str!("templates/recovery_codes_regenerated.ko.txt"),
    ),
    (
        "code_replayed.en.txt",
        include_str!("templates/code_replayed.en.txt"),
    ),
    (
        "code_replayed.ko.txt",
        include_str!("templates/code_replayed.ko.txt"),
    ),
    (
        "second_factor_failed.en.txt",
        include_str!("templates/second_factor_failed.en.txt"),
    ),
    (
        "second_factor_failed.ko.txt",
        include_str!("templates/second_factor_failed.ko.txt"),
    ),
];

/// The compiled templates. Immutable once built, so one per process is shared by every gateway
/// (no per-gateway state lives here).
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Plain text: nothing to escape. A variable the template names but the context lacks
        // is a bug, caught by the unit tests rather than rendered as nothing.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                // Missing templates fall back at render time; the unit tests keep this unreachable.
                tracing::error!(target: super::LOG_TARGET, template = name, error = %e, "message template does not compile");
            }
        }
        env
    })
}

/// Renders `(subject, text)` for one message.
fn render(
    env: &Environment<'_>,
    kind: &MessageKind<'_>,
    lang: Lang,
    channel: Channel,
    service: &str,
    user: &str,
    link: Option<&str>,
) -> Result<(String, String), minijinja::Error> {
    let (factor, remaining) = match kind {
        MessageKind::FactorAdded { factor, .. }
        | MessageKind::FactorRemoved { factor, .. }
        | MessageKind::FactorReplaced { factor, .. } => (factor_label(factor, lang), 0),
        MessageKind::RecoveryCodeUsed { remaining } => (Cow::Borrowed(""), *remaining),
        _ => (Cow::Borrowed(""), 0),
    };
    let new_address = match kind {
        MessageKind::EmergencyEmailChanged { new, .. } => one_line(new),
        _ => String::new(),
    };
    let origin = kind.origin().map(|o| {
        context! {
            when => o.when(),
            address => one_line(&o.address),
            browser => one_line(&o.browser),
        }
    });
    let template = env.get_template(&format!("{}.{}.txt", kind.name(), lang.tag()))?;
    // Rendering the whole template has no output we want (its text is discarded); it leaves
    // the state from which the blocks are rendered one by one.
    let ctx = context! {
        service => one_line(service),
        user => one_line(user),
        code => kind.code().unwrap_or(""),
        link => link,
        factor => factor,
        remaining => remaining,
        new_address => new_address,
        origin => origin,
    };
    let mut captured = template.render_captured_to(ctx, std::io::sink())?;
    captured.with_state_mut(|state| {
        let subject = one_line(&state.render_block("subject")?);
        let text = match channel {
            Channel::Email => tidy(&state.render_block("email")?),
            Channel::Sms | Channel::Push => one_line(&state.render_block("sms")?),
        };
        Ok((subject, text))
    })
}

/// A factor key in the user's language; an unknown key is taken as an already readable label.
fn factor_label(factor: &str, lang: Lang) -> Cow<'_, str> {
    let key = factor.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    let (en, ko) = match key.as_str() {
        "totp" | "otp" | "authenticator" | "authenticator_app" => ("authenticator app", "인증 앱"),
        "webauthn" | "security_key" | "fido" | "fido2" => ("security key", "보안 키"),
        "passkey" => ("passkey", "패스키"),
        "sms" | "phone" | "text_message" => ("text message (SMS)", "문자 메시지(SMS)"),
        "email" | "email_code" => ("email", "이메일"),
        "recovery_codes" | "recovery_code" | "recovery" => ("recovery codes", "복구 코드"),
        _ => return Cow::Owned(one_line(factor)),
    };
    Cow::Borrowed(match lang {
        Lang::En => en,
        Lang::Ko => ko,
    })
}

/// Collapses all whitespace (newlines included) to single spaces: for subjects, SMS and push
/// lines, and for names put into them.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An email body: no trailing spaces, at most one blank line in a row, no blank lines at the ends.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out.push('\n');
    out
}

/// The fixed text used when a template cannot be rendered: plain, in the same language, with the
/// code and the link.
fn fallback(
    kind: &MessageKind<'_>,
    lang: Lang,
    service: &str,
    link: Option<&str>,
) -> (String, String) {
    let service = one_line(service);
    let (subject, mut text) = match (kind.code(), lang) {
        (Some(code), Lang::En) => (
            format!("[{service}] Your verification code"),
            format!(
                "Your verification code is {code}. It is valid for 10 minutes. \
                 If you did not request it, ignore this message and change your password."
            ),
        ),
        (Some(code), Lang::Ko) => (
            format!("[{service}] 인증 코드 안내"),
            format!(
                "인증 코드는 {code}입니다. 10분 동안 유효합니다. \
                 본인이 요청하지 않았다면 이 메시지를 무시하고 비밀번호를 변경해 주세요."
            ),
        ),
        (None, Lang::En) => (
            format!("[{service}] Security notice"),
            "There was just a security-related change or sign-in attempt on your account. \
             If it was not you, change your password and contact your administrator."
                .to_owned(),
        ),
        (None, Lang::Ko) => (
            format!("[{service}] 보안 알림"),
            "방금 회원님의 계정에 보안 관련 변경이나 로그인 시도가 있었습니다. \
             본인이 아니라면 비밀번호를 변경하고 관리자에게 문의해 주세요."
                .to_owned(),
        ),
    };
    if let Some(link) = link {
        text.push(' ');
        text.push_str(link);
    }
    (subject, text)
}

#[cfg(test)]
mod tests;
