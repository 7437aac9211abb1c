//! [`ObjectStore`] on PostgreSQL, safe for many writers: a write to one key (an object, or one
//! part of an upload) takes a transaction-scoped advisory lock on it, so its read-check-write
//! (conditional writes, the replaced data to delete) is atomic across nodes; completing or
//! aborting an upload locks its row (`FOR UPDATE`) while a part write holds it `FOR SHARE`.
//! Foreign keys keep objects and uploads from outliving their bucket: a bucket delete racing
//! a write either waits for it and fails as not empty, or makes the write fail as no bucket.
//! Keys are BYTEA, so the primary key orders them bytewise and a listing is a range scan.

use crate::{json_err, PgStore};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use lambent_store::objects::{
    Bucket, BucketCreated, BucketDeleted, Completed, ObjectRecord, ObjectStore, Part, PartWritten,
    Segment, Upload, WriteIf, Written,
};
use lambent_store::StoreError;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

const BUCKET_COLUMNS: &str = "name, namespace, created_ms, region, notification";

fn bucket_from_row(row: &Row) -> Bucket {
    Bucket {
        name: row.get(0),
        namespace: row.get(1),
        created_ms: row.get(2),
        region: row.get(3),
        notification: row.get(4),
    }
}

fn key_text(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(json_err)
}

const OBJECT_COLUMNS: &str = "bucket, key, size, etag, last_modified_ms, attrs, data";

fn object_from_row(row: &Row) -> Result<ObjectRecord, StoreError> {
    let attrs: String = row.get(5);
    let data: String = row.get(6);
    Ok(ObjectRecord {
        bucket: row.get(0),
        key: key_text(row.get(1))?,
        size: row.get::<_, i64>(2) as u64,
        etag: row.get(3),
        last_modified_ms: row.get(4),
        attrs: serde_json::from_str(&attrs).map_err(json_err)?,
        data: serde_json::from_str(&data).map_err(json_err)?,
    })
}

const UPLOAD_COLUMNS: &str = "id, bucket, key, initiated_ms, attrs";

fn upload_from_row(row: &Row) -> Result<Upload, StoreError> {
    let attrs: String = row.get(4);
    Ok(Upload {
        id: row.get(0),
        bucket: row.get(1),
        key: key_text(row.get(2))?,
        initiated_ms: row.get(3),
        attrs: serde_json::from_str(&attrs).map_err(json_err)?,
    })
}

const PART_COLUMNS: &str = "upload_id, number, size, etag, checksums, locator, last_modified_ms";

fn part_from_row(row: &Row) -> Result<Part, StoreError> {
    let checksums: String = row.get(4);
    Ok(Part {
        upload_id: row.get(0),
        number: row.get::<_, i64>(1) as u32,
        size: row.get::<_, i64>(2) as u64,
        etag: row.get(3),
        checksums: serde_json::from_str(&checksums).map_err(json_err)?,
        locator: row.get(5),
        last_modified_ms: row.get(6),
    })
}

fn is_foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

impl PgStore {
    /// Locks one object key until the transaction ends, then reads it (row-locked).
    async fn lock_object(
        &self,
        tx: &impl GenericClient,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        tx.execute(
            "SELECT pg_advisory_xact_lock(\
             hashtextextended('object:' || $1 || '/' || encode($2, 'hex'), 0))",
            &[&bucket, &key.as_bytes()],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.query_opt(
            &format!(
                "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE"
            ),
            &[&bucket, &key.as_bytes()],
        )
        .await
        .map_err(|e| self.err(e))?
        .as_ref()
        .map(object_from_row)
        .transpose()
    }

    /// Inserts or replaces an object row (under its key's lock); a missing bucket is `Ok(false)`.
    async fn upsert_object(
        &self,
        tx: &impl GenericClient,
        o: &ObjectRecord,
    ) -> Result<bool, StoreError> {
        let attrs = serde_json::to_string(&o.attrs).map_err(json_err)?;
        let data = serde_json::to_string(&o.data).map_err(json_err)?;
        let written = tx
            .execute(
                &format!(
                    "INSERT INTO objects ({OBJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (bucket, key) DO UPDATE SET size = excluded.size, \
                     etag = excluded.etag, last_modified_ms = excluded.last_modified_ms, \
                     attrs = excluded.attrs, data = excluded.data"
                ),
                &[
                    &o.bucket,
                    &o.key.as_bytes(),
                    &(o.size as i64),
                    &o.etag,
                    &o.last_modified_ms,
                    &attrs,
                    &data,
                ],
            )
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_foreign_key_violation(&e) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }
}

#[async_trait]
impl ObjectStore for PgStore {
    async fn create_bucket(&self, bucket: &Bucket) -> Result<BucketCreated, StoreError> {
        let b = bucket;
        loop {
            let inserted = self
                .execute(
                    &format!(
                        "INSERT INTO buckets ({BUCKET_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (name) DO NOTHING"
                    ),
                    &[
                        &b.name,
                        &b.namespace,
                        &b.created_ms,
                        &b.region,
                        &b.notification,
                    ],
                )
                .await?;
            if inserted == 1 {
                return Ok(BucketCreated::Created);
            }
            // Taken; unless it was deleted in between (then try again).
            if let Some(existing) = self.get_bucket(&b.name).await? {
                return Ok(BucketCreated::Exists(existing));
            }
        }
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        Ok(self
            .query_opt(
                &format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = $1"),
                &[&name],
            )
            .await?
            .as_ref()
            .map(bucket_from_row))
    }

    async fn list_buckets(&self, namespace: &str) -> Result<Vec<Bucket>, StoreError> {
        Ok(self
            .query(
                &format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE namespace = $1 ORDER BY name"),
                &[&namespace],
            )
            .await?
            .iter()
            .map(bucket_from_row)
            .collect())
    }

    async fn delete_bucket(&self, name: &str) -> Result<BucketDeleted, StoreError> {
        let conn = self.conn().await?;
        match conn
            .execute("DELETE FROM buckets WHERE name = $1", &[&name])
            .await
        {
            Ok(0) => Ok(BucketDeleted::Missing),
            Ok(_) => Ok(BucketDeleted::Deleted),
            Err(e) if is_foreign_key_violation(&e) => Ok(BucketDeleted::NotEmpty),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn set_bucket_notification(
        &self,
        name: &str,
        notification: Option<&str>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE buckets SET notification = $2 WHERE name = $1",
                &[&name, &notification],
            )
            .await?
            > 0)
    }

    async fn put_object(
        &self,
        object: &ObjectRecord,
        condition: &WriteIf,
    ) -> Result<Written, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let current = self.lock_object(&tx, &object.bucket, &object.key).await?;
        if !condition.holds(current.as_ref()) {
            return Ok(Written::PreconditionFailed);
        }
        if !self.upsert_object(&tx, object).await? {
            return Ok(Written::NoSuchBucket);
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Written::Stored {
            replaced: current.map(Box::new),
        })
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        self.query_opt(
            &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND key = $2"),
            &[&bucket, &key.as_bytes()],
        )
        .await?
        .as_ref()
        .map(object_from_row)
        .transpose()
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        self.query_opt(
            &format!(
                "DELETE FROM objects WHERE bucket = $1 AND key = $2 RETURNING {OBJECT_COLUMNS}"
            ),
            &[&bucket, &key.as_bytes()],
        )
        .await?
        .as_ref()
        .map(object_from_row)
        .transpose()
    }

    async fn scan_objects(
        &self,
        bucket: &str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let to = to.unwrap_or(lambent_store::objects::KEYS_END);
        let rows = self
            .query(
                &format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND key >= $2 \
                     AND key < $3 ORDER BY key LIMIT $4"
                ),
                &[&bucket, &from, &to, &limit],
            )
            .await?;
        rows.iter().map(object_from_row).collect()
    }

    async fn create_upload(&self, upload: &Upload) -> Result<bool, StoreError> {
        let u = upload;
        let attrs = serde_json::to_string(&u.attrs).map_err(json_err)?;
        let conn = self.conn().await?;
        let inserted = conn
            .execute(
                &format!("INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
                &[&u.id, &u.bucket, &u.key.as_bytes(), &u.initiated_ms, &attrs],
            )
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_foreign_key_violation(&e) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn get_upload(&self, bucket: &str, id: &str) -> Result<Option<Upload>, StoreError> {
        self.query_opt(
            &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 AND bucket = $2"),
            &[&id, &bucket],
        )
        .await?
        .as_ref()
        .map(upload_from_row)
        .transpose()
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>, StoreError> {
        let from = prefix.as_bytes();
        let to = lambent_store::objects::prefix_end(from)
            .unwrap_or_else(|| lambent_store::objects::KEYS_END.to_vec());
        let (after_key, after_id) = match after {
            Some((k, id)) => (Some(k.as_bytes()), id),
            None => (None, ""),
        };
        let limit = limit.min(i64::MAX as usize) as i64;
        self.query(
            &format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE bucket = $1 AND key >= $2 \
                 AND key < $3 \
                 AND ($4::bytea IS NULL OR (key, id) > ($4, $5)) ORDER BY key, id LIMIT $6"
            ),
            &[&bucket, &from, &to, &after_key, &after_id, &limit],
        )
        .await?
        .iter()
        .map(upload_from_row)
        .collect()
    }

    async fn put_part(&self, part: &Part) -> Result<PartWritten, StoreError> {
        let p = part;
        let checksums = serde_json::to_string(&p.checksums).map_err(json_err)?;
        let number = i64::from(p.number);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let upload = tx
            .query_opt(
                "SELECT 1 FROM uploads WHERE id = $1 FOR SHARE",
                &[&p.upload_id],
            )
            .await
            .map_err(|e| self.err(e))?;
        if upload.is_none() {
            return Ok(PartWritten::NoSuchUpload);
        }
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('part:' || $1 || '/' || $2, 0))",
            &[&p.upload_id, &number.to_string()],
        )
        .await
        .map_err(|e| self.err(e))?;
        let replaced = tx
            .query_opt(
                &format!(
                    "SELECT {PART_COLUMNS} FROM upload_parts WHERE upload_id = $1 AND number = $2"
                ),
                &[&p.upload_id, &number],
            )
            .await
            .map_err(|e| self.err(e))?
            .as_ref()
            .map(part_from_row)
            .transpose()?;
        tx.execute(
            &format!(
                "INSERT INTO upload_parts ({PART_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (upload_id, number) DO UPDATE SET size = excluded.size, \
                 etag = excluded.etag, checksums = excluded.checksums, \
                 locator = excluded.locator, last_modified_ms = excluded.last_modified_ms"
            ),
            &[
                &p.upload_id,
                &number,
                &(p.size as i64),
                &p.etag,
                &checksums,
                &p.locator,
                &p.last_modified_ms,
            ],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(PartWritten::Stored { replaced })
    }

    async fn list_parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<Part>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.query(
            &format!(
                "SELECT {PART_COLUMNS} FROM upload_parts WHERE upload_id = $1 AND number > $2 \
                 ORDER BY number LIMIT $3"
            ),
            &[&upload_id, &i64::from(after), &limit],
        )
        .await?
        .iter()
        .map(part_from_row)
        .collect()
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        used: &[u32],
        object: &ObjectRecord,
        condition: &WriteIf,
    ) -> Result<Completed, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let upload = tx
            .query_opt(
                "SELECT 1 FROM uploads WHERE id = $1 AND bucket = $2 FOR UPDATE",
                &[&upload_id, &object.bucket],
            )
            .await
            .map_err(|e| self.err(e))?;
        if upload.is_none() {
            return Ok(Completed::NoSuchUpload);
        }
        let current = self.lock_object(&tx, &object.bucket, &object.key).await?;
        if !condition.holds(current.as_ref()) {
            return Ok(Completed::PreconditionFailed);
        }
        let parts = tx
            .query(
                "DELETE FROM upload_parts WHERE upload_id = $1 RETURNING number, locator",
                &[&upload_id],
            )
            .await
            .map_err(|e| self.err(e))?;
        let unused = parts
            .iter()
            .filter(|r| !used.contains(&(r.get::<_, i64>(0) as u32)))
            .map(|r| r.get::<_, String>(1))
            .collect();
        tx.execute("DELETE FROM uploads WHERE id = $1", &[&upload_id])
            .await
            .map_err(|e| self.err(e))?;
        if !self.upsert_object(&tx, object).await? {
            // The bucket cannot go while the upload held it.
            return Ok(Completed::NoSuchUpload);
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Completed::Stored {
            replaced: current.map(Box::new),
            unused,
        })
    }

    async fn abort_upload(&self, upload_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let upload = tx
            .query_opt(
                "SELECT 1 FROM uploads WHERE id = $1 FOR UPDATE",
                &[&upload_id],
            )
            .await
            .map_err(|e| self.err(e))?;
        if upload.is_none() {
            return Ok(None);
        }
        let locators = tx
            .query(
                "DELETE FROM upload_parts WHERE upload_id = $1 RETURNING locator",
                &[&upload_id],
            )
            .await
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        tx.execute("DELETE FROM uploads WHERE id = $1", &[&upload_id])
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Some(locators))
    }

    async fn referenced_data(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self
            .query("SELECT locator FROM upload_parts", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for row in self.query("SELECT data FROM objects", &[]).await? {
            let segments: Vec<Segment> =
                serde_json::from_str(row.get::<_, &str>(0)).map_err(json_err)?;
            out.extend(segments.into_iter().map(|s| s.locator));
        }
        Ok(out)
    }
}
