//! How a session was authenticated, as a typed set of RFC 8176 authentication method reference
//! (`amr`) values, and the level derived from it. The level is never stored or passed around as
//! a string of its own: a session at `2fa` is one whose methods include a second factor.

use std::fmt;

/// One authentication method (RFC 8176 §2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// A password (the first factor).
    Pwd,
    /// A one-time password: an authenticator app's code or a recovery code.
    Otp,
    /// A code sent by SMS.
    Sms,
    /// Proof of possession of a hardware-secured key (a passkey or security key).
    Hwk,
    /// Proof of possession of a software-secured key (a client certificate).
    Swk,
    /// Multiple-channel authentication: the sign-in was approved on, or proven with a security
    /// code shown by, another signed-in device of the user.
    Mca,
    /// A one-time code sent by email (stepgate's own value: RFC 8176 has none for email).
    Email,
    /// A browser the user trusted with "don't ask again on this browser" stood in for the
    /// second factor (stepgate's own value, not in RFC 8176: no code was entered this time).
    Remembered,
}

/// Every method, in the order `amr` lists them.
const ALL: [Method; 8] = [
    Method::Pwd,
    Method::Otp,
    Method::Sms,
    Method::Email,
    Method::Hwk,
    Method::Swk,
    Method::Mca,
    Method::Remembered,
];

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pwd => "pwd",
            Method::Otp => "otp",
            Method::Sms => "sms",
            Method::Hwk => "hwk",
            Method::Swk => "swk",
            Method::Mca => "mca",
            Method::Email => "email",
            Method::Remembered => "remembered",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether this method is a second factor (possession), as opposed to the password.
    pub fn is_second_factor(self) -> bool {
        self != Method::Pwd
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// How far a session has authenticated: derived from its methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthLevel {
    OneFactor,
    TwoFactor,
}

impl AuthLevel {
    /// `1fa` or `2fa`: what the `Remote-Auth-Level` header and the assertion carry.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthLevel::OneFactor => "1fa",
            AuthLevel::TwoFactor => "2fa",
        }
    }
}

/// A set of methods. Copy, one byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Amr(u8);

impl Amr {
    /// The methods of a password sign-in.
    pub const PASSWORD: Amr = Amr(1 << (Method::Pwd as u8));

    pub fn with(self, m: Method) -> Amr {
        Amr(self.0 | m.bit())
    }

    pub fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Method> {
        ALL.into_iter().filter(move |m| self.contains(*m))
    }

    /// `2fa` when a second factor is among the methods, else `1fa`.
    pub fn level(self) -> AuthLevel {
        if self.iter().any(Method::is_second_factor) {
            AuthLevel::TwoFactor
        } else {
            AuthLevel::OneFactor
        }
    }

    /// Whether the only second factor behind these methods is a trusted browser.
    pub fn remembered_only(self) -> bool {
        self.contains(Method::Remembered)
            && !self
                .iter()
                .any(|m| m.is_second_factor() && m != Method::Remembered)
    }

    /// The values in `amr` order, for the assertion's claim.
    pub fn values(self) -> Vec<&'static str> {
        self.iter().map(Method::as_str).collect()
    }

    /// Parses a comma-separated list as the store keeps it; an unknown value is an error (a
    /// record this build cannot read is refused, never guessed at).
    pub fn parse(s: &str) -> Result<Amr, String> {
        s.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .try_fold(Amr::default(), |amr, v| {
                Method::parse(v)
                    .map(|m| amr.with(m))
                    .ok_or_else(|| format!("unknown authentication method {v:?}"))
            })
    }
}

/// `pwd,otp`: the `Remote-Auth-Methods` header and the stored form.
impl fmt::Display for Amr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(m.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Amr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amr({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_follows_the_methods() {
        assert_eq!(Amr::PASSWORD.level(), AuthLevel::OneFactor);
        assert_eq!(Amr::default().level(), AuthLevel::OneFactor);
        let two = Amr::PASSWORD.with(Method::Otp);
        assert_eq!(two.level(), AuthLevel::TwoFactor);
        assert_eq!(two.to_string(), "pwd,otp");
        assert_eq!(two.values(), vec!["pwd", "otp"]);
        assert_eq!(AuthLevel::TwoFactor.as_str(), "2fa");
    }

    #[test]
    fn parsing_round_trips_and_refuses_unknown_values() {
        let amr = Amr::parse("otp, pwd,,hwk").unwrap();
        assert_eq!(amr.to_string(), "pwd,otp,hwk", "canonical order");
        assert_eq!(Amr::parse(&amr.to_string()).unwrap(), amr);
        assert_eq!(Amr::parse("").unwrap(), Amr::default());
        assert!(Amr::parse("pwd,face").is_err());
    }
}
