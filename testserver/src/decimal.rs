//! Exact fixed-point decimals for prices and sizes.
//!
//! Kalshi sends prices as strings such as `"0.4550"` and sizes as `"5400.00"`. Converting through
//! `f64` would turn cents like 29 into `0.28999...`, so every conversion here is integer math on a
//! count of `10^-scale` units.

/// Parses a plain decimal such as `"0.4550"`, `"12.5"`, `"-0.05"` or `"1234"` into a count of
/// `10^-scale` units. Extra fraction digits are accepted only when they are zeros, so no value is
/// ever rounded. Returns `None` for anything else (exponents, spaces, empty parts, overflow).
pub(crate) fn parse_scaled(text: &str, scale: u32) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if unsigned.contains('.') && fraction.is_empty() {
        return None;
    }
    let kept = fraction.len().min(scale as usize);
    if fraction[kept..].bytes().any(|digit| digit != b'0') {
        return None;
    }
    let mut units = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(10_i64.checked_pow(scale)?)?;
    if kept > 0 {
        let padding = 10_i64.pow(scale - kept as u32);
        units = units.checked_add(fraction[..kept].parse::<i64>().ok()? * padding)?;
    }
    Some(if negative { -units } else { units })
}

/// Formats a count of `10^-scale` units with exactly `scale` fraction digits, e.g. 4550 at
/// scale 4 is `"0.4550"` and -500 at scale 4 is `"-0.0500"`.
pub(crate) fn format_scaled(units: i64, scale: u32) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{magnitude}");
    }
    let base = 10_u64.pow(scale);
    let width = scale as usize;
    format!("{sign}{}.{:0width$}", magnitude / base, magnitude % base)
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prices_at_four_decimals() {
        assert_eq!(parse_scaled("0.4550", 4), Some(4550));
        assert_eq!(parse_scaled("0.455", 4), Some(4550));
        assert_eq!(parse_scaled("0.45", 4), Some(4500));
        assert_eq!(parse_scaled("1", 4), Some(10_000));
        assert_eq!(parse_scaled("-0.05", 4), Some(-500));
        assert_eq!(parse_scaled("0.450000", 4), Some(4500));
    }

    #[test]
    fn rejects_what_it_cannot_represent_exactly() {
        for text in [
            "", ".5", "5.", "0.45501", "1e2", " 1", "+1", "0,45", "--1", "abc",
        ] {
            assert_eq!(parse_scaled(text, 4), None, "{text:?}");
        }
        assert_eq!(parse_scaled("99999999999999999999", 2), None);
    }

    #[test]
    fn formats_with_fixed_fraction_digits() {
        assert_eq!(format_scaled(3500, 4), "0.3500");
        assert_eq!(format_scaled(10_000, 4), "1.0000");
        assert_eq!(format_scaled(-500, 4), "-0.0500");
        assert_eq!(format_scaled(540_000, 2), "5400.00");
        assert_eq!(format_scaled(7, 0), "7");
    }
}
