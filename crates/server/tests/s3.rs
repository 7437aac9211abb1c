//! The S3-compatible object store against a real node: boto3's `s3` client runs the scenarios
//! in `tests/aws/s3_*.py` (every operation and its errors, hostile input), the AWS CLI copies,
//! syncs, lists, uploads 64 MB in parts and presigns, curl fetches and uploads through
//! presigned URLs, and a restart keeps everything.

mod common;

use common::{node_with, Node};
use lambent_store::lambda::{AccessKey, LambdaStore};
use lambent_testkit::python::venv as python_venv;
use std::path::{Path, PathBuf};
use std::process::Command;

const ACCESS_KEY_ID: &str = "LKIAS3TESTS3TESTS3TE";
const SECRET: &str = "s3-test-secret-access-key-0123456789abcd";
const OTHER_KEY_ID: &str = "LKIAOTHEROTHEROTHER0";
const OTHER_SECRET: &str = "other-namespace-secret-0123456789abcdefg";

fn venv() -> PathBuf {
    python_venv(&["boto3", "awscli"])
}

/// A node with an access key of the default namespace and one of namespace `other` (written
/// to the node's store directly: the HTTP API makes keys only in the caller's namespace).
async fn s3_node() -> Node {
    let node = node_with(|o| o.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()))).await;
    let key = AccessKey {
        namespace: "other".into(),
        access_key_id: OTHER_KEY_ID.into(),
        secret_access_key: OTHER_SECRET.into(),
        created_ms: 1,
        role: lambent_core::Role::Owner,
        expires_ms: None,
        previous_secret: None,
    };
    match &node.cluster {
        Some((pg, _)) => {
            let store = lambent_store_postgres::PgStore::connect(pg).await.unwrap();
            store.put_access_key(&key).await.unwrap();
        }
        None => {
            let db = node._data.path().join("lambent.db");
            let store = lambent_store_sqlite::SqliteStore::open(&db).unwrap();
            store.put_access_key(&key).await.unwrap();
        }
    }
    node
}

/// Runs `program` with the node's endpoint and both namespaces' keys in its environment.
fn run(node_url: &str, program: &Path, args: &[&str], cwd: &Path) -> String {
    let other = [
        ("OTHER_ACCESS_KEY_ID", OTHER_KEY_ID),
        ("OTHER_SECRET_ACCESS_KEY", OTHER_SECRET),
    ];
    common::run_aws_client(
        program,
        args,
        cwd,
        node_url,
        (ACCESS_KEY_ID, SECRET),
        &other,
    )
}

async fn scenario(node: &Node, script: &str) -> String {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let (url, script) = (node.url(""), common::aws_scripts_dir().join(script));
    tokio::task::spawn_blocking(move || {
        run(
            &url,
            &venv.join("bin/python"),
            &[script.to_str().unwrap()],
            &common::aws_scripts_dir(),
        )
    })
    .await
    .unwrap()
}

/// `aws <args> --endpoint-url <node>` from the venv.
async fn aws(node: &Node, args: &[&str], cwd: &Path) -> String {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let url = node.url("");
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--endpoint-url".to_string(), url.clone()]);
    let cwd = cwd.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&url, &venv.join("bin/aws"), &args, &cwd)
    })
    .await
    .unwrap()
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let at = body.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[at + 1..]).into_owned();
    body.truncate(at);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_runs_every_operation_and_its_errors_and_a_restart_keeps_the_objects() {
    let mut node = s3_node().await;
    let out = scenario(&node, "s3_api.py").await;
    assert!(out.contains("s3 api: ok"), "{out}");

    node.restart().await;
    let tmp = tempfile::tempdir().unwrap();
    let listing = aws(&node, &["s3", "ls", "s3://kept/"], tmp.path()).await;
    for key in ["multi", "plain", "replaced"] {
        assert!(listing.contains(key), "{key} after a restart: {listing}");
    }
    aws(&node, &["s3", "cp", "s3://kept/plain", "back"], tmp.path()).await;
    assert_eq!(
        std::fs::read(tmp.path().join("back")).unwrap(),
        b"kept across a restart"
    );
    // Exactly the data of what is stored: 2 parts of `multi`, `plain`, `replaced`.
    let files = common::data_files(&node).await;
    assert_eq!(files.len(), 4, "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_s3_errors_and_leaves_nothing_behind() {
    let node = s3_node().await;
    let out = scenario(&node, "s3_hostile.py").await;
    assert!(out.contains("s3 hostile: ok"), "{out}");
    let stored: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("objects: "))
        .and_then(|n| n.parse().ok())
        .expect("the scenario says how many objects it stored");
    let files = common::data_files(&node).await;
    assert_eq!(files.len(), stored, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {f:?}");
    }
    // Nothing was written outside the data directory by a traversing key.
    let data = node._data.path();
    assert!(!data.join("escape").exists() && !data.parent().unwrap().join("escape").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_copies_syncs_lists_uploads_in_parts_and_presigns() {
    let node = s3_node().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    aws(&node, &["s3", "mb", "s3://cli"], d).await;
    std::fs::create_dir_all(d.join("site/css")).unwrap();
    std::fs::write(d.join("site/index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(d.join("site/css/main.css"), "h1 { color: red }").unwrap();
    // 64 MB: the CLI uploads it in 8 MB parts (a multipart upload).
    let big: Vec<u8> = (0..64 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(d.join("big.bin"), &big).unwrap();

    aws(&node, &["s3", "cp", "big.bin", "s3://cli/big.bin"], d).await;
    aws(&node, &["s3", "sync", "site", "s3://cli/site"], d).await;
    let listing = aws(&node, &["s3", "ls", "--recursive", "s3://cli/"], d).await;
    for key in ["big.bin", "site/index.html", "site/css/main.css"] {
        assert!(listing.contains(key), "{key}: {listing}");
    }
    assert!(listing.contains("67108864"), "{listing}");
    let top = aws(&node, &["s3", "ls", "s3://cli/"], d).await;
    assert!(top.contains("PRE site/"), "{top}");

    let head = aws(
        &node,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "big.bin",
        ],
        d,
    )
    .await;
    assert!(
        head.contains("-8\\\""),
        "a multipart ETag of 8 parts: {head}"
    );
    aws(&node, &["s3", "cp", "s3://cli/big.bin", "big.back"], d).await;
    assert!(std::fs::read(d.join("big.back")).unwrap() == big);

    // A second sync uploads nothing; a changed file is uploaded again.
    let again = aws(&node, &["s3", "sync", "site", "s3://cli/site"], d).await;
    assert!(!again.contains("upload:"), "{again}");
    std::fs::write(d.join("site/index.html"), "<h1>changed</h1>").unwrap();
    let changed = aws(&node, &["s3", "sync", "site", "s3://cli/site"], d).await;
    assert!(changed.contains("index.html"), "{changed}");
    aws(&node, &["s3", "sync", "s3://cli/site", "down"], d).await;
    assert_eq!(
        std::fs::read_to_string(d.join("down/index.html")).unwrap(),
        "<h1>changed</h1>"
    );

    // Presigned GET with curl; a presigned PUT (signed with boto3) with curl.
    let url = aws(
        &node,
        &[
            "s3",
            "presign",
            "s3://cli/site/css/main.css",
            "--expires-in",
            "60",
        ],
        d,
    )
    .await;
    let (status, body) = curl(&[url.trim()]);
    assert_eq!(
        (status.as_str(), body.as_slice()),
        ("200", &b"h1 { color: red }"[..])
    );
    let (status, _) = curl(&[&url.trim().replace("main.css", "other.css")]);
    assert_eq!(status, "403");
    let put_url = scenario_presign_put(&node).await;
    std::fs::write(d.join("upload.txt"), "put by curl").unwrap();
    let (status, body) = curl(&["-T", d.join("upload.txt").to_str().unwrap(), put_url.trim()]);
    assert_eq!(status, "200", "{}", String::from_utf8_lossy(&body));
    aws(
        &node,
        &["s3", "cp", "s3://cli/by-curl.txt", "by-curl.txt"],
        d,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(d.join("by-curl.txt")).unwrap(),
        "put by curl"
    );

    aws(&node, &["s3", "rm", "--recursive", "s3://cli/"], d).await;
    aws(&node, &["s3", "rb", "s3://cli"], d).await;
    let files = common::data_files(&node).await;
    assert!(files.is_empty(), "{files:?}");
}

/// A presigned PUT URL for `cli/by-curl.txt` (the AWS CLI presigns GETs only).
async fn scenario_presign_put(node: &Node) -> String {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let url = node.url("");
    tokio::task::spawn_blocking(move || {
        let code = "import boto3, os\n\
            c = boto3.client('s3', endpoint_url=os.environ['LAMBENT_URL'], region_name='us-east-1')\n\
            print(c.generate_presigned_url('put_object', Params={'Bucket': 'cli', 'Key': 'by-curl.txt'}, ExpiresIn=60))";
        run(&url, &venv.join("bin/python"), &["-c", code], &common::aws_scripts_dir())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_domain_serves_virtual_host_style_and_claims_its_host() {
    let node = node_with(|o| {
        o.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()));
        o.s3_domain = Some("s3.lambent.test".into());
    })
    .await;
    let port = node.server.as_ref().unwrap().addr().port();
    let connect = format!("::127.0.0.1:{port}");
    let user = format!("{ACCESS_KEY_ID}:{SECRET}");
    let signed = |args: &[&str]| {
        let mut all = vec![
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &user,
            "--connect-to",
            &connect,
            // S3 wants the payload's hash header (curl's signer does not add it).
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ];
        all.extend_from_slice(args);
        curl(&all)
    };
    let vhost = |path: &str| format!("http://vhost.s3.lambent.test:{port}{path}");
    let (status, body) = signed(&["-X", "PUT", &vhost("/")]);
    assert_eq!(status, "200", "{}", String::from_utf8_lossy(&body));
    let (status, body) = signed(&["-X", "PUT", "--data-binary", "hello", &vhost("/greeting")]);
    assert_eq!(status, "200", "{}", String::from_utf8_lossy(&body));
    // Path-style on the domain itself reaches the same object.
    let path_style = format!("http://s3.lambent.test:{port}/vhost/greeting");
    let (status, body) = signed(&[&path_style]);
    assert_eq!((status.as_str(), body.as_slice()), ("200", &b"hello"[..]));
    // An unsigned request to the domain is S3's (by its host) and refused as S3 refuses it.
    let (status, body) = curl(&["--connect-to", &connect, &vhost("/greeting")]);
    assert_eq!(status, "403");
    assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));
}
