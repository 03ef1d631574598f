//! WebSocket upgrades: a bypassed path is proxied to a real WebSocket upstream and messages flow
//! both ways; an upgrade to a path that needs a session is refused with 401 and never reaches it.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::Gateway;
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// An echo WebSocket server on loopback: counts accepted TCP connections and records the
/// target and headers of each upgrade request it sees.
struct WsUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    upgrades: Arc<Mutex<Vec<Request>>>,
}

fn ws_upstream(rt: &Runtime) -> WsUpstream {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let upgrades = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (accepted.clone(), upgrades.clone());
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)] // the error type is tungstenite's `Callback`'s
                let record = |req: &Request, resp: Response| {
                    seen.lock().unwrap().push(req.clone());
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    WsUpstream {
        addr,
        accepted,
        upgrades,
    }
}

/// `^/ws` bypassed; everything else needs two factors.
fn gateway(upstream: &WsUpstream) -> Gateway {
    let rules =
        "[[rule]]\npath = \"^/ws\"\npolicy = \"bypass\"\n\n[[rule]]\npolicy = \"two_factor\"\n";
    Gateway::start(&common::config_with(
        &["127.0.0.1"],
        &[upstream.addr],
        rules,
    ))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn websocket_on_a_bypassed_path_echoes_text_and_binary() {
    let rt = runtime();
    let upstream = ws_upstream(&rt);
    let gw = gateway(&upstream);

    rt.block_on(async {
        let (mut ws, resp) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws/chat?room=1", gw.addr))
                .await
                .unwrap();
        assert_eq!(resp.status(), 101);

        ws.send(Message::Text("hello through the gateway".into()))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text("hello through the gateway".into())
        );

        let bytes = vec![0u8, 1, 2, 254, 255];
        ws.send(Message::Binary(bytes.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(bytes));

        ws.close(None).await.unwrap();
    });

    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);
    let upgrades = upstream.upgrades.lock().unwrap();
    let req = &upgrades[0];
    assert_eq!(req.uri(), "/ws/chat?room=1");
    assert_eq!(req.headers()["host"], gw.addr.to_string().as_str());
    assert_eq!(req.headers()["x-forwarded-proto"], "http");
    assert!(req.headers()["upgrade"]
        .to_str()
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
}

#[test]
fn websocket_upgrade_without_a_session_gets_401_and_never_reaches_the_upstream() {
    let rt = runtime();
    let upstream = ws_upstream(&rt);
    let gw = gateway(&upstream);

    rt.block_on(async {
        match tokio_tungstenite::connect_async(format!("ws://{}/private/ws", gw.addr)).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401),
            Err(other) => panic!("expected an HTTP 401 refusal, got {other:?}"),
            Ok((_, resp)) => panic!("the upgrade must be refused, got {}", resp.status()),
        }
    });
    assert_eq!(
        upstream.accepted.load(Ordering::SeqCst),
        0,
        "the refused upgrade opened no upstream connection"
    );

    // The counter does count: a bypassed upgrade on the same gateway reaches the upstream.
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr))
            .await
            .unwrap();
        ws.close(None).await.unwrap();
    });
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);
}
