//! The S3 operations: each maps its input onto one engine call and the result onto its output.
//! Operations not listed here answer `NotImplemented` (s3s's default).

use crate::convert::{self, namespace, s3_err};
use crate::S3Api;
use lambent_objects::notification::{FilterRule as EngineRule, TargetConfig, TargetKind};
use lambent_objects::{NotificationConfig, ObjectError};
use lambent_store::objects::{ListQuery, Part as StoredPart, Upload};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

/// What `encoding-type=url` leaves unescaped in keys (as S3 does).
const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Encodes keys of a listing when the client asked for `encoding-type=url`.
struct KeyCoding(bool);

impl KeyCoding {
    fn of(e: Option<&EncodingType>) -> KeyCoding {
        KeyCoding(e.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }
    fn key(&self, s: &str) -> String {
        if self.0 {
            utf8_percent_encode(s, KEY_SAFE).to_string()
        } else {
            s.to_string()
        }
    }
    fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.key(s))
    }
}

/// The owner a namespace shows as.
fn owner(ns: &str) -> Owner {
    Owner {
        display_name: Some(ns.to_string()),
        id: Some(ns.to_string()),
    }
}

fn max(n: Option<i32>, default: usize) -> S3Result<usize> {
    match n {
        None => Ok(default),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "a maximum may not be negative")),
        Some(n) => Ok(n as usize),
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "part number must be an integer between 1 and 10000, inclusive"
        )
    })
}

/// The result element of CopyObject (`CopyObjectResult`) or of UploadPartCopy
/// (`CopyPartResult`), two s3s types of the same fields: the copy's ETag, time and checksums.
macro_rules! copy_result {
    ($result:ident, $etag:expr, $last_modified_ms:expr, $checksums:expr) => {{
        let c = convert::out_checksums($checksums);
        $result {
            e_tag: Some(convert::etag($etag)),
            last_modified: Some(convert::timestamp($last_modified_ms)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha256: c.sha256,
            ..Default::default()
        }
    }};
}

fn source(copy: &CopySource) -> S3Result<(&str, &str)> {
    match copy {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket, key)),
        _ => Err(s3_error!(
            NotImplemented,
            "copy sources must be bucket/key (access points are not supported)"
        )),
    }
}

/// The list of parts a completion names.
pub fn completed_parts(upload: Option<CompletedMultipartUpload>) -> S3Result<Vec<(u32, String)>> {
    upload
        .and_then(|u| u.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let number = part_number(p.part_number.unwrap_or(0))?;
            let etag = p
                .e_tag
                .map(|e| format!("\"{}\"", e.value()))
                .ok_or_else(|| s3_error!(InvalidPart, "each part needs its ETag"))?;
            Ok((number, etag))
        })
        .collect()
}

/// A notification configuration as sent, validated into the engine's form.
pub fn notification_targets(
    config: NotificationConfiguration,
) -> Result<NotificationConfig, ObjectError> {
    let rules = |f: Option<NotificationConfigurationFilter>| -> Vec<EngineRule> {
        f.and_then(|f| f.key)
            .and_then(|k| k.filter_rules)
            .unwrap_or_default()
            .into_iter()
            .map(|r| EngineRule {
                name: r.name.map(|n| n.as_str().to_string()).unwrap_or_default(),
                value: r.value.unwrap_or_default(),
            })
            .collect()
    };
    let events = |e: Vec<Event>| e.into_iter().map(String::from).collect::<Vec<_>>();
    let mut targets = Vec::new();
    for c in config.lambda_function_configurations.unwrap_or_default() {
        targets.push(TargetConfig::new(
            TargetKind::LambdaFunction,
            c.id,
            c.lambda_function_arn,
            events(c.events),
            rules(c.filter),
        )?);
    }
    for c in config.queue_configurations.unwrap_or_default() {
        targets.push(TargetConfig::new(
            TargetKind::Queue,
            c.id,
            c.queue_arn,
            events(c.events),
            rules(c.filter),
        )?);
    }
    for c in config.topic_configurations.unwrap_or_default() {
        targets.push(TargetConfig::new(
            TargetKind::Topic,
            c.id,
            c.topic_arn,
            events(c.events),
            rules(c.filter),
        )?);
    }
    Ok(NotificationConfig { targets })
}

fn filter_of(t: &TargetConfig) -> Option<NotificationConfigurationFilter> {
    let mut rules = Vec::new();
    if let Some(p) = &t.prefix {
        rules.push(FilterRule {
            name: Some(FilterRuleName::from_static(FilterRuleName::PREFIX)),
            value: Some(p.clone()),
        });
    }
    if let Some(s) = &t.suffix {
        rules.push(FilterRule {
            name: Some(FilterRuleName::from_static(FilterRuleName::SUFFIX)),
            value: Some(s.clone()),
        });
    }
    (!rules.is_empty()).then_some(NotificationConfigurationFilter {
        key: Some(S3KeyFilter {
            filter_rules: Some(rules),
        }),
    })
}

fn upload_out(u: &Upload, ns: &str, coding: &KeyCoding) -> MultipartUpload {
    MultipartUpload {
        checksum_algorithm: u
            .attrs
            .checksum_algorithm
            .clone()
            .map(ChecksumAlgorithm::from),
        initiated: Some(convert::timestamp(u.initiated_ms)),
        initiator: Some(Initiator {
            display_name: Some(ns.to_string()),
            id: Some(ns.to_string()),
        }),
        key: Some(coding.key(&u.key)),
        owner: Some(owner(ns)),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        upload_id: Some(u.id.clone()),
        ..Default::default()
    }
}

fn part_out(p: &StoredPart) -> Part {
    let c = convert::out_checksums(&p.checksums);
    Part {
        checksum_crc32: c.crc32,
        checksum_crc32c: c.crc32c,
        checksum_sha256: c.sha256,
        e_tag: Some(convert::etag(&p.etag)),
        last_modified: Some(convert::timestamp(p.last_modified_ms)),
        part_number: Some(p.number as i32),
        size: Some(p.size as i64),
        ..Default::default()
    }
}

/// A V2 continuation token: the page's last key or common prefix, hex-encoded (opaque).
fn token(last: &str) -> String {
    last.bytes().map(|b| format!("{b:02x}")).collect()
}

fn untoken(t: &str) -> S3Result<String> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "the continuation token provided is incorrect"
        )
    };
    if !t.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<S3Result<Vec<u8>>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn ok<T>(output: T) -> S3Result<S3Response<T>> {
    Ok(S3Response::new(output))
}

#[async_trait::async_trait]
impl S3 for S3Api {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let ns = namespace(&req)?;
        let location = req
            .input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            .map(|l| l.as_str().to_string());
        let b = self
            .objects
            .create_bucket(&ns, &req.input.bucket, location.as_deref())
            .await
            .map_err(s3_err)?;
        ok(CreateBucketOutput {
            location: Some(format!("/{}", b.name)),
        })
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let ns = namespace(&req)?;
        let buckets = self.objects.list_buckets(&ns).await.map_err(s3_err)?;
        ok(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|b| Bucket {
                        bucket_region: Some(b.region),
                        creation_date: Some(convert::timestamp(b.created_ms)),
                        name: Some(b.name),
                    })
                    .collect(),
            ),
            owner: Some(owner(&ns)),
            ..Default::default()
        })
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let ns = namespace(&req)?;
        let b = self
            .objects
            .bucket(&ns, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        ok(HeadBucketOutput {
            bucket_region: Some(b.region),
            ..Default::default()
        })
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let ns = namespace(&req)?;
        self.objects
            .delete_bucket(&ns, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        ok(DeleteBucketOutput {})
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let ns = namespace(&req)?;
        let b = self
            .objects
            .bucket(&ns, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        // us-east-1 is the empty location constraint, as on S3.
        let location = (b.region != "us-east-1").then(|| BucketLocationConstraint::from(b.region));
        ok(GetBucketLocationOutput {
            location_constraint: location,
        })
    }

    async fn put_bucket_notification_configuration(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        let ns = namespace(&req)?;
        let config = notification_targets(req.input.notification_configuration).map_err(s3_err)?;
        self.objects
            .put_notification(&ns, &req.input.bucket, &config)
            .await
            .map_err(s3_err)?;
        ok(PutBucketNotificationConfigurationOutput {})
    }

    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        let ns = namespace(&req)?;
        let config = self
            .objects
            .notification(&ns, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        let mut out = GetBucketNotificationConfigurationOutput::default();
        for t in &config.targets {
            let events: Vec<Event> = t.events.iter().cloned().map(Event::from).collect();
            let id = Some(t.id.clone());
            match t.kind {
                TargetKind::LambdaFunction => out
                    .lambda_function_configurations
                    .get_or_insert_with(Vec::new)
                    .push(LambdaFunctionConfiguration {
                        events,
                        filter: filter_of(t),
                        id,
                        lambda_function_arn: t.arn.clone(),
                    }),
                TargetKind::Queue => {
                    out.queue_configurations
                        .get_or_insert_with(Vec::new)
                        .push(QueueConfiguration {
                            events,
                            filter: filter_of(t),
                            id,
                            queue_arn: t.arn.clone(),
                        })
                }
                TargetKind::Topic => {
                    out.topic_configurations
                        .get_or_insert_with(Vec::new)
                        .push(TopicConfiguration {
                            events,
                            filter: filter_of(t),
                            id,
                            topic_arn: t.arn.clone(),
                        })
                }
            }
        }
        ok(out)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let ns = namespace(&req)?;
        let condition = convert::write_condition(
            req.input.if_match.as_ref(),
            req.input.if_none_match.as_ref(),
        )?;
        let mut req = req;
        let blob = req.input.body.take();
        let i = &req.input;
        let attrs = convert::attrs(
            i.content_type.clone(),
            i.cache_control.clone(),
            i.content_disposition.clone(),
            i.content_encoding.clone(),
            i.content_language.clone(),
            i.expires.as_ref(),
            i.metadata.clone(),
        );
        let body = convert::body(
            &req,
            blob,
            i.content_length,
            i.content_md5.clone(),
            convert::checksums(
                i.checksum_crc32.clone(),
                i.checksum_crc32c.clone(),
                i.checksum_sha256.clone(),
            ),
            i.checksum_algorithm.as_ref().map(|a| a.as_str()),
        )?;
        let o = self
            .objects
            .put_object(&ns, &i.bucket, &i.key, attrs, body, condition)
            .await
            .map_err(s3_err)?;
        let c = convert::out_checksums(&o.attrs.checksums);
        ok(PutObjectOutput {
            e_tag: Some(convert::etag(&o.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha256: c.sha256,
            ..Default::default()
        })
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        if i.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "GetObject by part number is not supported"
            ));
        }
        let conditions = convert::conditions(
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        );
        let d = self
            .objects
            .get_object(
                &ns,
                &i.bucket,
                &i.key,
                &conditions,
                i.range.map(convert::range),
            )
            .await
            .map_err(s3_err)?;
        let o = &d.object;
        let (length, content_range) = match d.range {
            Some(r) => (r.1, Some(convert::content_range(o, r))),
            None => (o.size, None),
        };
        // Whole-object checksums only describe a whole object.
        let c = convert::out_checksums(&o.attrs.checksums);
        let whole = d.range.is_none() && i.checksum_mode.is_some();
        let a = &o.attrs;
        let out = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            cache_control: i.response_cache_control.or_else(|| a.cache_control.clone()),
            content_disposition: i
                .response_content_disposition
                .or_else(|| a.content_disposition.clone()),
            content_encoding: i
                .response_content_encoding
                .or_else(|| a.content_encoding.clone()),
            content_language: i
                .response_content_language
                .or_else(|| a.content_language.clone()),
            content_type: i.response_content_type.or_else(|| a.content_type.clone()),
            expires: i.response_expires.or_else(|| convert::expires(a)),
            content_length: Some(length as i64),
            content_range,
            e_tag: Some(convert::etag(&o.etag)),
            last_modified: Some(convert::timestamp(o.last_modified_ms)),
            metadata: convert::metadata(a),
            parts_count: a.parts.map(|p| p as i32),
            checksum_crc32: c.crc32.filter(|_| whole),
            checksum_crc32c: c.crc32c.filter(|_| whole),
            checksum_sha256: c.sha256.filter(|_| whole),
            body: Some(convert::blob(d.stream)),
            ..Default::default()
        };
        let mut response = S3Response::new(out);
        if d.range.is_some() {
            response.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(response)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let conditions = convert::conditions(
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        );
        let o = self
            .objects
            .head_object(&ns, &i.bucket, &i.key, &conditions)
            .await
            .map_err(s3_err)?;
        let (length, content_range) = match i.range {
            Some(r) => {
                let r = convert::range(r).resolve(o.size).map_err(s3_err)?;
                (r.1, Some(convert::content_range(&o, r)))
            }
            None => (o.size, None),
        };
        let c = convert::out_checksums(&o.attrs.checksums);
        let whole = i.checksum_mode.is_some();
        let a = &o.attrs;
        ok(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            cache_control: a.cache_control.clone(),
            content_disposition: a.content_disposition.clone(),
            content_encoding: a.content_encoding.clone(),
            content_language: a.content_language.clone(),
            content_type: a.content_type.clone(),
            expires: convert::expires(a),
            content_length: Some(length as i64),
            content_range,
            e_tag: Some(convert::etag(&o.etag)),
            last_modified: Some(convert::timestamp(o.last_modified_ms)),
            metadata: convert::metadata(a),
            parts_count: a.parts.map(|p| p as i32),
            checksum_crc32: c.crc32.filter(|_| whole),
            checksum_crc32c: c.crc32c.filter(|_| whole),
            checksum_sha256: c.sha256.filter(|_| whole),
            ..Default::default()
        })
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let ns = namespace(&req)?;
        self.objects
            .delete_object(&ns, &req.input.bucket, &req.input.key)
            .await
            .map_err(s3_err)?;
        ok(DeleteObjectOutput::default())
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let ns = namespace(&req)?;
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let keys = req
            .input
            .delete
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        let results = self
            .objects
            .delete_objects(&ns, &req.input.bucket, keys)
            .await
            .map_err(s3_err)?;
        let mut out = DeleteObjectsOutput::default();
        for (key, result) in results {
            match result {
                Ok(()) if quiet => {}
                Ok(()) => out
                    .deleted
                    .get_or_insert_with(Vec::new)
                    .push(DeletedObject {
                        key: Some(key),
                        ..Default::default()
                    }),
                Err(e) => out.errors.get_or_insert_with(Vec::new).push(Error {
                    code: Some(e.code().to_string()),
                    key: Some(key),
                    message: Some(e.to_string()),
                    version_id: None,
                }),
            }
        }
        ok(out)
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str().eq_ignore_ascii_case(MetadataDirective::REPLACE));
        let attrs = replace.then(|| {
            convert::attrs(
                i.content_type.clone(),
                i.cache_control.clone(),
                i.content_disposition.clone(),
                i.content_encoding.clone(),
                i.content_language.clone(),
                i.expires.as_ref(),
                i.metadata.clone(),
            )
        });
        let conditions = convert::conditions(
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
        );
        let o = self
            .objects
            .copy_object(
                &ns,
                source(&i.copy_source)?,
                &conditions,
                &i.bucket,
                &i.key,
                attrs,
                lambent_store::objects::WriteIf::Always,
            )
            .await
            .map_err(s3_err)?;
        ok(CopyObjectOutput {
            copy_object_result: Some(copy_result!(
                CopyObjectResult,
                &o.etag,
                o.last_modified_ms,
                &o.attrs.checksums
            )),
            ..Default::default()
        })
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let coding = KeyCoding::of(i.encoding_type.as_ref());
        let max_keys = max(i.max_keys, 1000)?;
        let page = self
            .objects
            .list_objects(
                &ns,
                &i.bucket,
                ListQuery {
                    prefix: i.prefix.clone().unwrap_or_default(),
                    start_after: i.marker.clone().filter(|m| !m.is_empty()),
                    delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
                    max_keys,
                },
            )
            .await
            .map_err(s3_err)?;
        let next = page
            .truncated
            .then(|| coding.opt(page.last.as_deref()))
            .flatten();
        let (contents, prefixes) = listing(&page, &ns, &coding);
        ok(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(coding.key(&i.prefix.unwrap_or_default())),
            marker: Some(coding.key(&i.marker.unwrap_or_default())),
            max_keys: Some(max_keys.min(1000) as i32),
            is_truncated: Some(page.truncated),
            contents,
            common_prefixes: prefixes,
            delimiter: coding.opt(i.delimiter.as_deref()),
            next_marker: next,
            encoding_type: i.encoding_type,
            ..Default::default()
        })
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let coding = KeyCoding::of(i.encoding_type.as_ref());
        let max_keys = max(i.max_keys, 1000)?;
        let start = match &i.continuation_token {
            Some(t) => Some(untoken(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let page = self
            .objects
            .list_objects(
                &ns,
                &i.bucket,
                ListQuery {
                    prefix: i.prefix.clone().unwrap_or_default(),
                    start_after: start,
                    delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
                    max_keys,
                },
            )
            .await
            .map_err(s3_err)?;
        let next = page
            .truncated
            .then(|| page.last.as_deref().map(token))
            .flatten();
        let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
        let (contents, prefixes) = listing(&page, &ns, &coding);
        ok(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(coding.key(&i.prefix.unwrap_or_default())),
            max_keys: Some(max_keys.min(1000) as i32),
            key_count: Some(key_count),
            continuation_token: i.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: next,
            contents,
            common_prefixes: prefixes,
            delimiter: coding.opt(i.delimiter.as_deref()),
            encoding_type: i.encoding_type,
            start_after: coding.opt(i.start_after.as_deref()),
            ..Default::default()
        })
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let mut attrs = convert::attrs(
            i.content_type,
            i.cache_control,
            i.content_disposition,
            i.content_encoding,
            i.content_language,
            i.expires.as_ref(),
            i.metadata,
        );
        attrs.checksum_algorithm = i
            .checksum_algorithm
            .as_ref()
            .map(|a| a.as_str().to_string());
        let u = self
            .objects
            .create_upload(&ns, &i.bucket, &i.key, attrs)
            .await
            .map_err(s3_err)?;
        ok(CreateMultipartUploadOutput {
            bucket: Some(u.bucket),
            key: Some(u.key),
            upload_id: Some(u.id),
            checksum_algorithm: i.checksum_algorithm,
            checksum_type: u
                .attrs
                .checksum_algorithm
                .is_some()
                .then(|| ChecksumType::from_static(ChecksumType::COMPOSITE)),
            ..Default::default()
        })
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let ns = namespace(&req)?;
        let mut req = req;
        let blob = req.input.body.take();
        let i = &req.input;
        let number = part_number(i.part_number)?;
        let body = convert::body(
            &req,
            blob,
            i.content_length,
            i.content_md5.clone(),
            convert::checksums(
                i.checksum_crc32.clone(),
                i.checksum_crc32c.clone(),
                i.checksum_sha256.clone(),
            ),
            i.checksum_algorithm.as_ref().map(|a| a.as_str()),
        )?;
        let p = self
            .objects
            .upload_part(&ns, &i.bucket, &i.key, &i.upload_id, number, body)
            .await
            .map_err(s3_err)?;
        let c = convert::out_checksums(&p.checksums);
        ok(UploadPartOutput {
            e_tag: Some(convert::etag(&p.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha256: c.sha256,
            ..Default::default()
        })
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let number = part_number(i.part_number)?;
        let range = i
            .copy_source_range
            .as_deref()
            .map(convert::copy_range)
            .transpose()?;
        let conditions = convert::conditions(
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
        );
        let (p, _) = self
            .objects
            .upload_part_copy(
                &ns,
                &i.bucket,
                &i.key,
                &i.upload_id,
                number,
                source(&i.copy_source)?,
                &conditions,
                range,
            )
            .await
            .map_err(s3_err)?;
        ok(UploadPartCopyOutput {
            copy_part_result: Some(copy_result!(
                CopyPartResult,
                &p.etag,
                p.last_modified_ms,
                &p.checksums
            )),
            ..Default::default()
        })
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let condition = convert::write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
        let parts = completed_parts(i.multipart_upload)?;
        let o = self
            .objects
            .complete_upload(&ns, &i.bucket, &i.key, &i.upload_id, &parts, condition)
            .await
            .map_err(s3_err)?;
        let c = convert::out_checksums(&o.attrs.checksums);
        ok(CompleteMultipartUploadOutput {
            bucket: Some(o.bucket.clone()),
            key: Some(o.key.clone()),
            e_tag: Some(convert::etag(&o.etag)),
            location: Some(format!("/{}/{}", o.bucket, o.key)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha256: c.sha256,
            ..Default::default()
        })
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        self.objects
            .abort_upload(&ns, &i.bucket, &i.key, &i.upload_id)
            .await
            .map_err(s3_err)?;
        ok(AbortMultipartUploadOutput::default())
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let coding = KeyCoding::of(i.encoding_type.as_ref());
        let max_uploads = max(i.max_uploads, 1000)?;
        let after = i
            .key_marker
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| (k, i.upload_id_marker.as_deref().unwrap_or("")));
        let (uploads, truncated) = self
            .objects
            .list_uploads(
                &ns,
                &i.bucket,
                i.prefix.as_deref().unwrap_or(""),
                after,
                max_uploads,
            )
            .await
            .map_err(s3_err)?;
        let last = uploads.last().filter(|_| truncated);
        ok(ListMultipartUploadsOutput {
            bucket: Some(i.bucket.clone()),
            is_truncated: Some(truncated),
            key_marker: i.key_marker.clone(),
            upload_id_marker: i.upload_id_marker.clone(),
            next_key_marker: last.map(|u| coding.key(&u.key)),
            next_upload_id_marker: last.map(|u| u.id.clone()),
            max_uploads: Some(max_uploads.min(1000) as i32),
            prefix: i.prefix.clone(),
            encoding_type: i.encoding_type.clone(),
            uploads: Some(
                uploads
                    .iter()
                    .map(|u| upload_out(u, &ns, &coding))
                    .collect(),
            ),
            ..Default::default()
        })
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let ns = namespace(&req)?;
        let i = req.input;
        let max_parts = max(i.max_parts, 1000)?;
        let after = u32::try_from(i.part_number_marker.unwrap_or(0)).unwrap_or(0);
        let (upload, parts, truncated) = self
            .objects
            .list_parts(&ns, &i.bucket, &i.key, &i.upload_id, after, max_parts)
            .await
            .map_err(s3_err)?;
        ok(ListPartsOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            upload_id: Some(i.upload_id.clone()),
            is_truncated: Some(truncated),
            max_parts: Some(max_parts.min(1000) as i32),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: parts.last().map(|p| p.number as i32),
            checksum_algorithm: upload
                .attrs
                .checksum_algorithm
                .clone()
                .map(ChecksumAlgorithm::from),
            initiator: Some(Initiator {
                display_name: Some(ns.clone()),
                id: Some(ns.clone()),
            }),
            owner: Some(owner(&ns)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            parts: Some(parts.iter().map(part_out).collect()),
            ..Default::default()
        })
    }
}

/// The objects and common prefixes of a page as s3s's lists.
fn listing(
    page: &lambent_store::objects::ListPage,
    ns: &str,
    coding: &KeyCoding,
) -> (Option<Vec<Object>>, Option<Vec<CommonPrefix>>) {
    let contents = page
        .objects
        .iter()
        .map(|o| Object {
            e_tag: Some(convert::etag(&o.etag)),
            key: Some(coding.key(&o.key)),
            last_modified: Some(convert::timestamp(o.last_modified_ms)),
            owner: Some(owner(ns)),
            size: Some(o.size as i64),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(coding.key(p)),
        })
        .collect();
    (Some(contents), Some(prefixes))
}
