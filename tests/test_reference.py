"""Reference data: regions, taxonomy and mappings are config, and consistent."""
from hotline.core.reference import load_mapping, load_taxonomy


def test_guangdong_covers_all_four_city_tiers(ref):
    tiers = {c.tier for c in ref.regions.province("440000").cities}
    assert tiers == {"super_large", "large", "medium", "small"}


def test_region_codes_nest_under_their_parents(ref):
    for prov in ref.regions.provinces:
        if prov.sample:
            continue
        for city in prov.cities:
            assert city.code[:2] == prov.code[:2]
            for d in city.districts:
                assert d.code[:4] == city.code[:4], (d.code, city.code)


def test_every_level2_code_has_a_level1_parent_and_department(ref):
    tax = ref.taxonomy
    for code in tax.l2_codes():
        parent = tax.parent(code)
        assert parent in tax.l1_codes()
        assert code.startswith(parent + ".")
        assert tax.categories[code].department
        assert tax.categories[code].deadline in ref.deadlines


def test_every_level1_has_an_other_item_for_level1_only_sources(ref):
    tax = ref.taxonomy
    assert all(f"{c}.other" in tax.categories for c in tax.l1_codes() if c != "other")


def test_nyc_mapping_targets_exist_in_the_taxonomy(ref):
    m = load_mapping("nyc_council")
    targets = set(m["fields"]["category"]["map"].values()) | set(m["fields"]["category"]["detail_map"].values())
    missing = {t for t in targets if t not in ref.taxonomy.categories}
    assert not missing


def test_nyc_borough_codes_are_districts_of_the_sample_city(ref):
    m = load_mapping("nyc_council")
    parents = ref.regions.district_parent()
    assert {parents[c] for c in m["fields"]["district_code"]["map"].values()} == {"900100"}


def test_taxonomy_local_names_are_unique():
    tax = load_taxonomy()
    names = tax.by_local_name()
    assert len(names) == len(tax.l2_codes())
