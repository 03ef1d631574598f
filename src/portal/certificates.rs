//! "Certificates" (`/certificates`, seed 003's certificate management): the user's registered
//! client certificates with their details and removal forms (visible `reason`, a ticked
//! `confirm`), the certificate this connection presents with "register it", and the upload of a
//! certificate file (`certificate`, multipart) that shows the certificate and asks to confirm.
//! A route that needs a certificate sends browsers here with `rd`. The rules are
//! `flow::certificates`'; what is accepted is `certificates`'.

use bytes::Bytes;
use http::StatusCode;
use minijinja::context;

use super::browsers::when;
use super::login::{form_value, PortalRequest};
use super::{see_other, PageContext, Pages, Refusal, Reply};
use crate::auth::{Auth, Identity};
use crate::certificates::{self, CertInfo, Parsed, Problem};
use crate::flow::certificates::{self as flow, Refused, Source};
use crate::i18n::Lang;

/// The page's words for a refused certificate.
fn problem_text(lang: Lang, p: Problem) -> String {
    lang.text(match p {
        Problem::Malformed => "cert-malformed",
        Problem::PrivateKey => "cert-private-key",
        Problem::Expired => "cert-expired",
        Problem::NotYetValid => "cert-not-yet-valid",
        Problem::UntrustedIssuer => "cert-untrusted",
        Problem::Revoked => "cert-revoked",
        Problem::Taken => "cert-taken",
        Problem::AlreadyYours => "cert-already-yours",
        Problem::TooMany => "cert-too-many",
        Problem::NotOffered => "cert-not-offered",
    })
}

fn info_view(info: &CertInfo) -> minijinja::Value {
    context! {
        subject => &info.subject,
        issuer => &info.issuer,
        serial => &info.serial,
        not_before => when(info.not_before_ms),
        not_after => when(info.not_after_ms),
        fingerprint => &info.fingerprint,
    }
}

/// What the page shows besides the list.
#[derive(Default)]
struct Shown {
    notice: Option<String>,
    error: Option<Refusal>,
    /// An uploaded certificate waiting for the confirmation.
    staged: Option<Parsed>,
}

async fn render(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    (who, lang, rd): (&Identity, Lang, &str),
    shown: Shown,
) -> Reply {
    let Ok(list) = flow::list(auth, who).await else {
        return pages.fault(lang);
    };
    let now = auth.clock.now_ms();
    let rows: Vec<minijinja::Value> = list
        .iter()
        .map(|r| {
            context! {
                cert => info_view(&r.cert.info),
                added => when(r.added_ms),
                expired => now > r.cert.info.not_after_ms,
            }
        })
        .collect();
    // The certificate this connection presents, and whose it is.
    let presented = match &req.presented {
        None => None,
        Some(p) => {
            let Ok(owner) = certificates::owner(&auth.store, &p.fingerprint).await else {
                return pages.fault(lang);
            };
            let state = match owner {
                Some(r) if r.user == who.user.name => "yours",
                Some(_) => "taken",
                None => "unregistered",
            };
            certificates::parse_der(&p.der)
                .ok()
                .map(|c| context! { cert => info_view(&c.info), state })
        }
    };
    let csrf = pages.csrf.token(&who.key);
    let title = lang.text("cert-title");
    let page = PageContext {
        title: &title,
        rd,
        csrf: &csrf,
        switch: Some("/certificates"),
    };
    let ctx = context! {
        offered => auth.certificates.offered(),
        needed => !rd.is_empty(),
        rows,
        presented,
        staged => shown.staged.as_ref().map(|s| info_view(&s.info)),
        notice => shown.notice,
        error => shown.error.as_ref().map(|e| e.text.clone()),
        max => certificates::MAX_PER_USER,
    };
    pages.form_page("certificates.html", lang, page, ctx, shown.error.as_ref())
}

/// A refused step as the page says it; `None` for a fault.
fn refusal(lang: Lang, r: Refused) -> Option<Refusal> {
    Some(match r {
        Refused::Certificate(p) => {
            let status = match p {
                Problem::Taken | Problem::AlreadyYours | Problem::TooMany => StatusCode::CONFLICT,
                Problem::NotOffered => StatusCode::NOT_FOUND,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            Refusal::new(problem_text(lang, p), status)
        }
        Refused::NotStaged => Refusal::new(lang.text("cert-not-staged"), StatusCode::CONFLICT),
        Refused::Unknown => Refusal::new(lang.text("cert-unknown"), StatusCode::NOT_FOUND),
        Refused::NotTwoFactor | Refused::NeedsProof => {
            Refusal::new(lang.text("cert-confirm-first"), StatusCode::FORBIDDEN)
        }
        Refused::Fault => return None,
    })
}

/// `GET /certificates?rd=`: the page, for a two-factor session (the challenge first for a
/// one-factor one). Each form asks for a fresh proof when it is posted (`confirm_first`).
pub async fn show(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang, rd) = match pages.signed_in_get(auth, req, "/certificates").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if who.session.level() != crate::amr::AuthLevel::TwoFactor {
        let back = format!("{}{}/certificates", req.origin, pages.config().prefix);
        return Reply::redirect(&pages.url_with_rd("/2fa", &back));
    }
    let notice = match req.param("done").as_deref() {
        Some("registered") => Some(lang.text("cert-registered")),
        Some("removed") => Some(lang.text("cert-removed")),
        _ => None,
    };
    let shown = Shown {
        notice,
        ..Shown::default()
    };
    render(auth, pages, req, (&who, lang, &rd), shown).await
}

/// Registering and removing change a factor: without a fresh proof, the "confirm it is you"
/// page comes first (and leads back to this page).
async fn confirm_first(
    auth: &Auth,
    pages: &Pages,
    req: &PortalRequest<'_>,
    who: &Identity,
    lang: Lang,
) -> Option<Reply> {
    super::reauth::unless_allowed(auth, pages, req, who, "/certificates", lang).await
}

/// The fields of a `multipart/form-data` body (text fields as text, the file as bytes);
/// `None` when it is not one.
async fn multipart(req: &PortalRequest<'_>) -> Option<Vec<(String, Bytes)>> {
    let ct = req.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let boundary = multer::parse_boundary(ct).ok()?;
    let body = req.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.ok()?;
        fields.push((name, data));
    }
    Some(fields)
}

/// `POST /certificates/upload` (multipart: `csrf`, `lang`, `certificate`): the certificate's
/// details and the confirmation, or why it is refused.
pub async fn upload(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let fields = multipart(req).await.unwrap_or_default();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let lang = super::login::lang_of(pages, req, field("lang"));
    let who = match pages.signed_in(auth, req, "/certificates").await {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if !pages
        .csrf
        .verify(&who.key, &field("csrf").unwrap_or_default())
    {
        return pages.error(StatusCode::FORBIDDEN, lang);
    }
    if let Some(r) = confirm_first(auth, pages, req, &who, lang).await {
        return r;
    }
    let file = fields
        .iter()
        .find(|(n, _)| n == "certificate")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let shown = match flow::stage(auth, &who, &file).await {
        Ok(parsed) => Shown {
            staged: Some(parsed),
            ..Shown::default()
        },
        Err(r) => match refusal(lang, r) {
            Some(e) => Shown {
                error: Some(e),
                ..Shown::default()
            },
            None => return pages.fault(lang),
        },
    };
    render(auth, pages, req, (&who, lang, ""), shown).await
}

/// `POST /certificates/register` (`source` = `staged` or `presented`).
pub async fn register(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang, rd) = match pages.signed_in_post(auth, req, "/certificates").await {
        Ok(p) => (p.who, p.lang, p.rd),
        Err(reply) => return reply,
    };
    if let Some(r) = confirm_first(auth, pages, req, &who, lang).await {
        return r;
    }
    let ctx = pages.context(req, lang);
    let source = match form_value(&req.body, "source").as_deref() {
        Some("presented") => match &req.presented {
            Some(p) => Source::Presented(&p.der),
            None => {
                let e = Refusal::new(lang.text("cert-none-presented"), StatusCode::BAD_REQUEST);
                let shown = Shown {
                    error: Some(e),
                    ..Shown::default()
                };
                return render(auth, pages, req, (&who, lang, &rd), shown).await;
            }
        },
        _ => Source::Staged,
    };
    match flow::register(auth, &ctx, &who, source).await {
        Ok(_) => {
            let prefix = &pages.config().prefix;
            let rd_q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
            see_other(&format!("{prefix}/certificates?done=registered&rd={rd_q}"))
        }
        Err(r) => match refusal(lang, r) {
            Some(e) => {
                let shown = Shown {
                    error: Some(e),
                    ..Shown::default()
                };
                render(auth, pages, req, (&who, lang, &rd), shown).await
            }
            None => pages.fault(lang),
        },
    }
}

/// `POST /certificates/remove` (`fingerprint`, visible `reason`, a ticked `confirm`).
pub async fn remove(auth: &Auth, pages: &Pages, req: &PortalRequest<'_>) -> Reply {
    let (who, lang) = match pages.signed_in_post(auth, req, "/certificates").await {
        Ok(p) => (p.who, p.lang),
        Err(reply) => return reply,
    };
    if let Some(r) = confirm_first(auth, pages, req, &who, lang).await {
        return r;
    }
    let body = &req.body[..];
    if form_value(body, "confirm").is_none_or(|v| v.is_empty()) {
        let e = Refusal::new(
            lang.text("cert-remove-unconfirmed"),
            StatusCode::BAD_REQUEST,
        );
        let shown = Shown {
            error: Some(e),
            ..Shown::default()
        };
        return render(auth, pages, req, (&who, lang, ""), shown).await;
    }
    let fingerprint = form_value(body, "fingerprint").unwrap_or_default();
    let reason = form_value(body, "reason").unwrap_or_default();
    let ctx = pages.context(req, lang);
    match flow::remove(auth, &ctx, &who, &fingerprint, &reason).await {
        Ok(()) => {
            let prefix = &pages.config().prefix;
            see_other(&format!("{prefix}/certificates?done=removed"))
        }
        Err(r) => match refusal(lang, r) {
            Some(e) => {
                let shown = Shown {
                    error: Some(e),
                    ..Shown::default()
                };
                render(auth, pages, req, (&who, lang, ""), shown).await
            }
            None => pages.fault(lang),
        },
    }
}
