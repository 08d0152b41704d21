"""Dockerfile lexing details not covered by the conformance corpus (FORMAT.md "code only" rules)."""
from __future__ import annotations

import pytest

from nbcontainer.dockerfile import DockerfileParseError, Lex, ShellExpansionError, dump, parse
from nbcontainer.dockerfile._text import go_quote


def d(text) -> str:
    return dump(parse(text).ast)


def test_keyword_lowercased_and_unknown_instruction_keeps_one_empty_node():
    assert d("Run echo\nFOO bar baz\n") == '(run "echo")\n(foo "")\n'


def test_onbuild_nests_flags_inside():
    assert d("ONBUILD COPY --from=x a b\nONBUILD\n") == '(onbuild (copy ["--from=x"] "a" "b"))\n(onbuild)\n'


def test_flags_quotes_removed_and_escapes_applied():
    assert d('COPY --x="a b" --y=\'c\' --z=d\\ e src dst\n') == '(copy ["--x=a b" "--y=c" "--z=d e"] "src" "dst")\n'


def test_bom_crlf_and_directives():
    text = b"\xef\xbb\xbf# syntax=docker/dockerfile:1\r\n# escape=`\r\nFROM x\r\nRUN a `\r\n  b\r\n"
    res = parse(text)
    assert res.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert res.escape_token == "`"
    assert dump(res.ast) == '(from "x")\n(run "a   b")\n'


def test_directive_after_instruction_is_a_comment():
    res = parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert res.escape_token == "\\" and res.directives == {}
    assert dump(res.ast) == '(from "x")\n(run "a  b")\n'


def test_unknown_directive_ends_the_block():
    res = parse("# foo=bar\n# escape=`\nFROM x\n")
    assert res.escape_token == "\\"


def test_empty_continuation_line_warns():
    res = parse("RUN a \\\n\n  b\n")
    assert dump(res.ast) == '(run "a   b")\n'
    assert res.warnings and "Empty continuation line" in res.warnings[0]


def test_json_edge_cases():
    assert d('CMD ["a"] trailing\n') == '(cmd "[\\"a\\"] trailing")\n'
    assert d("CMD [NaN]\n") == '(cmd "[NaN]")\n'
    assert d('CMD ["\\u00e9", "\\ud800"]\n') == '(cmd "é" "\ufffd")\n'
    assert d("CMD [1e999]\n") == '(cmd "[1e999]")\n'  # Go cannot decode it: shell form
    with pytest.raises(DockerfileParseError, match="strings only"):
        parse('RUN ["a", 1]\n')
    with pytest.raises(DockerfileParseError, match="strings only"):
        parse('COPY ["a", null]\n')
    assert parse('RUN ["a"]\n').ast.children[0].is_json
    assert not parse("RUN a\n").ast.children[0].is_json


def test_go_quote():
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\x00\x07\x1b\x7f\t") == '"\\x00\\a\\x1b\\x7f\\t"'
    assert go_quote("é♥ \u00ad\U000e0001") == '"é♥ \\u00ad\\U000e0001"'
    assert go_quote(b"\xff".decode("utf-8", "surrogateescape")) == '"\\xff"'


def test_invalid_utf8_round_trips_in_dump():
    assert dump(parse(b"RUN echo \xff\n").ast) == '(run "echo \\xff")\n'


def test_overlong_line_is_an_error():
    with pytest.raises(DockerfileParseError, match="max allowed size of 65535") as exc:
        parse("FROM x\nRUN " + "a" * 70000 + "\n")
    assert exc.value.line == 2
    parse("RUN " + "a" * 65000 + "\n")


def test_heredoc_forms_and_lines():
    res = parse("FROM x\nRUN 3<<-'EOF' cat <<B\n\tone\n\tEOF\nb\nB\nCOPY <<\"a\"b /x\ny\nab\nRUN [\"<<C\"]\n")
    run, copy, jrun = res.ast.children[1:]
    assert [(h.name, h.file_descriptor, h.chomp, h.expand, h.content) for h in run.heredocs] == [
        ("EOF", 3, True, False, "\tone\n"), ("B", 0, False, True, "b\n")]
    assert (run.start_line, run.end_line) == (2, 6)
    assert [(h.name, h.expand) for h in copy.heredocs] == [("ab", False)]
    assert jrun.heredocs == []
    assert dump(res.ast).splitlines()[1] == '(run "3<<-\'EOF\' cat <<B")'


def test_quoted_heredoc_marker_is_not_a_heredoc():
    res = parse('FROM x\nRUN echo "<<EOF"\nRUN true\n')
    assert [c.heredocs for c in res.ast.children] == [[], [], []]


@pytest.mark.parametrize("word,env,expected", [
    ("${v#*/}", {"v": "a/b/c"}, "b/c"),
    ("${v##*/}", {"v": "a/b/c"}, "c"),
    ("${v%/*}", {"v": "a/b/c"}, "a/b"),
    ("${v%%/*}", {"v": "a/b/c"}, "a"),
    ("${v/b/X}", {"v": "abcb"}, "aXcb"),
    ("${v//b/X}", {"v": "abcb"}, "aXcX"),
    ("${v//\\*/-}", {"v": "a*b*"}, "a-b-"),
    ("${v-def}", {}, "def"),
    ("${v-def}", {"v": ""}, ""),
    ("${v+alt}", {"v": ""}, "alt"),
    ("${v:+alt}", {"v": ""}, ""),
    ("$v$w", {"v": "1", "w": "2"}, "12"),
])
def test_shell_extra_forms(word, env, expected):
    assert Lex("\\").process_word(word, env) == expected


def test_shell_errors_and_messages():
    with pytest.raises(ShellExpansionError, match="V: must be set"):
        Lex("\\").process_word("${V:?must be set}", {})
    with pytest.raises(ShellExpansionError, match=r'failed to process "\$\{x\}\}\$\{": syntax error'):
        Lex("\\").process_word("${x}}${", {})
    with pytest.raises(ShellExpansionError, match="unsupported modifier"):
        Lex("\\").process_word("${v:#x}", {"v": "1"})


def test_shell_matches_and_backtick_escape():
    res, matched, unmatched = Lex("\\").process_word_with_matches("$A ${B:-x} $C", {"A": "1", "C": ""})
    assert res == "1 x " and matched == {"A", "C"} and unmatched == {"B"}
    assert Lex("`").process_word("a`$b `\\c", {"b": "no"}) == "a$b \\c"
    assert Lex("\\").process_words("a 'b c' \"$x\" $x", {"x": "1 2"}) == ["a", "b c", "1 2", "1", "2"]


def test_skip_unset_env_keeps_references():
    lex = Lex("\\", skip_unset_env=True)
    assert lex.process_word("$A ${B} ${C:-x} ${D/a/b}", {}) == "$A ${B} ${C:-x} ${D/a/b}"
