"""Dockerfile parser conformance against BuildKit's corpus in ../shared/conformance/dockerfile.

* every positive case: ``dump(parse(Dockerfile)) == result`` byte for byte, in process
  and through ``python -m nbcontainer.dockerfile --dump``;
* every negative case: a parse error (BuildError naming the file);
* line-info: exact start/end lines of the file and of each instruction;
* shell/envVarTest and shell/wordsTest: expansion and word-splitting tables.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nbcontainer.dockerfile import DockerfileParseError, Lex, ShellExpansionError, dump, parse
from nbcontainer.errors import BuildError

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "dockerfile"
REPO = Path(__file__).resolve().parents[2]


def _require_corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    return CORPUS


def _cases(kind: str) -> list[str]:
    d = CORPUS / kind
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


POSITIVE = _cases("positive")
NEGATIVE = _cases("negative")


def test_corpus_present_and_complete():
    base = _require_corpus()
    assert len(POSITIVE) >= 30, POSITIVE
    assert len(NEGATIVE) >= 4, NEGATIVE
    for name in POSITIVE:
        assert (base / "positive" / name / "result").is_file(), name


@pytest.mark.parametrize("case", POSITIVE)
def test_positive_dump_matches_result(case):
    base = _require_corpus() / "positive" / case
    expected = (base / "result").read_bytes()
    result = parse((base / "Dockerfile").read_bytes())
    got = dump(result.ast).encode("utf-8", "surrogateescape")
    assert got == expected


@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_raises(case):
    base = _require_corpus() / "negative" / case
    with pytest.raises(BuildError) as exc:
        parse((base / "Dockerfile").read_bytes(), filename=f"{case}/Dockerfile")
    assert isinstance(exc.value, DockerfileParseError)
    assert str(exc.value).startswith(f"{case}/Dockerfile")


def test_negative_messages_name_the_line():
    base = _require_corpus() / "negative"
    with pytest.raises(DockerfileParseError) as exc:
        parse((base / "env_no_value" / "Dockerfile").read_bytes())
    assert exc.value.line == 3
    assert str(exc.value) == "Dockerfile:3: ENV must have two arguments"
    with pytest.raises(DockerfileParseError) as exc:
        parse((base / "shykes-nested-json" / "Dockerfile").read_bytes())
    assert exc.value.line == 1 and "comprised of strings only" in str(exc.value)
    with pytest.raises(DockerfileParseError, match="file with no instructions"):
        parse((base / "only_comments" / "Dockerfile").read_bytes())


def test_line_info():
    base = _require_corpus()
    result = parse((base / "line-info" / "Dockerfile").read_bytes())
    root = result.ast
    assert (root.start_line, root.end_line) == (5, 31)
    assert [(c.start_line, c.end_line) for c in root.children] == [(5, 5), (11, 12), (17, 31)]
    assert [c.value for c in root.children] == ["FROM", "ENV", "RUN"]


def test_cli_dump_matches_result_for_every_positive_case():
    base = _require_corpus() / "positive"
    mismatched = []
    for case in POSITIVE:
        proc = subprocess.run([sys.executable, "-m", "nbcontainer.dockerfile", "--dump", str(base / case / "Dockerfile")],
                              capture_output=True, cwd=REPO, timeout=60)
        if proc.returncode != 0 or proc.stdout != (base / case / "result").read_bytes():
            mismatched.append(case)
    assert mismatched == []


def test_cli_dump_error_exit_1_one_line_naming_file_and_line(tmp_path):
    _require_corpus()
    bad = CORPUS / "negative" / "env_no_value" / "Dockerfile"
    proc = subprocess.run([sys.executable, "-m", "nbcontainer.dockerfile", "--dump", str(bad)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{bad}:3:" in lines[0] and "ENV must have two arguments" in lines[0]


# -- shell/ tables -------------------------------------------------------------------

ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_rows() -> list[tuple[int, str, str]]:
    f = CORPUS / "shell" / "envVarTest"
    if not f.is_file():
        return []
    rows = []
    for num, line in enumerate(f.read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (x.strip() for x in line.strip().split("|"))
        assert platform in ("A", "U", "W"), f"bad platform tag at line {num}"
        if platform == "W":
            continue  # Windows-only rows (case-insensitive names); we are a Linux builder
        rows.append((num, source, expected))
    return rows


ENV_VAR_ROWS = _env_var_rows()


@pytest.mark.parametrize("num,source,expected", ENV_VAR_ROWS, ids=[f"line{r[0]}" for r in ENV_VAR_ROWS])
def test_shell_env_var_table(num, source, expected):
    _require_corpus()
    lex = Lex("\\")
    if expected == "error":
        with pytest.raises(ShellExpansionError):
            lex.process_word(source, ENV_VAR_ENV)
    else:
        assert lex.process_word(source, ENV_VAR_ENV) == expected


def _words_rows() -> list[tuple[int, str, dict[str, str], list[str]]]:
    f = CORPUS / "shell" / "wordsTest"
    if not f.is_file():
        return []
    env: dict[str, str] = {}
    rows = []
    for num, line in enumerate(f.read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#") or not line:
            continue
        if line.startswith("ENV "):
            name, _, value = line[3:].lstrip(" ").partition("=")
            env[name] = value  # trailing spaces are significant
            continue
        left, right = line.split("|")
        rows.append((num, left.strip(), dict(env), right.lstrip(" ").split(",")))
    return rows


WORDS_ROWS = _words_rows()


@pytest.mark.parametrize("num,source,env,expected", WORDS_ROWS, ids=[f"line{r[0]}" for r in WORDS_ROWS])
def test_shell_words_table(num, source, env, expected):
    _require_corpus()
    lex = Lex("\\")
    try:
        got = lex.process_words(source, env)
    except ShellExpansionError:
        got = ["error"]
    assert got == expected


def test_tables_were_read():
    _require_corpus()
    assert len(ENV_VAR_ROWS) > 200
    assert len(WORDS_ROWS) > 20
    assert any(e == "error" for _, _, e in ENV_VAR_ROWS)
