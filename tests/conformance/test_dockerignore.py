""".dockerignore conformance: the tables of ../shared/conformance/dockerfile/DOCKERIGNORE_CASES.md.

The markdown is parsed here: each table row gives pattern(s), a path and the expected
outcome (excluded / not excluded / error); the end-to-end bullet gives a context, an
ignore file and the files that must survive.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nbcontainer.dockerfile.dockerignore import DockerIgnore, clean_path, read_dockerignore
from nbcontainer.errors import InvalidArgument

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "dockerfile"
CASES_MD = CORPUS / "DOCKERIGNORE_CASES.md"
_TICKS = re.compile(r"`([^`]*)`")


def _rows() -> list[tuple[str, list[str], str, str, list[str]]]:
    """(case id, patterns, path, expected, extra error patterns) for every table row."""
    if not CASES_MD.is_file():
        return []
    rows = []
    for line in CASES_MD.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|(.*)\|\s*$", line)
        if not m:
            continue
        cells = [c.strip() for c in m.group(2).split("|")]
        patterns = _TICKS.findall(cells[0])
        path_cell = cells[1]
        path = _TICKS.findall(path_cell)[0] if "`" in path_cell else "any/path"
        outcome = cells[2]
        if outcome.startswith("not excluded"):
            expected = "not excluded"
        elif outcome.startswith("excluded"):
            expected = "excluded"
        elif outcome.startswith("error"):
            expected = "error"
        else:
            raise AssertionError(f"unreadable outcome in row {m.group(1)}: {outcome!r}")
        extra = _TICKS.findall(cells[3]) if expected == "error" and len(cells) > 3 else []
        rows.append((m.group(1), patterns, path, expected, extra))
    return rows


ROWS = _rows()


def _require():
    if not CASES_MD.is_file():
        pytest.skip(f"DOCKERIGNORE_CASES.md not found at {CASES_MD}")


def test_tables_were_read():
    _require()
    assert len(ROWS) >= 25
    assert {r[3] for r in ROWS} == {"excluded", "not excluded", "error"}


@pytest.mark.parametrize("case,patterns,path,expected,extra", ROWS, ids=[f"case{r[0]}" for r in ROWS])
def test_case(case, patterns, path, expected, extra):
    _require()
    assert patterns, f"case {case} has no patterns"
    if expected == "error":
        for bad in patterns + extra:
            with pytest.raises(InvalidArgument):
                DockerIgnore([bad]).matches(path)
        return
    assert DockerIgnore(patterns).matches(path) is (expected == "excluded")


def test_end_to_end_context_filtering():
    _require()
    text = CASES_MD.read_text(encoding="utf-8")
    m = re.search(r"Context files\s+`([^`]*)`,\s+with\s+the\s+ignore\s+file\s+(.*?)\.\s+After", text, re.S)
    keep = re.search(r"\*\*only\*\*\s+`([^`]*)`\s+and\s+`([^`]*)`", text)
    if not m or not keep:
        pytest.skip("end-to-end bullet not found in DOCKERIGNORE_CASES.md")
    files = m.group(1).split()
    ignore_lines = _TICKS.findall(m.group(2))
    ign = DockerIgnore.from_text("\n".join(ignore_lines) + "\n")
    assert sorted(ign.filter(files)) == sorted(keep.groups())


def test_bare_exclamation_is_an_error():
    _require()
    assert read_dockerignore("!\n") == ["!"]
    with pytest.raises(InvalidArgument, match="illegal exclusion pattern"):
        DockerIgnore.from_text("!\n")


def test_reading_rules():
    # restated from the "Reading the file" section
    text = "\ufeff# comment\n  #not-a-comment\n\n/test2\n! /inverted/abs/path\na/./b/../c\r\n  spaced  \n"
    assert read_dockerignore(text.encode()) == ["#not-a-comment", "test2", "!inverted/abs/path", "a/c", "spaced"]


def test_clean_path():
    assert clean_path("a/./b/../c") == "a/c"
    assert clean_path("/../x") == "/x"
    assert clean_path("../../x/") == "../../x"
    assert clean_path("") == "."


def test_excluded_dirs_optimisation():
    ign = DockerIgnore(["node_modules", "build", "!build/keep.txt"])
    assert ign.excluded_dirs("node_modules") is True
    assert ign.excluded_dirs("build") is False  # an exception may re-include something inside
    assert ign.excluded_dirs("src") is False
    assert DockerIgnore(["*", "!*.md"]).excluded_dirs("docs") is False


def test_per_dockerfile_ignore_file_takes_priority(tmp_path):
    from nbcontainer.dockerfile.dockerignore import load_dockerignore

    (tmp_path / ".dockerignore").write_text("*.log\n")
    assert load_dockerignore(str(tmp_path), str(tmp_path / "Dockerfile2")).matches("a.log")
    (tmp_path / "Dockerfile2.dockerignore").write_text("*.tmp\n")
    ign = load_dockerignore(str(tmp_path), str(tmp_path / "Dockerfile2"))
    assert ign.matches("a.tmp") and not ign.matches("a.log")
    assert not load_dockerignore(str(tmp_path / "missing")).matches("a.log")
