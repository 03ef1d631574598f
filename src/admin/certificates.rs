//! `stepgate admin certificates USER [--register FILE | --remove FINGERPRINT [--reason R]]`:
//! a user's client certificates (docs/certificates.md), as a table or `--json`. Registering
//! checks the file as the page does, under the trust of the configured certificate listeners.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::{record, table, when, Ctx, Output};
use stepgate::audit::rfc3339;
use stepgate::certificates::{self, CertInfo, Certificates};

/// What the command does besides listing.
pub(super) enum Change<'a> {
    None,
    Register(&'a Path),
    Remove {
        fingerprint: &'a str,
        reason: &'a str,
    },
}

#[derive(Serialize)]
struct CertView {
    #[serde(flatten)]
    info: CertInfo,
    not_before: String,
    not_after: String,
    added: String,
}

#[derive(Serialize)]
struct CertsDoc<'a> {
    user: &'a str,
    certificates: Vec<CertView>,
    /// The fingerprint this command registered or removed, if any.
    changed: Option<String>,
}

pub(super) async fn certificates(ctx: &Ctx, change: Change<'_>, out: Output) -> Result<()> {
    let user = &ctx.user;
    let mut text = String::new();
    let changed = match change {
        Change::None => None,
        Change::Register(file) => {
            let bytes = std::fs::read(file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let cert = certificates::read_file(&bytes)
                .map_err(|p| anyhow::anyhow!("{}: refused: {}", file.display(), p.as_str()))?;
            let listeners = ctx.cfg.certificate_listeners();
            if listeners.is_empty() {
                bail!("no listener takes client certificates ([listener.client_certificates])");
            }
            let clock = stepgate::clock::system();
            let check = Certificates::new(ctx.store.clone(), clock, listeners);
            if let Err(p) = check.check_anywhere(&cert) {
                bail!("{}: refused: {}", file.display(), p.as_str());
            }
            if let Err(p) = certificates::register(&ctx.store, user, &cert, ctx.now).await? {
                bail!("{}: refused: {}", file.display(), p.as_str());
            }
            let fp = cert.info.fingerprint.clone();
            record(ctx, "certificate_registered_by_operator", fp.clone()).await?;
            text.push_str(&format!("registered {fp} for {user}\n"));
            Some(fp)
        }
        Change::Remove {
            fingerprint,
            reason,
        } => {
            if !certificates::remove(&ctx.store, user, fingerprint).await? {
                bail!("{user} has no certificate {fingerprint:?} (see `stepgate admin certificates {user}`)");
            }
            let detail = format!("{fingerprint} {reason}").trim().to_owned();
            record(ctx, "certificate_removed_by_operator", detail).await?;
            text.push_str(&format!(
                "removed {fingerprint} of {user}; a running gateway refuses it within seconds\n"
            ));
            Some(fingerprint.to_owned())
        }
    };
    let views: Vec<CertView> = certificates::of_user(&ctx.store, user)
        .await?
        .into_iter()
        .map(|r| CertView {
            not_before: rfc3339(r.cert.info.not_before_ms),
            not_after: rfc3339(r.cert.info.not_after_ms),
            added: rfc3339(r.added_ms),
            info: r.cert.info,
        })
        .collect();
    if views.is_empty() {
        text.push_str(&format!("{user} has no certificates\n"));
    } else {
        let rows = views.iter().map(|v| {
            vec![
                v.info.fingerprint.clone(),
                v.info.subject.clone(),
                v.info.issuer.clone(),
                when(v.info.not_after_ms),
            ]
        });
        text.push_str(&table(
            &["FINGERPRINT", "SUBJECT", "ISSUER", "NOT AFTER"],
            rows,
        ));
    }
    out.print(
        &text,
        &CertsDoc {
            user,
            certificates: views,
            changed,
        },
    )
}
