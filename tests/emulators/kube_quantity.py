"""resource.Quantity as kube-apiserver parses and prints it (k8s.io/apimachinery/pkg/api/resource).

    q = parse_quantity("1.5Gi")        # raises QuantityError with apimachinery's message
    str(q)                             # "1536Mi": the canonical form the apiserver stores
    canonical("0.5")                   # "500m"

Written from apimachinery's quantity.go, suffix.go and amount.go (v0.33): the value is kept
exactly (a Fraction), suffixes are interpreted as there, values that need more than nine
decimal places are rounded up (away from zero) to the next nano, BinarySI values are capped
at 2^63-1, and the printed form is the canonical one: the largest exponent (a multiple of 3
for decimal formats, a power of 1024 for BinarySI) that keeps the mantissa an integer.
BinarySI values between -1024 and 1024, or not integral, print as DecimalSI. As in Go, a
string that ParseQuantity's fast path finds already canonical-looking is printed back as
given (so "+1" stays "+1", "1E3" stays "1E3"), which is what the apiserver returns.
"""

from __future__ import annotations

from fractions import Fraction

SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT = "quantities must match the regular expression '" + SPLIT_RE + "'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

INT64_MAX = 2 ** 63 - 1
MAX_INT64_FACTORS = 18
NANO = -9
SUFFIX_LETTERS = "eEinumkKMGTP"
DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
DEC_BY_EXP = {v: k for k, v in DEC_SUFFIXES.items()}
BIN_BY_EXP = {v: k for k, v in BIN_SUFFIXES.items()}


class QuantityError(ValueError):
    pass


def _split(s: str):
    """parseQuantityString: (positive, value, num, denom, suffix)."""
    positive, pos, end = True, 0, len(s)
    if pos < end and s[0] in "+-":
        positive = s[0] != "-"
        pos += 1
    i = pos
    while True:  # leading zeros
        if i >= end:
            return positive, "0", "0", "", ""
        if s[i] != "0":
            break
        pos += 1
        i += 1
    i = pos
    while True:  # numerator
        if i >= end:
            return positive, s, s[pos:end] or "0", "", ""
        if not s[i].isdigit() or not s[i].isascii():
            num = s[pos:i]
            pos = i
            break
        i += 1
    num = num or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        i = pos
        while True:
            if i >= end:
                return positive, s, num, s[pos:end], ""
            if not (s[i].isascii() and s[i].isdigit()):
                denom = s[pos:i]
                pos = i
                break
            i += 1
    value = s[:pos]
    start = pos
    i = pos
    while True:
        if i >= end:
            return positive, value, num, denom, s[start:end]
        if s[i] not in SUFFIX_LETTERS:
            pos = i
            break
        i += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    i = pos
    while True:
        if i >= end:
            return positive, value, num, denom, s[start:end]
        if not (s[i].isascii() and s[i].isdigit()):
            raise QuantityError(ERR_FORMAT)
        i += 1


def _interpret(suf: str):
    """(base, exponent, format) of a suffix, as quantitySuffixer.interpret."""
    if suf in DEC_SUFFIXES:
        return 10, DEC_SUFFIXES[suf], "DecimalSI"
    if suf in BIN_SUFFIXES:
        return 2, BIN_SUFFIXES[suf], "BinarySI"
    if len(suf) > 1 and suf[0] in "eE":
        rest = suf[1:]
        body = rest[1:] if rest[:1] in "+-" else rest
        if body.isdigit() and body.isascii() and -2 ** 63 <= int(rest) < 2 ** 63:
            return 10, _int32(int(rest)), "DecimalExponent"
    raise QuantityError(ERR_SUFFIX)


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 2 ** 32 if v >= 2 ** 31 else v


class Quantity:
    __slots__ = ("value", "format", "cached")

    def __init__(self, value: Fraction, fmt: str, cached: str | None = None):
        self.value, self.format, self.cached = value, fmt, cached

    def __str__(self):
        return self.cached if self.cached is not None else canonical_string(self.value, self.format)

    def __repr__(self):
        return f"Quantity({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, Quantity) and self.value == other.value

    def __lt__(self, other):
        return self.value < other.value

    def __le__(self, other):
        return self.value <= other.value

    def __hash__(self):
        return hash(self.value)


def parse_quantity(s) -> Quantity:
    """ParseQuantity (UnmarshalJSON: JSON numbers are parsed from their text, strings trimmed)."""
    if isinstance(s, bool) or not isinstance(s, (str, int, float)):
        raise QuantityError(ERR_FORMAT)
    if not isinstance(s, str):
        s = getattr(s, "json_text", None) or (str(s) if isinstance(s, int) else repr(s))
    s = s.strip()
    if not s:
        raise QuantityError(ERR_FORMAT)
    if s == "0":
        return Quantity(Fraction(0), "DecimalSI", "0")
    positive, value, num, denom, suf = _split(s)
    base, exponent, fmt = _interpret(suf)

    # the fast path of ParseQuantity (int64 arithmetic): only decides whether the input string
    # is kept as the printed form
    precision, scale, mantissa = 0, 0, 1
    if fmt in ("DecimalExponent", "DecimalSI"):
        scale = exponent
        precision = MAX_INT64_FACTORS - (len(num) + len(denom))
    else:
        if exponent >= 0 and not denom:
            mantissa = 1 << exponent
            precision = 15 - len(num) - (exponent * 3 // 10) - 1
        else:
            precision = -1
    if precision >= 0:
        scale -= len(denom)
        if scale >= NANO:
            shifted = num + denom
            v = int(shifted)
            if v > INT64_MAX:
                raise QuantityError(ERR_NUMERIC)
            result = v * mantissa
            if -INT64_MAX - 1 <= result <= INT64_MAX:
                if not positive:
                    result = -result
                amount = Fraction(result) * (Fraction(10) ** scale)
                keep = False
                if fmt == "BinarySI":
                    keep = exponent % 10 == 0 and (v & 0x07) != 0
                else:
                    keep = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
                return Quantity(amount, fmt, s if keep else None)

    # the inf.Dec path: exact value, rounded up to nano, BinarySI capped at 2^63-1
    digits = value.lstrip("+-")
    if digits in ("", "."):
        raise QuantityError(ERR_NUMERIC)
    intpart, _, frac = digits.partition(".")
    amount = Fraction(int(intpart or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    if value.startswith("-"):
        amount = -amount
    if base == 10:
        amount *= Fraction(10) ** exponent
    else:
        amount *= 2 ** exponent
    sign = -1 if amount < 0 else 1
    amount = abs(amount)
    if amount != 0:
        scaled = amount * 10 ** 9
        if scaled.denominator != 1:
            amount = Fraction(-(-scaled.numerator // scaled.denominator), 10 ** 9)
    if fmt == "BinarySI" and amount > INT64_MAX:
        amount = Fraction(INT64_MAX)
    if fmt == "BinarySI" and 0 < amount < 1:
        fmt = "DecimalSI"
    return Quantity(sign * amount, fmt)


def _decimal_parts(value: Fraction):
    """(integer mantissa, exponent) with the exponent a multiple of 3 and as large as possible."""
    exp = 0
    num, den = value.numerator, value.denominator
    while den != 1:  # the value is a terminating decimal (at most 9 places)
        num *= 10
        exp -= 1
        g = Fraction(num, den)
        num, den = g.numerator, g.denominator
    if num == 0:
        return 0, 0
    while num % 10 == 0:
        num //= 10
        exp += 1
    while exp % 3 != 0:
        num *= 10
        exp -= 1
    return num, exp


def canonical_string(value: Fraction, fmt: str) -> str:
    """Quantity.CanonicalizeBytes: number and suffix of the canonical form."""
    if value == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 < value < 1024 or value.denominator != 1:
            fmt = "DecimalSI"
    elif fmt not in ("DecimalSI", "DecimalExponent"):
        fmt = "DecimalExponent"
    if fmt == "BinarySI":
        n, e = int(value), 0
        while n % 1024 == 0:
            n //= 1024
            e += 1
        return f"{n}{BIN_BY_EXP.get(e * 10, '')}" if e else f"{n}"
    n, e = _decimal_parts(value)
    if fmt == "DecimalExponent":
        return f"{n}e{e}" if e else f"{n}"
    # DecimalSI: an exponent without a suffix (above E) prints no suffix, as in Go
    return f"{n}{DEC_BY_EXP.get(e, '')}"


def canonical(s) -> str:
    return str(parse_quantity(s))
