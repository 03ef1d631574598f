//! Upstream pools: round-robin over an app's servers, active health checks, timeouts and TLS.

use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::prelude::HttpPeer;
use pingora::protocols::ALPN;
use pingora::utils::tls::{parse_x509, WrappedX509};

use crate::config::UpstreamServers;

/// Where one app's requests go.
pub enum Upstream {
    /// The built-in whoami app, on a loopback port of the gateway's own.
    Whoami(SocketAddr),
    Pool(Box<Pool>),
    /// Served by the operator's proxy (forward-auth): nothing to proxy to.
    ForwardAuthOnly,
}

pub struct Pool {
    lb: Arc<LoadBalancer<RoundRobin>>,
    tls: bool,
    template: HttpPeer,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("app {app}: cannot resolve upstream {server} ({cause})")]
    Resolve {
        app: String,
        server: String,
        cause: String,
    },
    #[error("app {app}: cannot load the upstream CA file ({cause})")]
    Ca { app: String, cause: String },
    #[error("app {app}: {cause}")]
    Other { app: String, cause: String },
}

/// A pool before it runs: the load balancer still owned, so that `app` can hand it to a
/// background service when it has health checks.
pub struct PoolParts {
    pub lb: LoadBalancer<RoundRobin>,
    pub health_checked: bool,
    tls: bool,
    template: HttpPeer,
}

impl PoolParts {
    pub fn build(app: &str, servers: &UpstreamServers) -> Result<PoolParts, UpstreamError> {
        let other = |cause: String| UpstreamError::Other {
            app: app.into(),
            cause,
        };
        let mut addrs = Vec::new();
        for s in &servers.servers {
            let hostport = format!("{}:{}", s.host, s.port);
            let resolve = |cause: String| UpstreamError::Resolve {
                app: app.into(),
                server: hostport.clone(),
                cause,
            };
            let resolved = hostport
                .to_socket_addrs()
                .map_err(|e| resolve(e.to_string()))?
                .next()
                .ok_or_else(|| resolve("no address".into()))?;
            addrs.push(resolved);
        }
        let tls = servers.servers.first().is_some_and(|s| s.tls);
        if servers.servers.iter().any(|s| s.tls != tls) {
            return Err(other(
                "all upstreams of one app must use the same scheme".into(),
            ));
        }
        let sni = servers.tls.sni.clone().unwrap_or_else(|| {
            servers
                .servers
                .first()
                .map(|s| s.host.trim_matches(['[', ']']).to_owned())
                .unwrap_or_default()
        });
        let template = peer_template(app, servers, tls, &sni)?;
        let mut lb =
            LoadBalancer::<RoundRobin>::try_from_iter(addrs).map_err(|e| other(e.to_string()))?;
        if let Some(hc) = &servers.health_check {
            let host = hc.host.clone().unwrap_or_else(|| sni.clone());
            let mut check = HttpHealthCheck::new(&host, tls);
            let mut req = RequestHeader::build("GET", hc.path.as_bytes(), None)
                .map_err(|e| other(e.to_string()))?;
            req.insert_header("host", host.as_str())
                .map_err(|e| other(e.to_string()))?;
            req.insert_header("user-agent", "stepgate-health-check")
                .map_err(|e| other(e.to_string()))?;
            check.req = req;
            check.peer_template = template.clone();
            check.peer_template.options.connection_timeout = Some(hc.timeout);
            check.peer_template.options.read_timeout = Some(hc.timeout);
            check.peer_template.options.alpn = ALPN::H1;
            check.validator = Some(Box::new(|resp| {
                if resp.status.is_success() || resp.status.is_redirection() {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::Custom("unhealthy"),
                        format!("health check answered {}", resp.status),
                    )
                }
            }));
            lb.set_health_check(Box::new(check));
            lb.health_check_frequency = Some(hc.interval);
            lb.parallel_health_check = true;
        }
        Ok(PoolParts {
            lb,
            health_checked: servers.health_check.is_some(),
            tls,
            template,
        })
    }

    /// The running pool. With health checks, the load balancer becomes a background service of
    /// `server` (it runs the checks) and the pool shares it.
    pub fn start(self, server: &mut pingora::server::Server, app: &str) -> Pool {
        let lb = if self.health_checked {
            let service = pingora::services::background::background_service(
                &format!("health check {app}"),
                self.lb,
            );
            let lb = service.task();
            server.add_service(service);
            lb
        } else {
            Arc::new(self.lb)
        };
        Pool {
            lb,
            tls: self.tls,
            template: self.template,
        }
    }
}

impl Pool {
    /// The next healthy server, or `None` when every server is down.
    pub fn select(&self) -> Option<Box<HttpPeer>> {
        let backend = self.lb.select(b"", 256)?;
        let mut peer = self.template.clone();
        peer._address = backend.addr;
        Some(Box::new(peer))
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

fn peer_template(
    app: &str,
    s: &UpstreamServers,
    tls: bool,
    sni: &str,
) -> Result<HttpPeer, UpstreamError> {
    let placeholder: SocketAddr = ([127, 0, 0, 1], 1).into();
    let mut peer = HttpPeer::new(placeholder, tls, sni.to_owned());
    peer.options.connection_timeout = Some(s.connect_timeout);
    peer.options.total_connection_timeout = Some(s.connect_timeout);
    peer.options.read_timeout = Some(s.read_timeout);
    peer.options.write_timeout = Some(s.read_timeout);
    if tls {
        peer.options.verify_cert = s.tls.verify_cert;
        peer.options.verify_hostname = s.tls.verify_hostname;
        peer.options.alpn = ALPN::H2H1;
        if let Some(ca) = &s.tls.ca_file {
            let certs = crate::tls::load_ca(ca).map_err(|e| UpstreamError::Ca {
                app: app.into(),
                cause: e.to_string(),
            })?;
            // pingora's connection-reuse key covers the SNI and the verify flags but not the
            // CA: keyed by the trusted certificates, an app never reuses a connection that
            // another app verified against a CA this one does not trust.
            let mut key = std::collections::hash_map::DefaultHasher::new();
            for c in &certs {
                c.as_ref().hash(&mut key);
            }
            peer.group_key = key.finish();
            // `parse_x509` panics on bad DER, so only certificates that parse are handed to it.
            let wrapped: Vec<WrappedX509> = certs
                .into_iter()
                .filter(|c| x509_parser::parse_x509_certificate(c.as_ref()).is_ok())
                .map(|c| WrappedX509::new(c.to_vec(), parse_x509))
                .collect();
            peer.options.ca = Some(Arc::from(wrapped.into_boxed_slice()));
        }
    }
    Ok(peer)
}
