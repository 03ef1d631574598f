//! The gateway's own pages under the reserved prefix (default `/_stepgate`), and the branded
//! pages for refusals and upstream failures. Pages are rendered from templates compiled into the
//! binary; every response carries `Cache-Control: no-store` and a strict Content-Security-Policy
//! that allows nothing from other sites.

pub mod csrf;
pub mod login;
pub mod return_to;

use bytes::Bytes;
use http::{Method, StatusCode};
use minijinja::{context, Environment};

use crate::auth::Auth;
use crate::config::PortalConfig;
use crate::i18n::Lang;
use crate::routing::HostRouter;
use login::PortalRequest;

pub const STYLE_CSS: &str = include_str!("portal/style.css");

/// The response headers every portal page and error page carries.
pub const PAGE_HEADERS: [(&str, &str); 6] = [
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// A rendered response the proxy layer writes out as it is.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        let mut headers: Vec<(&'static str, String)> = PAGE_HEADERS
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        headers.push(("content-type", content_type.to_owned()));
        Reply {
            status,
            headers,
            body: body.into(),
        }
    }

    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply::new(status, "application/json", body)
    }

    /// A redirect with a small body for clients that show it.
    pub fn redirect(location: &str) -> Reply {
        let mut r = Reply::new(
            StatusCode::FOUND,
            "text/plain; charset=utf-8",
            format!("Redirecting to {location}\n"),
        );
        r.headers.push(("location", location.to_owned()));
        r
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// Texts of the branded error pages.
struct ErrorText {
    title: &'static str,
    message: &'static str,
}

fn error_text(status: StatusCode, lang: Lang) -> ErrorText {
    use Lang::*;
    let (title, message) = match (status.as_u16(), lang) {
        (400, En) => ("Bad request", "The request could not be understood. Check the address and try again."),
        (400, Ko) => ("잘못된 요청", "요청을 이해할 수 없습니다. 주소를 확인한 뒤 다시 시도해 주세요."),
        (401, En) => ("Sign-in required", "Sign in to continue."),
        (401, Ko) => ("로그인 필요", "계속하려면 로그인해 주세요."),
        (403, En) => ("Access denied", "You do not have permission to open this page. Ask your administrator if you think this is a mistake."),
        (403, Ko) => ("접근 거부", "이 페이지를 열 권한이 없습니다. 잘못되었다고 생각되면 관리자에게 문의해 주세요."),
        (404, En) => ("Not found", "There is nothing at this address."),
        (404, Ko) => ("찾을 수 없음", "이 주소에는 아무것도 없습니다."),
        (429, En) => ("Too many attempts", "Too many attempts. Wait a while and try again."),
        (429, Ko) => ("시도 횟수 초과", "시도 횟수가 너무 많습니다. 잠시 후 다시 시도해 주세요."),
        (502, En) => ("Service unavailable", "The service behind this address did not answer properly. Try again in a moment."),
        (502, Ko) => ("서비스 응답 오류", "서비스가 올바르게 응답하지 않았습니다. 잠시 후 다시 시도해 주세요."),
        (503, En) => ("Service unavailable", "The service is temporarily unavailable. Try again in a moment."),
        (503, Ko) => ("일시적으로 사용할 수 없음", "서비스를 일시적으로 사용할 수 없습니다. 잠시 후 다시 시도해 주세요."),
        (504, En) => ("Service timed out", "The service took too long to answer. Try again in a moment."),
        (504, Ko) => ("응답 시간 초과", "서비스 응답이 너무 늦습니다. 잠시 후 다시 시도해 주세요."),
        (405, En) => ("Method not allowed", "This address does not accept that kind of request."),
        (405, Ko) => ("허용되지 않는 요청", "이 주소는 해당 요청을 받지 않습니다."),
        (_, En) => ("Something went wrong", "The request could not be completed. Try again in a moment."),
        (_, Ko) => ("오류가 발생했습니다", "요청을 처리하지 못했습니다. 잠시 후 다시 시도해 주세요."),
    };
    ErrorText { title, message }
}

pub(crate) fn help_label(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Help",
        Lang::Ko => "도움말",
    }
}

/// Renders the portal's pages.
pub struct Pages {
    env: Environment<'static>,
    cfg: PortalConfig,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("prefix", &self.cfg.prefix)
            .finish()
    }
}

impl Pages {
    pub fn new(cfg: PortalConfig) -> Pages {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        // Templates are compiled into the binary; a broken one is a build defect.
        env.add_template("base.html", include_str!("portal/templates/base.html"))
            .expect("base.html template is valid");
        env.add_template("error.html", include_str!("portal/templates/error.html"))
            .expect("error.html template is valid");
        env.add_template("login.html", include_str!("portal/templates/login.html"))
            .expect("login.html template is valid");
        env.add_template(
            "account.html",
            include_str!("portal/templates/account.html"),
        )
        .expect("account.html template is valid");
        Pages { env, cfg }
    }

    pub fn config(&self) -> &PortalConfig {
        &self.cfg
    }

    pub fn lang(&self, accept_language: Option<&str>) -> Lang {
        Lang::negotiate(accept_language, self.cfg.default_language)
    }

    /// A branded page for a refusal or failure, with no internal detail.
    pub fn error(&self, status: StatusCode, lang: Lang) -> Reply {
        let text = error_text(status, lang);
        let html = self
            .env
            .get_template("error.html")
            .and_then(|t| {
                t.render(context! {
                    lang => lang.tag(),
                    title => text.title,
                    message => text.message,
                    status => status.as_u16(),
                    service_name => &self.cfg.service_name,
                    help_url => &self.cfg.help_url,
                    prefix => &self.cfg.prefix,
                    t => context! { help => help_label(lang) },
                })
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "error page failed to render");
                format!("{} {}\n", status.as_u16(), text.title)
            });
        Reply::new(status, "text/html; charset=utf-8", html)
    }

    pub fn health(&self) -> Reply {
        Reply::json(StatusCode::OK, &b"{\"status\":\"ok\"}"[..])
    }

    pub fn stylesheet(&self) -> Reply {
        let mut r = Reply::new(StatusCode::OK, "text/css; charset=utf-8", STYLE_CSS);
        for h in r.headers.iter_mut() {
            if h.0 == "cache-control" {
                h.1 = "public, max-age=3600".into();
            }
        }
        r
    }

    /// Renders a template with the fields every page has added.
    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        let common = context! {
            service_name => &self.cfg.service_name,
            help_url => &self.cfg.help_url,
            prefix => &self.cfg.prefix,
        };
        self.env
            .get_template(name)?
            .render(context! { ..ctx, ..common })
    }

    fn account(&self, auth: &Auth, req: &PortalRequest<'_>, lang: Lang) -> Reply {
        let Some(who) = auth.identify(req.headers, req.tls) else {
            let rd = format!("{}{}/account", req.origin, self.cfg.prefix);
            let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
            return Reply::redirect(&format!("{}/login?rd={rd}", self.cfg.prefix));
        };
        let (title, user, name, email, level, logout) = match lang {
            Lang::En => (
                "Account security",
                "User name",
                "Name",
                "Email",
                "Sign-in level",
                "Sign out",
            ),
            Lang::Ko => (
                "계정 보안",
                "아이디",
                "이름",
                "이메일",
                "인증 단계",
                "로그아웃",
            ),
        };
        let html = self.render(
            "account.html",
            context! {
                lang => lang.tag(),
                title => title,
                t => context! { title, user, name, email, level, logout, help => help_label(lang) },
                user => &who.user.name,
                name => &who.user.display_name,
                email => &who.user.email,
                level => who.session.level_str(),
                csrf => auth.csrf.token(&who.key),
            },
        );
        match html {
            Ok(html) => Reply::new(StatusCode::OK, "text/html; charset=utf-8", html),
            Err(e) => {
                tracing::error!(error = %e, "account page failed to render");
                self.error(StatusCode::INTERNAL_SERVER_ERROR, lang)
            }
        }
    }

    /// Serves a request under the portal prefix.
    pub async fn serve(&self, auth: &Auth, router: &HostRouter, req: &PortalRequest<'_>) -> Reply {
        let lang = self.lang(
            req.headers
                .get(http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        if *req.method == Method::POST && !auth.regulator.allow_form_post(req.client) {
            tracing::warn!(target: "stepgate::regulation", client = %req.client, "portal form posts over the limit");
            return self.error(StatusCode::TOO_MANY_REQUESTS, lang);
        }
        let get = *req.method == Method::GET || *req.method == Method::HEAD;
        match (req.sub, get) {
            ("/health", true) => self.health(),
            ("/assets/style.css", true) => self.stylesheet(),
            ("/jwks.json", true) => {
                let mut r = Reply::json(StatusCode::OK, auth.signer.jwks_json());
                for h in r.headers.iter_mut() {
                    if h.0 == "cache-control" {
                        h.1 = "public, max-age=60".into();
                    }
                }
                r
            }
            ("/login", true) => login::show(auth, self, router, req),
            ("/login", false) if *req.method == Method::POST => {
                login::submit(auth, self, router, req).await
            }
            ("/logout", false) if *req.method == Method::POST => login::logout(auth, self, req),
            ("/account", true) => self.account(auth, req, lang),
            ("/login" | "/logout", _) => self.error(StatusCode::METHOD_NOT_ALLOWED, lang),
            _ => self.error(StatusCode::NOT_FOUND, lang),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Pages {
        Pages::new(PortalConfig {
            prefix: "/_stepgate".into(),
            service_name: "Acme <Apps>".into(),
            help_url: Some("https://help.example/2fa".into()),
            default_language: Lang::En,
            default_redirect: "/".into(),
            allowed_redirect_hosts: vec![],
        })
    }

    #[test]
    fn error_pages_are_branded_escaped_and_localised() {
        let p = pages();
        let en = p.error(StatusCode::FORBIDDEN, Lang::En);
        let body = String::from_utf8(en.body.to_vec()).unwrap();
        assert!(body.contains("Access denied"));
        assert!(body.contains("Acme &lt;Apps&gt;"));
        assert!(body.contains("help.example"), "{body}");
        let ko = p.error(StatusCode::FORBIDDEN, Lang::Ko);
        assert!(String::from_utf8(ko.body.to_vec())
            .unwrap()
            .contains("접근 거부"));
        assert!(en
            .headers
            .iter()
            .any(|(k, v)| *k == "cache-control" && v == "no-store"));
    }
}
