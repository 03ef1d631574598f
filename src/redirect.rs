//! The HTTP -> HTTPS redirect listener: every request gets a 308 to the same host and target on
//! the HTTPS port. Nothing is proxied from it.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::hygiene::host::normalize_host;
use crate::hygiene::target::normalize_target;

pub struct RedirectToHttps {
    pub https_port: u16,
}

#[async_trait]
impl ServeHttp for RedirectToHttps {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let hosts: Vec<&[u8]> = req
            .headers
            .get_all(http::header::HOST)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let (Ok(host), Ok(target)) = (
            normalize_host(&hosts, false),
            normalize_target(req.raw_path()),
        ) else {
            return plain(StatusCode::BAD_REQUEST, "bad request\n", None);
        };
        let port = if self.https_port == 443 {
            String::new()
        } else {
            format!(":{}", self.https_port)
        };
        let location = format!("https://{}{port}{}", host.name, target.to_uri_string());
        plain(
            StatusCode::PERMANENT_REDIRECT,
            "redirecting to https\n",
            Some(location),
        )
    }
}

fn plain(status: StatusCode, body: &str, location: Option<String>) -> Response<Vec<u8>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", body.len())
        .header("cache-control", "no-store");
    if let Some(l) = location {
        b = b.header("location", l);
    }
    b.body(body.as_bytes().to_vec())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}
