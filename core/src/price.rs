//! Exact fixed-point numbers for prices, sizes and thresholds.
//!
//! Kalshi sends prices as integer cents (legacy) or as dollar strings such as
//! `"0.4550"` (transitional and current). Both are read into a [`Decimal`] of
//! dollars without passing through a binary float, so sub-penny ticks survive.

use std::str::FromStr;

use rust_decimal::Decimal;

/// A price in dollars per YES contract; equal to the implied probability.
pub type Price = Decimal;

/// Why a number could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("{0:?} is not a decimal number")]
    NotANumber(String),
    #[error("{value} is outside 0..=1; a YES price is a probability (did you mean {hint}?)")]
    ProbabilityOutOfRange { value: String, hint: String },
    #[error("{0} is negative")]
    Negative(String),
}

/// Reads a decimal string such as `"0.4550"` or `"5400.00"` exactly.
pub fn parse_decimal(text: &str) -> Result<Decimal, NumberError> {
    let trimmed = text.trim();
    let is_plain = !trimmed.is_empty()
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
    if !is_plain {
        return Err(NumberError::NotANumber(text.to_string()));
    }
    Decimal::from_str_exact(trimmed).map_err(|_| NumberError::NotANumber(text.to_string()))
}

/// Converts integer cents (the legacy payload) to dollars.
pub fn cents_to_dollars(cents: i64) -> Price {
    Decimal::new(cents, 2)
}

/// Reads a probability threshold as the CLI accepts it: `0.60`, `60c` or `60%`.
///
/// A bare number above 1 is refused with a hint, because a midpoint
/// probability can never exceed it and the condition could never fire.
pub fn parse_probability(text: &str) -> Result<Price, NumberError> {
    let trimmed = text.trim();
    let (number, scale_down) = if let Some(n) = trimmed.strip_suffix('%') {
        (n, true)
    } else if let Some(n) = trimmed
        .strip_suffix('c')
        .or_else(|| trimmed.strip_suffix('¢'))
    {
        (n, true)
    } else {
        (trimmed, false)
    };

    let mut value = parse_decimal(number).map_err(|_| NumberError::NotANumber(text.into()))?;
    if scale_down {
        value /= Decimal::ONE_HUNDRED;
    }
    if value.is_sign_negative() && !value.is_zero() {
        return Err(NumberError::Negative(text.to_string()));
    }
    if value > Decimal::ONE {
        let hint = if !scale_down && value <= Decimal::ONE_HUNDRED {
            format_price(value / Decimal::ONE_HUNDRED)
        } else {
            "a value between 0 and 1".to_string()
        };
        return Err(NumberError::ProbabilityOutOfRange {
            value: text.to_string(),
            hint,
        });
    }
    Ok(value.normalize())
}

/// Shows a price with at least cent precision and no trailing noise:
/// `0.5` as `0.50`, `0.4550` as `0.455`, `1` as `1.00`.
pub fn format_price(price: Price) -> String {
    let mut shown = price.normalize();
    if shown.scale() < 2 {
        shown.rescale(2);
    }
    shown.to_string()
}

/// Reads a non-negative amount such as a spread in cents or a volume in contracts.
pub fn parse_non_negative(text: &str) -> Result<Decimal, NumberError> {
    let value = parse_decimal(text)?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(NumberError::Negative(text.to_string()));
    }
    Ok(value.normalize())
}

/// Reads a JSON number exactly as written (Python writes thresholds as floats).
///
/// `serde_json` prints an `f64` in its shortest round-trip form, so `0.6`
/// comes back as `"0.6"` and not as the binary expansion of 0.6.
pub fn decimal_from_json_number(number: &serde_json::Number) -> Option<Decimal> {
    use rust_decimal::prelude::FromPrimitive;

    let text = number.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
        // A float too small or too precise for 28 decimal places (another
        // tool wrote 1e-30, say) is rounded rather than refused.
        .or_else(|| number.as_f64().and_then(Decimal::from_f64))
}

/// The most decimal places a price has on Kalshi (a tenth of a cent).
pub const PRICE_DECIMALS: u32 = 4;

/// Refuses a value with more decimal places than `places`, so that what is
/// stored (as a JSON number) is exactly what was typed.
pub fn check_decimals(value: Decimal, places: u32, what: &str) -> Result<Decimal, String> {
    if value.normalize().scale() > places {
        return Err(format!(
            "{value} has more than {places} decimal places; {what} are given to {}",
            Decimal::new(1, places)
        ));
    }
    Ok(value)
}

/// The largest amount a threshold may be: beyond it a float (as the file
/// stores numbers) no longer holds every whole number.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Writes a decimal as a JSON number, for files that Python reads as floats.
pub fn decimal_to_json_number(value: Decimal) -> serde_json::Value {
    use rust_decimal::prelude::ToPrimitive;

    if value.fract().is_zero() {
        if let Some(whole) = value.to_i64() {
            return serde_json::Value::from(whole);
        }
    }
    // A float only when it reads back as the same decimal; otherwise (more
    // digits than a float holds, beyond a decimal's range once rounded) the
    // exact text, which the loader also accepts.
    let number = value.to_f64().and_then(serde_json::Number::from_f64);
    match number {
        Some(n) if decimal_from_json_number(&n).is_some_and(|back| back == value) => {
            serde_json::Value::Number(n)
        }
        _ => serde_json::Value::String(value.normalize().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn dollar_strings_keep_sub_penny_ticks() {
        assert_eq!(parse_decimal("0.4550").unwrap(), d("0.455"));
        assert_eq!(parse_decimal("0.4550").unwrap().to_string(), "0.4550");
        assert_eq!(parse_decimal("5400.00").unwrap(), d("5400"));
    }

    #[test]
    fn malformed_strings_are_refused() {
        for bad in ["", "abc", "0.45x", "1e3", "NaN", " "] {
            assert!(parse_decimal(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn cents_become_dollars_exactly() {
        assert_eq!(cents_to_dollars(35), d("0.35"));
        assert_eq!(cents_to_dollars(100), Decimal::ONE);
        assert_eq!(cents_to_dollars(0), Decimal::ZERO);
    }

    #[test]
    fn probability_accepts_fraction_cents_and_percent() {
        assert_eq!(parse_probability("0.60").unwrap(), d("0.6"));
        assert_eq!(parse_probability("60c").unwrap(), d("0.6"));
        assert_eq!(parse_probability("60%").unwrap(), d("0.6"));
        assert_eq!(parse_probability("45.5c").unwrap(), d("0.455"));
        assert_eq!(parse_probability("1").unwrap(), Decimal::ONE);
        assert_eq!(parse_probability("0").unwrap(), Decimal::ZERO);
    }

    #[test]
    fn bare_probability_above_one_suggests_the_fraction() {
        let err = parse_probability("60").unwrap_err();
        assert_eq!(
            err,
            NumberError::ProbabilityOutOfRange {
                value: "60".into(),
                hint: "0.60".into()
            }
        );
        assert!(err.to_string().contains("did you mean 0.60?"));
        let sub_cent = parse_probability("45.5").unwrap_err().to_string();
        assert!(sub_cent.contains("did you mean 0.455?"), "{sub_cent}");
        let small = parse_probability("1.5").unwrap_err().to_string();
        assert!(small.contains("did you mean 0.015?"), "{small}");
    }

    #[test]
    fn probability_out_of_range_with_unit_is_refused() {
        assert!(parse_probability("150c").is_err());
        assert!(parse_probability("101%").is_err());
        assert!(parse_probability("-0.1").is_err());
        assert!(parse_probability("sixty").is_err());
    }

    #[test]
    fn json_numbers_beyond_decimal_precision_are_rounded() {
        let tiny: serde_json::Number = serde_json::from_str("1e-30").unwrap();
        assert_eq!(decimal_from_json_number(&tiny), Some(Decimal::ZERO));
        let long: serde_json::Number = serde_json::from_str("9.999999999999999e-29").unwrap();
        assert!(decimal_from_json_number(&long).is_some());
    }

    #[test]
    fn decimals_a_float_cannot_hold_are_written_as_exact_text() {
        assert_eq!(
            decimal_to_json_number(Decimal::MAX),
            serde_json::Value::String(Decimal::MAX.to_string())
        );
        let fine = d("0.00000000000100000000002");
        assert_eq!(
            decimal_to_json_number(fine),
            serde_json::Value::String("0.00000000000100000000002".into())
        );
        assert_eq!(decimal_to_json_number(d("0.455")).to_string(), "0.455");
    }

    #[test]
    fn decimals_beyond_the_limit_are_refused() {
        assert!(check_decimals(d("0.4550"), 4, "prices").is_ok());
        let err = check_decimals(d("0.45501"), 4, "prices").unwrap_err();
        assert!(err.contains("more than 4 decimal places"), "{err}");
    }

    #[test]
    fn prices_show_at_least_cents() {
        assert_eq!(format_price(d("0.5")), "0.50");
        assert_eq!(format_price(d("0.4550")), "0.455");
        assert_eq!(format_price(Decimal::ONE), "1.00");
    }

    #[test]
    fn json_numbers_round_trip_without_float_noise() {
        let n: serde_json::Number = serde_json::from_str("0.6").unwrap();
        assert_eq!(decimal_from_json_number(&n).unwrap().to_string(), "0.6");
        let n: serde_json::Number = serde_json::from_str("1e-3").unwrap();
        assert_eq!(decimal_from_json_number(&n).unwrap(), d("0.001"));
        assert_eq!(decimal_to_json_number(d("0.455")).to_string(), "0.455");
        assert_eq!(decimal_to_json_number(d("1000")).to_string(), "1000");
    }
}
