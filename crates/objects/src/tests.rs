//! The engine over a real SQLite store and real files.

use super::*;
use bytes::Bytes;
use lambent_store_sqlite::SqliteStore;
use parking_lot::Mutex;

struct Recorded(Mutex<Vec<ObjectEvent>>);

#[async_trait::async_trait]
impl ObjectEvents for Recorded {
    async fn record(&self, event: ObjectEvent) -> Result<(), ObjectError> {
        self.0.lock().push(event);
        Ok(())
    }
}

struct Fixture {
    objects: Objects,
    events: Arc<Recorded>,
    dir: tempfile::TempDir,
}

fn open(dir: tempfile::TempDir) -> Fixture {
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let data = Arc::new(LocalDisk::open(dir.path().join("objects")).unwrap());
    let events = Arc::new(Recorded(Mutex::new(Vec::new())));
    Fixture {
        objects: Objects::new(store, data, events.clone(), "us-east-1"),
        events,
        dir,
    }
}

fn fixture() -> Fixture {
    open(tempfile::tempdir().unwrap())
}

fn body(bytes: &[u8]) -> Body {
    let chunks: Vec<std::io::Result<Bytes>> = bytes
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Body::new(
        futures_util::stream::iter(chunks).boxed(),
        Some(bytes.len() as u64),
    )
}

async fn read_all(d: Download) -> Vec<u8> {
    let chunks: Vec<Bytes> = d.stream.map(|c| c.unwrap()).collect().await;
    chunks.concat()
}

/// Every file under the fixture's directory but the database's.
fn data_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with("db") {
                out.push(p);
            }
        }
    }
    out
}

const NS: &str = "default";

async fn put(f: &Fixture, key: &str, bytes: &[u8]) -> ObjectRecord {
    f.objects
        .put_object(
            NS,
            "bkt",
            key,
            ObjectAttrs::default(),
            body(bytes),
            WriteIf::Always,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn objects_round_trip_with_ranges_conditions_and_etags() {
    let f = fixture();
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    let o = put(&f, "greeting", b"hello world").await;
    assert_eq!(o.etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    let none = Conditions::default();
    let got = f
        .objects
        .get_object(NS, "bkt", "greeting", &none, None)
        .await
        .unwrap();
    assert_eq!(read_all(got).await, b"hello world");
    let ranged = f
        .objects
        .get_object(
            NS,
            "bkt",
            "greeting",
            &none,
            Some(ByteRange::From {
                first: 6,
                last: Some(8),
            }),
        )
        .await
        .unwrap();
    assert_eq!(ranged.range, Some((6, 3)));
    assert_eq!(read_all(ranged).await, b"wor");
    assert!(matches!(
        f.objects
            .get_object(
                NS,
                "bkt",
                "greeting",
                &none,
                Some(ByteRange::From {
                    first: 11,
                    last: None
                })
            )
            .await,
        Err(ObjectError::InvalidRange { size: 11 })
    ));
    let stale = Conditions {
        if_match: Some("\"nope\"".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.objects.head_object(NS, "bkt", "greeting", &stale).await,
        Err(ObjectError::PreconditionFailed)
    ));
    let cached = Conditions {
        if_none_match: Some(o.etag.clone()),
        ..Default::default()
    };
    assert!(matches!(
        f.objects
            .get_object(NS, "bkt", "greeting", &cached, None)
            .await,
        Err(ObjectError::NotModified)
    ));
    assert!(matches!(
        f.objects
            .get_object(NS, "bkt", "missing", &none, None)
            .await,
        Err(ObjectError::NoSuchKey)
    ));
    assert!(matches!(
        f.objects.get_object(NS, "nobucket", "k", &none, None).await,
        Err(ObjectError::NoSuchBucket)
    ));

    // Replacing an object deletes the data of the one replaced.
    put(&f, "greeting", b"bye").await;
    assert_eq!(data_files(f.dir.path()).len(), 1);
    // A conditional create of an existing key fails and leaves nothing behind.
    let refused = f
        .objects
        .put_object(
            NS,
            "bkt",
            "greeting",
            ObjectAttrs::default(),
            body(b"x"),
            WriteIf::Absent,
        )
        .await;
    assert!(matches!(refused, Err(ObjectError::PreconditionFailed)));
    assert_eq!(data_files(f.dir.path()).len(), 1);

    // Copy keeps or replaces metadata; copying onto itself unchanged is refused.
    let copied = f
        .objects
        .copy_object(
            NS,
            ("bkt", "greeting"),
            &none,
            "bkt",
            "copy",
            None,
            WriteIf::Always,
        )
        .await
        .unwrap();
    assert_eq!(
        (copied.size, copied.etag.as_str()),
        (3, "\"bfa99df33b137bc8fb5f5407d7e58da8\"")
    );
    assert!(matches!(
        f.objects
            .copy_object(
                NS,
                ("bkt", "copy"),
                &none,
                "bkt",
                "copy",
                None,
                WriteIf::Always
            )
            .await,
        Err(ObjectError::InvalidRequest(_))
    ));
    assert!(f.objects.delete_object(NS, "bkt", "copy").await.unwrap());
    assert!(!f.objects.delete_object(NS, "bkt", "copy").await.unwrap());
    assert_eq!(data_files(f.dir.path()).len(), 1);
}

#[tokio::test]
async fn bad_bodies_are_refused_and_leave_nothing() {
    let f = fixture();
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    let attempt = |b: Body| {
        f.objects
            .put_object(NS, "bkt", "k", ObjectAttrs::default(), b, WriteIf::Always)
    };

    // Over 5 GiB declared: refused before a byte is read (the stream would fail if read).
    let never = futures_util::stream::once(async { Err(std::io::Error::other("read")) }).boxed();
    assert!(matches!(
        attempt(Body::new(never, Some(MAX_OBJECT_PUT + 1))).await,
        Err(ObjectError::EntityTooLarge { .. })
    ));
    // Fewer bytes than declared.
    let mut short = body(b"abc");
    short.length = Some(10);
    assert!(matches!(
        attempt(short).await,
        Err(ObjectError::IncompleteBody {
            expected: 10,
            got: 3
        })
    ));
    // A body that breaks off (a truncated chunked upload).
    let broken = futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(std::io::Error::other(
            "unexpected end of aws-chunked stream",
        )),
    ])
    .boxed();
    assert!(matches!(
        attempt(Body::new(broken, None)).await,
        Err(ObjectError::BodyFailed(_))
    ));
    // Wrong checksums.
    let mut wrong = body(b"abc");
    wrong.checksums.crc32 = Some("AAAAAA==".into());
    assert!(matches!(
        attempt(wrong).await,
        Err(ObjectError::BadDigest(_))
    ));
    let mut wrong_late = body(b"abc");
    wrong_late.algorithms = vec![Algorithm::Sha256];
    wrong_late.trailer = Some(Box::new(|| Checksums {
        sha256: Some("AAAA".into()),
        ..Default::default()
    }));
    assert!(matches!(
        attempt(wrong_late).await,
        Err(ObjectError::BadDigest(_))
    ));
    let mut wrong_md5 = body(b"abc");
    wrong_md5.content_md5 = Some("AAAAAAAAAAAAAAAAAAAAAA==".into());
    assert!(matches!(
        attempt(wrong_md5).await,
        Err(ObjectError::BadDigest(_))
    ));
    // A right trailer checksum is stored.
    let mut right = body(b"abc");
    right.algorithms = vec![Algorithm::Crc32c];
    right.trailer = Some(Box::new(|| Checksums {
        crc32c: Some("Nks/tw==".into()),
        ..Default::default()
    }));
    let stored = attempt(right).await.unwrap();
    assert_eq!(stored.attrs.checksums.crc32c.as_deref(), Some("Nks/tw=="));
    assert_eq!(data_files(f.dir.path()).len(), 1);
}

#[tokio::test]
async fn keys_are_opaque_and_cannot_reach_the_file_system() {
    let f = fixture();
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    for key in ["../../escape", "/etc/absolute", "a/../../b"] {
        put(&f, key, key.as_bytes()).await;
        let got = f
            .objects
            .get_object(NS, "bkt", key, &Conditions::default(), None)
            .await
            .unwrap();
        assert_eq!(read_all(got).await, key.as_bytes());
    }
    // Every file stays under the data directory, named by locator only.
    for file in data_files(f.dir.path()) {
        assert!(file.starts_with(f.dir.path().join("objects")));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }
    assert!(!f.dir.path().join("escape").exists());
    for (key, code) in [
        ("a\0b", "InvalidArgument"),
        (&*"k".repeat(1025), "KeyTooLongError"),
    ] {
        let e = f
            .objects
            .put_object(
                NS,
                "bkt",
                key,
                ObjectAttrs::default(),
                body(b"x"),
                WriteIf::Always,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), code);
    }
    for name in ["UPPER", "a", "bad_name", "127.0.0.1"] {
        let e = f.objects.create_bucket(NS, name, None).await.unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidBucketName", 400));
    }
}

#[tokio::test]
async fn buckets_belong_to_their_namespace() {
    let f = fixture();
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    put(&f, "k", b"x").await;
    assert!(matches!(
        f.objects.create_bucket(NS, "bkt", None).await,
        Err(ObjectError::BucketAlreadyOwnedByYou)
    ));
    assert!(matches!(
        f.objects.create_bucket("other", "bkt", None).await,
        Err(ObjectError::BucketAlreadyExists)
    ));
    let none = Conditions::default();
    assert!(matches!(
        f.objects.get_object("other", "bkt", "k", &none, None).await,
        Err(ObjectError::AccessDenied)
    ));
    assert!(matches!(
        f.objects.delete_bucket("other", "bkt").await,
        Err(ObjectError::AccessDenied)
    ));
    assert!(f.objects.list_buckets("other").await.unwrap().is_empty());
    assert!(matches!(
        f.objects.delete_bucket(NS, "bkt").await,
        Err(ObjectError::BucketNotEmpty)
    ));
    f.objects.delete_object(NS, "bkt", "k").await.unwrap();
    f.objects.delete_bucket(NS, "bkt").await.unwrap();
    assert!(matches!(
        f.objects.delete_bucket(NS, "bkt").await,
        Err(ObjectError::NoSuchBucket)
    ));
}

#[tokio::test]
async fn emptying_a_bucket_deletes_its_objects_and_uploads_across_pages() {
    let f = fixture();
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    let n = MAX_LIST + 5;
    for i in 0..n {
        put(&f, &format!("k/{i:05}"), b"x").await;
    }
    f.objects
        .create_upload(NS, "bkt", "half", ObjectAttrs::default())
        .await
        .unwrap();
    assert!(matches!(
        f.objects.empty_bucket("other", "bkt").await,
        Err(ObjectError::AccessDenied)
    ));
    assert_eq!(f.objects.empty_bucket(NS, "bkt").await.unwrap(), n as u64);
    assert!(data_files(f.dir.path()).is_empty());
    f.objects.delete_bucket(NS, "bkt").await.unwrap();
}

#[tokio::test]
async fn multipart_rules_and_etags() {
    let f = fixture();
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    let attrs = ObjectAttrs {
        checksum_algorithm: Some("CRC32".into()),
        content_type: Some("application/x-big".into()),
        ..Default::default()
    };
    let upload = f
        .objects
        .create_upload(NS, "bkt", "big", attrs)
        .await
        .unwrap();
    let id = upload.id.as_str();
    let big = vec![7u8; MIN_PART as usize];
    let p1 = f
        .objects
        .upload_part(NS, "bkt", "big", id, 1, body(&big))
        .await
        .unwrap();
    let small = f
        .objects
        .upload_part(NS, "bkt", "big", id, 2, body(b"small"))
        .await
        .unwrap();
    let p3 = f
        .objects
        .upload_part(NS, "bkt", "big", id, 3, body(b"tail"))
        .await
        .unwrap();
    assert!(matches!(
        f.objects
            .upload_part(NS, "bkt", "big", id, 0, body(b"x"))
            .await,
        Err(ObjectError::InvalidArgument(_))
    ));
    assert!(matches!(
        f.objects
            .upload_part(NS, "bkt", "big", id, 10_001, body(b"x"))
            .await,
        Err(ObjectError::InvalidArgument(_))
    ));
    assert!(matches!(
        f.objects
            .upload_part(NS, "bkt", "big", "nope", 1, body(b"x"))
            .await,
        Err(ObjectError::NoSuchUpload)
    ));
    let listed = |parts: &[&Part]| {
        parts
            .iter()
            .map(|p| (p.number, p.etag.clone()))
            .collect::<Vec<_>>()
    };
    let objects = &f.objects;
    let complete = |l: Vec<(u32, String)>| async move {
        objects
            .complete_upload(NS, "bkt", "big", id, &l, WriteIf::Always)
            .await
    };
    assert!(matches!(
        complete(listed(&[&p1, &small, &p3])).await,
        Err(ObjectError::EntityTooSmall)
    ));
    assert!(matches!(
        complete(listed(&[&p3, &p1])).await,
        Err(ObjectError::InvalidPartOrder)
    ));
    assert!(matches!(
        complete(vec![(1, p1.etag.clone()), (3, "\"0000\"".into())]).await,
        Err(ObjectError::InvalidPart(_))
    ));
    assert!(matches!(
        complete(vec![]).await,
        Err(ObjectError::MalformedXml(_))
    ));
    let (_, parts, _) = f
        .objects
        .list_parts(NS, "bkt", "big", id, 0, 1000)
        .await
        .unwrap();
    assert_eq!(parts.len(), 3);

    let done = complete(listed(&[&p1, &p3])).await.unwrap();
    let want = checksum::multipart_etag(&[&p1.etag, &p3.etag]).unwrap();
    assert_eq!(done.etag, want);
    assert!(done.etag.ends_with("-2\""));
    assert_eq!(done.size, MIN_PART + 4);
    assert_eq!(
        done.attrs.content_type.as_deref(),
        Some("application/x-big")
    );
    assert!(done
        .attrs
        .checksums
        .crc32
        .as_deref()
        .unwrap()
        .ends_with("-2"));
    let got = f
        .objects
        .get_object(
            NS,
            "bkt",
            "big",
            &Conditions::default(),
            Some(ByteRange::Suffix(6)),
        )
        .await
        .unwrap();
    assert_eq!(read_all(got).await, b"\x07\x07tail");
    // The unused part's data is gone with the upload.
    assert_eq!(data_files(f.dir.path()).len(), 2);
    assert!(matches!(
        complete(listed(&[&p1, &p3])).await,
        Err(ObjectError::NoSuchUpload)
    ));

    let aborted = f
        .objects
        .create_upload(NS, "bkt", "gone", ObjectAttrs::default())
        .await
        .unwrap();
    f.objects
        .upload_part(NS, "bkt", "gone", &aborted.id, 1, body(b"x"))
        .await
        .unwrap();
    let (uploads, _) = f
        .objects
        .list_uploads(NS, "bkt", "", None, 10)
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1);
    f.objects
        .abort_upload(NS, "bkt", "gone", &aborted.id)
        .await
        .unwrap();
    assert!(matches!(
        f.objects.abort_upload(NS, "bkt", "gone", &aborted.id).await,
        Err(ObjectError::NoSuchUpload)
    ));
    assert_eq!(data_files(f.dir.path()).len(), 2);
}

#[tokio::test]
async fn a_crash_leaves_no_visible_object_and_start_up_collects_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let f = open(dir);
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    put(&f, "kept", b"kept").await;
    // A write that reached its rename but not its metadata commit, and one cut off mid-file.
    let data = LocalDisk::open(root.join("objects")).unwrap();
    let orphan = data
        .write(body(b"orphan").stream, &mut |_: &[u8]| Ok(()))
        .await
        .unwrap();
    std::fs::write(
        root.join("objects")
            .join(&orphan.locator[..2])
            .join(format!(".{}.tmp", "cd".repeat(16))),
        b"half",
    )
    .unwrap();
    assert_eq!(data_files(&root).len(), 3);
    let Fixture { objects, dir, .. } = f;
    drop(objects);
    let f = open(dir);
    assert_eq!(f.objects.collect_garbage().await.unwrap(), 2);
    assert_eq!(data_files(&root).len(), 1);
    let page = f
        .objects
        .list_objects(
            NS,
            "bkt",
            ListQuery {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 1);
    let got = f
        .objects
        .get_object(NS, "bkt", "kept", &Conditions::default(), None)
        .await
        .unwrap();
    assert_eq!(read_all(got).await, b"kept");
}

#[tokio::test]
async fn configured_notifications_are_reported_after_commit() {
    let f = fixture();
    f.objects.create_bucket(NS, "bkt", None).await.unwrap();
    let target = notification::TargetConfig::new(
        notification::TargetKind::LambdaFunction,
        Some("thumbs".into()),
        "arn:aws:lambda:us-east-1:000000000000:function:thumb".into(),
        vec!["s3:ObjectCreated:*".into(), "s3:ObjectRemoved:*".into()],
        vec![notification::FilterRule {
            name: "prefix".into(),
            value: "in/".into(),
        }],
    )
    .unwrap();
    let config = NotificationConfig {
        targets: vec![target],
    };
    f.objects
        .put_notification(NS, "bkt", &config)
        .await
        .unwrap();
    assert_eq!(f.objects.notification(NS, "bkt").await.unwrap(), config);
    put(&f, "in/a.jpg", b"img").await;
    put(&f, "out/a.jpg", b"img").await;
    f.objects
        .delete_object(NS, "bkt", "in/a.jpg")
        .await
        .unwrap();
    let events = f.events.0.lock().clone();
    let names: Vec<(EventName, &str)> = events.iter().map(|e| (e.name, e.key.as_str())).collect();
    assert_eq!(
        names,
        [
            (EventName::Put, "in/a.jpg"),
            (EventName::Delete, "in/a.jpg")
        ]
    );
    assert_eq!((events[0].etag.len(), events[0].size), (32, 3));
    assert_eq!(events[0].targets[0].id, "thumbs");
}
