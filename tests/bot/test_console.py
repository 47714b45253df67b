"""`kpibot run` on the console, as a person uses it: a real process, lines on stdin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bot.test_cli import ROOT, kpibot


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    assert kpibot("db", "upgrade", cwd=tmp_path).returncode == 0
    return tmp_path


def test_run_answers_a_typed_query_writes_its_chart_and_stops_on_ctrl_c(migrated: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KPIBOT_", "SLACK_", "DISCORD_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=migrated,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        _converse(proc, migrated)


def _converse(proc: subprocess.Popen[str], migrated: Path) -> None:
    try:
        assert proc.stdin is not None and proc.stdout is not None
        # The schedule syncs the demo source at start; wait for it before asking.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if kpibot("ask", "csat last 7d", "--json", cwd=migrated).stdout.find('"n": 0') == -1:
                break
            time.sleep(0.5)
        proc.stdin.write("/kpi csat last 7d\n")
        proc.stdin.flush()
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "chart:" in line:
                break
        out = "".join(lines)
        assert "CSAT" in out
        chart = Path(migrated) / out.split("chart:")[1].strip()
        assert chart.read_bytes().startswith(b"\x89PNG")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = kpibot("run", cwd=tmp_path)
    assert done.returncode == 3
    assert "kpibot db upgrade" in done.stderr
