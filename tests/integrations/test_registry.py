"""The source registry: every connector module is listed, and settings switch sources on."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import timedelta

import pytest
from sqlalchemy import Engine

import integrations
from bot.settings import load_settings
from integrations.registry import SOURCES, build_connector, enabled_sources, sync_sources
from integrations.zendesk import ZendeskConnector
from tests.fakes.delighted import FakeDelighted
from tests.fakes.stripe import FakeStripe
from tests.fakes.zendesk import T0, FakeZendesk


def _connector_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(integrations.__path__):
        module = importlib.import_module(f"integrations.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and obj.__module__ == module.__name__
                and callable(getattr(obj, "pages", None))
                and callable(getattr(obj, "map", None))
                and isinstance(getattr(obj, "streams", None), tuple)
            ):
                found[f"{module.__name__}.{obj.__name__}"] = obj
    return found


def test_every_connector_module_is_in_the_registry() -> None:
    listed = {s.connector for s in SOURCES.values()}
    missing = [name for name, cls in _connector_classes().items() if cls not in listed]
    assert not missing, f"add these to integrations.registry.SOURCES: {missing}"
    assert integrations.SOURCES is SOURCES


def test_every_registered_source_is_switched_on_by_its_environment() -> None:
    from bot.settings import SOURCE_ENV

    assert set(SOURCES) - {"demo"} == set(SOURCE_ENV)


def test_sources_are_enabled_by_credentials_and_the_demo_only_without_them() -> None:
    assert enabled_sources(load_settings({}, config_path=None)) == ["demo"]
    settings = load_settings({"STRIPE_API_KEY": "sk_test_x", "DELIGHTED_API_KEY": "k"})
    assert enabled_sources(settings) == ["stripe", "delighted"]


def test_the_configured_lookback_widens_the_streams(tmp_path: pytest.TempPathFactory) -> None:
    config = tmp_path / "kpibot.toml"  # type: ignore[operator]
    config.write_text("[sources.stripe]\nlookback_minutes = 90\n")
    settings = load_settings({"STRIPE_API_KEY": "sk_test_x"}, config_path=config)
    connector = build_connector("stripe", settings)
    connector.close()
    assert {s.lookback for s in connector.streams} == {timedelta(minutes=90)}


def test_the_configured_export_rate_paces_zendesk(tmp_path: pytest.TempPathFactory) -> None:
    env = {"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_EMAIL": "a@example.com", "ZENDESK_API_TOKEN": "t"}
    default = build_connector("zendesk", load_settings(env, config_path=None))
    default.close()
    assert (
        isinstance(default, ZendeskConnector)
        and default.export_pacer is not None
        and default.export_pacer.interval == 6.0
    )
    config = tmp_path / "kpibot.toml"  # type: ignore[operator]
    config.write_text("[sources.zendesk]\nexport_requests_per_minute = 30\n")  # High Volume
    connector = build_connector("zendesk", load_settings(env, config_path=config))
    connector.close()
    assert (
        isinstance(connector, ZendeskConnector)
        and connector.export_pacer is not None
        and connector.export_pacer.interval == 2.0
    )


def test_sync_sources_syncs_every_configured_source_from_the_environment(
    sqlite_engine: Engine,
) -> None:
    zd = FakeZendesk(email="a@example.com", token="zd-token-registry").start()
    st = FakeStripe(api_key="sk_test_registry01").start()
    dl = FakeDelighted(api_key="dl-key-registry").start()
    try:
        zd.put_ticket(1, updated_at=T0)
        st.add_customer("cus_1")
        dl.put_response(1, survey_type="nps", score=10, updated_at=T0)
        settings = load_settings(
            {
                "ZENDESK_SUBDOMAIN": "acme",
                "ZENDESK_EMAIL": "a@example.com",
                "ZENDESK_API_TOKEN": "zd-token-registry",
                "ZENDESK_BASE_URL": zd.url,
                "STRIPE_API_KEY": "sk_test_registry01",
                "STRIPE_BASE_URL": st.url,
                "DELIGHTED_API_KEY": "dl-key-registry",
                "DELIGHTED_BASE_URL": dl.url,
            }
        )
        reports = sync_sources(sqlite_engine, settings)
    finally:
        for fake in (zd, st, dl):
            fake.stop()
    assert [(r.source, r.stream) for r in reports] == [
        ("zendesk", "tickets"),
        ("zendesk", "satisfaction_ratings"),
        ("stripe", "events"),
        ("stripe", "customers"),
        ("stripe", "subscriptions"),
        ("stripe", "invoices"),
        ("delighted", "survey_responses"),
    ]
    assert all(r.error is None for r in reports)
    assert sum(r.inserted for r in reports) == 3
