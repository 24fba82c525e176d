"""A realistic, deterministic 12345 ticket generator: the demo data and the test fixture."""
from generator.province import ProvinceGenerator  # noqa: F401
