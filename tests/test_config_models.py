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


def test_a_database_password_in_the_settings_file_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump({"source": {"kind": "sql", "url": "mysql+pymysql://reader:S3cret-pw@db/tickets",
                                               "table": "t"}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"source\.url: Value error, a password in a settings file; put the database "
                                          r"in an Airflow connection \(source\.conn_id, default hotline_source") as err:
        load_settings(env={"HOTLINE_SETTINGS": str(path), "HOTLINE_CALLER_SALT": "x"})
    assert "S3cret-pw" not in str(err.value)
    path.write_text(yaml.safe_dump({"source": {"kind": "sql", "url": "mysql+pymysql://reader@db/tickets",
                                               "table": "t"}}), encoding="utf-8")
    assert load_settings(env={"HOTLINE_SETTINGS": str(path), "HOTLINE_CALLER_SALT": "x"}).source["table"] == "t"


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


def _dq_policy(tmp_path, edit) -> Path:
    doc = yaml.safe_load((ROOT / "config/data_quality.yaml").read_text(encoding="utf-8"))
    edit(doc)
    (tmp_path / "data_quality.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return tmp_path


def test_the_data_quality_policy_ships_valid_and_a_tier_reads_as_the_defaults_with_its_overrides():
    from data_quality.policy import load_policy, policy_for

    policy = load_policy(ROOT / "config")
    small = policy_for(policy, "small")["feed_health"]
    assert small["city_volume"] == {"low": 0.35, "high": 3.0, "action": "halt", "min_expected": 15}
    assert policy_for(policy)["feed_health"]["city_volume"]["low"] == 0.5  # the defaults are not changed


@pytest.mark.parametrize("edit, message", [
    # a typo in a tier's override used to leave the check at its default without a word
    (lambda d: d["tiers"]["small"]["feed_health"]["city_volume"].update(lo=0.2),
     r"tiers\.small: feed_health\.city_volume\.lo: unknown key \(known: action, high, low, min_expected, tail\)"),
    (lambda d: d["defaults"]["feed_health"]["silent"].update(city="stop"),
     r"defaults\.feed_health\.silent\.city: Input should be 'continue', 'warn' or 'halt'"),
    (lambda d: d["defaults"]["tickets_batch"]["failed_share"].update(halt=5),
     r"defaults\.tickets_batch\.failed_share\.halt: Input should be less than or equal to 1"),
    (lambda d: d["defaults"].update(feed_helth=d["defaults"].pop("feed_health")),
     r"defaults\.feed_health: Field required .*defaults\.feed_helth: unknown key"),
    (lambda d: d["cities"].update({"440300": "halt"}), r"cities\.440300: Input should be a valid dictionary"),
])
def test_a_data_quality_policy_mistake_names_the_file_and_the_key(tmp_path, edit, message):
    from data_quality.policy import load_policy

    folder = _dq_policy(tmp_path, edit)
    with pytest.raises(ConfigError, match=f"{folder / 'data_quality.yaml'}: {message}"):
        load_policy(folder)


@pytest.mark.parametrize("edit, message", [
    # an export's mapping is written by hand for each source: a typo used to surface, if at all,
    # as every row quarantined, or a field silently read another way
    (lambda d: d["fields"]["closed_at"].update(optinal=True),
     r"fields\.closed_at\.optinal: unknown key \(known: closed_if, codes, column, "),
    (lambda d: d["fields"].update(recieved_at=d["fields"].pop("received_at")),
     r"fields\.recieved_at: unknown key; Input should be 'ticket_id', 'received_at', "),
    (lambda d: d["fields"]["category"].update(unmapped="kept"), r"fields\.category\.unmapped: Input should be"),
    (lambda d: d.update(timezone="America/NewYork"), r"timezone: unknown time zone 'America/NewYork'"),
    (lambda d: d["fields"].pop("ticket_id"), r"fields: ticket_id missing"),
])
def test_a_mapping_mistake_names_the_file_and_the_key(tmp_path, edit, message):
    from hotline.core.reference import load_mapping

    doc = yaml.safe_load((ROOT / "config/mappings/nyc_council.yaml").read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{path}: {message}"):
        load_mapping(str(path))


def test_the_shipped_mappings_validate():
    from hotline.core.reference import load_mapping

    for path in sorted((ROOT / "config/mappings").glob("*.yaml")):
        assert load_mapping(path.stem)["fields"]["ticket_id"]["column"]
