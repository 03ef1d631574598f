//! What a message says: the wording of every one-time code and security notice, in English and
//! Korean, as an email (subject and body) or as one short line for SMS and push.
//!
//! The wording lives in the catalogue (`crate::i18n`, `i18n/<lang>/messages.ftl`): for each kind,
//! `K-title` (the subject after `[service] `), `K-body` (the email between greeting and
//! sign-off) and `K-line` (the SMS/push text after `[service] `), plus the parts every email
//! shares. Composing never fails the caller: if a text cannot be rendered, a fixed plain text in
//! the same language takes its place (and the problem is logged).

use std::fmt;

use crate::i18n::{Arg, Catalogue, Lang, TextError};

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
    /// The 2FA phone was changed to `new` (masked).
    PhoneChanged {
        new: &'a str,
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
    /// A code proving a phone being registered for SMS.
    PhoneCode {
        code: &'a str,
    },
    /// The code of a second-factor challenge, by SMS or email.
    ChallengeCode {
        code: &'a str,
    },
    /// A one-time code checking a sign-in from an unfamiliar environment.
    SignInCode {
        code: &'a str,
    },
    /// Someone signed in from an environment the account did not know, to `app`; the link is
    /// "this wasn't me".
    SignInAlert {
        origin: &'a Origin,
        app: &'a str,
    },
    /// The account was locked ("this wasn't me"); the link leads to the password reset.
    AccountLocked {
        origin: &'a Origin,
    },
    PasswordChanged {
        origin: &'a Origin,
    },
    /// A password reset was asked for; the link is the reset page.
    PasswordReset,
    /// Too many approval requests in a row: requests are refused for a while (approval
    /// fatigue); whoever knows the password may be trying.
    ApprovalsBlocked,
}

impl MessageKind<'_> {
    /// A stable snake_case name, also the start of the ids of its texts (`K-title`, ...).
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
            MessageKind::SignInCode { .. } => "sign_in_code",
            MessageKind::ChallengeCode { .. } => "challenge_code",
            MessageKind::PhoneCode { .. } => "phone_code",
            MessageKind::PhoneChanged { .. } => "phone_changed",
            MessageKind::SignInAlert { .. } => "sign_in_alert",
            MessageKind::AccountLocked { .. } => "account_locked",
            MessageKind::PasswordChanged { .. } => "password_changed",
            MessageKind::PasswordReset => "password_reset",
            MessageKind::ApprovalsBlocked => "approvals_blocked",
        }
    }

    /// When and where the change this notice reports was made, if it reports one.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            MessageKind::FactorAdded { origin, .. }
            | MessageKind::FactorRemoved { origin, .. }
            | MessageKind::FactorReplaced { origin, .. }
            | MessageKind::EmergencyEmailChanged { origin, .. }
            | MessageKind::PhoneChanged { origin, .. }
            | MessageKind::RecoveryCodesRegenerated { origin }
            | MessageKind::SignInAlert { origin, .. }
            | MessageKind::AccountLocked { origin }
            | MessageKind::PasswordChanged { origin } => Some(origin),
            _ => None,
        }
    }

    /// The one-time code this message carries, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            MessageKind::EnrolmentCode { code }
            | MessageKind::EmergencyEmailCode { code }
            | MessageKind::SignInCode { code }
            | MessageKind::ChallengeCode { code }
            | MessageKind::PhoneCode { code } => Some(code),
            _ => None,
        }
    }
}

/// Composes a message in Korean or English. `lang` is "en" or "ko" (a tag such as "ko-KR"
/// counts as "ko"; anything else = en). `service` is the operator's service name; `user` the
/// user's display name; `link` an optional URL the user should open (e.g. the account page),
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
    let catalogue = Catalogue::compiled();
    let (subject, text) = match render(catalogue, kind, lang, channel, service, user, link) {
        Ok(parts) => parts,
        Err(e) => {
            // The error names the text and the problem, never the values.
            tracing::error!(
                target: super::LOG_TARGET,
                kind = kind.name(),
                lang = lang.tag(),
                error = %e,
                "message text failed; sending the fixed fallback text"
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

/// Renders `(subject, text)` for one message from the catalogue's texts for its kind `K`:
/// `K-title`, and `K-body` framed by the greeting, the origin, the link and the sign-off for an
/// email, or `K-line` for SMS and push. A kind may have its own `K-greeting` and `K-link`.
fn render(
    catalogue: &Catalogue,
    kind: &MessageKind<'_>,
    lang: Lang,
    channel: Channel,
    service: &str,
    user: &str,
    link: Option<&str>,
) -> Result<(String, String), TextError> {
    let name = kind.name();
    let service = one_line(service);
    let user = one_line(user);
    let mut args: Vec<(&str, Arg<'_>)> = vec![
        ("service", service.as_str().into()),
        ("user", user.as_str().into()),
        (
            "has_user",
            if user.is_empty() { "no" } else { "yes" }.into(),
        ),
    ];
    match kind {
        MessageKind::EnrolmentCode { code }
        | MessageKind::EmergencyEmailCode { code }
        | MessageKind::SignInCode { code }
        | MessageKind::ChallengeCode { code }
        | MessageKind::PhoneCode { code } => {
            args.push(("code", (*code).into()));
        }
        MessageKind::SignInAlert { app, .. } => {
            let app = if app.is_empty() { "-" } else { app };
            args.push(("app", one_line(app).into()));
        }
        MessageKind::FactorAdded { factor, .. }
        | MessageKind::FactorRemoved { factor, .. }
        | MessageKind::FactorReplaced { factor, .. } => {
            let label = match factor_id(factor) {
                Some(id) => catalogue.text(lang, id, &[])?,
                None => one_line(factor),
            };
            args.push(("factor", label.into()));
        }
        MessageKind::EmergencyEmailChanged { new, .. } | MessageKind::PhoneChanged { new, .. } => {
            args.push(("new_address", one_line(new).into()));
        }
        MessageKind::RecoveryCodeUsed { remaining } => {
            args.push(("remaining", (*remaining).into()))
        }
        MessageKind::RecoveryCodesRegenerated { .. }
        | MessageKind::CodeReplayed
        | MessageKind::SecondFactorFailed
        | MessageKind::AccountLocked { .. }
        | MessageKind::PasswordChanged { .. }
        | MessageKind::PasswordReset
        | MessageKind::ApprovalsBlocked => {}
    }
    if let Some(link) = link {
        args.push(("link", link.into()));
    }
    let part = |part: &str| catalogue.text(lang, &format!("{name}-{part}"), &args);
    // The kind's own version of a shared part, if it has one.
    let framing = |part: &str| {
        let own = format!("{name}-{part}");
        let id = if catalogue.has(lang, &own) {
            own
        } else {
            format!("message-{part}")
        };
        catalogue.text(lang, &id, &args)
    };
    let subject = one_line(&format!("[{service}] {}", part("title")?));
    let text = match channel {
        Channel::Email => {
            let mut parts = vec![framing("greeting")?, part("body")?];
            if let Some(o) = kind.origin() {
                let origin = [
                    ("when", o.when().into()),
                    ("address", one_line(&o.address).into()),
                    ("browser", one_line(&o.browser).into()),
                ];
                parts.push(catalogue.text(lang, "message-origin", &origin)?);
            }
            if link.is_some() {
                parts.push(framing("link")?);
            }
            parts.push(catalogue.text(lang, "message-sign-off", &args)?);
            tidy(&parts.join("\n\n"))
        }
        Channel::Sms | Channel::Push => {
            let mut line = format!("[{service}] {}", part("line")?);
            if let Some(link) = link {
                line.push(' ');
                line.push_str(link);
            }
            one_line(&line)
        }
    };
    Ok((subject, text))
}

/// The catalogue's name (`factor-*`) for a factor key; `None` for a key it does not know, which
/// is taken as an already readable label.
fn factor_id(factor: &str) -> Option<&'static str> {
    let key = factor.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    Some(match key.as_str() {
        "totp" | "otp" | "authenticator" | "authenticator_app" => "factor-totp",
        "webauthn" | "security_key" | "fido" | "fido2" => "factor-webauthn",
        "passkey" => "factor-passkey",
        "approver" | "approver_device" => "factor-approver",
        "certificate" | "client_certificate" => "factor-certificate",
        "sms" | "phone" | "text_message" => "factor-sms",
        "email" | "email_code" => "factor-email",
        "recovery_codes" | "recovery_code" | "recovery" => "factor-recovery-codes",
        _ => return None,
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

/// The fixed text used when the catalogue's texts cannot be rendered: plain, in the same
/// language, with the code and the link. It is kept here, out of the catalogue, so that it does
/// not depend on what just failed.
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
                 If you did not request it, ignore this message and tell your administrator."
            ),
        ),
        (Some(code), Lang::Ko) => (
            format!("[{service}] 인증 코드 안내"),
            format!(
                "인증 코드는 {code}입니다. 10분 동안 유효합니다. \
                 본인이 요청하지 않았다면 이 메시지를 무시하고 관리자에게 알려 주세요."
            ),
        ),
        (None, Lang::En) => (
            format!("[{service}] Security notice"),
            "There was just a security-related change or sign-in attempt on your account. \
             If it was not you, tell your administrator right away."
                .to_owned(),
        ),
        (None, Lang::Ko) => (
            format!("[{service}] 보안 알림"),
            "방금 회원님의 계정에 보안 관련 변경이나 로그인 시도가 있었습니다. \
             본인이 아니라면 즉시 관리자에게 알려 주세요."
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
