//! Outbound network is a per-function opt-in: a function deployed with `network: true` reaches
//! a server outside the host's loopback (on a dummy interface this test creates), while the
//! host's loopback (the Lambent API) stays unreachable to it; a function without the setting
//! reaches nothing but its own loopback. Needs root, `ip` (iproute2) and slirp4netns.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::process::Command;

const PROBE: &str = r#"
import socket

def handler(event, context):
    out = {}
    for name, (host, port) in event.items():
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                out[name] = s.recv(16).decode()
        except OSError as e:
            out[name] = "error: " + type(e).__name__
    return out
"#;

/// A veth pair with an address of its own on the host side: "outside" as far as sandboxes
/// can tell, removed on drop.
struct Outside {
    link: String,
    ip: String,
}

impl Outside {
    fn create() -> Outside {
        let n = std::process::id() % 250 + 1;
        let (link, ip) = (format!("lbt{n}"), format!("10.199.{n}.1"));
        let ip_cmd = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("these tests need `ip` (iproute2) and root: {e}"));
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let _ = Command::new("ip").args(["link", "del", &link]).output();
        let peer = format!("{link}p");
        ip_cmd(&["link", "add", &link, "type", "veth", "peer", "name", &peer]);
        ip_cmd(&["addr", "add", &format!("{ip}/32"), "dev", &link]);
        ip_cmd(&["link", "set", &link, "up"]);
        ip_cmd(&["link", "set", &peer, "up"]);
        Outside { link, ip }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_network_is_an_opt_in_and_never_reaches_the_host_loopback() {
    let outside = Outside::create();
    let server = TcpListener::bind((outside.ip.as_str(), 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in server.incoming().flatten() {
            let _ = conn.write_all(b"pong");
        }
    });

    let node = node().await;
    let api_port = node.server.as_ref().unwrap().addr().port();
    let files = [("app.py", PROBE)];
    let settings = json!({"runtime": "python", "handler": "app.handler", "network": true});
    let (status, body) = node.deploy("net", settings, &files).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(body["network"], true, "{body}");
    let settings = json!({"runtime": "python", "handler": "app.handler"});
    let (status, body) = node.deploy("nonet", settings, &files).await;
    assert!(status.is_success(), "{status} {body}");

    let targets = json!({
        "outside": [outside.ip, port],
        "api_via_gateway": ["10.0.2.2", api_port],
        "api_via_loopback": ["127.0.0.1", api_port],
    })
    .to_string();
    let (status, headers, with) = node.invoke("net", &targets).await;
    assert!(status.is_success(), "{status} {with}");
    assert_eq!(header(&headers, "lambent-status"), "success", "{with}");
    assert_eq!(with["outside"], "pong", "{with}");
    for blocked in ["api_via_gateway", "api_via_loopback"] {
        let got = with[blocked].as_str().unwrap_or_default();
        assert!(
            got.starts_with("error"),
            "{blocked} reached the host: {with}"
        );
    }

    let (_, _, without): (_, _, Value) = node.invoke("nonet", &targets).await;
    for name in ["outside", "api_via_gateway", "api_via_loopback"] {
        let got = without[name].as_str().unwrap_or_default();
        assert!(
            got.starts_with("error"),
            "{name} reached without network: {without}"
        );
    }

    // The networked sandbox stays warm and keeps its network.
    let (_, _, again) = node.invoke("net", &targets).await;
    assert_eq!(again["outside"], "pong", "{again}");
}
