//! Keys: a table's (or index's) key schema, the checks DynamoDB makes on the key attributes
//! of items and of `Key` parameters, and a binary-comparable encoding of key values: sorting
//! encoded bytes with `memcmp` (SQLite BLOB, PostgreSQL BYTEA order) sorts keys as DynamoDB
//! does — strings by UTF-8 bytes, binaries bytewise, numbers numerically.
//!
//! A partition and sort key pair encodes as one composite key (`escape(partition) 00 01
//! sort`), ordered by partition then sort key, so one ordered index serves a whole table.

use crate::error::TableError;
use crate::number::{Number, MAX_ADJUSTED, MIN_ADJUSTED};
use crate::value::{AttributeType, AttributeValue, Item};
use std::ops::Bound;

/// The largest partition key value, in bytes.
pub const MAX_PARTITION_KEY: usize = 2048;
/// The largest sort key value, in bytes.
pub const MAX_SORT_KEY: usize = 1024;

/// The type a key attribute may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    pub fn attribute_type(self) -> AttributeType {
        match self {
            KeyType::S => AttributeType::S,
            KeyType::N => AttributeType::N,
            KeyType::B => AttributeType::B,
        }
    }

    /// The key type of an `AttributeDefinitions` `AttributeType` (`S`, `N` or `B`).
    pub fn from_code(code: &str) -> Option<KeyType> {
        match code {
            "S" => Some(KeyType::S),
            "N" => Some(KeyType::N),
            "B" => Some(KeyType::B),
            _ => None,
        }
    }
}

/// One key attribute: its name and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: String,
    pub key_type: KeyType,
}

/// The key schema of a table or an index: a partition (HASH) key and an optional sort
/// (RANGE) key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySchema {
    pub partition: KeyAttribute,
    pub sort: Option<KeyAttribute>,
}

const INVALID: &str = "One or more parameter values were invalid: ";

impl KeySchema {
    pub fn new(partition: (&str, KeyType), sort: Option<(&str, KeyType)>) -> KeySchema {
        let attr = |(name, key_type): (&str, KeyType)| KeyAttribute {
            name: name.into(),
            key_type,
        };
        KeySchema {
            partition: attr(partition),
            sort: sort.map(attr),
        }
    }

    /// The key attributes, partition first.
    pub fn attributes(&self) -> impl Iterator<Item = &KeyAttribute> {
        std::iter::once(&self.partition).chain(self.sort.as_ref())
    }

    /// Whether `name` is one of the key attributes.
    pub fn is_key(&self, name: &str) -> bool {
        self.attributes().any(|a| a.name == name)
    }

    /// Checks the key attributes of an item to be written (PutItem, an update's result) and
    /// returns its encoded composite key. Messages are AWS's, verbatim as recalled (including
    /// "of2048").
    pub fn item_key(&self, item: &Item) -> Result<Vec<u8>, TableError> {
        let mut parts = [None, None];
        for (i, attr) in self.attributes().enumerate() {
            let value = item.get(&attr.name).ok_or_else(|| {
                TableError::validation(format!(
                    "{INVALID}Missing the key {} in the item",
                    attr.name
                ))
            })?;
            if value.attribute_type() != attr.key_type.attribute_type() {
                return Err(TableError::validation(format!(
                    "{INVALID}Type mismatch for key {} expected: {} actual: {}",
                    attr.name,
                    attr.key_type.attribute_type().code(),
                    value.attribute_type().code()
                )));
            }
            check_key_value(&attr.name, value, i == 0)?;
            parts[i] = Some(value);
        }
        Ok(self.encode(parts[0].expect("partition key"), parts[1]))
    }

    /// Checks a `Key` parameter (GetItem, DeleteItem, UpdateItem, …): exactly the schema's
    /// attributes with the schema's types; returns the encoded composite key.
    pub fn key(&self, key: &Item) -> Result<Vec<u8>, TableError> {
        let mismatch =
            || TableError::validation("The provided key element does not match the schema");
        if key.len() != self.attributes().count() {
            return Err(mismatch());
        }
        let mut parts = [None, None];
        for (i, attr) in self.attributes().enumerate() {
            let value = key.get(&attr.name).ok_or_else(mismatch)?;
            if value.attribute_type() != attr.key_type.attribute_type() {
                return Err(mismatch());
            }
            check_key_value(&attr.name, value, i == 0)?;
            parts[i] = Some(value);
        }
        Ok(self.encode(parts[0].expect("partition key"), parts[1]))
    }

    /// The key attributes of an item (for `LastEvaluatedKey`, stream records, …).
    pub fn project_key(&self, item: &Item) -> Item {
        self.attributes()
            .filter_map(|a| item.get(&a.name).map(|v| (a.name.clone(), v.clone())))
            .collect()
    }

    fn encode(&self, partition: &AttributeValue, sort: Option<&AttributeValue>) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        encode_composite_into(partition, sort, &mut out);
        out
    }
}

/// The key-value checks: non-empty strings and binaries, size limits.
fn check_key_value(name: &str, value: &AttributeValue, partition: bool) -> Result<(), TableError> {
    let empty = match value {
        AttributeValue::S(s) if s.is_empty() => Some("string"),
        AttributeValue::B(b) if b.is_empty() => Some("binary"),
        _ => None,
    };
    if let Some(kind) = empty {
        return Err(TableError::validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute \
             cannot contain an empty {kind} value. Key: {name}"
        )));
    }
    let size = value.size();
    if partition && size > MAX_PARTITION_KEY {
        return Err(TableError::validation(format!(
            "{INVALID}Size of hashkey has exceeded the maximum size limit of{MAX_PARTITION_KEY} bytes"
        )));
    }
    if !partition && size > MAX_SORT_KEY {
        return Err(TableError::validation(format!(
            "{INVALID}Aggregated size of all range keys has exceeded the size limit of \
             {MAX_SORT_KEY} bytes"
        )));
    }
    Ok(())
}

/// The order-preserving encoding of one key value (S: UTF-8 bytes, B: the bytes, N: see
/// [`encode_number`]); other types have no key encoding and encode as nothing.
pub fn encode_key_value(value: &AttributeValue, out: &mut Vec<u8>) {
    match value {
        AttributeValue::S(s) => out.extend_from_slice(s.as_bytes()),
        AttributeValue::B(b) => out.extend_from_slice(b),
        AttributeValue::N(n) => encode_number(n, out),
        _ => {}
    }
}

/// A number's order-preserving encoding: a sign byte (`01` negative, `02` zero, `03`
/// positive), then for `±0.d1d2… × 10^e` the byte `e + 129` (0…255 over DynamoDB's range) and
/// the digits in pairs, one byte each (`10·d1 + d2`, the last pair zero-padded); negative
/// numbers invert the exponent and digit bytes and end with `FF`, so a longer magnitude
/// sorts first.
pub fn encode_number(n: &Number, out: &mut Vec<u8>) {
    if n.is_zero() {
        out.push(0x02);
        return;
    }
    let digits = n.digits();
    let exp = (n.adjusted_exponent() - MIN_ADJUSTED) as u8;
    let neg = n.is_negative();
    let flip = |b: u8| if neg { 0xFF - b } else { b };
    out.push(if neg { 0x01 } else { 0x03 });
    out.push(flip(exp));
    for pair in digits.chunks(2) {
        let byte = pair[0] * 10 + pair.get(1).copied().unwrap_or(0);
        out.push(flip(byte));
    }
    if neg {
        out.push(0xFF);
    }
}

/// Decodes [`encode_number`]'s bytes.
pub fn decode_number(bytes: &[u8]) -> Option<Number> {
    let (&sign, rest) = bytes.split_first()?;
    let neg = match sign {
        0x02 if rest.is_empty() => return Some(Number::ZERO),
        0x01 => true,
        0x03 => false,
        _ => return None,
    };
    let rest = if neg {
        rest.strip_suffix(&[0xFF])?
    } else {
        rest
    };
    let flip = |b: u8| if neg { 0xFF - b } else { b };
    let (&exp, pairs) = rest.split_first()?;
    let adjusted = i32::from(flip(exp)) + MIN_ADJUSTED;
    if pairs.is_empty() || adjusted > MAX_ADJUSTED {
        return None;
    }
    let mut text = String::with_capacity(pairs.len() * 2 + 8);
    if neg {
        text.push('-');
    }
    text.push_str("0.");
    for &p in pairs {
        let p = flip(p);
        if p > 99 {
            return None;
        }
        text.push(char::from(b'0' + p / 10));
        text.push(char::from(b'0' + p % 10));
    }
    text.push_str(&format!("e{adjusted}"));
    Number::parse(&text).ok()
}

/// Decodes a key value of the given type from [`encode_key_value`]'s bytes.
pub fn decode_key_value(key_type: KeyType, bytes: &[u8]) -> Option<AttributeValue> {
    match key_type {
        KeyType::S => String::from_utf8(bytes.to_vec())
            .ok()
            .map(AttributeValue::S),
        KeyType::B => Some(AttributeValue::B(bytes.to_vec())),
        KeyType::N => decode_number(bytes).map(AttributeValue::N),
    }
}

/// The separator after the escaped partition key in a composite key.
const TERMINATOR: [u8; 2] = [0x00, 0x01];

/// Appends the composite encoding of a (partition, sort) pair: the partition key's encoding
/// with each `00` escaped as `00 FF`, the terminator `00 01`, then the sort key's encoding
/// (last, so it needs no escaping and prefixes stay prefixes).
pub fn encode_composite_into(
    partition: &AttributeValue,
    sort: Option<&AttributeValue>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    encode_key_value(partition, out);
    let raw = out.split_off(start);
    for b in raw {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&TERMINATOR);
    if let Some(sort) = sort {
        encode_key_value(sort, out);
    }
}

/// The composite key of a (partition, sort) pair.
pub fn encode_composite(partition: &AttributeValue, sort: Option<&AttributeValue>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    encode_composite_into(partition, sort, &mut out);
    out
}

/// Splits a composite key into the partition key's and the sort key's encodings.
pub fn split_composite(key: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut partition = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        if key[i] == 0 {
            match key.get(i + 1)? {
                0xFF => partition.push(0),
                0x01 => return Some((partition, &key[i + 2..])),
                _ => return None,
            }
            i += 2;
        } else {
            partition.push(key[i]);
            i += 1;
        }
    }
    None
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// A stable 31-bit hash (FNV-1a, mixed, top bits) of an encoded partition key: stores keep it with
/// each item so a parallel scan's segment is `hash % TotalSegments`.
pub fn partition_hash(partition: &AttributeValue) -> u32 {
    let mut enc = Vec::with_capacity(16);
    encode_key_value(partition, &mut enc);
    let mut h = enc.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // MurmurHash3's finalizer: FNV's high bits alone are poorly mixed for short keys.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 33) as u32
}

/// The parallel-scan segment (`Segment` of `TotalSegments`) an item belongs to:
/// [`partition_hash`] modulo the segments, so all of a partition's items fall in one
/// segment and every item in exactly one.
pub fn scan_segment(partition: &AttributeValue, total_segments: u32) -> u32 {
    partition_hash(partition) % total_segments.max(1)
}

/// A range of encoded keys: `(lower, upper)` bounds for a `memcmp`-ordered scan.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Turns a range over one partition's encoded sort keys into the same range over composite
/// keys.
pub fn composite_range(partition: &AttributeValue, sort: KeyRange) -> KeyRange {
    let prefix = encode_composite(partition, None);
    let with = |b: Vec<u8>| {
        let mut k = prefix.clone();
        k.extend_from_slice(&b);
        k
    };
    let lower = match sort.0 {
        Bound::Included(b) => Bound::Included(with(b)),
        Bound::Excluded(b) => Bound::Excluded(with(b)),
        Bound::Unbounded => Bound::Included(prefix.clone()),
    };
    let upper = match sort.1 {
        Bound::Included(b) => Bound::Included(with(b)),
        Bound::Excluded(b) => Bound::Excluded(with(b)),
        // The terminator 00 01 followed by anything sorts below 00 02.
        Bound::Unbounded => {
            let mut end = prefix;
            *end.last_mut().expect("terminator") = 0x02;
            Bound::Excluded(end)
        }
    };
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::ops::RangeBounds;

    fn num(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    fn enc(n: &Number) -> Vec<u8> {
        let mut v = Vec::new();
        encode_number(n, &mut v);
        v
    }

    fn random_number(rng: &mut impl Rng) -> Number {
        let digits = rng.gen_range(1..=38);
        let mut text = String::new();
        if rng.gen_bool(0.5) {
            text.push('-');
        }
        for _ in 0..digits {
            text.push(char::from(b'0' + rng.gen_range(0..10u8)));
        }
        // Mostly near each other (shared exponents, many ties in leading digits), sometimes
        // across the whole range.
        let exp = if rng.gen_bool(0.7) {
            rng.gen_range(-3..3)
        } else {
            rng.gen_range(-120..80)
        };
        Number::parse(&format!("{text}e{exp}")).unwrap_or(Number::ZERO)
    }

    #[test]
    fn number_encoding_orders_numerically() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let mut numbers: Vec<Number> = (0..5000).map(|_| random_number(&mut rng)).collect();
        numbers.extend(
            [
                "0",
                "1E-130",
                "-1E-130",
                "9.9999999999999999999999999999999999999E+125",
                "-9.9999999999999999999999999999999999999E+125",
                "1",
                "10",
                "-1",
                "-10",
                "0.1",
                "1.01",
                "1.1",
            ]
            .map(num),
        );
        let mut by_bytes = numbers.clone();
        by_bytes.sort_by_key(enc);
        let mut by_value = numbers.clone();
        by_value.sort();
        assert_eq!(by_bytes, by_value);
        for n in &numbers {
            assert_eq!(decode_number(&enc(n)), Some(*n), "{n}");
            let value = AttributeValue::N(*n);
            let mut bytes = Vec::new();
            encode_key_value(&value, &mut bytes);
            assert_eq!(decode_key_value(KeyType::N, &bytes), Some(value));
        }
        for v in [
            AttributeValue::S("héllo".into()),
            AttributeValue::B(vec![0, 255, 1]),
        ] {
            let mut bytes = Vec::new();
            encode_key_value(&v, &mut bytes);
            let t = if matches!(v, AttributeValue::S(_)) {
                KeyType::S
            } else {
                KeyType::B
            };
            assert_eq!(decode_key_value(t, &bytes), Some(v));
        }
        assert_eq!(decode_number(&[0x07]), None);
        assert_eq!(decode_number(&[0x03, 0x80, 200]), None);
        for w in by_value.windows(2) {
            assert_eq!(
                enc(&w[0]).cmp(&enc(&w[1])),
                w[0].cmp(&w[1]),
                "{} vs {}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn composite_orders_by_partition_then_sort() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let bytes = |rng: &mut rand::rngs::StdRng| -> Vec<u8> {
            (0..rng.gen_range(0..4))
                .map(|_| [0u8, 1, 2, 0xFF][rng.gen_range(0..4)])
                .collect()
        };
        let mut pairs: Vec<(Vec<u8>, Number)> = (0..3000)
            .map(|_| (bytes(&mut rng), random_number(&mut rng)))
            .collect();
        let key = |(p, s): &(Vec<u8>, Number)| {
            encode_composite(&AttributeValue::B(p.clone()), Some(&AttributeValue::N(*s)))
        };
        let mut by_bytes = pairs.clone();
        by_bytes.sort_by_key(key);
        pairs.sort();
        assert_eq!(by_bytes, pairs);
        for pair in &pairs {
            let k = key(pair);
            let (p, s) = split_composite(&k).unwrap();
            assert_eq!(p, pair.0);
            assert_eq!(decode_number(s), Some(pair.1));
        }
    }

    #[test]
    fn composite_range_covers_exactly_one_partition() {
        let p = AttributeValue::S("a".into());
        let (lo, hi) = composite_range(&p, (Bound::Unbounded, Bound::Unbounded));
        let inside = [
            encode_composite(&p, Some(&AttributeValue::S("".into()))),
            encode_composite(&p, Some(&AttributeValue::S("\u{10FFFF}".into()))),
        ];
        let outside = [
            encode_composite(
                &AttributeValue::S("a\u{0}".into()),
                Some(&AttributeValue::S("x".into())),
            ),
            encode_composite(&AttributeValue::S("b".into()), None),
            encode_composite(
                &AttributeValue::S("".into()),
                Some(&AttributeValue::S("zz".into())),
            ),
        ];
        for k in inside {
            assert!((lo.clone(), hi.clone()).contains(&k));
        }
        for k in outside {
            assert!(!(lo.clone(), hi.clone()).contains(&k));
        }
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF]), None);
    }

    #[test]
    fn scan_segments_partition_items() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            let seg = scan_segment(&AttributeValue::S(format!("key-{i}")), 4);
            counts[seg as usize] += 1;
            assert_eq!(seg, scan_segment(&AttributeValue::S(format!("key-{i}")), 4));
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(scan_segment(&AttributeValue::S("x".into()), 1), 0);
    }

    #[test]
    fn item_and_key_checks() {
        let schema = KeySchema::new(("pk", KeyType::S), Some(("sk", KeyType::N)));
        let s = |v: &str| AttributeValue::S(v.into());
        let n = |v: &str| AttributeValue::N(num(v));
        let item = |pairs: Vec<(&str, AttributeValue)>| -> Item {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let inv = "One or more parameter values were invalid: ";
        let empty = "One or more parameter values are not valid. The AttributeValue for a key \
                     attribute cannot contain an empty";
        let item_cases = vec![
            (
                item(vec![("sk", n("1"))]),
                format!("{inv}Missing the key pk in the item"),
            ),
            (
                item(vec![("pk", s("a"))]),
                format!("{inv}Missing the key sk in the item"),
            ),
            (
                item(vec![("pk", n("1")), ("sk", n("1"))]),
                format!("{inv}Type mismatch for key pk expected: S actual: N"),
            ),
            (
                item(vec![("pk", s("")), ("sk", n("1"))]),
                format!("{empty} string value. Key: pk"),
            ),
            (
                item(vec![("pk", s(&"x".repeat(2049))), ("sk", n("1"))]),
                format!("{inv}Size of hashkey has exceeded the maximum size limit of2048 bytes"),
            ),
        ];
        for (it, msg) in item_cases {
            assert_eq!(
                schema.item_key(&it),
                Err(TableError::validation(msg.clone())),
                "{msg}"
            );
        }
        let bin = KeySchema::new(("pk", KeyType::S), Some(("sk", KeyType::B)));
        assert_eq!(
            bin.item_key(&item(vec![
                ("pk", s("a")),
                ("sk", AttributeValue::B(vec![]))
            ])),
            Err(TableError::validation(format!(
                "{empty} binary value. Key: sk"
            )))
        );
        assert_eq!(
            bin.item_key(&item(vec![
                ("pk", s("a")),
                ("sk", AttributeValue::B(vec![1; 1025]))
            ])),
            Err(TableError::validation(format!(
                "{inv}Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
            )))
        );
        let good = item(vec![("pk", s("a")), ("sk", n("5")), ("x", s(""))]);
        let k = schema.item_key(&good).unwrap();
        assert_eq!(k, encode_composite(&s("a"), Some(&n("5"))));
        assert_eq!(schema.key(&schema.project_key(&good)), Ok(k));
        let mismatch = TableError::validation("The provided key element does not match the schema");
        for key in [
            item(vec![("pk", s("a"))]),
            item(vec![("pk", s("a")), ("sk", s("5"))]),
            item(vec![("pk", s("a")), ("sk", n("5")), ("x", s("y"))]),
            item(vec![("pk", s("a")), ("other", n("5"))]),
        ] {
            assert_eq!(schema.key(&key), Err(mismatch.clone()), "{key:?}");
        }
    }
}
