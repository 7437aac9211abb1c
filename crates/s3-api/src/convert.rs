//! Between s3s's wire types and the engine's: errors, times, ETags, conditions, ranges,
//! attributes, checksums and request bodies.

use crate::auth::Namespace;
use bytes::Bytes;
use futures_util::stream::{Stream, StreamExt};
use lambent_objects::{Algorithm, Body, ByteRange, ByteStream, Conditions, ObjectError};
use lambent_store::objects::{Checksums, ObjectAttrs, ObjectRecord, WriteIf};
use s3s::dto::{
    ChecksumCRC32, ChecksumCRC32C, ChecksumSHA256, ETag, ETagCondition, Metadata, Range,
    StreamingBlob, Timestamp, TimestampFormat,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An engine error as S3 answers it.
pub fn s3_err(e: ObjectError) -> S3Error {
    let code = S3ErrorCode::from_bytes(e.code().as_bytes()).unwrap_or(S3ErrorCode::InternalError);
    if e.status() >= 500 {
        tracing::error!("S3 request failed: {e}");
    }
    let mut err = S3Error::with_message(code, e.to_string());
    if let Ok(status) = http::StatusCode::from_u16(e.status()) {
        err.set_status_code(status);
    }
    err
}

/// The namespace the access check put on the request.
pub fn namespace<T>(req: &S3Request<T>) -> S3Result<String> {
    req.extensions
        .get::<Namespace>()
        .map(|n| n.0.clone())
        .ok_or_else(|| s3s::s3_error!(AccessDenied, "the request is not signed by a known key"))
}

pub fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub fn millis(t: &Timestamp) -> i64 {
    (time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos() / 1_000_000) as i64
}

/// A stored (quoted) ETag as s3s writes it (it adds the quotes).
pub fn etag(stored: &str) -> ETag {
    ETag::Strong(stored.trim_matches('"').to_string())
}

fn condition_text(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".into(),
        ETagCondition::ETag(e) => format!("\"{}\"", e.value()),
    }
}

/// The conditions of a read (or a copy source).
pub fn conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Conditions {
    Conditions {
        if_match: if_match.map(condition_text),
        if_none_match: if_none_match.map(condition_text),
        if_modified_since_ms: if_modified_since.map(millis),
        if_unmodified_since_ms: if_unmodified_since.map(millis),
    }
}

/// The condition of a write: `If-None-Match: *` (create only) or `If-Match` (replace that).
pub fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteIf> {
    match (if_match, if_none_match) {
        (None, None) => Ok(WriteIf::Always),
        (None, Some(ETagCondition::Any)) => Ok(WriteIf::Absent),
        (Some(ETagCondition::ETag(e)), None) => Ok(WriteIf::EtagIs(format!("\"{}\"", e.value()))),
        (Some(ETagCondition::Any), None) => Err(s3s::s3_error!(
            NotImplemented,
            "If-Match: * is not supported on writes: name the ETag"
        )),
        _ => Err(s3s::s3_error!(
            NotImplemented,
            "a write takes either If-None-Match: * or If-Match: ETag"
        )),
    }
}

pub fn range(r: Range) -> ByteRange {
    match r {
        Range::Int { first, last } => ByteRange::From { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

/// `bytes=first-last` of `x-amz-copy-source-range`.
pub fn copy_range(text: &str) -> S3Result<ByteRange> {
    let parsed = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    match parsed {
        Some((first, last)) if first <= last => Ok(ByteRange::From {
            first,
            last: Some(last),
        }),
        _ => Err(s3s::s3_error!(
            InvalidArgument,
            "the x-amz-copy-source-range value must be of the form bytes=first-last"
        )),
    }
}

/// `Content-Encoding` without the `aws-chunked` transfer coding (never stored).
fn content_encoding(value: Option<String>) -> Option<String> {
    let value = value?;
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// What an upload's headers say about the object (content type, standard headers, metadata).
#[allow(clippy::too_many_arguments)]
pub fn attrs(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding_value: Option<String>,
    content_language: Option<String>,
    expires: Option<&Timestamp>,
    metadata: Option<Metadata>,
) -> ObjectAttrs {
    ObjectAttrs {
        content_type,
        cache_control,
        content_disposition,
        content_encoding: content_encoding(content_encoding_value),
        content_language,
        expires: expires.and_then(http_date),
        metadata: metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        ..Default::default()
    }
}

/// The stored `Expires` as s3s's type.
pub fn expires(a: &ObjectAttrs) -> Option<Timestamp> {
    a.expires
        .as_deref()
        .and_then(|e| Timestamp::parse(TimestampFormat::HttpDate, e).ok())
}

pub fn metadata(a: &ObjectAttrs) -> Option<Metadata> {
    (!a.metadata.is_empty()).then(|| a.metadata.clone().into_iter().collect())
}

/// Checksums sent in headers.
pub fn checksums(
    crc32: Option<ChecksumCRC32>,
    crc32c: Option<ChecksumCRC32C>,
    sha256: Option<ChecksumSHA256>,
) -> Checksums {
    Checksums {
        crc32,
        crc32c,
        sha256,
    }
}

/// The algorithms named by the SDK's algorithm header and by `x-amz-trailer`.
fn algorithms(headers: &http::HeaderMap, algorithm: Option<&str>) -> S3Result<Vec<Algorithm>> {
    let mut out = Vec::new();
    if let Some(a) = algorithm {
        out.push(Algorithm::parse(a).map_err(s3_err)?);
    }
    for trailer in headers.get_all("x-amz-trailer") {
        let names = trailer.to_str().unwrap_or_default();
        for name in names.split(',').map(str::trim) {
            if let Some(a) = name.strip_prefix("x-amz-checksum-") {
                out.push(Algorithm::parse(a).map_err(s3_err)?);
            }
        }
    }
    Ok(out)
}

/// Checksums in the `aws-chunked` trailer (once the body has ended).
fn trailer_checksums(headers: &http::HeaderMap) -> Checksums {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Checksums {
        crc32: get("x-amz-checksum-crc32"),
        crc32c: get("x-amz-checksum-crc32c"),
        sha256: get("x-amz-checksum-sha256"),
    }
}

/// A request's body for the engine.
pub fn body<T>(
    req: &S3Request<T>,
    blob: Option<StreamingBlob>,
    length: Option<i64>,
    content_md5: Option<String>,
    sent: Checksums,
    algorithm: Option<&str>,
) -> S3Result<Body> {
    let stream: ByteStream = match blob {
        Some(blob) => blob.map(|r| r.map_err(std::io::Error::other)).boxed(),
        None => futures_util::stream::empty().boxed(),
    };
    let length = match length {
        Some(l) if l < 0 => {
            return Err(s3s::s3_error!(
                InvalidArgument,
                "Content-Length is negative"
            ))
        }
        Some(l) => Some(l as u64),
        None => None,
    };
    let mut body = Body::new(stream, length);
    body.content_md5 = content_md5;
    body.checksums = sent;
    body.algorithms = algorithms(&req.headers, algorithm)?;
    if let Some(trailers) = req.trailing_headers.clone() {
        body.trailer = Some(Box::new(move || {
            trailers.read(trailer_checksums).unwrap_or_default()
        }));
    }
    Ok(body)
}

/// An engine stream as a response body (s3s wants it `Sync`: only one task ever polls it).
pub fn blob(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream(std::sync::Mutex::new(stream)))
}

struct SyncStream(std::sync::Mutex<ByteStream>);

impl Stream for SyncStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        inner.poll_next_unpin(cx)
    }
}

/// The checksum values of an object or part, by s3s's fields.
pub struct OutChecksums {
    pub crc32: Option<ChecksumCRC32>,
    pub crc32c: Option<ChecksumCRC32C>,
    pub sha256: Option<ChecksumSHA256>,
}

pub fn out_checksums(c: &Checksums) -> OutChecksums {
    OutChecksums {
        crc32: c.crc32.clone(),
        crc32c: c.crc32c.clone(),
        sha256: c.sha256.clone(),
    }
}

/// `Content-Range` of a ranged read.
pub fn content_range(o: &ObjectRecord, (offset, len): (u64, u64)) -> String {
    format!("bytes {}-{}/{}", offset, offset + len - 1, o.size)
}
