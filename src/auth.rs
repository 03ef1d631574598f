//! The authentication services one gateway holds, and who a request's session belongs to.

use std::sync::Arc;

use http::HeaderMap;

use crate::access::{AuthLevel, Principal};
use crate::assertion::Signer;
use crate::clock::SharedClock;
use crate::config::TwoFactorConfig;
use crate::factor::Factors;
use crate::notify::Notifiers;
use crate::portal::csrf::Csrf;
use crate::portal::return_to::ReturnTo;
use crate::portal::setup::Enrolments;
use crate::regulation::Regulator;
use crate::session::cookie::{self, CookieJar};
use crate::session::{Session, SessionKey, Sessions};
use crate::users::{PasswordVerifier, User, UserDirectory};

pub struct Auth {
    pub sessions: Sessions,
    pub users: Arc<dyn UserDirectory>,
    pub verifier: PasswordVerifier,
    pub regulator: Regulator,
    pub signer: Signer,
    pub assertions: crate::identity::IdentityCache,
    pub csrf: Csrf,
    pub return_to: ReturnTo,
    pub clock: SharedClock,
    pub factors: Factors,
    pub notifiers: Notifiers,
    pub two_factor: TwoFactorConfig,
    /// Two-step setups in progress, by session.
    pub enrolments: Enrolments,
}

/// A signed-in request: the session and the user it belongs to.
pub struct Identity {
    pub key: SessionKey,
    pub session: Arc<Session>,
    pub user: Arc<User>,
    /// Whether the user has a second factor. Looked up only for one-factor sessions (a
    /// two-factor session never needs it to be decided); a store fault counts as "has one", so
    /// the request goes to the challenge, which fails closed, never past it.
    pub second_factor: bool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user.name)
            .field("level", &self.session.level)
            .finish()
    }
}

impl Identity {
    /// The facts the signed assertion carries for this session.
    pub fn facts(&self) -> crate::assertion::IdentityFacts {
        crate::assertion::IdentityFacts {
            user: self.user.name.clone(),
            email: self.user.email.clone(),
            groups: self.user.groups.clone(),
            name: self.user.display_name.clone(),
            auth_level: self.session.level_str(),
            amr: self.session.amr.clone(),
        }
    }
}

impl Principal for Identity {
    fn user(&self) -> &str {
        &self.user.name
    }

    fn in_group(&self, group: &str) -> bool {
        self.user.in_group(group)
    }

    fn level(&self) -> AuthLevel {
        self.session.level
    }

    fn has_second_factor(&self) -> bool {
        self.second_factor
    }

    fn second_factor_deferred(&self) -> bool {
        self.session.deferred
    }
}

impl Auth {
    pub fn jar(&self, tls: bool) -> CookieJar<'_> {
        CookieJar {
            tls,
            domain: self.sessions.config().cookie_domain.as_deref(),
        }
    }

    /// The session the request's cookie names, if it is live and its user still exists and is
    /// enabled. A session whose user was removed or disabled is ended on sight.
    pub fn identify(&self, headers: &HeaderMap, tls: bool) -> Option<Identity> {
        let id = cookie::read(headers, self.jar(tls).session_name())?;
        let (key, session) = self.sessions.lookup(id)?;
        match self.users.get(&session.user) {
            Some(user) if !user.disabled => {
                let second_factor = session.level == AuthLevel::OneFactor
                    && self.factors.enrolled(&user.name).unwrap_or_else(|e| {
                        tracing::error!(target: "stepgate::factor", user = %user.name, error = %e, "could not read the user's second factors");
                        true
                    });
                Some(Identity {
                    key,
                    session,
                    user,
                    second_factor,
                })
            }
            _ => {
                tracing::info!(target: "stepgate::session", user = %session.user, "session ended: user removed or disabled");
                self.sessions.destroy(&key);
                self.assertions.forget_session(&key);
                None
            }
        }
    }
}
