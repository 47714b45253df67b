"""The CLI as users run it: a real process, its exit status, stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
AS_OF = "2026-11-01T00:00:00Z"


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any kpibot setting or credential, plus ``env``."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KPIBOT_", "SLACK_", "DISCORD_", "ZENDESK_", "STRIPE_", "DELIGHTED_"))
    }
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return full_env


def kpibot(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory where `kpibot demo` has run once."""
    cwd = tmp_path_factory.mktemp("demo")
    done = kpibot("demo", "--seed", "42", "--as-of", "2026-11-01T09:00:00Z", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd


def test_demo_prints_a_digest_alerts_and_an_answer_and_writes_charts(demo_dir: Path) -> None:
    out = kpibot("demo", "--seed", "42", "--as-of", "2026-11-01T09:00:00Z", cwd=demo_dir).stdout
    assert "Morning digest" in out
    assert "NPS" in out and "vs previous period" in out
    assert "🚨 Alert:" in out
    assert "/kpi nps last 30d" in out
    charts = list((demo_dir / "kpibot-charts").glob("*.png"))
    assert charts and all(p.read_bytes().startswith(b"\x89PNG") for p in charts)
    assert (demo_dir / "kpibot.db").exists()


def test_ask_json_is_identical_on_two_runs(demo_dir: Path) -> None:
    runs = [
        kpibot("ask", "nps last 30d", "--json", "--as-of", AS_OF, cwd=demo_dir) for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    answer = json.loads(runs[0].stdout)
    assert answer["kpi"] == "nps" and answer["unit"] == "score"
    assert (
        answer["start"] == "2026-10-02T00:00:00+00:00"
        and answer["end"] == "2026-11-01T00:00:00+00:00"
    )
    assert isinstance(answer["value"], float) and answer["n"] > 100
    assert "previous" not in answer


def test_ask_json_with_a_comparison_and_a_grain(demo_dir: Path) -> None:
    done = kpibot(
        "ask", "frt p90 last 7d by day vs previous", "--json", "--as-of", AS_OF, cwd=demo_dir
    )
    answer = json.loads(done.stdout)
    assert answer["unit"] == "minutes" and "previous" in answer
    assert len(answer["series"]) == 7
    assert all({"key", "value", "n"} <= set(p) for p in answer["series"])


def test_ask_writes_the_chart_where_asked(demo_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "mrr.png"
    done = kpibot("ask", "mrr last 90d", "--chart", str(target), "--as-of", AS_OF, cwd=demo_dir)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes().startswith(b"\x89PNG")
    assert "MRR" in done.stdout


def test_a_malformed_query_exits_2_with_a_suggestion_on_stderr(demo_dir: Path) -> None:
    done = kpibot("ask", "npss last 30d", "--json", cwd=demo_dir)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "nps" in done.stderr.lower()


def test_ask_on_an_unmigrated_database_names_the_fix(tmp_path: Path) -> None:
    done = kpibot("ask", "nps last 30d", cwd=tmp_path)
    assert done.returncode == 3
    assert "kpibot db upgrade" in done.stderr


def test_a_bad_config_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[bot]\nplatfrom = "slack"\n')
    done = kpibot(
        "ask", "nps last 30d", cwd=tmp_path, env={"KPIBOT_CONFIG": str(tmp_path / "bad.toml")}
    )
    assert done.returncode == 3
    assert "bot.platfrom" in done.stderr and "platform" in done.stderr


def test_db_upgrade_then_current(tmp_path: Path) -> None:
    assert "upgraded from empty" in kpibot("db", "upgrade", cwd=tmp_path).stdout
    assert "up to date" in kpibot("db", "upgrade", cwd=tmp_path).stdout
    assert "up to date" in kpibot("db", "current", cwd=tmp_path).stdout


@pytest.mark.parametrize(
    "command", ["demo", "run", "sync", "ask", "digest", "alerts", "serve", "db"]
)
def test_every_command_has_help_with_an_example(command: str, tmp_path: Path) -> None:
    done = kpibot(command, "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "Usage" in done.stdout
    if command != "db":
        assert "Example" in done.stdout


def test_digest_preview_and_alerts(demo_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "kpibot.toml"
    config.write_text(
        """
[[digests]]
name = "support"
channel = "console:main"
kpis = ["frt", "csat"]

[[alerts]]
name = "nps-drop"
query = "nps last 7d"
channel = "console:main"
drops_by = 10
"""
    )
    env = {"KPIBOT_CONFIG": str(config)}
    digest = kpibot("digest", "--as-of", "2026-11-01T09:00:00Z", cwd=demo_dir, env=env)
    assert digest.returncode == 0, digest.stderr
    assert "Support digest" in digest.stdout and "First response time" in digest.stdout
    alerts = kpibot("alerts", "--as-of", "2026-11-01T09:00:00Z", cwd=demo_dir, env=env)
    assert alerts.returncode == 0, alerts.stderr
    assert "nps-drop:" in alerts.stdout
