//! What S3 computes over an object's bytes while they stream: the MD5 of its ETag and the
//! flexible checksums (CRC32, CRC32C, SHA-256) a client asked for, verified against the values
//! it sent (in headers, or in an `aws-chunked` trailer after the body).

use crate::ObjectError;
use base64::Engine;
use lambent_store::objects::Checksums;
use md5::Digest;

/// A flexible checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Sha256,
}

impl Algorithm {
    /// From S3's name (`CRC32`, `CRC32C`, `SHA256`); others are not supported.
    pub fn parse(name: &str) -> Result<Algorithm, ObjectError> {
        match name.to_ascii_uppercase().as_str() {
            "CRC32" => Ok(Algorithm::Crc32),
            "CRC32C" => Ok(Algorithm::Crc32c),
            "SHA256" => Ok(Algorithm::Sha256),
            other => Err(ObjectError::InvalidArgument(format!(
                "checksum algorithm {other} is not supported: use CRC32, CRC32C or SHA256"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// This algorithm's value in a set of checksums.
    pub fn of(self, c: &Checksums) -> Option<&String> {
        match self {
            Algorithm::Crc32 => c.crc32.as_ref(),
            Algorithm::Crc32c => c.crc32c.as_ref(),
            Algorithm::Sha256 => c.sha256.as_ref(),
        }
    }

    fn slot(self, c: &mut Checksums) -> &mut Option<String> {
        match self {
            Algorithm::Crc32 => &mut c.crc32,
            Algorithm::Crc32c => &mut c.crc32c,
            Algorithm::Sha256 => &mut c.sha256,
        }
    }

    /// The algorithms whose values `c` holds.
    pub fn present(c: &Checksums) -> Vec<Algorithm> {
        [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Sha256]
            .into_iter()
            .filter(|a| a.of(c).is_some())
            .collect()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Running digests over a stream of bytes.
pub struct Digests {
    md5: md5::Md5,
    crc32: Option<crc32fast::Hasher>,
    crc32c: Option<u32>,
    sha256: Option<sha2::Sha256>,
    len: u64,
}

impl Digests {
    /// MD5 always, plus `wanted`.
    pub fn new(wanted: &[Algorithm]) -> Digests {
        Digests {
            md5: md5::Md5::new(),
            crc32: wanted
                .contains(&Algorithm::Crc32)
                .then(crc32fast::Hasher::new),
            crc32c: wanted.contains(&Algorithm::Crc32c).then_some(0),
            sha256: wanted.contains(&Algorithm::Sha256).then(sha2::Sha256::new),
            len: 0,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        if let Some(c) = &mut self.crc32 {
            c.update(bytes);
        }
        if let Some(c) = &mut self.crc32c {
            *c = crc32c::crc32c_append(*c, bytes);
        }
        if let Some(s) = &mut self.sha256 {
            s.update(bytes);
        }
        self.len += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The binary MD5 and the flexible checksums.
    pub fn finish(self) -> ([u8; 16], Checksums) {
        let md5: [u8; 16] = self.md5.finalize().into();
        let checksums = Checksums {
            crc32: self.crc32.map(|c| b64(&c.finalize().to_be_bytes())),
            crc32c: self.crc32c.map(|c| b64(&c.to_be_bytes())),
            sha256: self.sha256.map(|s| b64(&s.finalize())),
        };
        (md5, checksums)
    }
}

/// The ETag of a single PUT: its MD5 in hex, quoted.
pub fn etag(md5: &[u8; 16]) -> String {
    format!("\"{}\"", hex::encode(md5))
}

/// The ETag of a completed multipart upload: the MD5 of its parts' binary MD5s, `-N`.
pub fn multipart_etag(part_etags: &[&str]) -> Result<String, ObjectError> {
    let mut md5 = md5::Md5::new();
    for e in part_etags {
        let bin = hex::decode(e.trim_matches('"'))
            .map_err(|_| ObjectError::InvalidPart(format!("part ETag {e} is not an MD5")))?;
        md5.update(bin);
    }
    Ok(format!(
        "\"{}-{}\"",
        hex::encode(md5.finalize()),
        part_etags.len()
    ))
}

/// The composite checksum of a multipart object: the algorithm over the parts' binary
/// checksums, `-N`; `None` unless every part has one.
pub fn composite(algorithm: Algorithm, parts: &[&Checksums]) -> Option<String> {
    let mut joined = Vec::new();
    for p in parts {
        let value = algorithm.of(p)?;
        joined.extend(
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?,
        );
    }
    let mut d = Digests::new(&[algorithm]);
    d.update(&joined);
    let (_, c) = d.finish();
    Some(format!("{}-{}", algorithm.of(&c)?, parts.len()))
}

/// Decodes a `Content-MD5` header (base64 of 16 bytes).
pub fn content_md5(value: &str) -> Result<[u8; 16], ObjectError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or(ObjectError::InvalidDigest)
}

/// Checks what was computed against what the client sent; returns what to store (the
/// computed values of the algorithms asked for).
pub fn verify(
    computed: &Checksums,
    md5: &[u8; 16],
    sent: &Checksums,
    sent_md5: Option<&[u8; 16]>,
) -> Result<(), ObjectError> {
    if sent_md5.is_some_and(|m| m != md5) {
        return Err(ObjectError::BadDigest(
            "the Content-MD5 you specified did not match what we received".into(),
        ));
    }
    for a in Algorithm::present(sent) {
        if a.of(sent) != a.of(computed) {
            return Err(ObjectError::BadDigest(format!(
                "the {} you specified did not match the calculated checksum",
                a.name()
            )));
        }
    }
    Ok(())
}

/// Sets `value` as `algorithm`'s checksum in `c`.
pub fn set(c: &mut Checksums, algorithm: Algorithm, value: String) {
    *algorithm.slot(c) = Some(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_s3s_known_values() {
        let mut d = Digests::new(&[Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Sha256]);
        d.update(b"hello ");
        d.update(b"world");
        let (md5, c) = d.finish();
        assert_eq!(etag(&md5), "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
        // Values AWS documents/returns for "hello world".
        assert_eq!(c.crc32.as_deref(), Some("DUoRhQ=="));
        assert_eq!(c.crc32c.as_deref(), Some("yZRlqg=="));
        assert_eq!(
            c.sha256.as_deref(),
            Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=")
        );
    }

    #[test]
    fn multipart_etag_is_md5_of_binary_md5s() {
        let a = etag(&md5::Md5::digest(b"a").into());
        let b = etag(&md5::Md5::digest(b"b").into());
        let mut joined = md5::Md5::digest(b"a").to_vec();
        joined.extend(md5::Md5::digest(b"b"));
        let want = format!("\"{}-2\"", hex::encode(md5::Md5::digest(&joined)));
        assert_eq!(multipart_etag(&[&a, &b]).unwrap(), want);
        assert!(matches!(
            multipart_etag(&["\"zz\""]),
            Err(ObjectError::InvalidPart(_))
        ));
    }

    #[test]
    fn a_wrong_checksum_or_md5_is_a_bad_digest() {
        let mut d = Digests::new(&[Algorithm::Crc32]);
        d.update(b"data");
        let (md5, computed) = d.finish();
        let sent = Checksums {
            crc32: Some("AAAAAA==".into()),
            ..Default::default()
        };
        assert!(matches!(
            verify(&computed, &md5, &sent, None),
            Err(ObjectError::BadDigest(_))
        ));
        assert!(verify(&computed, &md5, &computed, Some(&md5)).is_ok());
        assert!(matches!(
            verify(&computed, &md5, &Checksums::default(), Some(&[0; 16])),
            Err(ObjectError::BadDigest(_))
        ));
        assert!(matches!(
            content_md5("nope"),
            Err(ObjectError::InvalidDigest)
        ));
    }
}
