//! Access rules: an ordered list, first match wins, default deny. What a match means for the
//! request, with who is asking, is decided in `decision`.
//!
//! A rule matches on host, path (regex on the normalised path, never the query), method and
//! source network. Its subjects (users, groups) are not part of matching: once a rule matches,
//! a request without a session is asked to sign in, and a signed-in user outside the subjects is
//! refused. So a rule never silently falls through to a looser one for the wrong user.
//!
//! Rules are compiled once at load. All path regexes run as one `RegexSet` pass, so matching
//! costs one scan of the path plus cheap checks per rule, whatever the number of rules.

use std::net::IpAddr;

use http::Method;
use ipnet::IpNet;
use regex::RegexSet;

pub use crate::amr::AuthLevel;
use crate::routing::HostPattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Bypass,
    OneFactor,
    TwoFactor,
    Deny,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s {
            "bypass" => Policy::Bypass,
            "one_factor" => Policy::OneFactor,
            "two_factor" => Policy::TwoFactor,
            "deny" => Policy::Deny,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
            Policy::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

impl Subject {
    pub fn parse(s: &str) -> Option<Subject> {
        let (kind, name) = s.split_once(':')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        match kind.trim() {
            "user" => Some(Subject::User(name.to_owned())),
            "group" => Some(Subject::Group(name.to_owned())),
            _ => None,
        }
    }
}

/// A validated rule, as the config holds it.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub hosts: Vec<HostPattern>,
    pub path: Option<String>,
    pub methods: Vec<Method>,
    pub networks: Vec<IpNet>,
    pub subjects: Vec<Subject>,
    pub policy: Policy,
    /// Whether a browser trusted with "don't ask again" stands in for the second factor here
    /// (`false`: this route always wants a code of this sign-in).
    pub trusted_browsers: bool,
    /// Whether the route needs a registered, valid client certificate on the connection.
    pub client_certificate: bool,
}

/// What the request looks like to the rules.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a Method,
    pub client: IpAddr,
}

/// Who is asking, as far as rules care.
pub trait Principal {
    fn user(&self) -> &str;
    fn in_group(&self, group: &str) -> bool;
    fn level(&self) -> AuthLevel;
    /// Whether the user has a second factor set up (decides between challenge and guide).
    fn has_second_factor(&self) -> bool;
    /// Whether the user chose "later" on the setup guide for this session, within the grace the
    /// operator allows: two-factor routes then let this one-factor session through.
    fn second_factor_deferred(&self) -> bool {
        false
    }
    /// Whether the second factor of this session is only a trusted browser ("don't ask again").
    fn remembered_only(&self) -> bool {
        false
    }
    /// Signed in from an unfamiliar environment, not checked yet.
    fn needs_check(&self) -> bool {
        false
    }
    /// Whether the request's connection carries a registered client certificate of this user
    /// that is valid now.
    fn has_client_certificate(&self) -> bool {
        false
    }
}

/// The outcome of the rules for one request, before sessions are consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum RuleMatch {
    /// No rule matched: default deny.
    NoRule,
    /// Rule `index` matched with this policy.
    Rule { index: usize, policy: Policy },
}

#[derive(Debug)]
pub struct AccessRules {
    rules: Vec<RuleSpec>,
    paths: RegexSet,
    /// For each rule, its index in `paths`, if it has a path.
    path_index: Vec<Option<usize>>,
}

impl AccessRules {
    /// Compiles the rules. The regexes were checked by config validation.
    pub fn compile(rules: Vec<RuleSpec>) -> Result<AccessRules, regex::Error> {
        let mut patterns = Vec::new();
        let path_index = rules
            .iter()
            .map(|r| {
                r.path.as_ref().map(|p| {
                    patterns.push(p.clone());
                    patterns.len() - 1
                })
            })
            .collect();
        Ok(AccessRules {
            paths: RegexSet::new(&patterns)?,
            rules,
            path_index,
        })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn first_match(&self, req: &Request<'_>) -> RuleMatch {
        // The regex set is only run when a rule with a path gets that far.
        let mut paths = None;
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.hosts.is_empty() && !rule.hosts.iter().any(|h| h.matches(req.host)) {
                continue;
            }
            if !rule.methods.is_empty() && !rule.methods.contains(req.method) {
                continue;
            }
            if !rule.networks.is_empty() && !rule.networks.iter().any(|n| n.contains(&req.client)) {
                continue;
            }
            if let Some(pi) = self.path_index[index] {
                let set = paths.get_or_insert_with(|| self.paths.matches(req.path));
                if !set.matched(pi) {
                    continue;
                }
            }
            return RuleMatch::Rule {
                index,
                policy: rule.policy,
            };
        }
        RuleMatch::NoRule
    }

    /// Whether the rule's subjects admit `who` (a rule without subjects admits everyone).
    /// Whether rule `index` lets a trusted browser stand in for the second factor.
    pub fn trusts_browsers(&self, index: usize) -> bool {
        self.rules[index].trusted_browsers
    }

    pub fn requires_certificate(&self, index: usize) -> bool {
        self.rules[index].client_certificate
    }

    pub fn admits(&self, index: usize, who: &dyn Principal) -> bool {
        let subjects = &self.rules[index].subjects;
        subjects.is_empty()
            || subjects.iter().any(|s| match s {
                Subject::User(u) => u == who.user(),
                Subject::Group(g) => who.in_group(g),
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rule(path: Option<&str>, policy: Policy) -> RuleSpec {
        RuleSpec {
            hosts: vec![],
            path: path.map(str::to_owned),
            methods: vec![],
            networks: vec![],
            subjects: vec![],
            policy,
            trusted_browsers: true,
            client_certificate: false,
        }
    }

    pub(crate) fn req<'a>(host: &'a str, path: &'a str, method: &'a Method) -> Request<'a> {
        Request {
            host,
            path,
            method,
            client: "10.1.2.3".parse().unwrap(),
        }
    }

    /// A user with groups; only `bob` has a second factor.
    pub(crate) struct Who(pub &'static str, pub &'static [&'static str]);
    impl Principal for Who {
        fn user(&self) -> &str {
            self.0
        }
        fn in_group(&self, g: &str) -> bool {
            self.1.contains(&g)
        }
        fn level(&self) -> AuthLevel {
            AuthLevel::OneFactor
        }
        fn has_second_factor(&self) -> bool {
            self.0 == "bob"
        }
    }

    #[test]
    fn first_match_wins_and_default_denies() {
        let rules = AccessRules::compile(vec![
            rule(Some("^/public/"), Policy::Bypass),
            rule(Some("^/"), Policy::TwoFactor),
        ])
        .unwrap();
        let get = Method::GET;
        assert_eq!(
            rules.first_match(&req("a", "/public/x", &get)),
            RuleMatch::Rule {
                index: 0,
                policy: Policy::Bypass
            }
        );
        assert_eq!(
            rules.first_match(&req("a", "/x", &get)),
            RuleMatch::Rule {
                index: 1,
                policy: Policy::TwoFactor
            }
        );
        let none = AccessRules::compile(vec![rule(Some("^/public/"), Policy::Bypass)]).unwrap();
        assert_eq!(none.first_match(&req("a", "/x", &get)), RuleMatch::NoRule);
    }

    #[test]
    fn hosts_methods_networks_and_subjects() {
        let mut r = rule(None, Policy::OneFactor);
        r.hosts = vec![HostPattern::parse("*.example.com").unwrap()];
        r.methods = vec![Method::POST];
        r.networks = vec!["10.0.0.0/8".parse().unwrap()];
        r.subjects = vec![
            Subject::Group("admins".into()),
            Subject::User("carol".into()),
        ];
        let rules = AccessRules::compile(vec![r]).unwrap();
        let post = Method::POST;
        let get = Method::GET;
        assert!(matches!(
            rules.first_match(&req("a.example.com", "/", &post)),
            RuleMatch::Rule { .. }
        ));
        assert_eq!(
            rules.first_match(&req("a.example.com", "/", &get)),
            RuleMatch::NoRule
        );
        assert_eq!(
            rules.first_match(&req("example.com", "/", &post)),
            RuleMatch::NoRule
        );
        let mut outside = req("a.example.com", "/", &post);
        outside.client = "192.168.0.1".parse().unwrap();
        assert_eq!(rules.first_match(&outside), RuleMatch::NoRule);
        assert!(rules.admits(0, &Who("bob", &["admins"])));
        assert!(rules.admits(0, &Who("carol", &[])));
        assert!(!rules.admits(0, &Who("alice", &["users"])));
    }

    #[test]
    fn many_rules_compile_into_one_set() {
        let mut specs: Vec<_> = (0..500)
            .map(|i| rule(Some(&format!("^/app{i}/")), Policy::OneFactor))
            .collect();
        specs.push(rule(None, Policy::Deny));
        let rules = AccessRules::compile(specs).unwrap();
        let get = Method::GET;
        assert_eq!(
            rules.first_match(&req("h", "/app499/x", &get)),
            RuleMatch::Rule {
                index: 499,
                policy: Policy::OneFactor
            }
        );
        assert_eq!(
            rules.first_match(&req("h", "/zzz", &get)),
            RuleMatch::Rule {
                index: 500,
                policy: Policy::Deny
            }
        );
    }
}
