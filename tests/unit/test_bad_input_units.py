"""No-root checks of the fixes the bad-input matrix (tests/integration/test_bad_input_matrix.py) led to:
each bad value gets one typed error that names it."""
from __future__ import annotations

import io
import types

import pytest

from nbcontainer import _args
from nbcontainer.errors import InvalidArgument, RegistryError


def test_unknown_flag_is_reported_before_a_missing_argument():
    with pytest.raises(_args.UsageError, match=r"unknown shorthand flag: 'x' in -x:1"):
        _args.parse("tag", ["bb:1", "-x:1"])
    with pytest.raises(_args.UsageError, match="unknown flag: --frob"):
        _args.parse("tag", ["bb:1", "--frob"])
    with pytest.raises(_args.UsageError, match='requires at least 2 arguments'):
        _args.parse("tag", ["bb:1"])
    # a flag's value that looks like a flag is not mistaken for an unknown flag
    with pytest.raises(_args.UsageError, match="requires at least 1 argument"):
        _args.parse("logs", ["--tail", "-1"])


def test_unclosed_template_action_is_an_error_even_without_rows():
    from nbcontainer.cli.formatting import format_objects, format_rows
    for call in (lambda: format_rows("{{.ID", [], [("ID", "ID")]), lambda: format_objects("{{", [{}])):
        with pytest.raises(InvalidArgument, match="unclosed action") as ei:
            call()
        assert ei.value.value in ("{{.ID", "{{")
    assert format_rows("{{.ID}}", [{"ID": "a"}], [("ID", "ID")]) == "a"


def test_save_into_a_missing_directory_names_the_path():
    from nbcontainer.cli.commands_archive import _write_output
    ctx = types.SimpleNamespace(stdout=io.StringIO())
    with pytest.raises(InvalidArgument, match="/nonexistent-nbc/x.tar"):
        _write_output(ctx, "/nonexistent-nbc/x.tar", lambda f: f.write(b"x"), "archive")


def test_unauthorized_without_challenge_names_what_was_asked():
    from nbcontainer.registry.errmap import error_from_response
    resp = types.SimpleNamespace(status_code=401, content=b"", request=None, url="http://r/v2/x/manifests/1")
    err = error_from_response(resp, what="127.0.0.1:5000/app:1", kind="manifest")
    assert isinstance(err, RegistryError)
    assert str(err) == "unauthorized: authentication required (127.0.0.1:5000/app:1)"


def test_wrong_typed_api_keyword_is_invalid_argument_naming_it():
    from nbcontainer.models.run_options import to_run_options
    with pytest.raises(InvalidArgument, match="environment: 123") as ei:
        to_run_options({"environment": 123})
    assert ei.value.value == 123


def test_until_errors_name_until():
    from nbcontainer.containers.timefmt import parse_since
    with pytest.raises(InvalidArgument, match='"until": \'xyz\''):
        parse_since("xyz", what="until")
    with pytest.raises(InvalidArgument, match='"since"'):
        parse_since("xyz")


def test_api_timeouts_must_be_numbers():
    from nbcontainer.models.containers import _seconds
    assert _seconds(None, "timeout") is None and _seconds(2.5, "timeout") == 2.5
    for bad in ("abc", True, [1]):
        with pytest.raises(InvalidArgument, match="invalid timeout"):
            _seconds(bad, "timeout")


def test_volume_name_of_wrong_type_is_invalid_argument(tmp_path):
    from nbcontainer.containers import VolumeService
    from nbcontainer.metadata.db import MetadataDB
    from nbcontainer.paths import StorePaths
    paths = StorePaths(tmp_path / "root", tmp_path / "run").ensure()
    with pytest.raises(InvalidArgument, match="123"):
        VolumeService(paths, MetadataDB(paths.metadata_db)).create(name=123)
