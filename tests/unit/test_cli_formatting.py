"""Docker-style output helpers: sizes, durations, tables, --format json and Go templates."""
from __future__ import annotations

import json

import pytest

from nbcontainer.cli import formatting as f
from nbcontainer.errors import InvalidArgument


@pytest.mark.parametrize("size, text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (1_234_567, "1.23MB"),
                                        (4_260_000, "4.26MB"), (72_800_000, "72.8MB"), (1_500_000_000, "1.5GB")])
def test_human_size_is_docker_decimal(size, text):
    assert f.human_size(size) == text


@pytest.mark.parametrize("seconds, text", [(0.2, "Less than a second"), (1, "1 second"), (45, "45 seconds"),
                                           (61, "About a minute"), (600, "10 minutes"), (3700, "About an hour"),
                                           (7200, "2 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
                                           (100 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_human_duration(seconds, text):
    assert f.human_duration(seconds) == text


def test_ago_and_times():
    assert f.ago(1000, now=1000 + 7200) == "2 hours ago"
    assert f.ago("2024-01-01T00:00:00.123456789Z", now=f.parse_time("2024-01-01T00:00:10Z")) == "9 seconds ago"
    assert f.ago("0001-01-01T00:00:00Z") == ""
    assert f.docker_time(0) == ""
    assert f.docker_time(1_700_000_000) == "2023-11-14 22:13:20 +0000 UTC"
    assert f.parse_time("2024-01-01T02:00:00+02:00") == f.parse_time("2024-01-01T00:00:00Z")


def test_ellipsis_and_quote_like_docker_ps():
    cmd = "sh -c 'sleep 1000; echo done'"
    assert f.go_quote(f.ellipsis(cmd, 20)) == "\"sh -c 'sleep 1000; …\""
    assert len(f.ellipsis(cmd, 20)) == 20
    assert f.go_quote('echo "x"') == '"echo \\"x\\""'
    assert f.short_id("sha256:" + "a" * 64) == "a" * 12
    assert f.short_id("sha256:" + "a" * 64, trunc=False) == "sha256:" + "a" * 64


def test_table_pads_columns_three_spaces():
    text = f.table(["A", "LONG HEADER", "Z"], [["xx", "1", "end"], ["y", "a much longer cell", ""]])
    assert text.splitlines() == ["A         LONG HEADER          Z", "xx        1                    end",
                                 "y         a much longer cell"]


ROWS = [{"ID": "abc", "Names": "web", "Labels": {"k": "v"}, "State": "running"},
        {"ID": "def", "Names": "db", "Labels": {}, "State": "exited"}]


def test_format_rows_json_and_templates():
    cols = [("CONTAINER ID", "ID"), ("NAMES", "Names")]
    assert [json.loads(l)["ID"] for l in f.format_rows("json", ROWS, cols).splitlines()] == ["abc", "def"]
    assert f.format_rows("{{.ID}}: {{.Names}}", ROWS, cols) == "abc: web\ndef: db"
    assert f.format_rows("{{json .Labels}}", ROWS, cols).splitlines()[0] == '{"k":"v"}'
    assert f.format_rows('{{index .Labels "k"}}', ROWS[:1], cols) == "v"
    assert f.format_rows("{{upper .State}}", ROWS[:1], cols) == "RUNNING"
    assert f.format_rows("table {{.ID}}\\t{{.Names}}", ROWS, cols).splitlines() == [
        "CONTAINER ID   NAMES", "abc            web", "def            db"]
    assert f.format_rows("table {{.State}}", ROWS, cols).splitlines()[0] == "STATE"
    assert f.format_rows(None, ROWS, cols, quiet_field="ID", quiet=True) == "abc\ndef"
    assert f.format_rows(None, [], cols) == "CONTAINER ID   NAMES"


def test_template_errors_name_the_action():
    with pytest.raises(InvalidArgument, match="Nope"):
        f.render_template("{{.Nope}}", {"ID": 1})
    with pytest.raises(InvalidArgument, match="range"):
        f.render_template("{{range .X}}", {"X": []})


def test_format_objects_for_inspect():
    objs = [{"Id": "x", "State": {"Status": "running", "Running": True}}]
    assert json.loads(f.format_objects(None, objs)) == objs
    assert f.format_objects(None, objs).startswith("[\n    {")
    assert f.format_objects("{{.State.Status}} {{.State.Running}}", objs) == "running true"
    assert f.format_objects("{{json .State}}", objs) == '{"Status":"running","Running":true}'
