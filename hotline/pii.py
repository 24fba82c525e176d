"""Personal data never stored: masking of free text and salted hashing of caller numbers.

Masking runs before anything is written (tickets, quarantine rows, logs). Patterns cover what
12345 ticket text carries in practice: mobile numbers, landlines with area codes, 18- and 15-digit
resident ID numbers, bank-card-like digit runs and e-mail addresses.
"""
from __future__ import annotations

import hashlib
import re

import pandas as pd

# Order matters: the longest digit patterns first, so an ID number is not half-masked as a phone.
PII_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    ("id_number", re.compile(r"(?<!\d)\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dXx])"), "[身份证号]"),
    ("bank_card", re.compile(r"(?<!\d)\d{16,19}(?!\d)"), "[卡号]"),
    ("id_number_15", re.compile(r"(?<!\d)\d{15}(?!\d)"), "[身份证号]"),
    ("mobile", re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"), "[手机号]"),
    ("landline", re.compile(r"(?<!\d)0\d{2,3}[- ]?\d{7,8}(?!\d)"), "[电话]"),
    ("email", re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[邮箱]"),
]

_ANY_PII = re.compile("|".join(f"(?:{p.pattern})" for _, p, _ in PII_PATTERNS))


def mask_text(text: str | None) -> str | None:
    """Replace every PII match in one string with a bracketed placeholder."""
    if text is None:
        return None
    for _, pattern, repl in PII_PATTERNS:
        text = pattern.sub(repl, text)
    return text


_CANDIDATE = re.compile(r"\d{7}|\d{3,4}[- ]\d{4}|@")


def mask_series(s: pd.Series) -> pd.Series:
    """Vectorised :func:`mask_text` over a string column (None/NaN pass through).

    Only rows with a run of digits or an "@" can hold PII; the patterns run on those alone.
    """
    out = s.astype("string")
    cand = out.str.contains(_CANDIDATE, na=False)
    if cand.any():
        sub = out[cand]
        for _, pattern, repl in PII_PATTERNS:
            sub = sub.str.replace(pattern, repl, regex=True)
        out = out.copy()
        out[cand] = sub
    return out


def contains_pii(text: str | None) -> bool:
    return bool(text) and _ANY_PII.search(text) is not None


def normalise_phone(raw: str) -> str:
    digits = re.sub(r"\D", "", raw)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def caller_key(phone: str | None, salt: str) -> str | None:
    """A stable salted SHA-256 key for a caller's phone number (first 32 hex chars)."""
    if phone is None or phone != phone or str(phone).strip() == "":
        return None
    return hashlib.sha256((salt + normalise_phone(str(phone))).encode()).hexdigest()[:32]


def caller_keys(phones: pd.Series, salt: str) -> pd.Series:
    """Vectorised :func:`caller_key`; hashing distinct numbers only (repeat callers are common)."""
    uniq = pd.unique(phones.dropna())
    sha = hashlib.sha256
    lut = {p: (sha((salt + p).encode()).hexdigest()[:32] if len(p) == 11 and p.isdigit()  # plain mobile
               else caller_key(p, salt)) for p in uniq}
    return phones.map(lut).astype("object").where(phones.notna(), None)


# A caller's name in free text follows a cue ("我叫张三", "联系人：李四", "本人王五"); the name itself
# cannot be told from other words, so outgoing text masks the two or three characters after a cue.
NAME_CUE = re.compile(r"(我叫|我是|本人|姓名|联系人|来电人|市民|反映人)([:：\s]*)([\u4e00-\u9fff]{2,3})")
_NOT_A_NAME = {"反映", "咨询", "投诉", "建议", "居民", "业主", "家长", "租户", "来电", "求助", "市民"}


def _mask_name(m: re.Match[str]) -> str:
    return m.group(0) if m.group(3)[:2] in _NOT_A_NAME else f"{m.group(1)}{m.group(2)}[姓名]"


def mask_outgoing(text: str | None) -> str | None:
    """What may leave the warehouse in a notice: :func:`mask_text` plus callers' names after a cue."""
    if text is None:
        return None
    return NAME_CUE.sub(_mask_name, mask_text(str(text)))
