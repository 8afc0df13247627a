//! The `alphabetical` and `numerical` policies: the [`Order`] they rank in, and
//! [`Number`], the exact decimal a numerical policy reads a tag (or the value a
//! filter extracts from it) as.
//!
//! Both follow Flux: `asc` picks the greatest value (the last one in ascending
//! order), `desc` the least. Alphabetical order is byte order of the UTF-8 text, as
//! Go's `sort.Strings`. Numbers are compared exactly, without a round trip through
//! floating point, so `1.10` and `1.1` tie and 20-digit timestamps stay distinct.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::PolicyError;

/// The direction of an alphabetical or numerical policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// The greatest value wins (Flux's default).
    Asc,
    /// The least value wins.
    Desc,
}

impl Order {
    /// Orders two values so that the better one is `Greater`.
    pub(super) fn rank<T: Ord + ?Sized>(self, a: &T, b: &T) -> Ordering {
        match self {
            Order::Asc => a.cmp(b),
            Order::Desc => b.cmp(a),
        }
    }
}

impl FromStr for Order {
    type Err = PolicyError;

    /// `asc` or `desc`, as Flux writes them.
    fn from_str(s: &str) -> Result<Order, PolicyError> {
        match s {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            other => Err(PolicyError::InvalidOrder {
                order: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        })
    }
}

/// A decimal number read from a tag: an optional sign, digits, and an optional
/// fraction (`42`, `-3`, `+1.50`, `.5`, `5.`). Exponents, `inf`, `nan`, hex and
/// underscores are not numbers here (Go's `ParseFloat` takes them; a short commit
/// hash such as `12e4567` is not meant as 1.2×10⁴⁵⁶⁸).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// Negative and not zero.
    negative: bool,
    /// The integer digits without leading zeros ("" for zero).
    int: String,
    /// The fraction digits without trailing zeros.
    frac: String,
}

impl Number {
    /// Reads `text` as a number, or None.
    pub fn parse(text: &str) -> Option<Number> {
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let zero = int.is_empty() && frac.is_empty();
        Some(Number {
            negative: negative && !zero,
            int: int.to_string(),
            frac: frac.to_string(),
        })
    }

    /// Compares the absolute values.
    fn cmp_magnitude(&self, other: &Number) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            // Without trailing zeros, byte order of the fractions is numeric order.
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap_or_else(|| panic!("{s:?} should be a number"))
    }

    #[test]
    fn numbers_parse() {
        for ok in [
            "0", "42", "-3", "+7", "1.5", ".5", "5.", "007", "-0", "1.000",
        ] {
            assert!(Number::parse(ok).is_some(), "{ok:?}");
        }
        for bad in [
            "", "-", "+", ".", "1.2.3", "1e5", "inf", "NaN", "0x1f", "1_000", " 1", "1 ", "--1",
            "abc", "v1",
        ] {
            assert_eq!(Number::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_compare_exactly() {
        let ascending = [
            "-10", "-9.5", "-1", "-0.001", "0", "0.0001", "0.45", "0.5", "0.51", "1", "1.01",
            "1.1", "9", "10", "99.999", "100",
        ];
        for w in ascending.windows(2) {
            assert_eq!(n(w[0]).cmp(&n(w[1])), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        for (a, b) in [
            ("1", "1.0"),
            ("007", "7"),
            ("-0", "0"),
            ("+2", "2"),
            (".5", "0.50"),
        ] {
            assert_eq!(n(a).cmp(&n(b)), Ordering::Equal, "{a} = {b}");
        }
        // Beyond f64's 53 bits: still distinct.
        assert_eq!(
            n("20240101120000000001").cmp(&n("20240101120000000000")),
            Ordering::Greater
        );
    }

    #[test]
    fn order_reads_and_prints_flux_words() {
        assert_eq!("asc".parse::<Order>(), Ok(Order::Asc));
        assert_eq!("desc".parse::<Order>(), Ok(Order::Desc));
        assert_eq!(Order::Desc.to_string(), "desc");
        let e = "ascending".parse::<Order>().unwrap_err().to_string();
        assert!(e.contains("\"ascending\""), "{e}");
    }
}
