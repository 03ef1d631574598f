//! The authentication services one gateway holds, and who a request's session belongs to.

use std::sync::Arc;

use http::HeaderMap;

use crate::access::Principal;
use crate::amr::{Amr, AuthLevel, Method};
use crate::assertion::Signer;
use crate::clock::SharedClock;
use crate::factor::Factors;
use crate::factor::TwoFactorConfig;
use crate::notify::Notifiers;
use crate::regulation::Regulator;
use crate::session::cookie::{self, CookieJar};
use crate::session::{Session, SessionKey, Sessions};
use crate::store::{Store, StoreError};
use crate::users::{PasswordVerifier, User, UserDirectory};

pub struct Auth {
    pub store: Store,
    pub audit: crate::audit::AuditTrail,
    pub sessions: Sessions,
    pub users: Arc<dyn UserDirectory>,
    pub verifier: PasswordVerifier,
    pub regulator: Regulator,
    /// The failure limits every gateway on one Redis counts together (`store.redis_url`).
    pub shared_limits: Option<crate::regulation::shared::SharedLimits>,
    pub signer: Signer,
    pub clock: SharedClock,
    pub factors: Factors,
    pub notifiers: Notifiers,
    pub two_factor: TwoFactorConfig,
    /// Client certificates: the listeners' trust and the per-request check.
    pub certificates: crate::certificates::Certificates,
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
    /// A registered client certificate of this user, valid now, on the request's connection:
    /// it stands in for the second factor on this request (`amr` gains `swk`).
    pub certificate: Option<Arc<crate::certificates::Registered>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user.name)
            .field("amr", &self.session.amr)
            .finish()
    }
}

impl Identity {
    /// The methods behind this request: the session's, and `swk` for a valid registered
    /// certificate on the connection.
    pub fn amr(&self) -> Amr {
        match self.certificate {
            Some(_) => self.session.amr.with(Method::Swk),
            None => self.session.amr,
        }
    }

    /// The level of this request (see [`Identity::amr`]).
    pub fn level(&self) -> AuthLevel {
        self.amr().level()
    }

    /// The facts the signed assertion carries for this session.
    pub fn facts(&self) -> crate::assertion::IdentityFacts {
        crate::assertion::IdentityFacts {
            user: self.user.name.clone(),
            email: self.user.email.clone(),
            groups: self.user.groups.clone(),
            name: self.user.display_name.clone(),
            auth_level: self.level().as_str(),
            amr: self.amr().values().into_iter().map(str::to_owned).collect(),
            certificate: self
                .certificate
                .as_ref()
                .map(|c| (c.cert.info.sha256(), c.cert.info.subject.clone())),
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
        Identity::level(self)
    }

    fn has_second_factor(&self) -> bool {
        self.second_factor
    }

    fn second_factor_deferred(&self) -> bool {
        self.session.deferred
    }

    fn remembered_only(&self) -> bool {
        self.amr().remembered_only()
    }

    fn has_client_certificate(&self) -> bool {
        self.certificate.is_some()
    }

    fn needs_check(&self) -> bool {
        self.session.origin.needs_check
    }
}

/// Session cookies one request may carry under the session's name: a browser can hold a
/// host cookie and a stale domain cookie side by side; more than this is not looked at.
const MAX_SESSION_COOKIES: usize = 4;

impl Auth {
    /// `Set-Cookie` for a new session: with `Max-Age` for a saved sign-in.
    pub fn session_cookie(&self, tls: bool, id: &str, session: &Session) -> String {
        let cookie = self.jar(tls).set_session(id);
        match self.sessions.cookie_max_age(session) {
            Some(secs) => format!("{cookie}; Max-Age={secs}"),
            None => cookie,
        }
    }

    pub fn jar(&self, tls: bool) -> CookieJar<'_> {
        CookieJar {
            tls,
            domain: self.sessions.config().cookie_domain.as_deref(),
        }
    }

    /// The session the request's cookie names, if it is live and its user still exists and is
    /// enabled. A session whose user was removed or disabled is ended on sight. When the
    /// browser sends several cookies of the session's name (a stale domain cookie beside the
    /// host cookie, after `cookie_domain` changed), the first that names a live session wins,
    /// so a stale one cannot send the user round the sign-in loop. `Err` only for a store
    /// fault: the caller fails closed.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        tls: bool,
    ) -> Result<Option<Identity>, StoreError> {
        let name = self.jar(tls).session_name();
        for id in cookie::read_all(headers, name).take(MAX_SESSION_COOKIES) {
            if let Some(who) = self.identify_one(id).await? {
                return Ok(Some(who));
            }
        }
        Ok(None)
    }

    async fn identify_one(&self, id: &str) -> Result<Option<Identity>, StoreError> {
        let Some((key, session)) = self.sessions.lookup(id).await? else {
            return Ok(None);
        };
        match self.users.get(&session.user) {
            Some(user) if !user.disabled => {
                let second_factor = session.level() == AuthLevel::OneFactor
                    && self.factors.enrolled(&user.name).await.unwrap_or_else(|e| {
                        tracing::error!(target: "stepgate::factor", user = %user.name, error = %e, "could not read the user's second factors");
                        true
                    });
                Ok(Some(Identity {
                    key,
                    session,
                    user,
                    second_factor,
                    certificate: None,
                }))
            }
            _ => {
                tracing::info!(target: "stepgate::session", user = %session.user, "session ended: user removed or disabled");
                self.sessions.end(&key).await?;
                Ok(None)
            }
        }
    }
}
