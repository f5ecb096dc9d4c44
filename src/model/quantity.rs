//! Kubernetes resource quantities (`500m`, `16Gi`, `1e3`) in the canonical form the API
//! server stores them in, following `k8s.io/apimachinery/pkg/api/resource` (`Quantity`):
//!
//! - a quantity remembers its format: binary (`Ki` ... `Ei`), decimal SI (`n`, `u`, `m`,
//!   none, `k` ... `E`) or decimal exponent (`e3`);
//! - values are exact down to 1n; smaller non-zero values round up to it; magnitudes cap at
//!   2^63 - 1;
//! - canonical form: no fractional digits, the largest suffix (a power of 1000, or of 1024
//!   for binary) that keeps the mantissa an integer; a binary value below 1024 or not a
//!   whole number is written in decimal SI instead (`0.5Gi` is `512Mi`, `1.5Ki` is `1536`,
//!   `0.1Ki` is `102400m`);
//! - a string that is already canonical is kept as written (`+1` stays `+1`), as the API
//!   server keeps it.
//!
//! So `cpu: "0.5"` is stored as `500m`, `memory: 1024Mi` as `1Gi`, `2000m` as `2`: comfyplat
//! renders quantities in this form, so that what it compares is what the server returns.

/// Why a text is not a quantity (the API server's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
    #[error("the quantity has too many digits for comfyplat to check")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// Nanos in one unit.
const NANO: i128 = 1_000_000_000;
/// The largest magnitude a quantity holds: 2^63 - 1.
const MAX: i128 = i64::MAX as i128;

/// The canonical form of a quantity, as the API server writes it back.
pub fn canonical(text: &str) -> Result<String, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Format);
    }
    if text == "0" {
        return Ok("0".to_string());
    }
    let parts = split(text)?;
    let (base, exponent, format) = interpret(parts.suffix)?;
    if parts.num.len() + parts.denom.len() > 30 {
        return Err(QuantityError::TooLong);
    }
    // apimachinery's `shifted`: the digits without the point.
    let digits = format!("{}{}", parts.num, parts.denom);
    let mantissa: i128 = digits.parse().map_err(|_| QuantityError::Format)?;
    if mantissa == 0 {
        return Ok("0".to_string());
    }
    if keeps_its_text(&parts, &digits, mantissa, exponent, format) {
        return Ok(text.to_string());
    }
    let nanos = magnitude(&parts, mantissa, base, exponent)?.min(MAX * NANO);
    let sign = if parts.negative { "-" } else { "" };
    let whole = nanos % NANO == 0;
    let format = match format {
        Format::BinarySi if nanos < 1024 * NANO || !whole => Format::DecimalSi,
        other => other,
    };
    Ok(match format {
        Format::BinarySi => {
            let (mut amount, mut power) = (nanos / NANO, 0);
            while amount % 1024 == 0 && power < 6 {
                amount /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            format!("{sign}{amount}{suffix}")
        }
        decimal => {
            let (mut amount, mut exponent) = (nanos, -9_i32);
            while amount % 10 == 0 {
                amount /= 10;
                exponent += 1;
            }
            while exponent.rem_euclid(3) != 0 {
                amount *= 10;
                exponent -= 1;
            }
            let suffix = match decimal {
                Format::DecimalExponent if exponent == 0 => String::new(),
                Format::DecimalExponent => format!("e{exponent}"),
                _ => decimal_suffix(exponent).to_string(),
            };
            format!("{sign}{amount}{suffix}")
        }
    })
}

/// The magnitude in nanos, rounded up, not capped (saturating at `i128::MAX`).
fn magnitude(
    parts: &Parts,
    mantissa: i128,
    base: i128,
    exponent: i32,
) -> Result<i128, QuantityError> {
    let decimals = i32::try_from(parts.denom.len()).map_err(|_| QuantityError::TooLong)?;
    Ok(match base {
        10 => scale(mantissa, exponent + 9 - decimals),
        _ => {
            let times = 2_i128
                .checked_pow(u32::try_from(exponent).map_err(|_| QuantityError::Suffix)?)
                .ok_or(QuantityError::TooLong)?;
            let value = mantissa.checked_mul(times).ok_or(QuantityError::TooLong)?;
            scale(value, 9 - decimals)
        }
    })
}

/// The magnitude of a quantity in nanos of its unit (`16Gi` is 16 × 2^30 × 10^9), rounded
/// up as apimachinery rounds, before any cap; `i128::MAX` when it is larger still.
pub fn nanos(text: &str) -> Result<i128, QuantityError> {
    let parts = split(text)?;
    let (base, exponent, _) = interpret(parts.suffix)?;
    if parts.num.len() + parts.denom.len() > 30 {
        return Err(QuantityError::TooLong);
    }
    let digits = format!("{}{}", parts.num, parts.denom);
    let mantissa: i128 = digits.parse().map_err(|_| QuantityError::Format)?;
    if mantissa == 0 {
        return Ok(0);
    }
    match magnitude(&parts, mantissa, base, exponent) {
        Err(QuantityError::TooLong) => Ok(i128::MAX),
        other => other,
    }
}

/// Whether a quantity is larger than Kubernetes holds. apimachinery's `ParseQuantity` caps
/// binary and decimal SI values at 2^63 - 1 ("The max is just a simple cap"), so the API
/// server accepts `99999999Ei` and stores 9223372036854775807 instead: a request nothing
/// can satisfy, silently. comfyplat refuses such a value (in any format).
pub fn exceeds_int64(text: &str) -> bool {
    nanos(text).is_ok_and(|nanos| nanos > MAX * NANO)
}

/// `value × 10^power`, rounded up when `power` is negative.
fn scale(value: i128, power: i32) -> i128 {
    if power >= 0 {
        10_i128
            .checked_pow(power.unsigned_abs())
            .and_then(|factor| value.checked_mul(factor))
            .unwrap_or(i128::MAX)
    } else {
        match 10_i128.checked_pow(power.unsigned_abs()) {
            Some(divisor) => (value + divisor - 1) / divisor,
            // Below 1n: rounds up to 1n.
            None => 1,
        }
    }
}

fn decimal_suffix(exponent: i32) -> &'static str {
    match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => "",
    }
}

struct Parts<'a> {
    negative: bool,
    /// Digits before the point, without leading zeros.
    num: &'a str,
    /// Digits after the point.
    denom: &'a str,
    suffix: &'a str,
}

/// Splits as apimachinery's `parseQuantityString` does.
fn split(text: &str) -> Result<Parts<'_>, QuantityError> {
    let bytes = text.as_bytes();
    let mut position = 0;
    let mut negative = false;
    match bytes.first() {
        Some(b'-') => {
            negative = true;
            position = 1;
        }
        Some(b'+') => position = 1,
        _ => {}
    }
    while position < bytes.len() && bytes[position] == b'0' {
        position += 1;
    }
    let digits = |from: usize| {
        from + bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let num_end = digits(position);
    // All numerator digits stripped (`0`, `.5`): the numerator is `0`.
    let num = if num_end == position {
        "0"
    } else {
        &text[position..num_end]
    };
    position = num_end;
    let mut denom = "";
    if position < bytes.len() && bytes[position] == b'.' {
        let end = digits(position + 1);
        denom = &text[position + 1..end];
        position = end;
    }
    let suffix_start = position;
    while position < bytes.len() && b"eEinumkKMGTP".contains(&bytes[position]) {
        position += 1;
    }
    if position < bytes.len() && matches!(bytes[position], b'-' | b'+') {
        position += 1;
    }
    position = digits(position);
    if position != bytes.len() {
        return Err(QuantityError::Format);
    }
    Ok(Parts {
        negative,
        num,
        denom,
        suffix: &text[suffix_start..],
    })
}

/// The base, exponent and format a suffix stands for.
fn interpret(suffix: &str) -> Result<(i128, i32, Format), QuantityError> {
    let decimal = |exponent| Ok((10, exponent, Format::DecimalSi));
    let binary = |exponent| Ok((2, exponent, Format::BinarySi));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix
                .strip_prefix(['e', 'E'])
                .ok_or(QuantityError::Suffix)?;
            let exponent: i32 = rest.parse().map_err(|_| QuantityError::Suffix)?;
            Ok((10, exponent, Format::DecimalExponent))
        }
    }
}

/// Whether the API server keeps the text as written: apimachinery reuses the string when
/// its fast path (small enough for an int64 at nano precision) finds it canonical already.
fn keeps_its_text(
    parts: &Parts,
    digits: &str,
    mantissa: i128,
    exponent: i32,
    format: Format,
) -> bool {
    let digit_count = (parts.num.len() + parts.denom.len()) as i32;
    match format {
        Format::BinarySi => {
            if !parts.denom.is_empty() || exponent < 0 {
                return false;
            }
            let precision = 15 - parts.num.len() as i32 - (exponent as f32 * 3.0 / 10.0) as i32 - 1;
            let fits = mantissa
                .checked_mul(1_i128 << exponent.min(62))
                .is_some_and(|v| v <= MAX);
            precision >= 0 && fits && exponent % 10 == 0 && mantissa & 0x07 != 0
        }
        _ => {
            let scale = exponent - parts.denom.len() as i32;
            18 - digit_count >= 0
                && scale >= -9
                && mantissa <= MAX
                && scale % 3 == 0
                && !digits.ends_with("000")
                && !digits.starts_with('0')
        }
    }
}

/// Rewrites every quantity-typed field of a built-in Kubernetes object into canonical
/// form: container resources in pod templates, claim requests and limits, volume
/// capacities, `emptyDir.sizeLimit`. Custom resources keep their values as written (the
/// API server does not canonicalise them either). Values that are not quantities are left
/// for the server to refuse.
pub fn canonicalize_object(object: &mut serde_json::Value) {
    let kind = object
        .get("kind")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    match kind.as_str() {
        "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job" => {
            if let Some(pod) = object.pointer_mut("/spec/template/spec") {
                canonicalize_pod(pod);
            }
        }
        "Pod" => {
            if let Some(pod) = object.pointer_mut("/spec") {
                canonicalize_pod(pod);
            }
        }
        "PersistentVolumeClaim" => {
            for key in ["requests", "limits"] {
                if let Some(map) = object.pointer_mut(&format!("/spec/resources/{key}")) {
                    canonicalize_map(map);
                }
            }
        }
        "PersistentVolume" => {
            if let Some(map) = object.pointer_mut("/spec/capacity") {
                canonicalize_map(map);
            }
        }
        _ => {}
    }
}

fn canonicalize_pod(pod: &mut serde_json::Value) {
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let Some(containers) = pod.get_mut(list).and_then(|v| v.as_array_mut()) else {
            continue;
        };
        for container in containers {
            for key in ["requests", "limits"] {
                if let Some(map) = container.pointer_mut(&format!("/resources/{key}")) {
                    canonicalize_map(map);
                }
            }
        }
    }
    if let Some(volumes) = pod.get_mut("volumes").and_then(|v| v.as_array_mut()) {
        for volume in volumes {
            if let Some(limit) = volume.pointer_mut("/emptyDir/sizeLimit") {
                canonicalize_value(limit);
            }
        }
    }
}

fn canonicalize_map(map: &mut serde_json::Value) {
    if let Some(map) = map.as_object_mut() {
        map.values_mut().for_each(canonicalize_value);
    }
}

fn canonicalize_value(value: &mut serde_json::Value) {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => return,
    };
    if let Ok(canonical) = canonical(&text) {
        *value = serde_json::Value::String(canonical);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_beyond_int64_are_detected() {
        assert!(exceeds_int64("99999999Ei"));
        assert!(exceeds_int64("9223372036854775808"));
        assert!(exceeds_int64("1e400"));
        assert!(exceeds_int64("8Ei"));
        assert!(!exceeds_int64("7Ei"));
        assert!(!exceeds_int64("9223372036854775807"));
        assert!(!exceeds_int64("16Gi") && !exceeds_int64("3500m"));
        assert_eq!(nanos("16Gi"), Ok(16 * (1 << 30) * NANO));
        assert_eq!(nanos("500m"), Ok(500_000_000));
        assert_eq!(nanos("0"), Ok(0));
        // The API server's cap, which comfyplat refuses instead of rendering.
        assert_eq!(
            canonical("99999999Ei").as_deref(),
            Ok("9223372036854775807")
        );
    }

    #[test]
    fn quantities_take_the_api_servers_canonical_form() {
        for (input, expected) in [
            // What users type for requests.
            ("0.5", "500m"),
            ("1024Mi", "1Gi"),
            ("2000m", "2"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("16Gi", "16Gi"),
            ("4", "4"),
            ("3500m", "3500m"),
            ("1000", "1k"),
            ("1e3", "1e3"),
            ("12e2", "1200"),
            ("1.5", "1500m"),
            ("1.0", "1"),
            // Kept as written: canonical enough for apimachinery's fast path.
            ("1.500", "1.500"),
            ("1.234k", "1.234k"),
            (".5", "500m"),
            ("00", "0"),
            ("0.1Ki", "102400m"),
            ("1.5Ki", "1536"),
            ("100Ki", "100Ki"),
            ("8Gi", "8Gi"),
            ("1200Gi", "1200Gi"),
            ("1Ki", "1Ki"),
            ("1023", "1023"),
            ("0.0000000001", "1n"),
            ("1n", "1n"),
            ("1000n", "1u"),
            ("1000000u", "1"),
            ("0", "0"),
            ("0Gi", "0"),
            ("0.0", "0"),
            ("+1", "+1"),
            ("-1", "-1"),
            ("-0.5", "-500m"),
            ("1E3", "1E3"),
            ("1e-3", "1e-3"),
            ("10e-3", "10e-3"),
            ("100e-3", "100e-3"),
            ("1000e-3", "1"),
            ("010", "010"),
            ("5M", "5M"),
            ("5000k", "5M"),
            ("1.5M", "1500k"),
            ("10T", "10T"),
            ("9223372036854775807", "9223372036854775807"),
            ("9223372036854775808", "9223372036854775807"),
        ] {
            assert_eq!(canonical(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn malformed_quantities_are_refused_as_the_api_server_refuses_them() {
        for input in ["", "abc", "1.5.5", "1 Gi", "1Gib", "1e", "--1", "1,5"] {
            assert!(canonical(input).is_err(), "{input} was accepted");
        }
        assert_eq!(canonical("1Q"), Err(QuantityError::Format));
        assert_eq!(canonical("1ee3"), Err(QuantityError::Suffix));
    }

    #[test]
    fn quantity_fields_of_built_in_kinds_are_canonicalised_and_custom_ones_kept() {
        let mut deployment = serde_json::json!({
            "kind": "Deployment",
            "spec": {"template": {"spec": {
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"nvidia.com/gpu": 1}}}],
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "2048Mi"}}],
            }}},
        });
        canonicalize_object(&mut deployment);
        assert_eq!(
            deployment.pointer("/spec/template/spec/containers/0/resources/requests"),
            Some(&serde_json::json!({"cpu": "500m", "memory": "1Gi"}))
        );
        assert_eq!(
            deployment.pointer("/spec/template/spec/containers/0/resources/limits/nvidia.com~1gpu"),
            Some(&serde_json::json!("1"))
        );
        assert_eq!(
            deployment.pointer("/spec/template/spec/volumes/0/emptyDir/sizeLimit"),
            Some(&serde_json::json!("2Gi"))
        );
        let mut pool = serde_json::json!({"kind": "NodePool", "spec": {"limits": {"nvidia.com/gpu": 4, "memory": "1024Mi"}}});
        let before = pool.clone();
        canonicalize_object(&mut pool);
        assert_eq!(pool, before);
    }
}
