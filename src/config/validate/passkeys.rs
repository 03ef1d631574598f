//! `[passkeys]`: the WebAuthn relying party (RP ID, name, the origins ceremonies come from).

use toml::Spanned;

use super::super::file::{self, Str};
use super::Validator;
use crate::factor::passkey::host_fits;
use crate::factor::PasskeyConfig;
use crate::portal::PortalConfig;

/// Whether `host` is a name a browser may use as an RP ID: a domain name (letters, digits,
/// `-`, dots between labels), not an IP address.
fn is_domain(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.parse::<std::net::IpAddr>().is_err()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

impl Validator<'_> {
    pub(super) fn passkeys(
        &mut self,
        p: Option<Spanned<file::PasskeysFile>>,
        portal: &PortalConfig,
    ) -> Option<PasskeyConfig> {
        let p = p?;
        let table = p.span();
        let p = p.into_inner();
        if p.enabled != Some(true) {
            return None;
        }
        let rp_id = self.required(&p.rp_id, table.clone(), "passkeys.rp_id")?;
        let rp_id_text = rp_id.get_ref().clone();
        if !is_domain(&rp_id_text) {
            self.problem(
                rp_id.span(),
                "passkeys.rp_id",
                format!("must be a lowercase host name such as \"example.com\", without scheme or port; browsers refuse IP addresses (found \"{rp_id_text}\")"),
            );
            return None;
        }
        let default_origin = vec![Spanned::new(table.clone(), format!("https://{rp_id_text}"))];
        let origins_given = p.origins.as_ref().is_some_and(|o| !o.is_empty());
        if p.origins.as_ref().is_some_and(|o| o.is_empty()) {
            self.problem(
                table.clone(),
                "passkeys.origins",
                "list at least one origin, or leave the key out for https://<rp_id> (found an empty list)",
            );
        }
        let origins: Vec<Str> = if origins_given {
            p.origins.unwrap_or_default()
        } else {
            default_origin
        };
        let mut parsed = Vec::new();
        for (i, o) in origins.iter().enumerate() {
            let key = format!("passkeys.origins[{i}]");
            match self.origin(o, &rp_id_text) {
                Ok(url) => parsed.push(url),
                Err(why) => {
                    self.problem(o.span(), key, format!("{why} (found \"{}\")", o.get_ref()))
                }
            }
        }
        let rp_name = match p.rp_name {
            Some(n) if n.get_ref().trim().is_empty() => {
                self.problem(
                    n.span(),
                    "passkeys.rp_name",
                    "must not be empty (found \"\")",
                );
                return None;
            }
            Some(n) => n.into_inner(),
            None => portal.service_name.clone(),
        };
        if parsed.len() != origins.len() {
            return None;
        }
        Some(PasskeyConfig {
            rp_id: rp_id_text,
            rp_name,
            origins: parsed,
            passwordless: p.passwordless.unwrap_or(false),
        })
    }

    /// One origin: `https://host[:port]` with the host the RP ID or under it (`http://` only
    /// for `localhost`, which browsers treat as secure).
    fn origin(&self, o: &Str, rp_id: &str) -> Result<url::Url, &'static str> {
        let url = url::Url::parse(o.get_ref())
            .map_err(|_| "must be an origin such as \"https://login.example.com\"")?;
        let host = url.host_str().unwrap_or_default();
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => host == "localhost" || host.ends_with(".localhost"),
            _ => false,
        };
        if !scheme_ok {
            return Err("must be an https:// origin (http:// only for localhost)");
        }
        if url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
        {
            return Err("must be an origin only: scheme, host and port, no path");
        }
        if !host_fits(host, rp_id) {
            return Err("the host must be the rp_id or a name under it");
        }
        Ok(url)
    }
}
