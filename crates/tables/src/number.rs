//! DynamoDB's number type: exact decimals of up to 38 significant digits whose magnitude lies
//! in 1E-130 … 9.99…E+125 (or zero), parsed from the wire's text, printed back in the
//! canonical form DynamoDB returns (plain notation, no leading or trailing zeros), compared
//! exactly and added or subtracted exactly (an inexact or out-of-range result is an error, as
//! DynamoDB refuses to store it).

use crate::error::TableError;
use std::cmp::Ordering;
use std::fmt;

/// The most significant digits a number may have.
pub const MAX_DIGITS: u32 = 38;
/// A non-zero number is `0.d1d2… × 10^adjusted` with `MIN_ADJUSTED <= adjusted <= MAX_ADJUSTED`
/// (1E-130 = 0.1E-129, 9.99…E+125 = 0.999…E+126).
pub const MIN_ADJUSTED: i32 = -129;
pub const MAX_ADJUSTED: i32 = 126;

// Messages as DynamoDB words them (recalled from AWS responses; the digits one verbatim).
pub(crate) const MSG_NOT_A_NUMBER: &str = "A value provided cannot be converted into a number";
pub(crate) const MSG_OVERFLOW: &str =
    "Number overflow. Attempting to store a number with magnitude larger than supported range";
pub(crate) const MSG_UNDERFLOW: &str =
    "Number underflow. Attempting to store a number with magnitude smaller than supported range";
pub(crate) const MSG_PRECISION: &str =
    "Attempting to store more than 38 significant digits in a Number";

const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// A DynamoDB number: `±mantissa × 10^exponent`, normalized (the mantissa has no trailing zero
/// digit; zero is `+0 × 10^0`), so equal numbers have equal representations.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Number {
    negative: bool,
    mantissa: u128,
    exponent: i32,
}

fn digit_count(m: u128) -> u32 {
    match POW10.iter().position(|&p| p > m) {
        Some(n) => n as u32,
        None => 39,
    }
}

impl Number {
    /// Zero.
    pub const ZERO: Number = Number {
        negative: false,
        mantissa: 0,
        exponent: 0,
    };

    /// Parses DynamoDB's number text (Java `BigDecimal` syntax: `[+-]digits[.digits][e[+-]digits]`,
    /// either side of the point may be empty but not both) and checks range and precision.
    pub fn parse(text: &str) -> Result<Number, TableError> {
        let invalid = || TableError::validation(MSG_NOT_A_NUMBER);
        let b = text.as_bytes();
        let mut i = 0;
        let negative = match b.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_digits = &b[int_start..i];
        let mut frac_digits: &[u8] = &[];
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_digits = &b[s..i];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let mut exp: i64 = 0;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            let eneg = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                exp = (exp * 10 + i64::from(b[i] - b'0')).min(1 << 40);
                i += 1;
            }
            if s == i {
                return Err(invalid());
            }
            if eneg {
                exp = -exp;
            }
        }
        if i != b.len() {
            return Err(invalid());
        }
        // The digits int ++ frac, value = digits × 10^(exp - frac.len()).
        let digits = int_digits.iter().chain(frac_digits.iter());
        let total = int_digits.len() + frac_digits.len();
        let lead = digits.clone().take_while(|&&d| d == b'0').count();
        if lead == total {
            return Ok(Number::ZERO);
        }
        let trail = digits.clone().rev().take_while(|&&d| d == b'0').count();
        let sig = total - lead - trail;
        let exponent = exp - frac_digits.len() as i64 + trail as i64;
        let adjusted = exponent + sig as i64;
        if adjusted > i64::from(MAX_ADJUSTED) {
            return Err(TableError::validation(MSG_OVERFLOW));
        }
        if adjusted < i64::from(MIN_ADJUSTED) {
            return Err(TableError::validation(MSG_UNDERFLOW));
        }
        if sig > MAX_DIGITS as usize {
            return Err(TableError::validation(MSG_PRECISION));
        }
        let mantissa = digits
            .skip(lead)
            .take(sig)
            .fold(0u128, |m, &d| m * 10 + u128::from(d - b'0'));
        Ok(Number {
            negative,
            mantissa,
            exponent: exponent as i32,
        })
    }

    /// Builds `±digits × 10^exponent` from a digit sequence (most significant first), with
    /// DynamoDB's checks; used by arithmetic.
    fn from_digits(negative: bool, digits: &[u8], exponent: i64) -> Result<Number, TableError> {
        let lead = digits.iter().take_while(|&&d| d == 0).count();
        if lead == digits.len() {
            return Ok(Number::ZERO);
        }
        let trail = digits.iter().rev().take_while(|&&d| d == 0).count();
        let sig = digits.len() - lead - trail;
        let exponent = exponent + trail as i64;
        let adjusted = exponent + sig as i64;
        if adjusted > i64::from(MAX_ADJUSTED) {
            return Err(TableError::validation(MSG_OVERFLOW));
        }
        if adjusted < i64::from(MIN_ADJUSTED) {
            return Err(TableError::validation(MSG_UNDERFLOW));
        }
        if sig > MAX_DIGITS as usize {
            return Err(TableError::validation(MSG_PRECISION));
        }
        let mantissa = digits[lead..lead + sig]
            .iter()
            .fold(0u128, |m, &d| m * 10 + u128::from(d));
        Ok(Number {
            negative,
            mantissa,
            exponent: exponent as i32,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The significant digits, most significant first (`[0]` for zero).
    pub fn digits(&self) -> Vec<u8> {
        let n = digit_count(self.mantissa).max(1);
        (0..n)
            .rev()
            .map(|i| ((self.mantissa / POW10[i as usize]) % 10) as u8)
            .collect()
    }

    /// The number of significant digits (1 for zero).
    pub fn significant_digits(&self) -> u32 {
        digit_count(self.mantissa).max(1)
    }

    /// `adjusted` with `self = ±0.d1d2… × 10^adjusted`; meaningless for zero.
    pub fn adjusted_exponent(&self) -> i32 {
        self.exponent + digit_count(self.mantissa) as i32
    }

    /// The negated number.
    pub fn negate(self) -> Number {
        if self.is_zero() {
            self
        } else {
            Number {
                negative: !self.negative,
                ..self
            }
        }
    }

    /// `self + other`, exactly; an error when the exact result does not fit DynamoDB's range
    /// or 38 digits.
    pub fn checked_add(self, other: Number) -> Result<Number, TableError> {
        if other.is_zero() {
            return Ok(self);
        }
        if self.is_zero() {
            return Ok(other);
        }
        let lo = i64::from(self.exponent.min(other.exponent));
        let hi = i64::from(self.adjusted_exponent().max(other.adjusted_exponent())) + 1;
        let width = (hi - lo) as usize;
        // Little-endian digit vectors aligned at 10^lo.
        let spread = |n: &Number| {
            let mut v = vec![0u8; width];
            let shift = (i64::from(n.exponent) - lo) as usize;
            let mut m = n.mantissa;
            let mut i = shift;
            while m > 0 {
                v[i] = (m % 10) as u8;
                m /= 10;
                i += 1;
            }
            v
        };
        let (a, b) = (spread(&self), spread(&other));
        let mut out = vec![0u8; width];
        let negative;
        if self.negative == other.negative {
            negative = self.negative;
            let mut carry = 0;
            for i in 0..width {
                let s = a[i] + b[i] + carry;
                out[i] = s % 10;
                carry = s / 10;
            }
        } else {
            let (big, small, neg) = match cmp_magnitude(&self, &other) {
                Ordering::Equal => return Ok(Number::ZERO),
                Ordering::Greater => (&a, &b, self.negative),
                Ordering::Less => (&b, &a, other.negative),
            };
            negative = neg;
            let mut borrow = 0i8;
            for i in 0..width {
                let mut d = big[i] as i8 - small[i] as i8 - borrow;
                borrow = 0;
                if d < 0 {
                    d += 10;
                    borrow = 1;
                }
                out[i] = d as u8;
            }
        }
        out.reverse();
        Number::from_digits(negative, &out, lo)
    }

    /// `self - other`, exactly, with [`Number::checked_add`]'s errors.
    pub fn checked_sub(self, other: Number) -> Result<Number, TableError> {
        self.checked_add(other.negate())
    }

    /// The bytes DynamoDB counts for this number in an item's size: one byte per two digits
    /// (stored base 100, aligned on the decimal point), one more, and one for a minus sign.
    pub fn stored_size(&self) -> usize {
        if self.is_zero() {
            return 1;
        }
        let low = self.exponent;
        let high = self.adjusted_exponent() - 1;
        let pairs = high.div_euclid(2) - low.div_euclid(2) + 1;
        1 + pairs as usize + usize::from(self.negative)
    }
}

fn cmp_magnitude(a: &Number, b: &Number) -> Ordering {
    match (a.is_zero(), b.is_zero()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    a.adjusted_exponent()
        .cmp(&b.adjusted_exponent())
        .then_with(|| {
            let (da, db) = (digit_count(a.mantissa), digit_count(b.mantissa));
            let n = da.max(db);
            (a.mantissa * POW10[(n - da) as usize]).cmp(&(b.mantissa * POW10[(n - db) as usize]))
        })
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |n: &Number| {
            if n.is_zero() {
                0
            } else if n.negative {
                -1
            } else {
                1
            }
        };
        sign(self).cmp(&sign(other)).then_with(|| {
            let m = cmp_magnitude(self, other);
            if self.negative {
                m.reverse()
            } else {
                m
            }
        })
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Self {
        if v == 0 {
            return Number::ZERO;
        }
        let mut mantissa = u128::from(v.unsigned_abs());
        let mut exponent = 0;
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        Number {
            negative: v < 0,
            mantissa,
            exponent,
        }
    }
}

impl std::str::FromStr for Number {
    type Err = TableError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Number::parse(s)
    }
}

/// The canonical text DynamoDB returns: plain notation, e.g. `1.5`, `100`, `-0.001`.
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let digits = self.mantissa.to_string();
        if self.negative {
            f.write_str("-")?;
        }
        if self.exponent >= 0 {
            f.write_str(&digits)?;
            for _ in 0..self.exponent {
                f.write_str("0")?;
            }
            return Ok(());
        }
        let frac = (-self.exponent) as usize;
        if digits.len() > frac {
            let (i, d) = digits.split_at(digits.len() - frac);
            write!(f, "{i}.{d}")
        } else {
            f.write_str("0.")?;
            for _ in 0..frac - digits.len() {
                f.write_str("0")?;
            }
            f.write_str(&digits)
        }
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn canonical_text() {
        let cases = [
            ("1.50", "1.5"),
            ("0100", "100"),
            ("1e3", "1000"),
            ("1E+2", "100"),
            ("-0", "0"),
            ("+0.000", "0"),
            ("0e999999999999", "0"),
            ("-1.0e-3", "-0.001"),
            (".5", "0.5"),
            ("5.", "5"),
            ("+7", "7"),
            ("123.456", "123.456"),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
            ("1E-130", &format!("0.{}1", "0".repeat(129))),
            (
                "9.9999999999999999999999999999999999999E+125",
                &format!("99999999999999999999999999999999999999{}", "0".repeat(88)),
            ),
            (
                "1000000000000000000000000000000000000000000",
                "1000000000000000000000000000000000000000000",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(n(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn refused_numbers() {
        let cases = [
            ("", MSG_NOT_A_NUMBER),
            ("abc", MSG_NOT_A_NUMBER),
            ("1.2.3", MSG_NOT_A_NUMBER),
            (" 1", MSG_NOT_A_NUMBER),
            ("1e", MSG_NOT_A_NUMBER),
            ("-", MSG_NOT_A_NUMBER),
            (".", MSG_NOT_A_NUMBER),
            ("NaN", MSG_NOT_A_NUMBER),
            ("Infinity", MSG_NOT_A_NUMBER),
            ("0x10", MSG_NOT_A_NUMBER),
            ("1E+126", MSG_OVERFLOW),
            ("1E+999999999999999", MSG_OVERFLOW),
            ("1E-131", MSG_UNDERFLOW),
            ("0.9E-130", MSG_UNDERFLOW),
            ("123456789012345678901234567890123456789", MSG_PRECISION),
            ("1.23456789012345678901234567890123456789", MSG_PRECISION),
        ];
        for (input, msg) in cases {
            assert_eq!(
                Number::parse(input),
                Err(TableError::validation(msg)),
                "{input}"
            );
        }
    }

    #[test]
    fn comparison_is_numeric() {
        let ordered = [
            "-1E+125",
            "-100",
            "-10.5",
            "-10",
            "-1",
            "-0.5",
            "-1E-130",
            "0",
            "1E-130",
            "0.001",
            "0.5",
            "1",
            "1.0000000000000000000000000000000000001",
            "9.99",
            "10",
            "10.01",
            "1E+2",
            "99999999999999999999999999999999999999",
            "1E+38",
            "9.9999999999999999999999999999999999999E+125",
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(n(a).cmp(&n(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert_eq!(n("1.0"), n("1"));
        assert_eq!(n("100"), n("1e2"));
    }

    #[test]
    fn arithmetic() {
        let cases = [
            ("1", "2", "3"),
            ("0.1", "0.2", "0.3"),
            ("-5", "3", "-2"),
            ("5", "-5", "0"),
            ("1E+100", "1E+100", "2E+100"),
            (
                "99999999999999999999999999999999999999",
                "-1",
                "99999999999999999999999999999999999998",
            ),
            ("1.5", "-0.25", "1.25"),
            ("-1E-130", "-1E-130", "-2E-130"),
            (
                "12345678901234567890123456789012345678",
                "0",
                "12345678901234567890123456789012345678",
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(n(a).checked_add(n(b)).unwrap(), n(want), "{a} + {b}");
            assert_eq!(n(want).checked_sub(n(b)).unwrap(), n(a), "{want} - {b}");
        }
        let errors = [
            (
                "99999999999999999999999999999999999999",
                "0.1",
                MSG_PRECISION,
            ),
            ("1E+38", "1", MSG_PRECISION),
            ("1E+50", "-1", MSG_PRECISION),
            (
                "9.9999999999999999999999999999999999999E+125",
                "1E+88",
                MSG_OVERFLOW,
            ),
        ];
        for (a, b, msg) in errors {
            assert_eq!(
                n(a).checked_add(n(b)),
                Err(TableError::validation(msg)),
                "{a} + {b}"
            );
        }
        assert_eq!(n("1E+38").checked_add(n("1E+38")).unwrap(), n("2E+38"));
    }

    #[test]
    fn arithmetic_and_order_match_exact_integer_math() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(38);
        // a × 10^-5 with |a| < 10^14: exact in i128 after scaling by 10^5.
        let random = |rng: &mut rand::rngs::StdRng| -> (i128, Number) {
            let mantissa: i64 = rng.gen_range(-99_999_999_999_999..100_000_000_000_000);
            let exp: i32 = rng.gen_range(-5..=5);
            let scaled = i128::from(mantissa) * 10i128.pow((exp + 5) as u32);
            (scaled, n(&format!("{mantissa}e{exp}")))
        };
        let from_scaled = |v: i128| n(&format!("{v}e-5"));
        for _ in 0..20_000 {
            let (a, na) = random(&mut rng);
            let (b, nb) = random(&mut rng);
            assert_eq!(na, from_scaled(a));
            assert_eq!(
                na.checked_add(nb).unwrap(),
                from_scaled(a + b),
                "{na} + {nb}"
            );
            assert_eq!(
                na.checked_sub(nb).unwrap(),
                from_scaled(a - b),
                "{na} - {nb}"
            );
            assert_eq!(na.cmp(&nb), a.cmp(&b), "{na} vs {nb}");
            assert_eq!(
                Number::parse(&na.to_string()).unwrap(),
                na,
                "{na} round trip"
            );
        }
    }

    #[test]
    fn stored_sizes() {
        let cases = [
            ("0", 1),
            ("1", 2),
            ("10", 2),
            ("100", 2),
            ("123", 3),
            ("-1", 3),
            ("0.1", 2),
            ("1.1", 3),
            ("12345678901234567890123456789012345678", 20),
        ];
        for (input, want) in cases {
            assert_eq!(n(input).stored_size(), want, "{input}");
        }
    }

    #[test]
    fn from_i64() {
        for v in [0i64, 1, -1, 10, 1200, i64::MAX, i64::MIN] {
            assert_eq!(Number::from(v), n(&v.to_string()), "{v}");
        }
    }
}
