"""Which KPIs may be shown in which channel (revenue only in #finance, say).

Rules come from ``[permissions]`` in the TOML config, keyed by channel id. An entry lists
KPI names, aliases or groups to ``allow`` and to ``deny``; deny wins. Groups follow the
tables a KPI reads, so a new revenue KPI is covered by ``"revenue"`` without a config change.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.settings import ChannelPermissions, PermissionsConfig

# Warehouse table → permission group.
TABLE_GROUPS = {
    "subscriptions": "revenue",
    "subscription_items": "revenue",
    "subscription_periods": "revenue",
    "invoices": "revenue",
    "tickets": "support",
    "survey_responses": "satisfaction",
    "usage_events": "product",
    "customers": "customers",
}
GROUPS = sorted(set(TABLE_GROUPS.values()))


def kpi_groups(tables: Iterable[str]) -> set[str]:
    return {TABLE_GROUPS.get(t, t) for t in tables}


class Permissions:
    def __init__(self, config: PermissionsConfig) -> None:
        self.config = config

    def rules_for(self, channel_id: str) -> ChannelPermissions:
        return self.config.channels.get(channel_id, self.config.default)

    def allows(
        self, channel_id: str, kpi: str, aliases: Iterable[str], tables: Iterable[str]
    ) -> bool:
        rules = self.rules_for(channel_id)
        named = {kpi, *aliases}
        groups = kpi_groups(tables)
        if (named | groups) & set(rules.deny) or "*" in rules.deny:
            return False
        if "*" in rules.allow or named & set(rules.allow):
            return True
        # Allowed by group only when every kind of data it shows is allowed there.
        shown = groups - {"customers"}
        return bool(shown) and shown <= set(rules.allow)

    def allowed_channels(self) -> list[str]:
        return sorted(self.config.channels)
