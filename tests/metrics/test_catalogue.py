"""The catalogue's own checks: every declared KPI is tested, documented and well formed."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrics import KPIS, get_kpi, help_text, kpi_list, parse_query
from metrics.result import UNITS
from metrics.schema import WAREHOUSE_TABLES
from tests.metrics import (
    test_health,
    test_product,
    test_revenue,
    test_satisfaction,
    test_support,
)
from tests.metrics.helpers import COVERED

TEST_MODULES = (test_health, test_product, test_revenue, test_satisfaction, test_support)
README = Path(__file__).parents[2] / "metrics" / "README.md"


def test_every_kpi_has_a_hand_computed_test() -> None:
    assert TEST_MODULES  # importing them fills COVERED
    missing = [k.name for k in KPIS if k.name not in COVERED]
    assert not missing, f"KPIs without a hand-computed test (@covers): {missing}"
    unknown = sorted(set(COVERED) - {k.name for k in KPIS})
    assert not unknown, f"@covers names no declared KPI: {unknown}"


def test_every_kpi_is_in_the_users_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [k.name for k in KPIS if f"`{k.name}`" not in text]
    assert not missing, f"KPIs missing from metrics/README.md: {missing}"


@pytest.mark.parametrize("kpi", KPIS, ids=lambda k: k.name)
def test_every_declaration_is_well_formed(kpi: object) -> None:
    from metrics.registry import CURRENCY, KPI

    assert isinstance(kpi, KPI)
    assert kpi.unit in UNITS or kpi.unit == CURRENCY
    tables = {t.__tablename__ for t in WAREHOUSE_TABLES}
    assert set(kpi.sources) <= tables
    assert kpi.description and len(kpi.description) <= 90
    assert get_kpi(kpi.name) is kpi
    assert all(get_kpi(alias) is kpi for alias in kpi.aliases)
    example = parse_query(kpi.example)
    assert example.kpi == kpi.name
    assert parse_query(str(example)) == example
    assert kpi.name in kpi_list()
    assert kpi.title in help_text(kpi.name)
