//! The test harness shared by the server's integration tests: a real node on an ephemeral port
//! with a temporary data dir, and helpers to upload, deploy and invoke over HTTP.
#![allow(dead_code)]

use lambent_server::{start, RunningServer, ServerOptions};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::Write;

pub const KEY: &str = "test-key";

pub struct Node {
    pub server: Option<RunningServer>,
    pub http: reqwest::Client,
    pub _data: tempfile::TempDir,
}

pub async fn node() -> Node {
    node_with(|_| {}).await
}

/// A node with adjusted options.
pub async fn node_with(adjust: impl FnOnce(&mut ServerOptions)) -> Node {
    let data = tempfile::tempdir().unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    opts.api_key = Some(KEY.into());
    adjust(&mut opts);
    let server = start(opts)
        .await
        .unwrap_or_else(|e| panic!("the server did not start (these tests need root): {e}"));
    Node {
        server: Some(server),
        http: reqwest::Client::new(),
        _data: data,
    }
}

impl Node {
    /// Shuts the node down and starts it again on the same data dir (on a new port), with the
    /// options of [`node`].
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), self._data.path().into());
        opts.api_key = Some(KEY.into());
        let server = start(opts)
            .await
            .unwrap_or_else(|e| panic!("the server did not restart: {e}"));
        self.server = Some(server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.as_ref().unwrap().url())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, headers, value)
    }

    pub async fn upload(&self, zip: Vec<u8>) -> (StatusCode, Value) {
        let (s, _, v) = self.send(reqwest::Method::POST, "/v1/code", zip).await;
        (s, v)
    }

    /// Uploads `files` and deploys them as `name`; returns the deploy response.
    pub async fn deploy(
        &self,
        name: &str,
        settings: Value,
        files: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let (status, code) = self.upload(zip_of(files)).await;
        assert!(status.is_success(), "upload failed: {status} {code}");
        let mut body = settings;
        body["code_sha256"] = code["sha256"].clone();
        let (s, _, v) = self
            .send(
                reqwest::Method::PUT,
                &format!("/v1/functions/{name}"),
                body.to_string().into_bytes(),
            )
            .await;
        (s, v)
    }

    pub async fn invoke(
        &self,
        name: &str,
        payload: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/functions/{name}/invoke"),
            payload.as_bytes().to_vec(),
        )
        .await
    }
}

pub fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        let mode = if *name == "bootstrap" { 0o755 } else { 0o644 };
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(mode),
        )
        .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

pub fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}
