//! The identity an upstream app receives: the contract's headers and the signed assertion.
//! Client-sent copies were already removed by `hygiene`; these are set after pingora's own
//! header policy ran, so no `Connection` token can remove them.

use std::sync::Arc;

use http::HeaderValue;
use pingora::http::RequestHeader;

use crate::assertion::AssertionError;
use crate::auth::{Auth, Identity};
use crate::config::IdentityHeaders;

/// The signed assertion for this session and app, reused until shortly before it expires.
pub fn assertion(
    auth: &Auth,
    who: &Identity,
    app_index: usize,
    app_id: &str,
) -> Result<Arc<str>, AssertionError> {
    auth.assertions.get_or_sign(&who.key, app_index, || {
        auth.signer.sign(&who.facts(), app_id)
    })
}

/// Sets the identity headers. Values are UTF-8 (display names may be Korean); a value that
/// cannot be a header value at all (a line break) is left out rather than mangled, and so are
/// `Remote-Email` and `Remote-Groups` when the user has no email or no groups.
pub fn inject(
    req: &mut RequestHeader,
    names: &IdentityHeaders,
    who: &Identity,
    assertion: &str,
) -> pingora::Result<()> {
    let user = &who.user;
    let set =
        |req: &mut RequestHeader, name: &http::HeaderName, value: &str| -> pingora::Result<()> {
            match HeaderValue::from_bytes(value.as_bytes()) {
                Ok(v) => req.insert_header(name.clone(), v).map(|_| ()),
                Err(_) => Ok(()),
            }
        };
    set(req, &names.user, &user.name)?;
    if let Some(email) = &user.email {
        set(req, &names.email, email)?;
    }
    if !user.groups.is_empty() {
        set(req, &names.groups, &user.groups.join(","))?;
    }
    set(req, &names.name, &user.display_name)?;
    set(req, &names.auth_level, who.session.level_str())?;
    set(req, &names.auth_methods, &who.session.amr.join(","))?;
    set(req, &names.assertion, assertion)
}
