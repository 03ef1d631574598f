//! Writing the gateway's own responses to the downstream, and choosing the status for faults.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::ErrorSource;

use crate::portal::Reply;

/// Writes a complete response, with `hsts` (`Strict-Transport-Security`) over HTTPS. A request
/// body the client may still be sending is not read, so the connection is not kept alive
/// afterwards (no desync with a half-read body).
pub async fn write(
    session: &mut Session,
    reply: Reply,
    hsts: Option<&http::HeaderValue>,
) -> Result<()> {
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let req = session.req_header();
    let has_body = req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let head_only = req.method == http::Method::HEAD;
    if has_body {
        session.set_keepalive(None);
    }
    let mut resp = ResponseHeader::build(
        reply.status,
        Some(reply.headers.len() + reply.named.len() + 1),
    )?;
    for (name, value) in reply.headers {
        resp.append_header(name, value)?;
    }
    for (name, value) in reply.named {
        resp.append_header(name, value)?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, reply.body.len())?;
    if let (Some(hsts), true) = (hsts, tls) {
        resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
    }
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::clone(&reply.body)), true)
            .await?;
    }
    Ok(())
}

/// The status for a failed request; 0 when the client is gone and nothing can be written.
pub fn status_for_error(e: &Error) -> u16 {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(code) => *code,
        ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
            if e.esource() == &ErrorSource::Downstream {
                0
            } else {
                504
            }
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}
