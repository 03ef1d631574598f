//! The identity an upstream app receives: the contract's headers and the signed assertion.
//! Client-sent copies were already removed by `hygiene`; these are set after pingora's own
//! header policy ran, so no `Connection` token can remove them.
//!
//! The header values of one (session, app) are built once, when its assertion is signed, and
//! kept with it in [`IdentityCache`]: a request then only clones reference-counted values. A
//! session's user, level and methods never change under its ID (a step up makes a new session),
//! and a users-file reload clears the cache, so a kept value is never stale.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::assertion::{AssertionCache, AssertionError, Signer};
use crate::auth::Identity;

/// Names of the identity headers sent to upstream apps (and stripped from clients).
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: HeaderName,
    pub email: HeaderName,
    pub groups: HeaderName,
    pub name: HeaderName,
    pub auth_level: HeaderName,
    pub auth_methods: HeaderName,
    pub assertion: HeaderName,
    /// The client certificate on the connection, when it counted: its SHA-256 fingerprint
    /// (lowercase hex) and subject.
    pub client_cert_fingerprint: HeaderName,
    pub client_cert_subject: HeaderName,
}

impl IdentityHeaders {
    pub fn all(&self) -> [&HeaderName; 9] {
        [
            &self.user,
            &self.email,
            &self.groups,
            &self.name,
            &self.auth_level,
            &self.auth_methods,
            &self.assertion,
            &self.client_cert_fingerprint,
            &self.client_cert_subject,
        ]
    }
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user: HeaderName::from_static("remote-user"),
            email: HeaderName::from_static("remote-email"),
            groups: HeaderName::from_static("remote-groups"),
            name: HeaderName::from_static("remote-name"),
            auth_level: HeaderName::from_static("remote-auth-level"),
            auth_methods: HeaderName::from_static("remote-auth-methods"),
            assertion: HeaderName::from_static("x-stepgate-assertion"),
            client_cert_fingerprint: HeaderName::from_static("remote-client-cert-fingerprint"),
            client_cert_subject: HeaderName::from_static("remote-client-cert-subject"),
        }
    }
}

/// The longest `Remote-Groups` value sent: many proxies and servers refuse a request whose
/// headers are larger than 8 to 16 KiB, so a user in hundreds of groups would break the app.
pub const MAX_GROUPS_HEADER: usize = 4096;

/// The groups joined with `,`, cut before the first group that would pass
/// [`MAX_GROUPS_HEADER`] (the users file's order); the assertion carries every group.
fn groups_header(groups: &[String]) -> String {
    let mut out = String::new();
    for g in groups {
        let extra = g.len() + usize::from(!out.is_empty());
        if out.len() + extra > MAX_GROUPS_HEADER {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(g);
    }
    out
}

/// The identity headers of one (session, app), ready to set: setting one clones two
/// reference-counted values.
#[derive(Debug)]
pub struct Prepared {
    headers: Vec<(HeaderName, HeaderValue)>,
}

pub type IdentityCache = AssertionCache<Arc<Prepared>>;

impl Prepared {
    /// Values are UTF-8 (display names may be Korean); a value that cannot be a header value at
    /// all (a line break) is left out rather than mangled, and so are `Remote-Email` and
    /// `Remote-Groups` when the user has no email or no groups.
    pub fn build(names: &IdentityHeaders, who: &Identity, assertion: &str) -> Prepared {
        let user = &who.user;
        let groups = (!user.groups.is_empty()).then(|| groups_header(&user.groups));
        let cert = who.certificate.as_ref().map(|c| &c.cert.info);
        let values: [(&HeaderName, Option<&str>); 9] = [
            (&names.user, Some(&user.name)),
            (&names.email, user.email.as_deref()),
            (&names.groups, groups.as_deref()),
            (&names.name, Some(&user.display_name)),
            (&names.auth_level, Some(who.level().as_str())),
            (&names.auth_methods, Some(&who.amr().to_string())),
            (&names.assertion, Some(assertion)),
            (
                &names.client_cert_fingerprint,
                cert.map(|c| c.fingerprint.as_str()),
            ),
            (&names.client_cert_subject, cert.map(|c| c.subject.as_str())),
        ];
        let headers = values
            .into_iter()
            .filter_map(|(name, value)| {
                let value = HeaderValue::from_bytes(value?.as_bytes()).ok()?;
                Some((name.clone(), value))
            })
            .collect();
        Prepared { headers }
    }

    /// The headers to set, in order (set by `proxy::forward::set_all`).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }
}

/// The prepared identity for this session and app, reused until shortly before its assertion
/// expires; signed and built on a miss.
pub fn prepared(
    cache: &IdentityCache,
    signer: &Signer,
    names: &IdentityHeaders,
    who: &Identity,
    app: (usize, &str),
) -> Result<Arc<Prepared>, AssertionError> {
    // A certificate on the connection changes what this session's request carries: its
    // prepared identity is kept apart from the session's own.
    let key = match &who.certificate {
        Some(c) => {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(who.key);
            h.update(c.cert.info.fingerprint.as_bytes());
            <[u8; 32]>::from(h.finalize())
        }
        None => who.key,
    };
    cache.get_or_sign(&key, app.0, || {
        let (token, exp) = signer.sign(&who.facts(), app.1)?;
        Ok((Arc::new(Prepared::build(names, who, &token)), exp))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_header_is_cut_at_a_group_boundary() {
        let groups: Vec<String> = (0..300).map(|i| format!("group-number-{i:03}")).collect();
        let header = groups_header(&groups);
        assert!(header.len() <= MAX_GROUPS_HEADER, "{}", header.len());
        assert!(header.len() > MAX_GROUPS_HEADER - 20);
        let kept: Vec<&str> = header.split(',').collect();
        assert_eq!(
            kept,
            groups[..kept.len()]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
        let few = vec!["admins".to_owned(), "users".to_owned()];
        assert_eq!(groups_header(&few), "admins,users");
    }
}
