//! The test harness shared by the server's integration tests: a real node on an ephemeral port
//! with a temporary data dir, and helpers to upload, deploy and invoke over HTTP.
#![allow(dead_code)]

use lambent_server::{start, RunningServer, ServerOptions};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::Write;

pub const KEY: &str = "test-key";
/// The operator's key of every test node.
pub const ADMIN: &str = "test-admin-key";

pub struct Node {
    pub server: Option<RunningServer>,
    pub http: reqwest::Client,
    pub _data: tempfile::TempDir,
    /// Cluster mode: the node's PostgreSQL database and NATS server, kept across restarts.
    pub cluster: Option<(String, String)>,
}

/// With `LAMBENT_TEST_CLUSTER=1`, every node of these tests is a one-node cluster on a private
/// PostgreSQL (a fresh database per node) and a private NATS server, both started once per
/// test binary by `lambent-testkit`; otherwise it runs on the embedded store.
pub fn cluster_backends() -> Option<(String, String)> {
    let on = std::env::var("LAMBENT_TEST_CLUSTER").is_ok_and(|v| !v.is_empty() && v != "0");
    on.then(|| {
        let pg = lambent_testkit::postgres::PgServer::shared();
        let nats = lambent_testkit::nats::NatsServer::shared();
        (pg.fresh_database(), nats.url())
    })
}

fn options(data: &std::path::Path, cluster: &Option<(String, String)>) -> ServerOptions {
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.into());
    opts.api_key = Some(KEY.into());
    opts.admin_key = Some(ADMIN.into());
    if let Some((store, bus)) = cluster {
        opts.store = Some(store.clone());
        opts.bus = Some(bus.clone());
    }
    opts
}

pub async fn node() -> Node {
    node_with(|_| {}).await
}

/// A node with adjusted options. With `LAMBENT_TEST_LOG` set (a filter such as `warn` or
/// `lambent_sandbox=debug`), the nodes' logs go to stderr (`-- --nocapture` shows them).
pub async fn node_with(adjust: impl FnOnce(&mut ServerOptions)) -> Node {
    node_in(tempfile::tempdir().unwrap(), adjust).await
}

/// [`node_with`] on the data dir `data` (a tmpfs mounted on it, say).
pub async fn node_in(data: tempfile::TempDir, adjust: impl FnOnce(&mut ServerOptions)) -> Node {
    if let Ok(filter) = std::env::var("LAMBENT_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let cluster = cluster_backends();
    let mut opts = options(data.path(), &cluster);
    adjust(&mut opts);
    let server = start(opts)
        .await
        .unwrap_or_else(|e| panic!("the server did not start (these tests need root): {e}"));
    Node {
        server: Some(server),
        http: reqwest::Client::new(),
        _data: data,
        cluster,
    }
}

impl Node {
    /// Stops the node gracefully and starts a new one on the same data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Stops the node gracefully, keeping its data dir.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Starts a node on the data dir of a stopped one.
    pub async fn start_again(&mut self) {
        let opts = options(self._data.path(), &self.cluster);
        self.server = Some(start(opts).await.expect("the node did not restart"));
    }

    /// `POST /v1/functions/{name}/invoke?async=true`: the status and the accepted id.
    pub async fn invoke_async(&self, name: &str, payload: &str) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(
                reqwest::Method::POST,
                &format!("/v1/functions/{name}/invoke?async=true"),
                payload.as_bytes().to_vec(),
            )
            .await;
        (s, v)
    }

    /// A JSON `GET`, asserting success.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (s, _, v) = self.send(reqwest::Method::GET, path, vec![]).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// The activations of a function, oldest first (up to 1000).
    pub async fn activations_of(&self, function: &str) -> Vec<Value> {
        let page = self
            .get_ok(&format!("/v1/activations?function={function}&limit=1000"))
            .await;
        let mut list = page["activations"].as_array().cloned().unwrap_or_default();
        list.reverse();
        list
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
        self.send_as(KEY, method, path, body).await
    }

    /// [`Node::send`] with another API key.
    pub async fn send_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(key)
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

    /// [`Node::send_as`] with a JSON body (`Value::Null`: none): the status and the answer.
    pub async fn call_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let body = if body.is_null() {
            vec![]
        } else {
            body.to_string().into_bytes()
        };
        let (s, _, v) = self.send_as(key, method, path, body).await;
        (s, v)
    }

    /// [`Node::call_as`], asserting success; the answer.
    pub async fn ok_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Value {
        let (s, v) = self.call_as(key, method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
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
        self.deploy_as(KEY, name, settings, files).await
    }

    /// [`Node::deploy`] with another API key (into its namespace).
    pub async fn deploy_as(
        &self,
        key: &str,
        name: &str,
        settings: Value,
        files: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.deploy_zip_as(key, name, settings, zip_of(files)).await
    }

    /// Uploads the code zip `zip` and deploys it as `name`; returns the deploy response.
    pub async fn deploy_zip(
        &self,
        name: &str,
        settings: Value,
        zip: Vec<u8>,
    ) -> (StatusCode, Value) {
        self.deploy_zip_as(KEY, name, settings, zip).await
    }

    /// [`Node::deploy_zip`] with another API key (into its namespace).
    pub async fn deploy_zip_as(
        &self,
        key: &str,
        name: &str,
        settings: Value,
        zip: Vec<u8>,
    ) -> (StatusCode, Value) {
        let (status, _, code) = self
            .send_as(key, reqwest::Method::POST, "/v1/code", zip)
            .await;
        assert!(status.is_success(), "upload failed: {status} {code}");
        let mut body = settings;
        body["code_sha256"] = code["sha256"].clone();
        let (s, _, v) = self
            .send_as(
                key,
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
        self.invoke_as(KEY, name, payload).await
    }

    /// [`Node::invoke`] with another API key (another namespace's function).
    pub async fn invoke_as(
        &self,
        key: &str,
        name: &str,
        payload: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send_as(
            key,
            reqwest::Method::POST,
            &format!("/v1/functions/{name}/invoke"),
            payload.as_bytes().to_vec(),
        )
        .await
    }
}

#[allow(unused_imports)] // not every test or bench packs code
pub use lambent_testkit::zip_of_text as zip_of;

/// The node's `/metrics` text (read with the operator's key).
pub async fn metrics(node: &Node) -> String {
    let (status, _, text) = node
        .send_as(ADMIN, reqwest::Method::GET, "/metrics", vec![])
        .await;
    assert_eq!(status, StatusCode::OK);
    text.as_str().unwrap().to_string()
}

/// The shell bootstrap of the examples: a runtime that knows nothing of Lambent's header.
pub const SHELL_BOOTSTRAP: &str = include_str!("../../../../examples/hello-provided/bootstrap");

/// Deploys `name`, a `provided` function whose code is its `bootstrap`.
pub async fn deploy_provided(node: &Node, name: &str, bootstrap: &str) {
    let (s, v) = node
        .deploy(
            name,
            serde_json::json!({"runtime": "provided.al2023"}),
            &[("bootstrap", bootstrap)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until `/healthz` says the node is ready: a sandbox made ahead, a Python runtime forked
/// ahead and a Node.js stem cell wait for the next cold start (each claim is replaced, and
/// the node is not ready again until its replacement waits).
pub async fn await_ready(node: &Node) {
    eventually(60, "the node to be ready", || async {
        let health: serde_json::Value = node
            .http
            .get(node.url("/healthz"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (health["ready"] == true).then_some(())
    })
    .await;
}

pub fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Zips a directory tree, keeping file modes (executables stay executable).
pub fn zip_dir(dir: &std::path::Path) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(mode & 0o777);
            w.start_file(name, opts).unwrap();
            w.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

/// Waits until the node has both SDKs, or panics saying why not.
pub async fn with_sdks(node: &Node) {
    let states = node
        .server
        .as_ref()
        .unwrap()
        .sdks()
        .settled(std::time::Duration::from_secs(900))
        .await;
    for (sdk, state) in &states {
        assert!(
            matches!(state, lambent_server::sdk::SdkState::Ready(_)),
            "the {} did not come with the runtimes: {state:?} (PyPI and npm must be reachable)",
            sdk.describe()
        );
    }
}

/// Makes namespace `ns` with API key `key`, as an operator would in the node's store.
pub fn add_namespace(node: &Node, ns: &str, key: &str) {
    let store =
        lambent_store_sqlite::SqliteStore::open(&node._data.path().join("lambent.db")).unwrap();
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            use lambent_store::tenants::TenantStore;
            store
                .add_api_key(ns, &lambent_store::sha256_hex(key.as_bytes()))
                .await
                .unwrap();
        })
    });
}

/// How the sandboxes of a function's cold activations were born (`exec`, `ahead`, `zygote`,
/// `stem_cell`), oldest first.
pub async fn births_of(node: &Node, function: &str) -> Vec<String> {
    node.activations_of(function)
        .await
        .into_iter()
        .filter(|a| a["cold"] == true)
        .map(|a| a["init"]["birth"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Waits until the node's Python zygote (started in the background with the server) serves
/// cold starts: deploys and invokes new functions until one is born from it.
pub async fn await_python_zygote(node: &Node) {
    let mut n = 0;
    eventually(30, "a sandbox forked from the Python zygote", || {
        n += 1;
        let name = format!("zygote-probe-{n}");
        async move {
            let (s, f) = node
                .deploy(
                    &name,
                    serde_json::json!({"runtime": "python", "handler": "app.handler"}),
                    &[("app.py", "def handler(e, c):\n    return 1\n")],
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{f}");
            let (s, _, v) = node.invoke(&name, "{}").await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let births = births_of(node, &name).await;
            (births.last().map(String::as_str) == Some("zygote")).then_some(())
        }
    })
    .await;
}

/// Keep-alive of nodes whose tests need one function cold-started again and again: an idle
/// sandbox is gone after about twice this.
pub const SHORT_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(150);

/// Invokes `function` (on a node with [`SHORT_KEEP_ALIVE`]) with `payload`, letting its
/// sandbox expire before each try, until a cold start is forked from its package zygote
/// (built in the background after its first cold start); returns that answer.
pub async fn invoke_from_package_zygote(node: &Node, function: &str, payload: &str) -> Value {
    eventually(60, "a sandbox forked from the package zygote", || async {
        tokio::time::sleep(SHORT_KEEP_ALIVE * 3).await;
        let (s, _, v) = node.invoke(function, payload).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let births = births_of(node, function).await;
        (births.last().map(String::as_str) == Some("package_zygote")).then_some(v)
    })
    .await
}

/// The boto3 scenarios and their shared module (`tests/aws`).
pub fn aws_scripts_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws")
}

/// Runs an AWS client (`program`: a venv's python with a boto3 scenario, or the AWS CLI) with
/// the node at `url` and the access key `key` (id, secret) in its environment as AWS tools
/// expect them, plus `extra`; panics with its output unless it succeeds. Returns stdout.
pub fn run_aws_client(
    program: &std::path::Path,
    args: &[&str],
    cwd: &std::path::Path,
    url: &str,
    key: (&str, &str),
    extra: &[(&str, &str)],
) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("LAMBENT_URL", url)
        .env("LAMBENT_API_KEY", KEY)
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("PYTHONPATH", aws_scripts_dir())
        .envs(extra.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The JSON a function printed after `marker` on a line, from its success activations' logs, in
/// the order of `activations`.
pub fn printed_after(activations: &[Value], marker: &str) -> Vec<Value> {
    activations
        .iter()
        .filter(|a| a["status"] == "success")
        .flat_map(|a| {
            a["logs"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once(marker).map(|(_, e)| e.to_string()))
                .collect::<Vec<_>>()
        })
        .map(|e| serde_json::from_str(&e).unwrap())
        .collect()
}

/// Finds a secret in this process's memory without ever holding it: callers pass the secret
/// shifted by one (every byte + 1), and the memory is searched shifted the same way, so the
/// secret itself exists in the process only if it leaked there.
pub const SCAN_PY: &str = r#"
SHIFT = bytes.maketrans(bytes(range(256)), bytes(range(1, 256)) + b"\0")

def has(shifted, data):
    return shifted in data.translate(SHIFT)

def traces(shifted):
    """The readable mappings of this process that hold the secret."""
    found = []
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                if has(shifted, mem.read(end - start)):
                    found.append(line.strip())
            except (OSError, ValueError, OverflowError):
                pass
    return found
"#;

/// `secret` shifted by one, for `SCAN_PY`.
pub fn shifted(secret: &str) -> String {
    secret.bytes().map(|b| (b + 1) as char).collect()
}

/// A token unlikely to appear anywhere by chance.
pub fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// Every piece of object data the node stores: the files under its data dir's `objects/`, or,
/// on a cluster, the pieces in its cluster's NATS bucket (written or being written, not
/// deleted: a deleted piece's chunks stay a while for reads in flight).
pub async fn data_files(node: &Node) -> Vec<std::path::PathBuf> {
    if let Some((pg, nats)) = &node.cluster {
        let store = lambent_store_postgres::PgStore::connect(pg).await.unwrap();
        let id = lambent_store::cluster::ClusterStore::identity(&store)
            .await
            .unwrap()
            .id;
        let bus = lambent_bus_nats::NatsBus::connect(nats, "counter", &id)
            .await
            .unwrap();
        let data = lambent_bus_nats::NatsObjectData::for_bus(&bus, &id)
            .await
            .unwrap();
        return data
            .stored()
            .await
            .unwrap()
            .into_iter()
            .map(std::path::PathBuf::from)
            .collect();
    }
    let mut out = Vec::new();
    let mut stack = vec![node._data.path().join("objects")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
