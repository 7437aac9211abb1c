//! S3's rules for bucket names and object keys. Keys are otherwise opaque: nothing derives a
//! path from one, so `../`, absolute keys and odd bytes cannot reach the disk layout.

use crate::ObjectError;

/// The longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Checks a bucket name against S3's naming rules for general purpose buckets.
pub fn check_bucket_name(name: &str) -> Result<(), ObjectError> {
    let bad = |why: &str| Err(ObjectError::InvalidBucketName(format!("'{name}': {why}")));
    if !(3..=63).contains(&name.len()) {
        return bad("a bucket name has 3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lower-case letters, digits, dots and hyphens are allowed");
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(name.as_bytes()[0]) || !edge(name.as_bytes()[name.len() - 1]) {
        return bad("a bucket name begins and ends with a letter or a digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("dots may not be adjacent to each other or to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("a bucket name may not look like an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return bad(&format!("the prefix '{prefix}' is reserved"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return bad(&format!("the suffix '{suffix}' is reserved"));
        }
    }
    Ok(())
}

/// Checks an object key: 1 to 1024 bytes of UTF-8 without NUL.
pub fn check_key(key: &str) -> Result<(), ObjectError> {
    if key.is_empty() {
        return Err(ObjectError::InvalidArgument(
            "an object key may not be empty".into(),
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ObjectError::KeyTooLong);
    }
    if key.contains('\0') {
        return Err(ObjectError::InvalidArgument(
            "an object key may not contain a NUL character".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["abc", "my-bucket.logs", "a1b2", &"a".repeat(63)] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Upper",
            "under_score",
            "-start",
            "end-",
            "two..dots",
            "dot.-hyphen",
            "192.168.5.4",
            "xn--punycode",
            "sthree-x",
            "name-s3alias",
            "name--ol-s3",
            "bad/slash",
        ] {
            assert!(
                matches!(
                    check_bucket_name(bad),
                    Err(ObjectError::InvalidBucketName(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_are_bounded_and_nul_free_but_otherwise_opaque() {
        for good in [
            "../../etc/passwd",
            "/absolute",
            "a//b",
            "ünï",
            &"k".repeat(1024),
        ] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        assert!(matches!(
            check_key(&"k".repeat(1025)),
            Err(ObjectError::KeyTooLong)
        ));
        assert!(matches!(
            check_key("a\0b"),
            Err(ObjectError::InvalidArgument(_))
        ));
        assert!(matches!(
            check_key(""),
            Err(ObjectError::InvalidArgument(_))
        ));
    }
}
