"""The configuration files as models: every key checked, every error naming the file and the key,
and docs/CONFIG.md generated from the same models."""
from pathlib import Path

import pytest
import yaml

from hotline.core.config import HotlineFile, SlaFile, reference, validate
from hotline.core.reference import ConfigError
from hotline.core.settings import load_settings
from hotline.core.sla import SlaConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_files_validate():
    validate(HotlineFile, yaml.safe_load((ROOT / "config/hotline.yaml").read_text(encoding="utf-8")), "hotline.yaml")
    validate(SlaFile, yaml.safe_load((ROOT / "config/sla.yaml").read_text(encoding="utf-8")), "sla.yaml")


@pytest.mark.parametrize("doc, message", [
    ({"source": {"kidn": "sql"}}, r"source\.kidn: unknown key \(known: .*kind"),
    ({"source": {"kind": "kafka"}}, r"source\.kind: Input should be 'generator', 'sql' or 'csv'"),
    ({"forecasting": {"horizon": 0}}, r"forecasting\.horizon: Input should be greater than or equal to 1"),
    ({"operations": {"retries": -1}}, r"operations\.retries: Input should be greater than or equal to 0"),
    ({"lookback_days": "a week"}, r"lookback_days: Input should be a valid integer"),
    ({"inhibit_rules": []}, r"inhibit_rules: unknown key \(known: caller_salt, database, "),
])
def test_a_settings_mistake_names_the_file_and_the_key(tmp_path, doc, message):
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{path}: {message}"):
        load_settings(env={"HOTLINE_SETTINGS": str(path), "HOTLINE_CALLER_SALT": "x"})


def test_every_mistake_of_a_file_is_named_at_once(tmp_path):
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump({"databse": "x", "source": {"scale": 0}}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(env={"HOTLINE_SETTINGS": str(path), "HOTLINE_CALLER_SALT": "x"})
    assert "databse: unknown key" in str(err.value) and "source.scale: Input should be greater than 0" in str(err.value)


def test_yaml_numbers_and_dates_that_mean_strings_are_read_as_strings(tmp_path):
    path = tmp_path / "hotline.yaml"
    path.write_text("source:\n  province: 370000\n  anchor: 2026-11-25\n", encoding="utf-8")
    s = load_settings(env={"HOTLINE_SETTINGS": str(path), "HOTLINE_CALLER_SALT": "x"})
    assert s.province == "370000"
    assert validate(HotlineFile, yaml.safe_load(path.read_text()), path).source.anchor == "2026-11-25"


def test_a_sla_section_typo_names_its_key(tmp_path):
    (tmp_path / "sla.yaml").write_text(yaml.safe_dump({"ranking": {"botom": 2}, "trends": {"ratio": 0}}),
                                       encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        SlaConfig.load(tmp_path)
    assert "ranking.botom: unknown key (known: bottom, " in str(err.value)
    assert "trends.ratio: Input should be greater than 0" in str(err.value)


def test_the_config_reference_is_generated_from_the_models_and_current():
    doc = (ROOT / "docs/CONFIG.md").read_text(encoding="utf-8")
    assert doc == reference(), "docs/CONFIG.md is stale: python -m hotline.core.config > docs/CONFIG.md"
    for key in ("`lookback_days`", "`planted_events`", "`daily_deadline`", "`repeat_window_days`", "`cross_city_min`"):
        assert key in doc
