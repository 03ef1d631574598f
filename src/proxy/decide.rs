//! The decision for a request, as every entry point asks it: the proxy path (`route`) and the
//! forward-auth endpoints (`authz`). The decision core (`crate::decision`) is asked about the
//! request as it is, and about the more lenient reading an app may make of it.

use std::net::IpAddr;

use super::State;
use crate::access::{self, Principal};
use crate::decision::{self, Decision};

/// The decision core's answer for a request to `host` and `path` with `method`. An app may
/// read the request more leniently than the rules (`/ADMIN/x`, `/admin;x=1/x`, `/admin./x`, a
/// method in lower case): the rules are asked about that reading too, and the stricter answer
/// holds. What is forwarded stays as it is.
pub fn decide(
    state: &State,
    host: &str,
    path: &str,
    method: &http::Method,
    client: IpAddr,
    who: Option<&dyn Principal>,
) -> Decision {
    let rules = state.rules.load();
    let decision = decision::decide(
        &rules,
        &access::Request {
            host,
            path,
            method,
            client,
        },
        who,
    );
    let lenient_path = crate::hygiene::target::lenient_reading(path);
    let lenient_method = method
        .as_str()
        .bytes()
        .any(|b| b.is_ascii_lowercase())
        .then(|| http::Method::from_bytes(method.as_str().to_ascii_uppercase().as_bytes()).ok())
        .flatten();
    if lenient_path.is_none() && lenient_method.is_none() {
        return decision;
    }
    let other = decision::decide(
        &rules,
        &access::Request {
            host,
            path: lenient_path.as_deref().unwrap_or(path),
            method: lenient_method.as_ref().unwrap_or(method),
            client,
        },
        who,
    );
    decision.stricter(other)
}
