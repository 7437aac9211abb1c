//! Conditional requests (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) with S3's precedence, and byte ranges.

use crate::ObjectError;
use lambent_store::objects::ObjectRecord;

/// The conditions of a GET, HEAD or copy source. Times in ms since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since_ms: Option<i64>,
    pub if_unmodified_since_ms: Option<i64>,
}

/// Whether an `If-Match`/`If-None-Match` list (`*`, or comma-separated ETags, quoted or
/// not) names `etag`.
fn names(list: &str, etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    list.split(',')
        .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|e| e == "*" || e == etag)
}

impl Conditions {
    /// Checks the conditions against `object`, in S3's order: a failing `If-Match` is 412;
    /// `If-Unmodified-Since` counts only without `If-Match`; a matching `If-None-Match` is 304;
    /// `If-Modified-Since` counts only without `If-None-Match`. HTTP dates have whole seconds.
    pub fn check(&self, object: &ObjectRecord) -> Result<(), ObjectError> {
        let modified_s = object.last_modified_ms.div_euclid(1000);
        match &self.if_match {
            Some(list) if !names(list, &object.etag) => {
                return Err(ObjectError::PreconditionFailed)
            }
            Some(_) => {}
            None => {
                if let Some(t) = self.if_unmodified_since_ms {
                    if modified_s > t.div_euclid(1000) {
                        return Err(ObjectError::PreconditionFailed);
                    }
                }
            }
        }
        match &self.if_none_match {
            Some(list) if names(list, &object.etag) => return Err(ObjectError::NotModified),
            Some(_) => {}
            None => {
                if let Some(t) = self.if_modified_since_ms {
                    if modified_s <= t.div_euclid(1000) {
                        return Err(ObjectError::NotModified);
                    }
                }
            }
        }
        Ok(())
    }

    /// For a copy source every failed condition is a 412.
    pub fn check_source(&self, object: &ObjectRecord) -> Result<(), ObjectError> {
        match self.check(object) {
            Err(ObjectError::NotModified) => Err(ObjectError::PreconditionFailed),
            other => other,
        }
    }
}

/// A `Range: bytes=` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-` or `first-last`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The (offset, length) this range selects of an object of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<(u64, u64), ObjectError> {
        let invalid = Err(ObjectError::InvalidRange { size });
        match self {
            ByteRange::From { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return invalid;
                }
                let last = last.map_or(size - 1, |l| l.min(size - 1));
                Ok((first, last - first + 1))
            }
            ByteRange::Suffix(0) => invalid,
            ByteRange::Suffix(_) if size == 0 => invalid,
            ByteRange::Suffix(n) => {
                let n = n.min(size);
                Ok((size - n, n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambent_store::objects::ObjectAttrs;

    fn object() -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            size: 10,
            etag: "\"abc\"".into(),
            last_modified_ms: 10_500,
            attrs: ObjectAttrs::default(),
            data: vec![],
        }
    }

    #[test]
    fn s3_precedence_of_conditions() {
        let o = object();
        let c = |m: Option<&str>, n: Option<&str>, ms: Option<i64>, us: Option<i64>| Conditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
            if_modified_since_ms: ms,
            if_unmodified_since_ms: us,
        };
        assert!(c(Some("\"abc\""), None, None, None).check(&o).is_ok());
        assert!(c(Some("abc, x"), None, None, None).check(&o).is_ok());
        assert!(c(Some("*"), None, None, None).check(&o).is_ok());
        assert!(matches!(
            c(Some("\"x\""), None, None, None).check(&o),
            Err(ObjectError::PreconditionFailed)
        ));
        // If-Match true wins over a failing If-Unmodified-Since.
        assert!(c(Some("abc"), None, None, Some(0)).check(&o).is_ok());
        assert!(matches!(
            c(None, None, None, Some(9_000)).check(&o),
            Err(ObjectError::PreconditionFailed)
        ));
        // Same second counts as unmodified.
        assert!(c(None, None, None, Some(10_000)).check(&o).is_ok());
        assert!(matches!(
            c(None, Some("\"abc\""), None, None).check(&o),
            Err(ObjectError::NotModified)
        ));
        // If-None-Match false wins over a not-modified If-Modified-Since.
        assert!(c(None, Some("\"x\""), Some(20_000), None).check(&o).is_ok());
        assert!(matches!(
            c(None, None, Some(10_000), None).check(&o),
            Err(ObjectError::NotModified)
        ));
        assert!(c(None, None, Some(9_999), None).check(&o).is_ok());
        assert!(matches!(
            c(None, Some("*"), None, None).check_source(&o),
            Err(ObjectError::PreconditionFailed)
        ));
    }

    #[test]
    fn ranges_resolve_or_are_unsatisfiable() {
        let r = |first, last| ByteRange::From { first, last };
        assert_eq!(r(0, Some(3)).resolve(10).unwrap(), (0, 4));
        assert_eq!(r(5, None).resolve(10).unwrap(), (5, 5));
        assert_eq!(r(5, Some(100)).resolve(10).unwrap(), (5, 5));
        assert_eq!(ByteRange::Suffix(3).resolve(10).unwrap(), (7, 3));
        assert_eq!(ByteRange::Suffix(30).resolve(10).unwrap(), (0, 10));
        for bad in [r(10, None), r(4, Some(2)), ByteRange::Suffix(0)] {
            assert!(matches!(
                bad.resolve(10),
                Err(ObjectError::InvalidRange { size: 10 })
            ));
        }
        assert!(ByteRange::Suffix(1).resolve(0).is_err());
    }
}
