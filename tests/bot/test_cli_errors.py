"""What the CLI says when something around it is wrong: one line, the right exit status."""

from __future__ import annotations

from pathlib import Path

from tests.bot.test_cli import kpibot


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://postgres:hunter2secret@127.0.0.1:9/test"
    done = kpibot("ask", "nps last 30d", cwd=tmp_path, env={"KPIBOT_DATABASE_URL": url})
    assert done.returncode == 3
    assert "cannot open the database" in done.stderr and "KPIBOT_DATABASE_URL" in done.stderr
    assert "hunter2secret" not in done.stderr
    assert "Traceback" not in done.stderr


def test_ask_list_and_help_answer_without_a_database(tmp_path: Path) -> None:
    listed = kpibot("ask", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "nps" in listed.stdout and "mrr_movements" in listed.stdout
    helped = kpibot("ask", "help frt", cwd=tmp_path)
    assert helped.returncode == 0 and "p90" in helped.stdout


def test_a_chart_path_in_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    kpibot("db", "upgrade", cwd=tmp_path)
    done = kpibot("ask", "nps last 30d", "--chart", str(tmp_path / "nope" / "x.png"), cwd=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_post_to_an_unconfigured_platform_fails_and_records_nothing(tmp_path: Path) -> None:
    kpibot("db", "upgrade", cwd=tmp_path)
    config = tmp_path / "kpibot.toml"
    config.write_text(
        '[[digests]]\nname = "morning"\nchannel = "slack:C0SUPPORT"\nkpis = ["nps"]\n'
    )
    env = {"KPIBOT_CONFIG": str(config)}
    done = kpibot("digest", "--post", cwd=tmp_path, env=env)
    assert done.returncode == 3
    assert "slack is not configured" in done.stderr and "SLACK_BOT_TOKEN" in done.stderr


def test_a_channel_without_a_platform_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.toml"
    config.write_text('[[digests]]\nname = "morning"\nchannel = "nowhere"\n')
    done = kpibot("ask", "nps", cwd=tmp_path, env={"KPIBOT_CONFIG": str(config)})
    assert done.returncode == 3 and "digests[0].channel" in done.stderr


def test_db_current_exits_3_until_upgraded(tmp_path: Path) -> None:
    assert kpibot("db", "current", cwd=tmp_path).returncode == 3
    kpibot("db", "upgrade", cwd=tmp_path)
    assert kpibot("db", "current", cwd=tmp_path).returncode == 0


def test_the_demo_source_stays_off_once_a_team_imported_its_own_data(tmp_path: Path) -> None:
    kpibot("db", "upgrade", cwd=tmp_path)
    csv = tmp_path / "s.csv"
    csv.write_text("kind,score,responded_at\nnps,9,2026-11-02T10:00:00Z\n")
    assert kpibot("import", "surveys", str(csv), cwd=tmp_path).returncode == 0
    done = kpibot("sync", "--source", "demo", cwd=tmp_path)
    assert done.returncode == 2 and "not configured" in done.stderr
