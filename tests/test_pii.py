"""Personal data is masked before storage; caller numbers become salted keys."""
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.pii import (
    NAME_CUE,
    PII_PATTERNS,
    caller_key,
    caller_keys,
    contains_pii,
    mask_outgoing,
    mask_series,
    mask_text,
)

mobiles = st.from_regex(r"1[3-9]\d{9}", fullmatch=True)
id_numbers = st.builds(
    lambda area, y, m, d, seq, check: f"{area}{y}{m:02d}{d:02d}{seq:03d}{check}",
    st.from_regex(r"[1-6]\d{5}", fullmatch=True), st.integers(1930, 2020), st.integers(1, 12),
    st.integers(1, 28), st.integers(0, 999), st.sampled_from(list("0123456789X")))
cjk_text = st.text(alphabet=st.sampled_from(list("市民反映小区停车难请尽快处理，。")), max_size=30)


def test_mask_replaces_phone_id_landline_and_email():
    raw = "来电人13812345678，身份证440106199001011234，座机020-83456789，邮箱a.b@example.com"
    out = mask_text(raw)
    assert "13812345678" not in out and "440106199001011234" not in out
    assert "83456789" not in out and "example.com" not in out
    assert out.count("[") == 4


@settings(max_examples=200, deadline=None)
@given(before=cjk_text, pii=st.one_of(mobiles, id_numbers), after=cjk_text)
def test_no_phone_or_id_number_survives_masking(before, pii, after):
    masked = mask_series(pd.Series([before + pii + after])).iloc[0]
    assert pii not in masked
    assert not contains_pii(masked)


def test_text_without_pii_is_left_alone():
    s = pd.Series(["小区3号楼电梯坏了", None, "2024年7月停水"])
    out = mask_series(s)
    assert out.iloc[0] == "小区3号楼电梯坏了" and pd.isna(out.iloc[1]) and out.iloc[2] == "2024年7月停水"


def test_caller_key_is_stable_salted_and_ignores_formatting():
    assert caller_key("138-1234-5678", "s1") == caller_key("+86 13812345678", "s1")
    assert caller_key("13812345678", "s1") != caller_key("13812345678", "s2")
    assert "13812345678" not in caller_key("13812345678", "s1")
    keys = caller_keys(pd.Series(["13812345678", None, "13812345678"]), "s1")
    assert keys.iloc[0] == keys.iloc[2] and keys.iloc[1] is None


def test_names_are_masked_in_stored_text_and_outgoing_text_alike():
    # mask_outgoing used to eat the verb after a two-character name ("本人[姓名]映")
    assert mask_text("本人赵六反映小区停水") == "本人[姓名]反映小区停水"
    assert mask_outgoing("本人赵六反映小区停水") == "本人[姓名]反映小区停水"
    assert mask_outgoing("我叫王小明，电话13812345678") == "我叫[姓名]，电话[手机号]"
    assert mask_outgoing("我是居民，市民反映") == "我是居民，市民反映"
    assert mask_outgoing(None) is None and NAME_CUE.search("联系人：张三").group(1) == "联系人"


def test_documented_patterns_match_plain_forms_and_never_masked_text():
    """data_quality checks stored content against PII_PATTERNS' mobile and id_number patterns."""
    pats = {name: p for name, p, _ in PII_PATTERNS}
    assert {"mobile", "id_number", "landline", "email", "bank_card"} <= set(pats)
    raw = {"mobile": "电话138 1234 5678", "id_number": "身份证440106199001011235",
           "landline": "座机(020)83456789", "email": "邮箱a@b.cn", "bank_card": "卡号6222 0212 3456 7890 128"}
    for name, text in raw.items():
        assert pats[name].search(text), name
        assert not any(p.search(mask_text(text)) for p in pats.values()), name
