//! Helper for `benches/load.sh`: pingora with nothing of stepgate in it, to show how much of
//! stepgate's cost per request is pingora's own.
//!
//! `pingora_floor LISTEN UPSTREAM THREADS` runs a `ProxyHttp` that only names the upstream: no
//! routing, hygiene, sessions or identity headers. It is built like the `stepgate` binary (the
//! same allocator, per-thread runtimes, upstream keep-alive pool and thread count), so the
//! difference between this case and `stepgate_bypass` is what stepgate's own code costs, and the
//! difference between this case and `nginx_proxy` is what pingora costs.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, threads] = args.as_slice() else {
        eprintln!("usage: pingora_floor LISTEN UPSTREAM THREADS");
        std::process::exit(2);
    };
    let (Ok(upstream), Ok(threads)) = (upstream.parse(), threads.parse()) else {
        eprintln!("UPSTREAM must be an address (127.0.0.1:8081) and THREADS a number");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        upstream_keepalive_pool_size: 256,
        work_stealing: false,
        // The benchmark stops it with SIGTERM: no draining wait.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut proxy = http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
