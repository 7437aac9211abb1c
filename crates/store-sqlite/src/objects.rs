//! [`ObjectStore`] on SQLite: tables `buckets`, `objects` (keys as BLOBs, so the primary key
//! orders them bytewise and a listing is a range scan), `uploads` and `upload_parts`; an
//! object's attributes and data segments are JSON columns. Every read-check-write is one
//! transaction on the single writer connection. Foreign keys keep objects and uploads from
//! outliving their bucket.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_store::objects::{
    Bucket, BucketCreated, BucketDeleted, Completed, ObjectRecord, ObjectStore, Part, PartWritten,
    Upload, WriteIf, Written,
};
use lambent_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The tables (appended to the store's migrations).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE buckets (
    name         TEXT PRIMARY KEY,
    namespace    TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    region       TEXT NOT NULL,
    notification TEXT
);
CREATE INDEX buckets_by_namespace ON buckets (namespace, name);
CREATE TABLE objects (
    bucket           TEXT NOT NULL REFERENCES buckets (name),
    key              BLOB NOT NULL,
    size             INTEGER NOT NULL,
    etag             TEXT NOT NULL,
    last_modified_ms INTEGER NOT NULL,
    attrs            TEXT NOT NULL,
    data             TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    bucket       TEXT NOT NULL REFERENCES buckets (name),
    key          BLOB NOT NULL,
    initiated_ms INTEGER NOT NULL,
    attrs        TEXT NOT NULL
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, id);
CREATE TABLE upload_parts (
    upload_id        TEXT NOT NULL REFERENCES uploads (id),
    number           INTEGER NOT NULL,
    size             INTEGER NOT NULL,
    etag             TEXT NOT NULL,
    checksums        TEXT NOT NULL,
    locator          TEXT NOT NULL,
    last_modified_ms INTEGER NOT NULL,
    PRIMARY KEY (upload_id, number)
) WITHOUT ROWID;
"#;

fn conversion(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into())
}

fn key_text(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(conversion)
}

const BUCKET_COLUMNS: &str = "name, namespace, created_ms, region, notification";

fn bucket_from_row(row: &Row<'_>) -> rusqlite::Result<Bucket> {
    Ok(Bucket {
        name: row.get(0)?,
        namespace: row.get(1)?,
        created_ms: row.get(2)?,
        region: row.get(3)?,
        notification: row.get(4)?,
    })
}

const OBJECT_COLUMNS: &str = "bucket, key, size, etag, last_modified_ms, attrs, data";

fn object_from_row(row: &Row<'_>) -> rusqlite::Result<ObjectRecord> {
    let attrs: String = row.get(5)?;
    let data: String = row.get(6)?;
    Ok(ObjectRecord {
        bucket: row.get(0)?,
        key: key_text(row.get(1)?)?,
        size: row.get(2)?,
        etag: row.get(3)?,
        last_modified_ms: row.get(4)?,
        attrs: serde_json::from_str(&attrs).map_err(conversion)?,
        data: serde_json::from_str(&data).map_err(conversion)?,
    })
}

const UPLOAD_COLUMNS: &str = "id, bucket, key, initiated_ms, attrs";

fn upload_from_row(row: &Row<'_>) -> rusqlite::Result<Upload> {
    let attrs: String = row.get(4)?;
    Ok(Upload {
        id: row.get(0)?,
        bucket: row.get(1)?,
        key: key_text(row.get(2)?)?,
        initiated_ms: row.get(3)?,
        attrs: serde_json::from_str(&attrs).map_err(conversion)?,
    })
}

const PART_COLUMNS: &str = "upload_id, number, size, etag, checksums, locator, last_modified_ms";

fn part_from_row(row: &Row<'_>) -> rusqlite::Result<Part> {
    let checksums: String = row.get(4)?;
    Ok(Part {
        upload_id: row.get(0)?,
        number: row.get(1)?,
        size: row.get(2)?,
        etag: row.get(3)?,
        checksums: serde_json::from_str(&checksums).map_err(conversion)?,
        locator: row.get(5)?,
        last_modified_ms: row.get(6)?,
    })
}

fn get_object(
    conn: &Connection,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2"
    ))
    .map_err(db_err)?
    .query_row(params![bucket, key.as_bytes()], object_from_row)
    .optional()
    .map_err(db_err)
}

fn bucket_exists(conn: &Connection, bucket: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM buckets WHERE name = ?1")
        .map_err(db_err)?
        .exists(params![bucket])
        .map_err(db_err)
}

/// Inserts or replaces an object row.
fn upsert_object(conn: &Connection, o: &ObjectRecord) -> Result<(), StoreError> {
    let attrs = serde_json::to_string(&o.attrs).map_err(db_err)?;
    let data = serde_json::to_string(&o.data).map_err(db_err)?;
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO objects ({OBJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .map_err(db_err)?
    .execute(params![
        o.bucket,
        o.key.as_bytes(),
        o.size,
        o.etag,
        o.last_modified_ms,
        attrs,
        data
    ])
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl ObjectStore for SqliteStore {
    async fn create_bucket(&self, bucket: &Bucket) -> Result<BucketCreated, StoreError> {
        let b = bucket.clone();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let existing = tx
                .query_row(
                    &format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = ?1"),
                    params![b.name],
                    bucket_from_row,
                )
                .optional()
                .map_err(db_err)?;
            if let Some(existing) = existing {
                return Ok(BucketCreated::Exists(existing));
            }
            tx.execute(
                &format!("INSERT INTO buckets ({BUCKET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![b.name, b.namespace, b.created_ms, b.region, b.notification],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(BucketCreated::Created)
        })
        .await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = ?1"
            ))
            .map_err(db_err)?
            .query_row(params![name], bucket_from_row)
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_buckets(&self, namespace: &str) -> Result<Vec<Bucket>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {BUCKET_COLUMNS} FROM buckets WHERE namespace = ?1 ORDER BY name"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns], bucket_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_bucket(&self, name: &str) -> Result<BucketDeleted, StoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            if !bucket_exists(&tx, &name)? {
                return Ok(BucketDeleted::Missing);
            }
            let busy = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = ?1) \
                     OR EXISTS (SELECT 1 FROM uploads WHERE bucket = ?1)",
                    params![name],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(db_err)?;
            if busy {
                return Ok(BucketDeleted::NotEmpty);
            }
            tx.execute("DELETE FROM buckets WHERE name = ?1", params![name])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(BucketDeleted::Deleted)
        })
        .await
    }

    async fn set_bucket_notification(
        &self,
        name: &str,
        notification: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (name, notification) = (name.to_string(), notification.map(str::to_string));
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE buckets SET notification = ?2 WHERE name = ?1",
                    params![name, notification],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_object(
        &self,
        object: &ObjectRecord,
        condition: &WriteIf,
    ) -> Result<Written, StoreError> {
        let (o, condition) = (object.clone(), condition.clone());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            if !bucket_exists(&tx, &o.bucket)? {
                return Ok(Written::NoSuchBucket);
            }
            let current = get_object(&tx, &o.bucket, &o.key)?;
            if !condition.holds(current.as_ref()) {
                return Ok(Written::PreconditionFailed);
            }
            upsert_object(&tx, &o)?;
            tx.commit().map_err(db_err)?;
            Ok(Written::Stored {
                replaced: current.map(Box::new),
            })
        })
        .await
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.read(move |conn| get_object(conn, &bucket, &key)).await
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "DELETE FROM objects WHERE bucket = ?1 AND key = ?2 RETURNING {OBJECT_COLUMNS}"
            ))
            .map_err(db_err)?
            .query_row(params![bucket, key.as_bytes()], object_from_row)
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn scan_objects(
        &self,
        bucket: &str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>, StoreError> {
        let (bucket, from) = (bucket.to_string(), from.to_vec());
        let to = to.map_or_else(|| lambent_store::objects::KEYS_END.to_vec(), <[u8]>::to_vec);
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key >= ?2 \
                     AND key < ?3 ORDER BY key LIMIT ?4"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![bucket, from, to, limit], object_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn create_upload(&self, upload: &Upload) -> Result<bool, StoreError> {
        let u = upload.clone();
        let attrs = serde_json::to_string(&u.attrs).map_err(db_err)?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            if !bucket_exists(&tx, &u.bucket)? {
                return Ok(false);
            }
            tx.execute(
                &format!("INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![u.id, u.bucket, u.key.as_bytes(), u.initiated_ms, attrs],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn get_upload(&self, bucket: &str, id: &str) -> Result<Option<Upload>, StoreError> {
        let (bucket, id) = (bucket.to_string(), id.to_string());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?1 AND bucket = ?2"
            ))
            .map_err(db_err)?
            .query_row(params![id, bucket], upload_from_row)
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>, StoreError> {
        let bucket = bucket.to_string();
        let from = prefix.as_bytes().to_vec();
        let to = lambent_store::objects::prefix_end(prefix.as_bytes())
            .unwrap_or_else(|| lambent_store::objects::KEYS_END.to_vec());
        let (after_key, after_id) = match after {
            Some((k, id)) => (Some(k.as_bytes().to_vec()), id.to_string()),
            None => (None, String::new()),
        };
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE bucket = ?1 AND key >= ?2 \
                     AND key < ?3 AND (?4 IS NULL OR (key, id) > (?4, ?5)) \
                     ORDER BY key, id LIMIT ?6"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(
                    params![bucket, from, to, after_key, after_id, limit],
                    upload_from_row,
                )
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn put_part(&self, part: &Part) -> Result<PartWritten, StoreError> {
        let p = part.clone();
        let checksums = serde_json::to_string(&p.checksums).map_err(db_err)?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM uploads WHERE id = ?1")
                .map_err(db_err)?
                .exists(params![p.upload_id])
                .map_err(db_err)?;
            if !exists {
                return Ok(PartWritten::NoSuchUpload);
            }
            let replaced = tx
                .query_row(
                    &format!(
                        "SELECT {PART_COLUMNS} FROM upload_parts WHERE upload_id = ?1 AND number = ?2"
                    ),
                    params![p.upload_id, p.number],
                    part_from_row,
                )
                .optional()
                .map_err(db_err)?;
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO upload_parts ({PART_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    p.upload_id,
                    p.number,
                    p.size,
                    p.etag,
                    checksums,
                    p.locator,
                    p.last_modified_ms
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(PartWritten::Stored { replaced })
        })
        .await
    }

    async fn list_parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<Part>, StoreError> {
        let id = upload_id.to_string();
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {PART_COLUMNS} FROM upload_parts WHERE upload_id = ?1 AND number > ?2 \
                     ORDER BY number LIMIT ?3"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![id, after, limit], part_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        used: &[u32],
        object: &ObjectRecord,
        condition: &WriteIf,
    ) -> Result<Completed, StoreError> {
        let (id, used, o, condition) = (
            upload_id.to_string(),
            used.to_vec(),
            object.clone(),
            condition.clone(),
        );
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM uploads WHERE id = ?1 AND bucket = ?2")
                .map_err(db_err)?
                .exists(params![id, o.bucket])
                .map_err(db_err)?;
            if !exists {
                return Ok(Completed::NoSuchUpload);
            }
            let current = get_object(&tx, &o.bucket, &o.key)?;
            if !condition.holds(current.as_ref()) {
                return Ok(Completed::PreconditionFailed);
            }
            let parts: Vec<(u32, String)> = {
                let mut stmt = tx
                    .prepare_cached("SELECT number, locator FROM upload_parts WHERE upload_id = ?1")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?
            };
            let unused = parts
                .into_iter()
                .filter(|(n, _)| !used.contains(n))
                .map(|(_, locator)| locator)
                .collect();
            tx.execute("DELETE FROM upload_parts WHERE upload_id = ?1", params![id])
                .map_err(db_err)?;
            tx.execute("DELETE FROM uploads WHERE id = ?1", params![id])
                .map_err(db_err)?;
            upsert_object(&tx, &o)?;
            tx.commit().map_err(db_err)?;
            Ok(Completed::Stored {
                replaced: current.map(Box::new),
                unused,
            })
        })
        .await
    }

    async fn abort_upload(&self, upload_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let id = upload_id.to_string();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let locators = {
                let mut stmt = tx
                    .prepare_cached(
                        "DELETE FROM upload_parts WHERE upload_id = ?1 RETURNING locator",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![id], |r| r.get::<_, String>(0))
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?
            };
            let n = tx
                .execute("DELETE FROM uploads WHERE id = ?1", params![id])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok((n > 0).then_some(locators))
        })
        .await
    }

    async fn referenced_data(&self) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            let mut out = Vec::new();
            let mut stmt = conn
                .prepare("SELECT locator FROM upload_parts")
                .map_err(db_err)?;
            for row in stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db_err)?
            {
                out.push(row.map_err(db_err)?);
            }
            let mut stmt = conn.prepare("SELECT data FROM objects").map_err(db_err)?;
            for row in stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db_err)?
            {
                let segments: Vec<lambent_store::objects::Segment> =
                    serde_json::from_str(&row.map_err(db_err)?).map_err(db_err)?;
                out.extend(segments.into_iter().map(|s| s.locator));
            }
            Ok(out)
        })
        .await
    }
}
