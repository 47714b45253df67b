"""CSV import: documented columns, line-numbered errors, idempotent re-import, dry run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from integrations.csv_import import import_events, import_surveys
from metrics.schema import SurveyResponse, UsageEvent

SURVEYS = """kind,score,responded_at,customer_id,comment
nps,9,2026-03-01T10:00:00Z,cus_1,"Great, really"
csat,4,2026-03-01T11:30:00+01:00,cus_2,
ces,6,2026-03-02 09:30,cus_1,
nps,9,2026-03-01T10:00:00Z,cus_1,"Great, really"
"""


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_surveys_import_and_reimport_is_harmless(tmp_path: Path, engine: Engine) -> None:
    path = write(tmp_path, SURVEYS)
    report = import_surveys(engine, path)
    assert report.ok and report.written
    assert (report.rows, report.counts.inserted) == (4, 4)  # the identical row is kept twice
    again = import_surveys(engine, path)
    assert (again.counts.inserted, again.counts.updated, again.counts.unchanged) == (0, 0, 4)
    assert count(engine, SurveyResponse) == 4
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                SurveyResponse.kind, SurveyResponse.scale_max, SurveyResponse.responded_at
            ).order_by(SurveyResponse.responded_at)
        ).all()
    assert [(k, s) for k, s, _ in rows] == [("nps", 10), ("nps", 10), ("csat", 5), ("ces", 7)]
    assert rows[2][2] == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)  # +01:00 converted
    assert rows[3][2] == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # no zone: UTC


def test_a_time_without_a_zone_is_read_in_the_given_zone(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    path = write(tmp_path, "kind,score,responded_at\nnps,10,2026-07-01 12:00\n")
    import_surveys(sqlite_engine, path, timezone=ZoneInfo("Europe/Warsaw"))
    with sqlite_engine.connect() as conn:
        at = conn.execute(select(SurveyResponse.responded_at)).scalar_one()
    assert at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_errors_name_their_lines_and_nothing_is_imported(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    text = (
        "kind,score,responded_at\n"
        "nps,9,2026-03-01T10:00:00Z\n"
        "nps,11,2026-03-01T10:00:00Z\n"
        "ces,4,yesterday\n"
        "\n"
        "mood,3,2026-03-01T10:00:00Z\n"
        "ces,3,2026-03-01T10:00:00Z,extra\n"
        "csat,,2026-03-01T10:00:00Z\n"
    )
    report = import_surveys(sqlite_engine, write(tmp_path, text))
    assert not report.ok and not report.written
    assert [str(e) for e in report.errors] == [
        "line 3: nps score 11 is outside 0–10",
        "line 4: responded_at 'yesterday' is not an ISO 8601 time",
        "line 6: kind 'mood' is not nps, csat or ces",
        "line 7: 4 fields, the header has 3",
        "line 8: score is empty",
    ]
    assert count(sqlite_engine, SurveyResponse) == 0
    assert "nothing imported" in report.summary()
    skipped = import_surveys(sqlite_engine, write(tmp_path, text), skip_invalid=True)
    assert skipped.written and skipped.counts.inserted == 1


def test_ces_on_another_scale_is_refused(tmp_path: Path, sqlite_engine: Engine) -> None:
    report = import_surveys(
        sqlite_engine, write(tmp_path, "kind,score,scale_max,responded_at\nces,4,5,2026-03-01\n")
    )
    assert [str(e) for e in report.errors] == [
        "line 2: ces scores are whole numbers from 1 to 7, not on a 1–5 scale"
    ]


def test_fractional_scores_are_refused_with_their_line(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    text = (
        "kind,score,scale_max,responded_at\n"
        "nps,9.5,,2026-03-01\n"
        "csat,4.5,,2026-03-01\n"
        "ces,6.25,,2026-03-01\n"
        "csat,0.5,1,2026-03-01\n"
        "nps,9.0,,2026-03-01\n"
    )
    report = import_surveys(sqlite_engine, write(tmp_path, text))
    assert [str(e) for e in report.errors] == [
        "line 2: nps score 9.5 is not a whole number: nps scores are whole numbers from 0 to 10",
        "line 3: csat score 4.5 is not a whole number: csat scores are whole numbers from 1 "
        "to 5 (or 0 and 1 with scale_max 1)",
        "line 4: ces score 6.25 is not a whole number: ces scores are whole numbers from 1 to 7",
        "line 5: csat score 0.5 is not a whole number: csat scores are whole numbers from 1 "
        "to 5 (or 0 and 1 with scale_max 1)",
    ]
    assert count(sqlite_engine, SurveyResponse) == 0
    skipped = import_surveys(sqlite_engine, write(tmp_path, text), skip_invalid=True)
    assert skipped.counts.inserted == 1  # 9.0, as a spreadsheet writes 9, is whole


def test_unknown_or_missing_columns_are_an_error_on_line_one(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    report = import_surveys(sqlite_engine, write(tmp_path, "kind,scroe,responded_at\n"))
    (error,) = report.errors
    assert error.line == 1
    assert "missing column(s) score" in error.message
    assert "unknown column(s) scroe" in error.message


def test_a_dry_run_counts_but_writes_nothing(tmp_path: Path, sqlite_engine: Engine) -> None:
    report = import_surveys(sqlite_engine, write(tmp_path, SURVEYS), dry_run=True)
    assert report.ok and not report.written and report.counts.inserted == 4
    assert "would import 4 new" in report.summary()
    assert count(sqlite_engine, SurveyResponse) == 0


def test_rows_with_ids_are_corrected_by_reimporting(tmp_path: Path, sqlite_engine: Engine) -> None:
    import_surveys(
        sqlite_engine, write(tmp_path, "id,kind,score,responded_at\nr1,nps,3,2026-03-01\n")
    )
    report = import_surveys(
        sqlite_engine, write(tmp_path, "id,kind,score,responded_at\nr1,nps,8,2026-03-01\n")
    )
    assert (report.counts.inserted, report.counts.updated) == (0, 1)
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(SurveyResponse.id, SurveyResponse.score)).one() == (
            "csv-r1",
            8.0,
        )


def test_semicolon_files_with_a_bom_and_decimal_commas_work(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffKind;Score;Responded_At\ncsat;4,0;2026-03-01\ncsat;4,5;2026-03-02\n".encode()
    )
    report = import_surveys(sqlite_engine, path, skip_invalid=True)
    assert report.counts.inserted == 1  # 4,0 is 4
    assert [e.line for e in report.errors] == [3]  # 4,5 is read as 4.5: not a whole number


def test_usage_events_import_idempotently(tmp_path: Path, engine: Engine) -> None:
    text = (
        "user_id,event,occurred_at,account_id\n"
        "u1,login,2026-03-01T08:00:00Z,cus_1\n"
        "u2,report_exported,2026-03-01T09:00:00Z,\n"
        "u1,,2026-03-01T10:00:00Z,cus_1\n"
    )
    report = import_events(engine, write(tmp_path, text), skip_invalid=True)
    assert [str(e) for e in report.errors] == ["line 4: event is empty"]
    assert report.counts.inserted == 2
    assert import_events(engine, write(tmp_path, text), skip_invalid=True).counts.inserted == 0
    assert count(engine, UsageEvent) == 2
