"""Fake phone numbers that are valid numbers of real countries (phonenumbers' metadata), keyed and reproducible."""

from __future__ import annotations

import hashlib
import random

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

# Every calling code phonenumbers knows (1, 32, 352, ...): the prefix of an international number
# that names its country. Codes are prefix-free, so at most one matches a number's first digits.
CALLING_CODES: tuple[int, ...] = tuple(sorted(c for c, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
                                              if regions and regions[0] != "001"))
FALLBACK_CODE = 1
MAX_POOL = 20000


def _example(region: str) -> phonenumbers.PhoneNumber | None:
    for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        number = phonenumbers.example_number_for_type(region, kind)
        if number is not None:
            return number
    return None


def phone_pool(calling_code: int, size: int, key: str) -> list[tuple[str, str]]:
    """Up to `size` distinct valid numbers of `calling_code`'s main country as (international, E.164),
    the same list for the same key. Numbers keep the example number's first digits (a real mobile or
    area prefix) and get random others, kept only when phonenumbers says the number is valid."""
    region = phonenumbers.region_code_for_country_code(calling_code)
    example = _example(region) if region not in ("ZZ", "001") else None
    if example is None:
        return []
    nsn = phonenumbers.national_significant_number(example)
    keep = max(1, min(3, len(nsn) - 5))
    seed = hashlib.sha256(f"{key}\x1fphone-pool\x1f{calling_code}".encode()).digest()
    rng = random.Random(seed)
    out: dict[str, str] = {}
    for _attempt in range(size * 20):
        if len(out) >= size:
            break
        digits = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
        number = phonenumbers.PhoneNumber(country_code=calling_code, national_number=int(digits))
        if example.italian_leading_zero:
            number.italian_leading_zero = True
        if not phonenumbers.is_valid_number(number):
            continue
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        out.setdefault(e164, phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL))
    return [(intl, e164) for e164, intl in out.items()]


def pools(needed: dict[int, int], key: str) -> dict[int, list[tuple[str, str]]]:
    """A pool per calling code seen in the source (twice as many numbers as it has distinct ones, rounded up
    to a power of two so that a few more or fewer numbers keep the same pool and the same picks; at least
    16, at most MAX_POOL); codes phonenumbers cannot generate for borrow the fallback code's pool."""
    out: dict[int, list[tuple[str, str]]] = {}
    for code, count in sorted(needed.items()):
        pool = phone_pool(code, pool_size(count), key)
        if len(pool) >= 2:
            out[code] = pool
    if FALLBACK_CODE not in out:
        out[FALLBACK_CODE] = phone_pool(FALLBACK_CODE, pool_size(sum(needed.values())), key)
    return out


def pool_size(count: int) -> int:
    return min(MAX_POOL, max(16, 1 << (2 * max(count, 1) - 1).bit_length()))


__all__ = ["CALLING_CODES", "FALLBACK_CODE", "phone_pool", "pool_size", "pools"]
