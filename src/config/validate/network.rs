//! Listeners, certificates, apps and upstreams: the network side of the config.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::super::file;
use super::super::*;
use super::Validator;
use crate::routing::HostPattern;

impl Validator<'_> {
    pub(super) fn listener(
        &mut self,
        i: usize,
        l: Spanned<file::ListenerFile>,
    ) -> Option<ListenerConfig> {
        let span = l.span();
        let l = l.into_inner();
        let key = format!("listener[{i}]");
        let address = self
            .required(&l.address, span.clone(), &format!("{key}.address"))
            .and_then(|a| self.socket_addr(a, &format!("{key}.address")));
        let protocol = l.protocol.as_ref().map_or("http", |p| p.get_ref().as_str());
        let kind = match protocol {
            "http" | "redirect" if !l.certificate.is_empty() => {
                self.problem(
                    l.certificate[0].span(),
                    format!("{key}.certificate"),
                    format!("certificates only go with protocol = \"https\" (found protocol = \"{protocol}\")"),
                );
                None
            }
            "http" => Some(ListenerKind::Http),
            "redirect" => {
                let port = match &l.redirect_port {
                    None => Some(443),
                    Some(p) => match u16::try_from(*p.get_ref()) {
                        Ok(port) if port > 0 => Some(port),
                        _ => {
                            self.problem(
                                p.span(),
                                format!("{key}.redirect_port"),
                                format!("must be a port from 1 to 65535 (found {})", p.get_ref()),
                            );
                            None
                        }
                    },
                };
                port.map(|https_port| ListenerKind::Redirect { https_port })
            }
            "https" => {
                if l.certificate.is_empty() {
                    self.problem(
                        span.clone(),
                        format!("{key}.certificate"),
                        "an https listener needs at least one [[listener.certificate]] (found none)",
                    );
                }
                let certificates: Vec<_> = l
                    .certificate
                    .iter()
                    .enumerate()
                    .filter_map(|(j, c)| {
                        self.certificate(c.get_ref(), c.span(), &format!("{key}.certificate[{j}]"))
                    })
                    .collect();
                let client_certificates = l.client_certificates.as_ref().and_then(|c| {
                    self.client_certificates(c, &format!("{key}.client_certificates"))
                });
                Some(ListenerKind::Https {
                    certificates,
                    http2: l.http2.unwrap_or(true),
                    client_certificates,
                })
            }
            other => {
                let p = l.protocol.as_ref().map_or(span.clone(), |p| p.span());
                self.problem(
                    p,
                    format!("{key}.protocol"),
                    format!("must be \"http\", \"https\" or \"redirect\" (found \"{other}\")"),
                );
                None
            }
        };
        if let (Some(c), false) = (&l.client_certificates, protocol == "https") {
            self.problem(
                c.span(),
                format!("{key}.client_certificates"),
                format!("only goes with protocol = \"https\" (found protocol = \"{protocol}\")"),
            );
        }
        if l.http2.is_some() && protocol != "https" {
            self.problem(
                span.clone(),
                format!("{key}.http2"),
                format!("only goes with protocol = \"https\" (found protocol = \"{protocol}\")"),
            );
        }
        if l.redirect_port.is_some() && protocol != "redirect" {
            let p = l.redirect_port.as_ref().map_or(span.clone(), |p| p.span());
            self.problem(
                p,
                format!("{key}.redirect_port"),
                format!("only goes with protocol = \"redirect\" (found protocol = \"{protocol}\")"),
            );
        }
        Some(ListenerConfig {
            address: address?,
            kind: kind?,
        })
    }

    /// `[listener.client_certificates]`: how the listener trusts client certificates, with its
    /// CA and CRL files read now (a file that does not read is a problem of the config).
    fn client_certificates(
        &mut self,
        c: &Spanned<file::ClientCertificatesFile>,
        key: &str,
    ) -> Option<Arc<crate::certificates::Trust>> {
        use crate::certificates::{Trust, TrustConfig, TrustMode};
        let span = c.span();
        let c = c.get_ref();
        let mode = match c.trust.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("registered") => TrustMode::Registered,
            Some("ca") => TrustMode::Ca,
            Some(other) => {
                let at = c.trust.as_ref().map_or(span.clone(), |t| t.span());
                self.problem(
                    at,
                    format!("{key}.trust"),
                    format!("must be \"registered\" or \"ca\" (found \"{other}\")"),
                );
                return None;
            }
        };
        if mode == TrustMode::Ca && c.ca_files.is_empty() {
            self.problem(
                span.clone(),
                format!("{key}.ca_files"),
                "trust = \"ca\" needs at least one CA file (found none)",
            );
            return None;
        }
        if mode == TrustMode::Registered && !c.ca_files.is_empty() {
            self.problem(
                c.ca_files[0].span(),
                format!("{key}.ca_files"),
                "only goes with trust = \"ca\" (found trust = \"registered\")",
            );
            return None;
        }
        let files = |v: &[file::Str]| -> Vec<PathBuf> {
            v.iter().map(|f| PathBuf::from(f.get_ref())).collect()
        };
        let cfg = TrustConfig {
            mode,
            ca_files: files(&c.ca_files),
            crl_files: files(&c.crl_files),
        };
        match Trust::load(cfg) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                self.problem(span, key.to_owned(), format!("cannot use the files: {e}"));
                None
            }
        }
    }

    fn certificate(
        &mut self,
        c: &file::CertificateFile,
        table: Range<usize>,
        key: &str,
    ) -> Option<Certificate> {
        let cert_file = self.required(&c.cert_file, table.clone(), &format!("{key}.cert_file"));
        let key_file = self.required(&c.key_file, table, &format!("{key}.key_file"));
        let (cert_file, key_file) = (cert_file?, key_file?);
        let loaded = crate::tls::load_certified_key(
            Path::new(cert_file.get_ref()),
            Path::new(key_file.get_ref()),
        );
        let (certified, names) = match loaded {
            Ok(v) => v,
            Err(e) => {
                let span = match e {
                    crate::tls::LoadError::Key(_) => key_file.span(),
                    _ => cert_file.span(),
                };
                let (which, file) = if span == key_file.span() {
                    ("key_file", key_file)
                } else {
                    ("cert_file", cert_file)
                };
                let message = format!("{e} (found \"{}\")", file.get_ref());
                self.problem(span, format!("{key}.{which}"), message);
                return None;
            }
        };
        let hosts = match &c.hosts {
            Some(hosts) => hosts
                .iter()
                .enumerate()
                .filter_map(|(i, h)| self.host_pattern(h, &format!("{key}.hosts[{i}]")))
                .collect(),
            None => {
                let hosts: Vec<_> = names
                    .iter()
                    .filter_map(|n| HostPattern::parse(n).ok())
                    .collect();
                if hosts.is_empty() {
                    self.problem(
                        cert_file.span(),
                        format!("{key}.hosts"),
                        "the certificate names no DNS host; list the hosts it serves in `hosts` (found no subjectAltName)",
                    );
                }
                hosts
            }
        };
        Some(Certificate {
            cert_file: PathBuf::from(cert_file.get_ref()),
            key: Arc::new(certified),
            hosts,
        })
    }

    pub(super) fn apps(&mut self, apps: Vec<Spanned<file::AppFile>>) -> Vec<AppConfig> {
        let mut ids = HashSet::new();
        let mut hosts_seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for (i, a) in apps.into_iter().enumerate() {
            let span = a.span();
            let a = a.into_inner();
            let key = format!("app[{i}]");
            let id_span = self
                .required(&a.id, span.clone(), &format!("{key}.id"))
                .map_or(span.clone(), |i| i.span());
            let id = &a
                .id
                .as_ref()
                .map(|i| i.get_ref().clone())
                .unwrap_or_default();
            if a.id.is_none() {
                // Reported above; the rest of the app is still checked.
            } else if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                self.problem(
                    id_span.clone(),
                    format!("{key}.id"),
                    format!("must be letters, digits, -, _ or . (found \"{id}\")"),
                );
            } else if !ids.insert(id.clone()) {
                self.problem(
                    id_span.clone(),
                    format!("{key}.id"),
                    format!("another app already has this id (found \"{id}\")"),
                );
            }
            if a.hosts.is_empty() {
                self.problem(
                    span.clone(),
                    format!("{key}.hosts"),
                    "an app needs at least one host (found none)",
                );
            }
            let mut hosts = Vec::new();
            for (j, h) in a.hosts.iter().enumerate() {
                let hk = format!("{key}.hosts[{j}]");
                if let Some(p) = self.host_pattern(h, &hk) {
                    if !hosts_seen.insert(p.to_string()) {
                        self.problem(
                            h.span(),
                            hk,
                            format!(
                                "another app already serves this host (found \"{}\")",
                                h.get_ref()
                            ),
                        );
                    }
                    hosts.push(p);
                }
            }
            let forward_auth = a.forward_auth.as_ref().is_some_and(|f| *f.get_ref());
            let upstream = match (&a.builtin, a.upstreams.is_empty()) {
                _ if forward_auth => {
                    let extras = [
                        ("builtin", a.builtin.is_some()),
                        ("upstreams", !a.upstreams.is_empty()),
                        ("connect_timeout", a.connect_timeout.is_some()),
                        ("read_timeout", a.read_timeout.is_some()),
                        ("tls", a.tls.is_some()),
                        ("health_check", a.health_check.is_some()),
                    ];
                    let span = a.forward_auth.as_ref().map_or(span.clone(), |f| f.span());
                    for (extra, _) in extras.iter().filter(|(_, set)| *set) {
                        self.problem(
                            span.clone(),
                            format!("{key}.{extra}"),
                            "an app with `forward_auth = true` is served by your own proxy, not \
                             through the gateway (found both)",
                        );
                    }
                    Some(UpstreamConfig::ForwardAuthOnly)
                }
                (Some(b), true) if b.get_ref() == "whoami" => {
                    let extras = [
                        ("connect_timeout", a.connect_timeout.is_some()),
                        ("read_timeout", a.read_timeout.is_some()),
                        ("tls", a.tls.is_some()),
                        ("health_check", a.health_check.is_some()),
                    ];
                    for (extra, _) in extras.iter().filter(|(_, set)| *set) {
                        self.problem(
                            b.span(),
                            format!("{key}.{extra}"),
                            "only goes with `upstreams`, not with a built-in app (found both)",
                        );
                    }
                    Some(UpstreamConfig::Whoami)
                }
                (Some(b), true) => {
                    self.problem(
                        b.span(),
                        format!("{key}.builtin"),
                        format!(
                            "the only built-in app is \"whoami\" (found \"{}\")",
                            b.get_ref()
                        ),
                    );
                    None
                }
                (Some(b), false) => {
                    self.problem(
                        b.span(),
                        format!("{key}.builtin"),
                        "give either `builtin` or `upstreams`, not both (found both)",
                    );
                    None
                }
                (None, true) => {
                    self.problem(
                        span.clone(),
                        format!("{key}.upstreams"),
                        "an app needs `upstreams`, `builtin = \"whoami\"` or `forward_auth = true` \
                         (found none)",
                    );
                    None
                }
                (None, false) => self.upstream_servers(&a, &key).map(UpstreamConfig::Servers),
            };
            if let Some(upstream) = upstream {
                out.push(AppConfig {
                    id: id.clone(),
                    hosts,
                    upstream,
                });
            }
        }
        out
    }

    fn upstream_servers(&mut self, a: &file::AppFile, key: &str) -> Option<UpstreamServers> {
        let servers: Vec<_> = a
            .upstreams
            .iter()
            .enumerate()
            .filter_map(|(i, u)| {
                let parsed = parse_upstream(u.get_ref());
                if parsed.is_none() {
                    self.problem(
                        u.span(),
                        format!("{key}.upstreams[{i}]"),
                        format!("must be host:port, http://host:port or https://host:port (found \"{}\")", u.get_ref()),
                    );
                }
                parsed
            })
            .collect();
        if a.tls.is_some() && servers.iter().any(|s| !s.tls) {
            self.problem(
                a.upstreams[0].span(),
                format!("{key}.tls"),
                "[app.tls] only applies to https:// upstreams (found an http upstream)",
            );
        }
        let tls = match &a.tls {
            None => UpstreamTls {
                sni: None,
                verify_cert: true,
                verify_hostname: true,
                ca_file: None,
            },
            Some(t) => UpstreamTls {
                sni: t.sni.as_ref().and_then(|s| {
                    let name = s.get_ref();
                    if rustls::pki_types::ServerName::try_from(name.as_str()).is_ok() {
                        Some(name.clone())
                    } else {
                        let message =
                            format!("must be a DNS name or an IP address (found \"{name}\")");
                        self.problem(s.span(), format!("{key}.tls.sni"), message);
                        None
                    }
                }),
                verify_cert: t.verify_cert.unwrap_or(true),
                verify_hostname: t.verify_hostname.unwrap_or(true),
                ca_file: t.ca_file.as_ref().and_then(|f| {
                    let path = PathBuf::from(f.get_ref());
                    match crate::tls::load_ca(&path) {
                        Ok(_) => Some(path),
                        Err(e) => {
                            let message = format!("{e} (found \"{}\")", f.get_ref());
                            self.problem(f.span(), format!("{key}.tls.ca_file"), message);
                            None
                        }
                    }
                }),
            },
        };
        let health_check = a.health_check.as_ref().map(|h| {
            let span = h.span();
            let h = h.get_ref();
            let path = h
                .path
                .as_ref()
                .map_or_else(|| "/".to_owned(), |p| p.get_ref().clone());
            if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
                self.problem(
                    h.path.as_ref().map_or(span, |p| p.span()),
                    format!("{key}.health_check.path"),
                    format!("must be a path starting with / (found \"{path}\")"),
                );
            }
            HealthCheck {
                path,
                host: h.host.as_ref().map(|s| s.get_ref().clone()),
                interval: self.duration(&h.interval, &format!("{key}.health_check.interval"), 5),
                timeout: self.duration(&h.timeout, &format!("{key}.health_check.timeout"), 2),
            }
        });
        let s = UpstreamServers {
            connect_timeout: self.duration(
                &a.connect_timeout,
                &format!("{key}.connect_timeout"),
                5,
            ),
            read_timeout: self.duration(&a.read_timeout, &format!("{key}.read_timeout"), 60),
            servers,
            tls,
            health_check,
        };
        (s.servers.len() == a.upstreams.len()).then_some(s)
    }
}

fn parse_upstream(s: &str) -> Option<UpstreamServer> {
    let with_scheme = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        _ => return None,
    };
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || !matches!(url.path(), "" | "/")
    {
        return None;
    }
    let host = match url.host()? {
        url::Host::Domain(d) => d.to_owned(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => format!("[{a}]"),
    };
    Some(UpstreamServer {
        host,
        port: url.port_or_known_default()?,
        tls,
    })
}
