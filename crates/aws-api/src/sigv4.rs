//! AWS Signature Version 4, verified: parsing the `Authorization` header, rebuilding the
//! canonical request from what arrived (method, raw path and query, the signed headers, the
//! SHA-256 of the body as received), deriving the signing key from the caller's secret and
//! comparing signatures in constant time. Also refuses a date more than five minutes from the
//! server's clock, a credential scoped to another region or service, and an
//! `x-amz-content-sha256` that is not the body's hash.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's `X-Amz-Date` may be from the server's clock.
pub const MAX_SKEW: time::Duration = time::Duration::minutes(5);

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey(String),
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    Mismatch,
    #[error("Signature expired: {signed} is now earlier than {earliest} ({now} - 5 min.)")]
    Expired {
        signed: String,
        earliest: String,
        now: String,
    },
    #[error("Signature not yet current: {signed} is still later than {latest} ({now} + 5 min.)")]
    NotYetCurrent {
        signed: String,
        latest: String,
        now: String,
    },
    #[error("{0}")]
    WrongScope(String),
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    PayloadHashMismatch,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `yyyymmdd` of the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, as listed (sorted by the signer).
    pub signed_headers: Vec<String>,
    /// Hex signature.
    pub signature: String,
}

impl Authorization {
    pub fn parse(value: &str) -> Result<Authorization, SigV4Error> {
        let malformed = |what: &str| SigV4Error::Malformed(what.to_string());
        let rest = value
            .strip_prefix(ALGORITHM)
            .filter(|r| r.starts_with(' '))
            .ok_or_else(|| {
                malformed("Authorization header requires the AWS4-HMAC-SHA256 algorithm")
            })?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("Authorization header has a part without '='"))?;
            match k {
                "Credential" => credential = Some(v),
                "SignedHeaders" => signed = Some(v),
                "Signature" => signature = Some(v),
                _ => {}
            }
        }
        let missing = |name: &str| {
            SigV4Error::Malformed(format!(
                "Authorization header requires '{name}' parameter. Authorization={value}"
            ))
        };
        let credential = credential.ok_or_else(|| missing("Credential"))?;
        let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
        let signature = signature.ok_or_else(|| missing("Signature"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(malformed(
                "Credential must be <access key id>/<yyyymmdd>/<region>/<service>/aws4_request",
            ));
        };
        if access_key_id.is_empty() {
            return Err(malformed("Credential has an empty access key id"));
        }
        Ok(Authorization {
            access_key_id: access_key_id.into(),
            date: date.into(),
            region: region.into(),
            service: service.into(),
            signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
            signature: signature.to_ascii_lowercase(),
        })
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// A request as it arrived, with its whole body.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub raw_path: &'a str,
    /// The query string as sent, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What the server expects of every credential scope.
pub struct Expected<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub now: OffsetDateTime,
}

/// Checks everything of a request's signature that does not need the secret: the date (present,
/// matching the scope, within [`MAX_SKEW`]), the scope's region and service, the signed
/// headers, and the payload hash. Returns the parsed header for [`verify_signature`].
pub fn check_request(
    req: &Request<'_>,
    expected: &Expected<'_>,
) -> Result<Authorization, SigV4Error> {
    let header = req
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(SigV4Error::Missing)?
        .to_str()
        .map_err(|_| SigV4Error::Malformed("Authorization header is not ASCII".into()))?;
    let auth = Authorization::parse(header)?;
    let amz_date = header_value(req.headers, "x-amz-date").ok_or_else(|| {
        SigV4Error::Malformed("Authorization requires a valid X-Amz-Date header".into())
    })?;
    let signed_at = parse_amz_date(&amz_date)?;
    if !amz_date.starts_with(&auth.date) {
        return Err(SigV4Error::WrongScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &amz_date[..8.min(amz_date.len())]
        )));
    }
    let now = expected.now;
    if signed_at < now - MAX_SKEW {
        return Err(SigV4Error::Expired {
            signed: amz_date,
            earliest: format_amz_date(now - MAX_SKEW),
            now: format_amz_date(now),
        });
    }
    if signed_at > now + MAX_SKEW {
        return Err(SigV4Error::NotYetCurrent {
            signed: amz_date,
            latest: format_amz_date(now + MAX_SKEW),
            now: format_amz_date(now),
        });
    }
    if auth.region != expected.region {
        return Err(SigV4Error::WrongScope(format!(
            "Credential should be scoped to a valid region, not '{}'; this server's region is '{}'.",
            auth.region, expected.region
        )));
    }
    if auth.service != expected.service {
        return Err(SigV4Error::WrongScope(format!(
            "Credential should be scoped to correct service: '{}'.",
            expected.service
        )));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(SigV4Error::Malformed(format!(
                "the '{required}' header must be signed"
            )));
        }
    }
    if let Some(claimed) = header_value(req.headers, "x-amz-content-sha256") {
        if claimed != hex::encode(Sha256::digest(req.body)) {
            return Err(SigV4Error::PayloadHashMismatch);
        }
    }
    Ok(auth)
}

/// Recomputes the signature with `secret` and compares it in constant time.
pub fn verify_signature(
    req: &Request<'_>,
    auth: &Authorization,
    secret: &str,
) -> Result<(), SigV4Error> {
    let claimed = hex::decode(&auth.signature).map_err(|_| SigV4Error::Mismatch)?;
    let amz_date = header_value(req.headers, "x-amz-date").unwrap_or_default();
    let to_sign = string_to_sign(&amz_date, &auth.scope(), &canonical_request(req, auth));
    let key = kept_signing_key(secret, &auth.date, &auth.region, &auth.service);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&claimed).map_err(|_| SigV4Error::Mismatch)
}

/// The canonical request of SigV4: method, canonical path, canonical query, the signed headers
/// with trimmed values, the signed header list, and the hex SHA-256 of the body.
pub fn canonical_request(req: &Request<'_>, auth: &Authorization) -> String {
    let payload = hex::encode(Sha256::digest(req.body));
    canonical_request_of(req, auth, &canonical_path(req.raw_path), &payload)
}

/// Which secret of a key an S3 request (signed in its `Authorization` header with SigV4, or a
/// presigned URL of SigV4 or SigV2) was signed with: whether `secret` makes its signature. The
/// path is the one sent (not encoded again); `vh_bucket` the bucket a virtual-host-style
/// request names in its host (SigV2 signs it as the path's first segment). Nothing else is
/// checked here (dates, expiry, scope): the S3 endpoint's own verification does that, with the
/// secret this picks.
pub fn s3_signed_with(
    method: &str,
    raw_path: &str,
    vh_bucket: Option<&str>,
    raw_query: &str,
    headers: &HeaderMap,
    secret: &str,
) -> bool {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    if let Some(auth) =
        header_value(headers, "authorization").and_then(|v| Authorization::parse(&v).ok())
    {
        let payload = header_value(headers, "x-amz-content-sha256")
            .unwrap_or_else(|| "UNSIGNED-PAYLOAD".into());
        let amz_date = header_value(headers, "x-amz-date").unwrap_or_default();
        let req = Request {
            method,
            raw_path,
            raw_query,
            headers,
            body: &[],
        };
        let canonical = canonical_request_of(&req, &auth, path, &payload);
        return v4_signature_matches(&auth, &amz_date, &canonical, secret);
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(auth) = presigned_authorization(&param) {
        // The query without its signature is part of what was signed.
        let signed_query: Vec<&str> = raw_query
            .split('&')
            .filter(|p| !p.starts_with("X-Amz-Signature="))
            .collect();
        let req = Request {
            method,
            raw_path,
            raw_query: &signed_query.join("&"),
            headers,
            body: &[],
        };
        let canonical = canonical_request_of(&req, &auth, path, "UNSIGNED-PAYLOAD");
        let amz_date = param("X-Amz-Date").unwrap_or_default();
        return v4_signature_matches(&auth, amz_date, &canonical, secret);
    }
    match (param("Signature"), param("Expires")) {
        (Some(signature), Some(expires)) => {
            let to_sign =
                v2_presigned_string_to_sign(method, path, vh_bucket, expires, &param, headers);
            v2_signature_matches(signature, &to_sign, secret)
        }
        _ => false,
    }
}

/// The access key id an S3 request is signed with: in its `Authorization` header (SigV4), or
/// in a presigned URL's query (`X-Amz-Credential` of SigV4, `AWSAccessKeyId` of SigV2).
pub fn s3_access_key_id(headers: &HeaderMap, raw_query: &str) -> Option<String> {
    if let Some(value) = header_value(headers, "authorization") {
        return Authorization::parse(&value).ok().map(|a| a.access_key_id);
    }
    form_urlencoded::parse(raw_query.as_bytes()).find_map(|(k, v)| match k.as_ref() {
        "X-Amz-Credential" => v.split('/').next().map(str::to_string),
        "AWSAccessKeyId" => Some(v.into_owned()),
        _ => None,
    })
}

/// A SigV4 presigned URL's parameters as the `Authorization` header would carry them.
fn presigned_authorization<'a>(param: &impl Fn(&str) -> Option<&'a str>) -> Option<Authorization> {
    let credential: Vec<&str> = param("X-Amz-Credential")?.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = credential[..] else {
        return None;
    };
    Some(Authorization {
        access_key_id: access_key_id.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        signed_headers: param("X-Amz-SignedHeaders")?
            .split(';')
            .map(str::to_string)
            .collect(),
        signature: param("X-Amz-Signature")?.into(),
    })
}

/// Whether `auth`'s signature of a canonical request is the one `secret` makes.
fn v4_signature_matches(
    auth: &Authorization,
    amz_date: &str,
    canonical: &str,
    secret: &str,
) -> bool {
    let to_sign = string_to_sign(amz_date, &auth.scope(), canonical);
    let key = kept_signing_key(secret, &auth.date, &auth.region, &auth.service);
    let Ok(claimed) = hex::decode(&auth.signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&claimed).is_ok()
}

/// The sub-resources SigV2 signs with the path when the query has them (S3's list, sorted).
const V2_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// What a SigV2 presigned URL signs: method, `Content-MD5`, `Content-Type`, `Expires`, the
/// `x-amz-*` headers, then the resource (`/bucket` of a virtual host, the path, the
/// sub-resources in the query).
fn v2_presigned_string_to_sign<'a>(
    method: &str,
    path: &str,
    vh_bucket: Option<&str>,
    expires: &str,
    param: &impl Fn(&str) -> Option<&'a str>,
    headers: &HeaderMap,
) -> String {
    let one = |name: &str| header_value(headers, name).unwrap_or_default();
    let mut out = format!(
        "{method}\n{}\n{}\n{expires}\n",
        one("content-md5"),
        one("content-type")
    );
    let mut amz: Vec<&str> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-amz-"))
        .collect();
    amz.sort_unstable();
    amz.dedup();
    for name in amz {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            .collect();
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    if let Some(bucket) = vh_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(path);
    let mut separator = '?';
    for name in V2_SUBRESOURCES {
        if let Some(value) = param(name) {
            out.push(separator);
            out.push_str(name);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
            separator = '&';
        }
    }
    out
}

/// Whether a SigV2 signature (base64 of the HMAC-SHA1) of `to_sign` is the one `secret` makes.
fn v2_signature_matches(signature: &str, to_sign: &str, secret: &str) -> bool {
    use base64::Engine;
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&claimed).is_ok()
}

fn canonical_request_of(
    req: &Request<'_>,
    auth: &Authorization,
    path: &str,
    payload_hash: &str,
) -> String {
    let mut headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(req.raw_query),
        headers,
        auth.signed_headers.join(";"),
        payload_hash
    )
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    key
}

/// How many signing keys each thread keeps (most recent first).
const KEPT_SIGNING_KEYS: usize = 8;

/// A signing key with what it was derived from: secret, date, region, service.
type KeptKey = (String, String, String, String, [u8; 32]);

thread_local! {
    /// Signing keys this thread derived lately: one serves every request of a day signed
    /// with the same secret for the same region and service, and deriving it again takes
    /// four HMACs.
    static SIGNING_KEYS: std::cell::RefCell<Vec<KeptKey>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`signing_key`], kept per thread for the next request with the same scope and secret.
fn kept_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    SIGNING_KEYS.with(|kept| {
        let mut kept = kept.borrow_mut();
        let found = kept
            .iter()
            .find(|(s, d, r, v, _)| s == secret && d == date && r == region && v == service);
        if let Some((.., key)) = found {
            return *key;
        }
        let key = signing_key(secret, date, region, service);
        kept.truncate(KEPT_SIGNING_KEYS - 1);
        kept.insert(
            0,
            (
                secret.into(),
                date.into(),
                region.into(),
                service.into(),
                key,
            ),
        );
        key
    })
}

/// Signs a request (the client side, used to test the verifier against itself and to let a
/// test forge requests): the hex signature for `auth`'s scope and signed headers.
pub fn sign(req: &Request<'_>, auth: &Authorization, secret: &str) -> String {
    let amz_date = header_value(req.headers, "x-amz-date").unwrap_or_default();
    let to_sign = string_to_sign(&amz_date, &auth.scope(), &canonical_request(req, auth));
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    hex::encode(hmac_sha256(&key, to_sign.as_bytes()))
}

/// Who signs a request, for what: the client side of SigV4 for tests and tools.
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Signer<'_> {
    /// Adds `x-amz-date` and `authorization` to `headers` (which must hold `host`), signing
    /// `host` and `x-amz-date`.
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &mut HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) {
        let (raw_path, raw_query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let amz_date = format_amz_date(now);
        headers.insert(
            "x-amz-date",
            amz_date.parse().expect("an AMZ date is a header value"),
        );
        let auth = Authorization {
            access_key_id: self.access_key_id.into(),
            date: amz_date[..8].into(),
            region: self.region.into(),
            service: self.service.into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: String::new(),
        };
        let request = Request {
            method,
            raw_path,
            raw_query,
            headers,
            body,
        };
        let signature = sign(&request, &auth, self.secret);
        let value = format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders=host;x-amz-date, Signature={signature}",
            self.access_key_id,
            auth.scope()
        );
        headers.insert(
            axum::http::header::AUTHORIZATION,
            value.parse().expect("a signature is a header value"),
        );
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3986 unreserved characters stay, everything else is `%XX`.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path as sent, encoded once more (SigV4 for every service but S3), `/` kept.
fn canonical_path(raw_path: &str) -> String {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    path.split('/')
        .map(|segment| percent_encoding::utf8_percent_encode(segment, UNRESERVED).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Parameters decoded, re-encoded with RFC 3986 rules and sorted by name, then value.
fn canonical_query(raw_query: &str) -> String {
    let encode = |s: &str| {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
        percent_encoding::percent_encode(&decoded, UNRESERVED).to_string()
    };
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k), encode(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

const AMZ_DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

fn parse_amz_date(value: &str) -> Result<OffsetDateTime, SigV4Error> {
    time::PrimitiveDateTime::parse(value, AMZ_DATE)
        .map(|t| t.assume_utc())
        .map_err(|_| {
            SigV4Error::Malformed(format!(
                "X-Amz-Date '{value}' is not an ISO-8601 basic date such as 20150830T123600Z"
            ))
        })
}

pub fn format_amz_date(t: OffsetDateTime) -> String {
    t.format(AMZ_DATE).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    // AWS's published SigV4 test suite (aws-sig-v4-test-suite): these credentials, this date.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn vector_headers(signature: &str) -> HeaderMap {
        headers(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", DATE),
            ("authorization", &format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}")),
        ])
    }

    fn at_vector_time() -> Expected<'static> {
        Expected {
            region: "us-east-1",
            service: "service",
            now: parse_amz_date(DATE).unwrap() + time::Duration::seconds(30),
        }
    }

    fn check(
        method: &str,
        path: &str,
        query: &str,
        h: &HeaderMap,
        body: &[u8],
    ) -> Result<(), SigV4Error> {
        let req = Request {
            method,
            raw_path: path,
            raw_query: query,
            headers: h,
            body,
        };
        let auth = check_request(&req, &at_vector_time())?;
        verify_signature(&req, &auth, SECRET)
    }

    #[test]
    fn get_vanilla_verifies() {
        let h = vector_headers("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        assert_eq!(check("GET", "/", "", &h, b""), Ok(()));
    }

    #[test]
    fn kept_signing_keys_are_the_derived_ones_for_each_scope_and_secret() {
        let dates: Vec<String> = (0..KEPT_SIGNING_KEYS + 2)
            .map(|d| format!("201508{:02}", d + 1))
            .collect();
        let mut scopes: Vec<(&str, &str, &str, &str)> = dates
            .iter()
            .map(|d| (SECRET, d.as_str(), "us-east-1", "service"))
            .collect();
        scopes.push((SECRET, &dates[0], "eu-west-1", "service"));
        scopes.push((SECRET, &dates[0], "us-east-1", "dynamodb"));
        scopes.push(("another-secret", &dates[0], "us-east-1", "service"));
        // More scopes than a thread keeps, twice over, then one again at once: misses,
        // evictions and hits alike.
        for &(secret, date, region, service) in scopes.iter().chain(&scopes).chain(&scopes[..1]) {
            assert_eq!(
                kept_signing_key(secret, date, region, service),
                signing_key(secret, date, region, service)
            );
        }
        assert!(SIGNING_KEYS.with(|k| k.borrow().len()) <= KEPT_SIGNING_KEYS);
    }

    #[test]
    fn get_vanilla_query_order_key_case_verifies() {
        let h = vector_headers("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
        assert_eq!(
            check("GET", "/", "Param2=value2&Param1=value1", &h, b""),
            Ok(())
        );
    }

    #[test]
    fn any_change_to_the_request_breaks_the_signature() {
        let h = vector_headers("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        assert_eq!(check("POST", "/", "", &h, b""), Err(SigV4Error::Mismatch));
        assert_eq!(check("GET", "/x", "", &h, b""), Err(SigV4Error::Mismatch));
        assert_eq!(check("GET", "/", "a=b", &h, b""), Err(SigV4Error::Mismatch));
        assert_eq!(check("GET", "/", "", &h, b"{}"), Err(SigV4Error::Mismatch));
        let wrong =
            vector_headers("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf30");
        assert_eq!(
            check("GET", "/", "", &wrong, b""),
            Err(SigV4Error::Mismatch)
        );
        let not_hex = vector_headers("zz");
        assert_eq!(
            check("GET", "/", "", &not_hex, b""),
            Err(SigV4Error::Mismatch)
        );
    }

    #[test]
    fn old_and_future_dates_are_refused() {
        let h = vector_headers("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        let req = Request {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: &h,
            body: b"",
        };
        let signed = parse_amz_date(DATE).unwrap();
        let at = |now| Expected {
            region: "us-east-1",
            service: "service",
            now,
        };
        assert!(matches!(
            check_request(&req, &at(signed + time::Duration::minutes(6))),
            Err(SigV4Error::Expired { .. })
        ));
        assert!(matches!(
            check_request(&req, &at(signed - time::Duration::minutes(6))),
            Err(SigV4Error::NotYetCurrent { .. })
        ));
        assert!(check_request(&req, &at(signed + time::Duration::minutes(4))).is_ok());
    }

    #[test]
    fn scope_and_headers_are_checked() {
        let h = vector_headers("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        let req = Request {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: &h,
            body: b"",
        };
        let mut expected = at_vector_time();
        expected.region = "eu-west-1";
        assert!(matches!(
            check_request(&req, &expected),
            Err(SigV4Error::WrongScope(_))
        ));
        let mut expected = at_vector_time();
        expected.service = "lambda";
        assert!(matches!(
            check_request(&req, &expected),
            Err(SigV4Error::WrongScope(_))
        ));
        let none = HeaderMap::new();
        let unsigned = Request {
            headers: &none,
            ..req
        };
        assert_eq!(
            check_request(&unsigned, &at_vector_time()),
            Err(SigV4Error::Missing)
        );
    }

    #[test]
    fn a_content_hash_must_match_the_body() {
        let body = b"{\"a\":1}";
        let mut h = headers(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", DATE),
            (
                "x-amz-content-sha256",
                &hex::encode(Sha256::digest(b"other")),
            ),
        ]);
        let auth = Authorization::parse("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00").unwrap();
        let signature = sign(
            &Request {
                method: "POST",
                raw_path: "/",
                raw_query: "",
                headers: &h,
                body,
            },
            &auth,
            SECRET,
        );
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}")).unwrap(),
        );
        assert_eq!(
            check("POST", "/", "", &h, body),
            Err(SigV4Error::PayloadHashMismatch)
        );
    }

    #[test]
    fn paths_are_encoded_once_more_and_queries_sorted() {
        assert_eq!(
            canonical_path("/2015-03-31/functions/f%3Alive/invocations"),
            "/2015-03-31/functions/f%253Alive/invocations"
        );
        assert_eq!(canonical_query("b=2&a=%7E x&A="), "A=&a=~%20x&b=2");
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        assert!(matches!(
            Authorization::parse("Bearer abc"),
            Err(SigV4Error::Malformed(_))
        ));
        assert!(matches!(
            Authorization::parse("AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/service/aws4_request, Signature=00"),
            Err(SigV4Error::Malformed(m)) if m.contains("SignedHeaders")
        ));
        assert!(matches!(
            Authorization::parse(
                "AWS4-HMAC-SHA256 Credential=A/x, SignedHeaders=host, Signature=00"
            ),
            Err(SigV4Error::Malformed(_))
        ));
    }

    /// AWS's examples of presigned URLs: SigV4 (the S3 documentation's `test.txt`) and SigV2
    /// (a virtual-host-style GET); each verifies with its secret only, and names its key.
    #[test]
    fn presigned_urls_verify_with_the_secret_that_made_them() {
        const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let mut h = HeaderMap::new();
        h.insert("host", "examplebucket.s3.amazonaws.com".parse().unwrap());
        let v4 = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        assert!(s3_signed_with("GET", "/test.txt", None, v4, &h, SECRET));
        assert!(!s3_signed_with("GET", "/test.txt", None, v4, &h, "other"));
        assert!(!s3_signed_with("PUT", "/test.txt", None, v4, &h, SECRET));
        assert_eq!(
            s3_access_key_id(&h, v4).as_deref(),
            Some("AKIAIOSFODNN7EXAMPLE")
        );

        let v2 = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=1No4mq5ETf02z8aet9voy6gui6E%3D&Expires=1175139620";
        let bucket = Some("awsexamplebucket1");
        let h = HeaderMap::new();
        assert!(s3_signed_with(
            "GET",
            "/photos/puppy.jpg",
            bucket,
            v2,
            &h,
            SECRET
        ));
        assert!(!s3_signed_with(
            "GET",
            "/photos/puppy.jpg",
            bucket,
            v2,
            &h,
            "other"
        ));
        assert!(!s3_signed_with(
            "GET",
            "/photos/kitten.jpg",
            bucket,
            v2,
            &h,
            SECRET
        ));
        assert_eq!(
            s3_access_key_id(&h, v2).as_deref(),
            Some("AKIAIOSFODNN7EXAMPLE")
        );
    }
}
