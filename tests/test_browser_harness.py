"""The headless-Chromium harness (tests/browser.py): DOM, CJK font check, screenshot.

Needs Debian's chromium and fonts-noto-cjk (`make browser`); without them these tests fail with
that hint, they never skip.
"""
from __future__ import annotations

import subprocess

import pytest
from PIL import Image

from tests.browser import BrowserError, Chromium, artifact_dir, cjk_fonts

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>浏览器测试</title></head>
<body>
<h1>中文标题 12345热线</h1>
<p id="latin" style="font-family: 'DejaVu Sans', sans-serif">Latin only 12345</p>
<svg xmlns="http://www.w3.org/2000/svg" width="360" height="60">
  <rect width="360" height="60" fill="#dde8f5"/>
  <text id="svg-title" x="10" y="40" font-size="24">工单数量趋势图</text>
</svg>
</body></html>
"""


def _write_page(tmp_path, html=PAGE):
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")
    return page.as_uri()


def _families(fonts):
    return sorted({f["familyName"] for f in fonts})


@pytest.mark.browser
def test_chinese_page_dom_fonts_and_screenshot(tmp_path):
    url = _write_page(tmp_path)
    assert url.startswith("file://")
    with Chromium(width=1280, height=720) as browser:
        browser.open(url)
        assert browser.evaluate("document.querySelector('h1').textContent") == "中文标题 12345热线"
        assert browser.evaluate("document.title") == "浏览器测试"

        h1 = browser.platform_fonts("h1")
        assert cjk_fonts(h1), f"<h1> not drawn with a CJK font (tofu? run `make browser`): {h1}"
        svg = browser.platform_fonts("#svg-title")
        assert cjk_fonts(svg), f"SVG <text> not drawn with a CJK font (tofu? run `make browser`): {svg}"
        assert sum(f["glyphCount"] for f in cjk_fonts(svg)) >= 7  # 工单数量趋势图

        # Negative control: Latin-only text in a Latin font reports no CJK face.
        latin = browser.platform_fonts("#latin")
        assert latin and not cjk_fonts(latin), latin

        shot = browser.screenshot(artifact_dir() / "browser_harness.png")

    assert shot.is_file()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as img:
        assert img.size == (1280, 720), img.size  # page shorter than the viewport
        lo_hi = img.convert("RGB").getextrema()
    assert any(lo != hi for lo, hi in lo_hi), f"screenshot is one flat colour: {lo_hi}"


@pytest.mark.browser
def test_tofu_is_detected_when_no_cjk_font_is_visible(tmp_path):
    """The check can fail: the same page under a fontconfig that sees only non-CJK fonts.

    The Chinese glyphs then come out as tofu boxes drawn by a Latin font, which
    getPlatformFontsForNode still counts as glyphs (glyphCount > 0) but with no CJK family.
    """
    files = subprocess.run(["fc-list", "-f", "%{file}\n"], capture_output=True, text=True, check=True)
    cjk = subprocess.run(["fc-list", "-f", "%{file}\n", ":lang=zh"], capture_output=True, text=True,
                         check=True)
    latin_files = sorted(set(files.stdout.split()) - set(cjk.stdout.split()))
    assert latin_files, "no non-CJK font installed for the negative control"
    fonts_dir = tmp_path / "fonts"
    fonts_dir.mkdir()
    for i, path in enumerate(latin_files):
        (fonts_dir / f"{i}-{path.rsplit('/', 1)[-1]}").symlink_to(path)
    conf = tmp_path / "fonts.conf"
    conf.write_text(f"""<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>{fonts_dir}</dir><cachedir>{tmp_path / "fc-cache"}</cachedir></fontconfig>
""")

    with Chromium(width=800, height=300, env={"FONTCONFIG_FILE": str(conf)}) as browser:
        browser.open(_write_page(tmp_path))
        h1 = browser.platform_fonts("h1")
        svg = browser.platform_fonts("#svg-title")
        browser.screenshot(artifact_dir() / "browser_harness_tofu.png")
    assert h1 and sum(f["glyphCount"] for f in h1) > 0, h1
    assert not cjk_fonts(h1), f"expected tofu, got CJK faces: {_families(h1)}"
    assert not cjk_fonts(svg), f"expected tofu, got CJK faces: {_families(svg)}"


def test_missing_chromium_fails_with_make_browser_hint(tmp_path):
    with pytest.raises(BrowserError, match="make browser"):
        with Chromium(binary=str(tmp_path / "no-chromium")):
            pass
