"""Personal data never stored: masking of free text and salted hashing of caller numbers.

Masking runs before anything is written (tickets, quarantine rows, logs, notices). It covers the
forms 12345 ticket text carries in practice, however they are written:

=================  ===========  =====================================================================
what               placeholder  forms recognised
=================  ===========  =====================================================================
mobile number      [手机号]     13812345678, 138 1234 5678, 138-1234-5678, 138.1234.5678, +86 / 86 /
                                0086 prefix, full-width or mixed-width digits
landline           [电话]       020-12345678, (020)12345678, （020）12345678, 020 1234 5678,
                                0755-8765 4321, 02012345678; a bare 7-8 digit local number after a
                                phone cue; a standalone bare 8-digit local number (rules below)
resident ID        [身份证号]   18 digits (last 0-9/X) with separators or not; 15-digit old IDs
bank card          [卡号]       16-19 digits passing the Luhn checksum, grouped or not
other long number  [号码]       any other run of 15 or more digits (rules below)
e-mail             [邮箱]       a@b.cn, full-width ＠ or ．, spaces around the @
QQ number          [QQ号]       5-12 digits after QQ / qq / ＱＱ / 扣扣 / Q号 (号, colon, space optional)
WeChat id          [微信号]     after 微信 / 微信号 / VX / vx / wx / WeChat: 6-20 letters, digits, _ or -
                                starting with a letter, or a number (e.g. the phone the id is tied to)
licence plate      [车牌号]     粤B12345, 京A·12345, new-energy 粤BD12345 / 粤B12345D, 粤B1234学
person's name      [姓名]       after 我叫 / 我姓 / 本人姓 / 我是 / 本人 / 姓名 / 联系人 / 来电人 /
                                反映人 / 市民 (rules below)
=================  ===========  =====================================================================

How it works. A string is first *normalised for matching*: full-width digits, letters, ＠ ．（）－ ＋,
the ideographic space U+3000 and the other Unicode spaces, dashes and decimal digits become their
ASCII forms. Every one of those replacements is one character for one character, so an index in the
normalised string is the same index in the original: matching runs on the normalised string and the
masked output is built from the *original* string with only the matched spans replaced (text that
is not personal data, full-width punctuation included, is kept exactly).

Digits are read as *runs*: digit groups separated by at most three of space, dot, dash or middle dot
(``·``), or by parentheses around a group (``(020)12345678``), optionally led by ``+`` and ended by
``X``. Within a run, groups are joined left to right into the best-supported reading, in this order
of preference (a longer reading wins among equals):

1. an 18-character ID number (6-digit region starting 1-8, a real birth date 1800-2099, 3 digits and a
   check character) whose GB 11643 checksum is right -> [身份证号];
2. 16-19 digits passing the Luhn checksum -> [卡号];
3. a mobile number (1[3-9] + 9 digits, country code allowed) -> [手机号]; +86 and anything else of
   9-11 digits -> [电话];
4. a landline with its area code (0 + 2-3 digits, then a 7-8 digit local number starting 2-9) ->
   [电话];
5. an ID-shaped 18-character run whose checksum is wrong: ending in X -> [身份证号] (a mistyped ID
   number is still an ID number, and X is only ever an ID's check character); all digits -> Luhn
   valid [卡号] (rule 2), otherwise [号码] (rule 8); a 15-digit old ID (region + real 19YYMMDD birth
   date) -> [身份证号];
6. after a phone cue (电话 / 手机 / 号码 / 座机 / 联系(方式) / 致电 / 拨打 / 打 / 来电 / 热线 / tel): any
   number of 7-12 digits -> [电话] (or [手机号] when it is 11 digits starting 1), a date included:
   "电话20240101" is more likely a number than a date;
7. a *standalone* bare 8-digit local number, without a cue: the whole run is ``dddddddd`` or
   ``dddd dddd`` (any separator), starts 2-8, is not a date YYYYMMDD (1900-2099, a real day), is not
   followed by a unit or counter (元 万 年 号 次 人 米 % ...), and is not preceded by a currency sign
   or an id cue (编号 / 单号 / 工单 / 订单 / 流水 / 第 / No) -> [电话]. Amounts ("12000元"), years,
   dates (20240101, 2024-01-01), times (13:45) and house numbers (88号) are left alone;
8. any other 15 or more digits -> [号码]. A leak is worse than an over-mask: a long digit run that
   is nothing we know is still hidden, under a neutral placeholder.

Joined groups must each have three or more digits (a leading country code excepted), so a date
``2024-01-01`` or a list of small numbers is never glued into a phone number. A run touching ASCII
letters on its left (ticket ids such as GD2024010100123, hashes) is left alone, unless the letters
are a cue (tel, phone, id, no, qq, vx, wx ...); letters on the right rule out readings 4-8 only.

Names. A Chinese name is read as a surname (about 250 common single surnames and the common double
ones 欧阳 司马 诸葛 上官 ...) and one or two given-name characters; the name stops before a known
following word (反映 投诉 咨询 来电 要求 先生 女士 ...; and, after the first given character, one-
character words such as 称 说 家 住 的 在 是), so "本人赵六反映" becomes "本人[姓名]反映" and the verb
survives. "我姓张" masks the surname alone; "市民李女士" masks the surname and keeps 女士. The strong
cues (我叫 姓名 联系人 来电人 反映人) also mask a name whose first character is not a listed surname
(two or three characters, same stops); the weak cues (我是 本人 市民) need a listed surname, so
"我是居民" and "市民反映" are not names. A name followed by an unlisted word can lose that word's first
character ("我叫张三今..." is safe, "我叫张三骑车" becomes "我叫[姓名]车"): the price of not leaking.

``mask_series`` (the ingest hot path) and ``mask_text`` run a cheap prefilter first: a row with no
run of seven or more digits (any script, any width), no QQ / WeChat cue, no @ or ＠, no plate-like
prefix, no name cue followed by a possible name and no character outside the BMP is returned
untouched without further work. ``mask_outgoing`` is ``mask_text``: names are masked at ingest too.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import re
import unicodedata

import pandas as pd


# --------------------------------------------------------------------------- normalisation
def _build_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for cp in range(0x20000):  # every decimal digit (full-width, Arabic-Indic, mathematical, ...)
        ch = chr(cp)
        if not ("0" <= ch <= "9") and unicodedata.category(ch) == "Nd":
            table[ch] = str(unicodedata.digit(ch))
    for cp in list(range(0xFF21, 0xFF3B)) + list(range(0xFF41, 0xFF5B)):  # full-width letters
        table[chr(cp)] = chr(cp - 0xFEE0)
    for ch in "＠﹫":
        table[ch] = "@"
    for ch in "．﹒․":
        table[ch] = "."
    for ch in "－﹣‐‑‒–—―−":
        table[ch] = "-"
    for ch in "・･•":
        table[ch] = "·"
    for ch in "\u3000\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f":
        table[ch] = " "
    table.update({"（": "(", "）": ")", "＋": "+", "＿": "_"})
    return table


def _char_ranges(chars) -> str:
    """The inside of a regular-expression class of these characters, as ranges (sre tests ranges fast)."""
    cps = sorted(ord(c) for c in chars)
    runs, lo, hi = [], cps[0], cps[0]
    for c in cps[1:]:
        if c != hi + 1:
            runs.append((lo, hi))
            lo = c
        hi = c
    runs.append((lo, hi))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in runs)


_TABLE = _build_table()
_BMP_KEYS = [k for k in _TABLE if k <= "\uffff"]
# any character outside the BMP triggers the (cheap) translation: a class of BMP ranges plus one
# astral range is tested fast, a class listing scattered astral digits is not
_TO_NORMALISE = re.compile(f"[{_char_ranges(_BMP_KEYS)}\U00010000-\U0010ffff]")


def _fw(m: re.Match[str]) -> str:
    c = m.group()
    return _TABLE.get(c, c)


def normalise_for_matching(text: str) -> str:
    """Full-width and other look-alike characters to ASCII, one character for one (indices align)."""
    return _TO_NORMALISE.sub(_fw, text) if _TO_NORMALISE.search(text) else text


# --------------------------------------------------------------------------- checksums and dates
def _luhn(d: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(d)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


_GB_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _gb11643_ok(idn: str) -> bool:
    """The check character of an 18-character resident ID number (GB 11643-1999)."""
    s = sum(w * (ord(c) - 48) for w, c in zip(_GB_WEIGHTS, idn))
    return "10X98765432"[s % 11] == idn[17].upper()


def _real_date(y: int, m: int, d: int) -> bool:
    try:
        _dt.date(y, m, d)
    except ValueError:
        return False
    return True


def _date8(d: str) -> bool:
    """YYYYMMDD with a real day in 1900-2099."""
    return d[:2] in ("19", "20") and _real_date(int(d[:4]), int(d[4:6]), int(d[6:8]))


def _id18_shape(idn: str) -> bool:
    return ("1" <= idn[0] <= "8" and idn[6:8] in ("18", "19", "20")
            and _real_date(int(idn[6:10]), int(idn[10:12]), int(idn[12:14])))


def _id15_shape(d: str) -> bool:
    return "1" <= d[0] <= "8" and _real_date(1900 + int(d[6:8]), int(d[8:10]), int(d[10:12]))


# --------------------------------------------------------------------------- vocabulary
_SURNAMES_1 = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔"
    "向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌"
    "毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆司卓古吉缪简车项连麦"
    "褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明"
    "佘池查麻苑迟邝")
_SURNAMES_2 = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "令狐", "慕容", "夏侯", "尉迟", "公孙", "司徒",
               "宇文", "长孙", "南宫", "独孤", "端木", "轩辕", "呼延", "申屠", "钟离", "西门")
_SURNAME_SET = frozenset(_SURNAMES_1)
# surnames that are also everyday words right after a weak cue ("本人于…", "我是江苏人", "市民安全")
_WEAK_AMBIGUOUS = frozenset("于向和安江成文明华时全应常连万单关路车商党古简景师")
_HONORIFICS = frozenset(("先生", "女士", "小姐", "同志", "师傅", "阿姨", "大爷", "大妈", "老师", "同学", "奶奶",
                         "爷爷", "伯伯", "叔叔", "阿婆", "老板", "经理", "主任", "医生", "律师", "夫妇", "一家"))
# words that follow a name: the name stops before them (two characters, checked at every position)
_STOP2 = frozenset((
    "反映", "反应", "投诉", "咨询", "来电", "举报", "求助", "建议", "要求", "希望", "请求", "询问", "表示", "联系",
    "电话", "手机", "号码", "身份", "家住", "住在", "居住", "户籍", "今天", "昨天", "今日", "昨日", "前天", "近期",
    "最近", "目前", "现在", "一直", "多次", "曾经", "因为", "由于", "通过", "此前", "之前", "已经", "拨打", "致电",
    "来自", "位于", "所在", "家属", "本人", "居民", "业主", "租户", "家长", "市民", "称其", "报称", "声称", "诉求",
    "情况", "问题", "小区", "物业", "社区", "街道", "村民", "游客", "网友", "群众", "朋友", "代表", *_HONORIFICS))
# one-character words that follow a name (checked after the first given-name character: 张家豪 stays whole)
_STOP1 = frozenset("称说家住的在是和与及等于对向从给也都就已要想请因现今昨前近曾又还被把将让到去"
                   "为了着过之所不未无没并而但或即则")
_FIRST_STOP = frozenset("某")  # 王某: already anonymous
# two characters right after a cue that are never a name (the pre-existing list, kept and extended)
_NOT_A_NAME = {"反映", "咨询", "投诉", "建议", "居民", "业主", "家长", "租户", "来电", "求助", "市民", "物业", "社区",
               "不详", "未知", "保密", "匿名", "未留", "本人", "电话", "手机", "号码", "游客", "网友", "群众", "朋友",
               "代表", "本地", "外地", "这里", "这个", "一名", "一位", "家属", "村民", "先生", "女士"}
_STRONG_CUES = frozenset(("我叫", "姓名", "联系人", "来电人", "反映人"))
_SURNAME_CUES = frozenset(("我姓", "本人姓"))

_CJK = re.compile(r"[\u4e00-\u9fff]")
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_UNITS = frozenset("元块角分万亿千百年月日号时秒次人户个位名米吨件台辆只条份张页天周岁度平斤克升"
                   "楼室栋层期批笔项套间%％℃")
_LETTER_CUES = frozenset(("tel", "phone", "mobile", "mob", "cell", "fax", "call", "no", "id", "qq", "vx", "wx",
                          "wechat", "weixin", "card", "sfz", "dh", "sj"))
_ID_CUE_BEFORE = re.compile(r"(?:编号|单号|工单|订单|流水|序号|批次|发票|合同|案号|文号|第|No\.?|NO\.?|[¥$￥])"
                            r"[:：#\s号]{0,3}$")

# --------------------------------------------------------------------------- patterns (normalised text)
_SEP = r"[ \t.\-·]{1,3}"
_NUM_SPAN = re.compile(
    rf"\(?\+?[0-9]+\)?(?:(?:{_SEP}|(?<=\))|(?=\())\(?[0-9]+\)?)*(?:[Xx](?![A-Za-z0-9]))?")
_DIGITS = re.compile(r"[0-9]+")
_WX_ID = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{5,19}(?![A-Za-z0-9_\-])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+[ \t]{0,2}@[ \t]{0,2}[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)+")
_LETTERS = re.compile(r"[A-Za-z]+")
_PLATE_TAIL = re.compile(r"[A-Za-z][ ·.\-]?(?:[A-Za-z0-9]{4}[挂学警港澳领]|"
                         r"[A-Za-z0-9]{5,6}(?![A-Za-z0-9])[挂学警港澳]?)")
_PROVINCE_SET = frozenset(_PROVINCES)
_NAME_CUES = "我叫|我姓|本人姓|我是|本人|姓名|联系人|来电人|反映人|市民"
_NAME_AT = re.compile(_NAME_CUES)
# where something can start: a digit, an ASCII letter (e-mail, plate letter, WeChat id, letter cue)
# or the first character of a name cue. Led by one character class, so the scan skips in C.
_START = re.compile(r"[0-9A-Za-z我本姓联来反市]")


def _with_suffixes(bases: tuple[str, ...], suffixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({b + s for b in bases for s in suffixes}, key=len, reverse=True))


# cues read backwards from a number or id, compared in lower case (the longest first; suffixes such
# as 号 / 号码 / ID included)
_QQ_CUES = _with_suffixes(("qq", "扣扣", "q号"), ("", "号", "号码"))
_WX_CUES = _with_suffixes(("微信", "威信", "v信", "vx", "wx", "wechat", "weixin"),
                          ("", "号", "号码", "账号", "id", " id"))
_PHONE_CUES = ("联系电话", "联系方式", "电话号码", "手机号码", "电话", "手机号", "手机", "号码", "座机", "联系",
               "致电", "拨打", "打", "来电", "热线", "tel", "phone")
_CUE_SKIP = frozenset(" \t:：.")
_GLUED_WX_CUES = ("wechat", "weixin", "vx", "wx")


def _cue_before(norm: str, a: int) -> str | None:
    """'qq', 'wx' or 'phone' when a cue ends right before position a (a colon, 是/为, spaces between)."""
    k = a
    lo = max(0, a - 3)
    while k > lo and norm[k - 1] in _CUE_SKIP:
        k -= 1
    if k > 0 and norm[k - 1] in "是为":
        k -= 1
        lo = max(0, k - 3)
        while k > lo and norm[k - 1] in _CUE_SKIP:
            k -= 1
    window = norm[max(0, k - 10):k].lower()
    for kind, cues in (("qq", _QQ_CUES), ("wx", _WX_CUES), ("phone", _PHONE_CUES)):
        if window.endswith(cues):
            cue = next(c for c in cues if window.endswith(c))
            s = k - len(cue)
            if cue[0].isascii() and s > 0 and norm[s - 1].isascii() and norm[s - 1].isalpha():
                continue  # "Hotel" is no "tel"
            return kind
    return None


# --------------------------------------------------------------------------- prefilter (raw text)
_PRE_SEPS = "".join(sorted({" ", "\t", ".", "-", "·", "(", ")"} | {k for k, v in _TABLE.items() if v in " .-·()"}))
# every decimal digit of the BMP; a character outside it (astral digits such as 𝟏 or 𐒠) makes a row a
# candidate through _ASTRAL: one class mixing both would lose sre's fast BMP character-set test
_D = _char_ranges("0123456789" + "".join(k for k in _BMP_KEYS if _TABLE[k].isdigit()))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_FIRST_NAME_CHARS = _SURNAMES_1 + "".join(s[0] for s in _SURNAMES_2)
_STOP_LOOKAHEAD = "|".join(sorted(_NOT_A_NAME | {"反映", "咨询", "投诉", "来电", "称"}))
_PREFILTER = re.compile(
    rf"[{_D}@＠﹫QqＱｑ扣微威VvWwＶｖＷｗ{_PROVINCES}我姓联来反本市]"
    rf"(?:(?<=[{_D}])(?:[{re.escape(_PRE_SEPS)}]{{0,5}}[{_D}]){{6}}"
    r"|(?<=[@＠﹫])"
    r"|(?<=[QqＱｑ])[QqＱｑ号]|(?<=扣)扣"
    r"|(?<=[微威])信|(?<=[VvＶｖ])[XxＸｘ信]|(?<=[WwＷｗ])[XxＸｘEeＥｅ]"
    rf"|(?<=[{_PROVINCES}])[A-Za-zＡ-Ｚａ-ｚ]"
    rf"|(?:(?<=我)叫|(?<=我)姓|(?<=姓)名|(?<=联)系人|(?<=来)电人|(?<=反)映人)[:：\s]{{0,3}}(?!{_STOP_LOOKAHEAD})[\u4e00-\u9fff]"
    rf"|(?:(?<=我)是|(?<=本)人|(?<=市)民)[:：\s]{{0,3}}(?:姓|[{_FIRST_NAME_CHARS}])"
    r")"
)


def _candidate(text: str) -> bool:
    """Whether ``text`` can hold anything :func:`mask_text` masks (a superset: false alarms only cost time)."""
    return _PREFILTER.search(text) is not None or _ASTRAL.search(text) is not None


# --------------------------------------------------------------------------- number runs
def _letters_before_ok(norm: str, start: int) -> bool:
    """ASCII letters glued to the left of a number (ticket ids, hashes) rule it out, unless a cue."""
    if start == 0 or not (norm[start - 1].isascii() and norm[start - 1].isalpha()):
        return True
    k = start - 1
    while k > 0 and norm[k - 1].isascii() and norm[k - 1].isalpha():
        k -= 1
    return norm[k:start].lower() in _LETTER_CUES


def _classify(norm: str, digits: str, lens: list[int], start: int, plus: bool, end: int, has_x: bool,
              cue: bool, whole: bool) -> tuple[int, str, int] | None:
    """The best reading of one stretch of digit groups: (preference, placeholder, end) or None."""
    n = len(digits)
    after = end + 1 if has_x else end
    right_letter = after < len(norm) and norm[after].isascii() and norm[after].isalpha() and norm[after] not in "Xx"
    multi = len(lens) > 1
    country = digits.startswith("0086") or (digits.startswith("86") and (plus or n == 13))
    cc_len = (4 if digits.startswith("0086") else 2) if country else 0
    tail_lens = lens[1:] if country and lens[0] == cc_len else lens
    groups_ok = not multi or min(tail_lens, default=3) >= (2 if plus else 3)

    best: tuple[int, str, int] | None = None

    def offer(pref: int, ph: str, e: int = end) -> None:
        nonlocal best
        if best is None or pref < best[0]:
            best = (pref, ph, e)

    # 1 / 5: 18-character ID numbers
    idn = digits + "X" if (n == 17 and has_x) else (digits if n == 18 and not has_x else None)
    if idn and _id18_shape(idn):
        if _gb11643_ok(idn):
            offer(1, "[身份证号]", after)
        elif has_x and groups_ok:
            offer(5, "[身份证号]", after)
    if not groups_ok:
        return best
    # 2: bank cards (never followed by an ID's X)
    if 16 <= n <= 19 and not has_x and _luhn(digits):
        offer(2, "[卡号]")
    # 3: mobiles (a country code allowed), other numbers with +86
    body = digits[cc_len:] if country else digits
    if len(body) == 11 and body[0] == "1" and body[1] in "3456789":
        offer(3, "[手机号]")
    elif country and 9 <= len(body) <= 11:
        offer(3, "[电话]")
    if right_letter:
        return best
    # 4: landlines with an area code
    if digits[0] == "0" and 10 <= n <= 12:
        for area in (3, 4):
            local = digits[area:]
            if 7 <= len(local) <= 8 and local[0] in "23456789":
                offer(4, "[电话]")
                break
    # 5: 15-digit old ID numbers
    if n == 15 and _id15_shape(digits):
        offer(5, "[身份证号]")
    # 6: after a phone cue
    if cue and n <= 12:
        offer(6, "[手机号]" if n == 11 and digits[0] == "1" else "[电话]")
    # 7: a standalone 8-digit local number
    if (whole and not has_x and n == 8 and lens in ([8], [4, 4]) and digits[0] in "2345678"
            and not _date8(digits) and not (after < len(norm) and norm[after] in _UNITS)
            and not _ID_CUE_BEFORE.search(norm, max(0, start - 6), start)):
        offer(7, "[电话]")
    # 8: anything else that long
    if n >= 15:
        offer(8, "[号码]", after)
    return best


def _numbers(norm: str, a: int, spans: list[tuple[int, int, str]], cue: bool = False) -> int:
    """Mask the digit run starting at ``a`` (its groups joined into the best readings); returns its end."""
    sm = _NUM_SPAN.match(norm, a)
    if sm is None:
        return a + 1
    b = sm.end()
    groups = [(g.start(), g.end()) for g in _DIGITS.finditer(norm, a, b)]
    ng = len(groups)
    lens = [e - s for s, e in groups]
    cum = [0]
    for ln in lens:
        cum.append(cum[-1] + ln)
    if cum[-1] < 7:  # nothing we mask is shorter (QQ numbers are read after their cue)
        return b
    x_end = b - 1 if norm[b - 1] in "Xx" else -1
    i = 0
    while i < ng:
        best = None
        # the stretch's left edge: its '+', and an area code's '(' when more groups follow
        start = groups[i][0]
        plus = start > a and norm[start - 1] == "+"
        if plus:
            start -= 1
        # "(020)12345678": the area code's parentheses go with it when more groups follow
        paren = start > a and norm[start - 1] == "(" and norm[groups[i][1]:groups[i][1] + 1] == ")"
        if _letters_before_ok(norm, start - paren):
            for j in range(min(ng, i + 7), i, -1):
                if cum[j] - cum[i] < 7:
                    break
                st = start - 1 if paren and j - i > 1 else start
                end = groups[j - 1][1]
                digits = "".join([norm[s:e] for s, e in groups[i:j]])
                r = _classify(norm, digits, lens[i:j], st, plus, end, end == x_end,
                              cue and i == 0, i == 0 and j == ng)
                if r is not None and (best is None or r[0] < best[0][0]):
                    best = (r, j, st)
        if best is None:
            i += 1
            continue
        (_, ph, e), j, st = best
        spans.append((st, e, ph))
        i = j
    return b


# --------------------------------------------------------------------------- the scan
def _qq_or_wx_number(norm: str, a: int, spans: list, placeholder: str, max_digits: int) -> int | None:
    sm = _NUM_SPAN.match(norm, a)
    if sm is None:
        return None
    nd = sum(c.isdigit() for c in sm.group())
    if 5 <= nd <= max_digits and norm[sm.end() - 1] not in "Xx" and "@" not in norm[sm.end():sm.end() + 3]:
        spans.append((a, sm.end(), placeholder))
        return sm.end()
    return None


def _digit_atom(norm: str, p: int, spans: list) -> int:
    a = p
    if a > 0 and norm[a - 1] == "+":
        a -= 1
    if a > 0 and norm[a - 1] == "(":
        a -= 1
    kind = _cue_before(norm, a)
    if kind == "qq":
        end = _qq_or_wx_number(norm, a, spans, "[QQ号]", 12)
        if end is not None:
            return end
    elif kind == "wx":
        end = _qq_or_wx_number(norm, a, spans, "[微信号]", 13)
        if end is not None:
            return end
    return max(_numbers(norm, a, spans, cue=kind == "phone"), p + 1)


def _ascii_atom(norm: str, p: int, spans: list) -> int:
    em = _EMAIL.match(norm, p)
    if em is not None:
        spans.append((p, em.end(), "[邮箱]"))
        return em.end()
    if norm[p] <= "9":
        return _digit_atom(norm, p, spans)
    if p > 0 and norm[p - 1] in _PROVINCE_SET:
        pm = _PLATE_TAIL.match(norm, p)
        if pm is not None and sum(c.isdigit() for c in pm.group()) >= 3:
            spans.append((p - 1, pm.end(), "[车牌号]"))
            return pm.end()
    if _cue_before(norm, p) == "wx":
        wm = _WX_ID.match(norm, p)
        if wm is not None and "@" not in norm[wm.end():wm.end() + 3]:
            spans.append((p, wm.end(), "[微信号]"))
            return wm.end()
    end = _LETTERS.match(norm, p).end()
    # a WeChat cue glued to the id ("vxzhang88", "wxid_k9a8b7"): the cue stays, the id goes
    low = norm[p:end].lower()
    for cue in _GLUED_WX_CUES:
        if low.startswith(cue) and (p == 0 or not (norm[p - 1].isascii() and norm[p - 1].isalnum())):
            wm = _WX_ID.match(norm, p + len(cue))
            if wm is not None and "@" not in norm[wm.end():wm.end() + 3]:
                spans.append((p + len(cue), wm.end(), "[微信号]"))
                return wm.end()
    # any other letters (a cue word such as tel / QQ / vx is read backwards from what follows it)
    return end


def _given(norm: str, q: int, maxlen: int, stop1_first: bool) -> int:
    """How many characters from q form (the rest of) a name, stopping before a following word."""
    k = 0
    while k < maxlen and q + k < len(norm):
        c = norm[q + k]
        if not ("\u4e00" <= c <= "\u9fff") or norm[q + k:q + k + 2] in _STOP2 or c in _FIRST_STOP:
            break
        if (k > 0 or stop1_first) and c in _STOP1:
            break
        k += 1
    return k


def _name_atom(norm: str, p: int, spans: list) -> int:
    m = _NAME_AT.match(norm, p)
    if m is None:
        return p + 1
    cue = m.group()
    p = m.end()
    q = p
    while q < len(norm) and q - p < 3 and norm[q] in ":： \t":
        q += 1
    if cue in ("姓名", "联系人", "来电人", "反映人") and norm[q:q + 1] in ("是", "为"):
        q += 1
        while q < len(norm) and norm[q] in ":： \t":
            q += 1
    if norm[q:q + 2] in _NOT_A_NAME:
        return p
    surname = 2 if norm[q:q + 2] in _SURNAMES_2 else (1 if norm[q:q + 1] in _SURNAME_SET else 0)
    if cue in _SURNAME_CUES:
        n = surname or (1 if _CJK.match(norm, q) else 0)
        if n:
            spans.append((q, q + n, "[姓名]"))
        return q + n if n else p
    strong = cue in _STRONG_CUES
    if surname and (strong or surname == 2 or norm[q] not in _WEAK_AMBIGUOUS):
        g = q + surname
        k = _given(norm, g, 2, False)
        if k or strong or norm[g:g + 2] in _HONORIFICS:
            spans.append((q, g + k, "[姓名]"))
            return g + k
        return p
    if strong:
        k = _given(norm, q, 3, True)
        if k >= 2:
            spans.append((q, q + k, "[姓名]"))
            return q + k
    return p


def _mask(text: str) -> str:
    norm = normalise_for_matching(text)
    spans: list[tuple[int, int, str]] = []
    pos = 0
    start = _START.search
    while (m := start(norm, pos)) is not None:
        p = m.start()
        pos = _ascii_atom(norm, p, spans) if norm[p] < "\x80" else _name_atom(norm, p, spans)
    if not spans:
        return text
    out = []
    last = 0
    for s, e, ph in spans:
        if s < last:  # spans only move forward; never emit an overlap
            continue
        out.append(text[last:s])
        out.append(ph)
        last = e
    out.append(text[last:])
    return "".join(out)


# --------------------------------------------------------------------------- public API
def mask_text(text: str | None) -> str | None:
    """Replace every piece of personal data in one string with a bracketed placeholder."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    return _mask(text) if _candidate(text) else text


def mask_series(s: pd.Series) -> pd.Series:
    """Vectorised :func:`mask_text` over a string column (None/NaN pass through).

    A cheap prefilter (one regular expression led by a character class, so the scan skips in C to
    the few characters that can open personal data) picks the rows that can hold any; only those
    are masked, in one pass each.
    """
    out = s.astype("string")
    vals = out.to_numpy(dtype=object, na_value=None)
    pre, astral = _PREFILTER.search, _ASTRAL.search
    cand = [i for i, v in enumerate(vals) if v is not None and (pre(v) is not None or astral(v) is not None)]
    if cand:
        out = out.copy()
        out.iloc[cand] = [_mask(vals[i]) for i in cand]
    return out


def contains_pii(text: str | None) -> bool:
    """Whether :func:`mask_text` would change anything in ``text``."""
    if not text:
        return False
    text = str(text)
    return _candidate(text) and _mask(text) != text


def normalise_phone(raw: str) -> str:
    digits = re.sub(r"\D", "", normalise_for_matching(raw))
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    elif digits.startswith("0086") and len(digits) == 15:
        digits = digits[4:]
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
    lut = {p: (sha((salt + p).encode()).hexdigest()[:32] if len(p) == 11 and p.isdigit() and p.isascii()  # plain mobile
               else caller_key(p, salt)) for p in uniq}
    return phones.map(lut).astype("object").where(phones.notna(), None)


# A caller's name in free text follows a cue ("我叫张三", "联系人：李四", "本人王五"); where the name
# ends is decided by :func:`_name_atom` (surname list, following words), not by this pattern.
NAME_CUE = re.compile(rf"({_NAME_CUES})([:：\s]*)([\u4e00-\u9fff]{{1,3}})")


def mask_outgoing(text: str | None) -> str | None:
    """What may leave the warehouse in a notice: :func:`mask_text` (names included since it masks
    them at ingest too; kept as its own name for the callers that send text out)."""
    if text is None:
        return None
    return mask_text(str(text))


# --------------------------------------------------------------------------- documented patterns
# Raw-text approximations of the formats above, each a subset of what mask_text masks (so masked
# text never matches them). The data-quality suite checks stored content against "mobile" and
# "id_number"; masking itself is mask_text.
_S = r"[ \u3000.．\-－·]"
PII_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    ("id_number", re.compile(
        rf"(?<![\dA-Za-z])\d{{6}}{_S}?(?:18|19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]){_S}?\d{{3}}[\dXx](?![\dA-Za-z])"),
     "[身份证号]"),
    ("bank_card", re.compile(rf"(?<![\dA-Za-z])\d{{4}}(?:{_S}?\d{{4}}){{3}}(?:{_S}?\d{{3}})?(?![\dA-Za-z])"), "[卡号]"),
    ("id_number_15", re.compile(r"(?<![\dA-Za-z])[1-8]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}"
                                r"(?![\dA-Za-z])"),
     "[身份证号]"),
    ("mobile", re.compile(rf"(?<![\dA-Za-z])(?:[+＋]86{_S}?)?1[3-9]\d(?:{_S}?\d{{4}}){{2}}(?!\d)"), "[手机号]"),
    ("landline", re.compile(rf"(?<![\dA-Za-z])(?:[(（]0\d{{2,3}}[)）]|0\d{{2,3}}{_S}?)[2-9]\d{{2,3}}{_S}?\d{{4}}"
                            r"(?![\dA-Za-z])"), "[电话]"),
    ("email", re.compile(r"[A-Za-z0-9._%+\-]+\s?[@＠﹫]\s?[A-Za-z0-9\-]+(?:[.．][A-Za-z0-9\-]+)+"), "[邮箱]"),
    ("qq", re.compile(r"(?:[QqＱｑ]{2}|扣扣|[QqＱｑ]号)(?:号码|号)?[:：]?\s?\d{5,11}(?!\d)"), "[QQ号]"),
    ("wechat", re.compile(r"(?:微信|[VvＶｖ][XxＸｘ]|[WwＷｗ][XxＸｘ]|WeChat)(?:号)?[:：]?\s?"
                          r"[A-Za-z][A-Za-z0-9_\-]{5,19}(?![A-Za-z0-9_\-])"),
     "[微信号]"),
    ("plate", re.compile(rf"[{_PROVINCES}][A-Z]·?(?:[DF]\d{{5}}|\d{{5}}[DF]?)(?![A-Za-z0-9])"), "[车牌号]"),
]
