//! The decision core: what to do with one request, from the request's facts (`access::Request`)
//! and who is asking. Pure: no I/O, no clock, no pingora. The proxy phase calls it for every
//! request, and the forward-auth endpoints (`proxy::authz`) for the request a proxy in front
//! describes; only the answers differ (see [`Answer`] for the proxy's answers).

use http::{HeaderMap, Method, StatusCode};

use crate::access::{AccessRules, Policy, Principal, Request, RuleMatch};
use crate::amr::AuthLevel;

/// What to do with a request, all things considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Proxy it.
    Allow,
    /// No session: sign in first.
    Login,
    /// Signed in with one factor, the route needs two, and the user has a second factor.
    SecondFactor,
    /// Signed in with one factor, the route needs two, and the user has none yet.
    Guide,
    /// Signed in from an unfamiliar environment, and the user has no second factor: a one-time
    /// code to the account email first.
    Check,
    /// Signed in, but the route needs a registered client certificate on the connection.
    Certificate,
    /// Refused: a deny rule, no matching rule, or the user is not among the rule's subjects.
    Deny,
}

impl Decision {
    /// How much a decision holds a request back: letting it through least, refusing most.
    fn rank(self) -> u8 {
        match self {
            Decision::Allow => 0,
            Decision::Login => 1,
            Decision::SecondFactor | Decision::Guide | Decision::Check => 2,
            Decision::Certificate => 3,
            Decision::Deny => 4,
        }
    }

    /// The stricter of two decisions (the first when they are as strict).
    pub fn stricter(self, other: Decision) -> Decision {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Login => "login",
            Decision::SecondFactor => "second_factor",
            Decision::Guide => "guide",
            Decision::Check => "check",
            Decision::Certificate => "certificate",
            Decision::Deny => "deny",
        }
    }
}

/// The decision for a request by `who` (`None`: no session): the first matching rule's policy,
/// the rule's subjects, and how far `who` has authenticated.
pub fn decide(rules: &AccessRules, req: &Request<'_>, who: Option<&dyn Principal>) -> Decision {
    let (index, policy) = match rules.first_match(req) {
        RuleMatch::NoRule => return Decision::Deny,
        RuleMatch::Rule { index, policy } => (index, policy),
    };
    match (policy, who) {
        (Policy::Deny, _) => Decision::Deny,
        (Policy::Bypass, _) => Decision::Allow,
        (_, None) => Decision::Login,
        (_, Some(who)) if !rules.admits(index, who) => Decision::Deny,
        // An unfamiliar environment is checked before anything else is let through: with the
        // second factor if the user has one, else with a code to the account email.
        (_, Some(who)) if who.needs_check() => {
            if who.has_second_factor() {
                Decision::SecondFactor
            } else {
                Decision::Check
            }
        }
        (_, Some(who)) if rules.requires_certificate(index) && !who.has_client_certificate() => {
            Decision::Certificate
        }
        (Policy::TwoFactor, Some(who))
            if who.remembered_only() && !rules.trusts_browsers(index) =>
        {
            Decision::SecondFactor
        }
        (Policy::TwoFactor, Some(who)) if who.level() < AuthLevel::TwoFactor => {
            if who.has_second_factor() {
                Decision::SecondFactor
            } else if who.second_factor_deferred() {
                Decision::Allow
            } else {
                Decision::Guide
            }
        }
        (Policy::OneFactor | Policy::TwoFactor, Some(_)) => Decision::Allow,
    }
}

/// How the proxy answers a decision (the contract's table of decisions on a proxied request).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Answer {
    /// Proxy the request.
    Proxy,
    /// A browser navigation: 302 to this portal URL, which comes back to the original URL.
    Redirect(String),
    /// Refuse with this status (401 for other clients that must sign in, 403 for a refusal).
    Refuse(StatusCode),
}

/// The proxy's answer: a browser (`browser`: a GET or HEAD navigation) is sent to the portal page
/// the decision names, with `rd` = `original` (the normalised URL it asked for); other clients
/// get 401; a refusal is 403.
pub fn answer(decision: Decision, browser: bool, original: &str, prefix: &str) -> Answer {
    let page = match decision {
        Decision::Allow => return Answer::Proxy,
        Decision::Deny => return Answer::Refuse(StatusCode::FORBIDDEN),
        Decision::Login => "login",
        Decision::SecondFactor => "2fa",
        Decision::Guide => "guide",
        Decision::Check => "check",
        Decision::Certificate => "certificates",
    };
    if !browser {
        // Signing in again would not help a client without the certificate.
        let status = match decision {
            Decision::Certificate => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        return Answer::Refuse(status);
    }
    let rd: String = url::form_urlencoded::byte_serialize(original.as_bytes()).collect();
    Answer::Redirect(format!("{prefix}/{page}?rd={rd}"))
}

/// A browser navigation: GET or HEAD with `text/html` in `Accept` (contract: decisions table).
pub fn is_browser(method: &Method, headers: &HeaderMap) -> bool {
    (*method == Method::GET || *method == Method::HEAD)
        && headers
            .get_all(http::header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.contains("text/html")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::{req, rule, Who};
    use crate::access::Subject;

    #[test]
    fn decisions_follow_the_contract_table() {
        let mut admin = rule(Some("^/admin/"), Policy::TwoFactor);
        admin.subjects = vec![Subject::Group("admins".into())];
        let rules = AccessRules::compile(vec![
            rule(Some("^/public/"), Policy::Bypass),
            rule(Some("^/1fa/"), Policy::OneFactor),
            admin,
            rule(Some("^/deny/"), Policy::Deny),
            rule(Some("^/"), Policy::TwoFactor),
        ])
        .unwrap();
        let get = Method::GET;
        let alice = Who("alice", &["users"]);
        let bob = Who("bob", &["admins"]);
        assert_eq!(
            decide(&rules, &req("h", "/public/x", &get), None),
            Decision::Allow
        );
        assert_eq!(
            decide(&rules, &req("h", "/1fa/", &get), None),
            Decision::Login
        );
        assert_eq!(
            decide(&rules, &req("h", "/1fa/", &get), Some(&alice)),
            Decision::Allow
        );
        assert_eq!(
            decide(&rules, &req("h", "/", &get), Some(&alice)),
            Decision::Guide
        );
        assert_eq!(
            decide(&rules, &req("h", "/", &get), Some(&bob)),
            Decision::SecondFactor
        );
        assert_eq!(
            decide(&rules, &req("h", "/admin/", &get), Some(&alice)),
            Decision::Deny
        );
        assert_eq!(
            decide(&rules, &req("h", "/admin/", &get), None),
            Decision::Login
        );
        assert_eq!(
            decide(&rules, &req("h", "/deny/", &get), Some(&bob)),
            Decision::Deny
        );
    }

    struct Later;
    impl Principal for Later {
        fn user(&self) -> &str {
            "dave"
        }
        fn in_group(&self, _: &str) -> bool {
            false
        }
        fn level(&self) -> AuthLevel {
            AuthLevel::OneFactor
        }
        fn has_second_factor(&self) -> bool {
            false
        }
        fn second_factor_deferred(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_deferred_session_passes_two_factor_routes_but_not_subject_rules_or_deny() {
        let mut admin = rule(Some("^/admin/"), Policy::TwoFactor);
        admin.subjects = vec![Subject::Group("admins".into())];
        let rules = AccessRules::compile(vec![
            admin,
            rule(Some("^/deny/"), Policy::Deny),
            rule(Some("^/"), Policy::TwoFactor),
        ])
        .unwrap();
        let get = Method::GET;
        assert_eq!(
            decide(&rules, &req("h", "/", &get), Some(&Later)),
            Decision::Allow
        );
        assert_eq!(
            decide(&rules, &req("h", "/admin/", &get), Some(&Later)),
            Decision::Deny
        );
        assert_eq!(
            decide(&rules, &req("h", "/deny/", &get), Some(&Later)),
            Decision::Deny
        );
    }

    #[test]
    fn browsers_go_to_the_portal_and_others_get_a_status() {
        let url = "http://a.test/x?y=1";
        assert_eq!(
            answer(Decision::Login, true, url, "/_stepgate"),
            Answer::Redirect("/_stepgate/login?rd=http%3A%2F%2Fa.test%2Fx%3Fy%3D1".into())
        );
        assert_eq!(
            answer(Decision::SecondFactor, true, url, "/p"),
            Answer::Redirect("/p/2fa?rd=http%3A%2F%2Fa.test%2Fx%3Fy%3D1".into())
        );
        assert_eq!(
            answer(Decision::Guide, false, url, "/p"),
            Answer::Refuse(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            answer(Decision::Deny, true, url, "/p"),
            Answer::Refuse(StatusCode::FORBIDDEN)
        );
        assert_eq!(answer(Decision::Allow, false, url, "/p"), Answer::Proxy);
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, "text/html,*/*".parse().unwrap());
        assert!(is_browser(&Method::GET, &h));
        assert!(!is_browser(&Method::POST, &h));
        assert!(!is_browser(&Method::GET, &HeaderMap::new()));
    }
}
