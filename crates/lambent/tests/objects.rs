//! `lambent bucket create|ls|rm` and `lambent object put|get|ls|rm` against `lambent up`: every
//! command, a 64 MiB round trip byte for byte, the errors a user meets, and that the CLI's
//! objects are the S3 API's (curl signs S3 requests with `--aws-sigv4`, with a key from
//! `lambent keys create`).

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use support::{path_str, Server};

/// A SigV4-signed S3 request by curl; returns (status, body). `upload` is sent as the body.
fn s3(
    s: &Server,
    key: &(String, String),
    method: &str,
    path: &str,
    upload: Option<&Path>,
) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-o"])
        .arg(&out)
        .args(["-w", "%{http_code}"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{}:{}", key.0, key.1)])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    if let Some(file) = upload {
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
    }
    let done = cmd
        .arg(format!("{}{path}", s.url))
        .output()
        .expect("curl runs");
    let status = String::from_utf8_lossy(&done.stdout).parse().unwrap_or(0);
    (status, std::fs::read(&out).unwrap_or_default())
}

/// `len` pseudo-random bytes (xorshift) written to `path`, a chunk at a time.
fn random_file(path: &Path, len: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for b in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// Whether two files hold the same bytes (compared a chunk at a time).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    if a.metadata().unwrap().len() != b.metadata().unwrap().len() {
        return false;
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return true;
        }
        b.read_exact(&mut y[..n]).unwrap();
        if x[..n] != y[..n] {
            return false;
        }
    }
}

#[test]
fn buckets_and_objects_through_the_cli_are_the_s3_apis() {
    const BIG: usize = 64 << 20;
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let k = s.cli(&["keys", "create", "-o", "json"]).ok().json();
    let key = (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    );
    let files = home.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let file = |name: &str| files.join(name);

    // Buckets.
    assert!(s.cli(&["bucket", "ls"]).ok().stdout.contains("no buckets"));
    let out = s.cli(&["bucket", "create", "photos"]).ok();
    assert_eq!(out.stdout.trim(), "created bucket photos (us-east-1)");
    let again = s.cli(&["bucket", "create", "photos"]).failed();
    assert!(
        again.stderr.contains("you already have bucket 'photos'"),
        "{again:?}"
    );
    let bad = s.cli(&["bucket", "create", "Bad_Name"]).failed();
    assert!(
        bad.stderr.contains("cannot create bucket 'Bad_Name'"),
        "{bad:?}"
    );
    assert!(bad.stderr.contains("lower-case letters"), "{bad:?}");
    let listed = s.cli(&["bucket", "ls", "-o", "json"]).ok().json();
    assert_eq!(listed["buckets"][0]["name"], "photos");
    assert_eq!(listed["buckets"].as_array().unwrap().len(), 1);
    let table = s.cli(&["bucket", "ls"]).ok().stdout;
    assert!(
        table.starts_with("NAME") && table.contains("photos"),
        "{table}"
    );
    // The S3 API sees the bucket.
    let (status, body) = s3(&s, &key, "GET", "/", None);
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("<Name>photos</Name>"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // A 64 MiB round trip, byte for byte, through the CLI and through S3.
    random_file(&file("big.bin"), BIG);
    let out = s
        .cli(&[
            "object",
            "put",
            "photos",
            "big/blob.bin",
            path_str(&file("big.bin")),
        ])
        .ok();
    assert!(
        out.stdout
            .starts_with(&format!("put {BIG} bytes to photos/big/blob.bin")),
        "{out:?}"
    );
    s.cli(&[
        "object",
        "get",
        "photos",
        "big/blob.bin",
        path_str(&file("back.bin")),
    ])
    .ok();
    assert!(same_bytes(&file("big.bin"), &file("back.bin")));
    let (status, body) = s3(&s, &key, "GET", "/photos/big/blob.bin", None);
    assert_eq!(status, 200);
    std::fs::write(file("via-s3.bin"), body).unwrap();
    assert!(same_bytes(&file("big.bin"), &file("via-s3.bin")));
    // The partial file of a download is gone once it is complete.
    let leftovers: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());

    // S3 → CLI, CLI (standard input, a content type) → S3.
    std::fs::write(file("a.txt"), "hello from s3").unwrap();
    assert_eq!(
        s3(&s, &key, "PUT", "/photos/docs/a.txt", Some(&file("a.txt"))).0,
        200
    );
    let got = s.cli(&["object", "get", "photos", "docs/a.txt"]).ok();
    assert_eq!(got.stdout, "hello from s3");
    let got = s.cli(&["object", "get", "photos", "docs/a.txt", "-"]).ok();
    assert_eq!(got.stdout, "hello from s3");
    let put = s.cli_stdin(
        &[
            "object",
            "put",
            "photos",
            "docs/b.txt",
            "-",
            "--content-type",
            "text/plain",
            "-o",
            "json",
        ],
        "from stdin",
    );
    let put = put.ok().json();
    assert_eq!(put["size"], 10);
    assert_eq!(put["content_type"], "text/plain");
    assert_eq!(put["etag"].as_str().unwrap().len(), 32);
    let (status, body) = s3(&s, &key, "GET", "/photos/docs/b.txt", None);
    assert_eq!((status, body.as_slice()), (200, &b"from stdin"[..]));

    // Listings: one level (prefixes), a prefix, everything, a limit.
    let table = s.cli(&["object", "ls", "photos"]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("KEY"), "{table}");
    assert!(
        lines[1].starts_with("big/ ") && lines[2].starts_with("docs/ "),
        "{table}"
    );
    let docs = s
        .cli(&["object", "ls", "photos", "docs/", "-o", "json"])
        .ok()
        .json();
    let keys: Vec<&str> = docs["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["docs/a.txt", "docs/b.txt"]);
    assert_eq!(docs["objects"][0]["size"], 13);
    let all = s
        .cli(&["object", "ls", "photos", "-r", "-o", "json"])
        .ok()
        .json();
    assert_eq!(all["objects"].as_array().unwrap().len(), 3);
    assert_eq!(all["objects"][0]["size"], BIG as u64);
    assert_eq!(all["truncated"], false);
    let first = s
        .cli(&["object", "ls", "photos", "-r", "--limit", "1", "-o", "json"])
        .ok()
        .json();
    assert_eq!(first["objects"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            first["truncated"].clone(),
            first["next_start_after"].clone()
        ),
        (true.into(), "big/blob.bin".into())
    );
    let rest = s
        .cli(&[
            "object",
            "ls",
            "photos",
            "-r",
            "--start-after",
            "big/blob.bin",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(rest["objects"].as_array().unwrap().len(), 2);

    // Errors: what was missing or in the way, by name, exit code 1.
    let e = s
        .cli(&["object", "get", "photos", "nope", path_str(&file("nope"))])
        .failed();
    assert!(
        e.stderr.contains("no object 'nope' in bucket 'photos'"),
        "{e:?}"
    );
    assert!(!file("nope").exists() && !file(".nope.lambent-partial").exists());
    let e = s.cli(&["object", "get", "nobucket", "k"]).failed();
    assert!(
        e.stderr.contains("bucket 'nobucket' does not exist"),
        "{e:?}"
    );
    let e = s
        .cli(&["object", "put", "nobucket", "k", path_str(&file("big.bin"))])
        .failed();
    assert!(
        e.stderr.contains("bucket 'nobucket' does not exist"),
        "{e:?}"
    );
    let e = s
        .cli(&["object", "put", "photos", "k", path_str(&file("missing"))])
        .failed();
    assert!(e.stderr.contains("cannot open"), "{e:?}");
    let e = s.cli(&["object", "get", "photos", ".."]).failed();
    assert!(
        e.stderr.contains("the key '..' cannot be sent in a URL"),
        "{e:?}"
    );
    let e = s.cli(&["object", "ls", "nobucket"]).failed();
    assert!(
        e.stderr.contains("bucket 'nobucket' does not exist"),
        "{e:?}"
    );
    let e = s.cli(&["object", "rm", "photos", "nope"]).failed();
    assert!(
        e.stderr.contains("no object 'nope' in bucket 'photos'"),
        "{e:?}"
    );
    let e = s
        .cli(&[
            "object",
            "put",
            "photos",
            "docs/a.txt",
            path_str(&file("a.txt")),
            "--no-overwrite",
        ])
        .failed();
    assert!(
        e.stderr
            .contains("object 'docs/a.txt' in bucket 'photos' exists already"),
        "{e:?}"
    );
    let e = s.cli(&["bucket", "rm", "photos"]).failed();
    assert!(e.stderr.contains("bucket 'photos' is not empty"), "{e:?}");
    assert!(e.stderr.contains("--force"), "{e:?}");
    let e = s.cli(&["bucket", "rm", "nobucket"]).failed();
    assert!(
        e.stderr.contains("bucket 'nobucket' does not exist"),
        "{e:?}"
    );

    // rm: an object (then S3 misses it too), several at once, a bucket with --force.
    let out = s.cli(&["object", "rm", "photos", "docs/b.txt"]).ok();
    assert_eq!(out.stdout.trim(), "deleted photos/docs/b.txt");
    assert_eq!(s3(&s, &key, "GET", "/photos/docs/b.txt", None).0, 404);
    assert_eq!(
        s3(&s, &key, "PUT", "/photos/c.txt", Some(&file("a.txt"))).0,
        200
    );
    let e = s
        .cli(&["object", "rm", "photos", "c.txt", "gone", "docs/a.txt"])
        .failed();
    assert!(
        e.stdout.contains("deleted photos/c.txt") && e.stdout.contains("deleted photos/docs/a.txt"),
        "{e:?}"
    );
    assert!(e.stderr.contains("no object 'gone'"), "{e:?}");
    let out = s.cli(&["bucket", "rm", "photos", "--force"]).ok();
    assert_eq!(
        out.stdout.trim(),
        "deleted bucket photos and 1 object in it"
    );
    assert_eq!(s3(&s, &key, "GET", "/photos", None).0, 404);
    let out = s.cli(&["bucket", "rm", "photos"]).failed();
    assert!(out.stderr.contains("does not exist"), "{out:?}");
    // Objects' data is gone with them.
    let data = home.path().join("data/objects");
    let files_left = walk_files(&data);
    assert!(files_left.is_empty(), "{files_left:?}");
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
