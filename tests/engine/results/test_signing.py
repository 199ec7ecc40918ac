"""Signed values (``results.signing_key``): a planted pickle is refused before it is
unpickled; keys are read from the live config; turning the key off keeps values readable."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flowcore
from flowcore import Flow, task
from flowcore.configuration import load_configuration
from flowcore.engine.result import signing
from flowcore.engine.results import LocalResult
from flowcore.engine.serializers import JSONSerializer, PickleSerializer
from flowcore.engine.state import Cached
from flowcore.exceptions import ResultStorageError, SignatureError

SetKey = Callable[[Any], None]


@pytest.fixture
def set_key(monkeypatch: pytest.MonkeyPatch) -> SetKey:
    """Sets ``flowcore.config.results.signing_key`` for the test (restored after it)."""
    return lambda key: monkeypatch.setitem(flowcore.config.results, "signing_key", key)


class _Planted:
    """A pickle that creates ``marker`` when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (builtins.open, (str(self.marker), "w"))


def _plant(path: Path, marker: Path, header: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + PickleSerializer().serialize(_Planted(marker)))


def test_a_planted_pickle_is_refused_before_it_is_unpickled(
    tmp_path: Path, set_key: SetKey
) -> None:
    marker = tmp_path / "pwned"
    result = LocalResult(dir=tmp_path / "store")
    _plant(tmp_path / "store" / "value.pkl", marker)
    set_key("s3cret")
    with pytest.raises(SignatureError) as info:
        result.read("value.pkl")
    assert isinstance(info.value, ResultStorageError)
    message = str(info.value)
    assert str(tmp_path / "store" / "value.pkl") in message
    assert "has no signature" in message and "not unpickled" in message
    assert not marker.exists()
    # the planted pickle is real: without a key it runs on read
    set_key(None)
    result.read("value.pkl").value.close()
    assert marker.exists()


def test_a_planted_pickle_with_a_forged_header_is_refused(tmp_path: Path, set_key: SetKey) -> None:
    marker = tmp_path / "pwned"
    forged = signing.add_header(b"", signing.mac(b"something else", b"s3cret") or "")
    _plant(tmp_path / "store" / "value.pkl", marker, forged)
    set_key("s3cret")
    with pytest.raises(SignatureError, match="does not match"):
        LocalResult(dir=tmp_path / "store").read("value.pkl")
    assert not marker.exists()


def test_signed_values_read_back_and_carry_a_header(tmp_path: Path, set_key: SetKey) -> None:
    set_key("s3cret")
    result = LocalResult(dir=tmp_path, location="v-{n}.pkl")
    written = result.write({"a": [1, 2]}, n=1)
    assert written.location is not None
    data = Path(written.location).read_bytes()
    tag, payload = signing.split_header(data)
    assert tag == signing.mac(payload, b"s3cret") and payload == PickleSerializer().serialize(
        {"a": [1, 2]}
    )
    assert result.read(written.location).value == {"a": [1, 2]}


def test_a_value_written_under_one_key_is_refused_under_another(
    tmp_path: Path, set_key: SetKey
) -> None:
    set_key("key-a")
    result = LocalResult(dir=tmp_path, location="v.pkl")
    location = result.write(41).location
    assert location is not None
    set_key("key-b")
    with pytest.raises(SignatureError, match="does not match"):
        result.read(location)
    set_key("key-a")
    assert result.read(location).value == 41


def test_without_a_key_values_read_as_before_and_signed_ones_too(
    tmp_path: Path, set_key: SetKey
) -> None:
    result = LocalResult(dir=tmp_path, location="{name}.json", serializer=JSONSerializer())
    plain = result.write([1], name="plain").location
    assert plain is not None and Path(plain).read_bytes() == b"[1]"
    set_key("s3cret")
    signed = result.write([2], name="signed").location
    assert signed is not None
    with pytest.raises(SignatureError):
        result.read(plain)
    set_key(None)
    assert result.read(plain).value == [1] and result.read(signed).value == [2]


def test_an_unsigned_target_is_rerun_and_rewritten_signed(
    tmp_path: Path, set_key: SetKey, logs: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    _plant(tmp_path / "store" / "target.pkl", marker)
    set_key("s3cret")
    calls: list[int] = []

    @task(result=LocalResult(dir=tmp_path / "store"), target="target.pkl")
    def produce() -> int:
        calls.append(1)
        return 7

    with Flow("signed-target") as flow:
        out = produce()
    first = flow.run(context={"checkpointing": True})
    assert first is not None
    assert first.result[out].result == 7 and calls == [1] and not marker.exists()
    assert any("SignatureError" in r.getMessage() for r in logs.records if r.levelname == "WARNING")
    second = flow.run(context={"checkpointing": True})
    assert second is not None
    assert (
        isinstance(second.result[out], Cached) and second.result[out].result == 7 and calls == [1]
    )


@pytest.mark.parametrize(
    "configured, expected",
    [
        (None, None),
        ("", None),
        (False, None),
        ("s3cret", b"s3cret"),
        (12345, b"12345"),
        (b"raw", b"raw"),
    ],
)
def test_signing_key_reads_the_live_config(
    set_key: SetKey, configured: Any, expected: bytes | None
) -> None:
    set_key(configured)
    assert signing.signing_key() == expected
    assert (signing.mac(b"x") is None) is (expected is None)


def test_the_key_comes_from_the_environment(tmp_path: Path) -> None:
    config = load_configuration(
        environ={
            "FLOWCORE__USER_CONFIG_PATH": str(tmp_path / "missing.toml"),
            "FLOWCORE__RESULTS__SIGNING_KEY": "from-env",
        }
    )
    assert config.results.signing_key == "from-env"
    assert (
        load_configuration(
            environ={"FLOWCORE__USER_CONFIG_PATH": str(tmp_path / "missing.toml")}
        ).results.signing_key
        is None
    )


def test_a_value_signed_in_one_process_is_verified_in_another(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from flowcore.engine.results import LocalResult\n"
        "result = LocalResult(dir=sys.argv[1])\n"
        "if sys.argv[2] == 'write':\n"
        "    print(result.write_at('v.pkl', 'across').location)\n"
        "else:\n"
        "    print(result.read('v.pkl').value)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__RESULTS__SIGNING_KEY": "shared",
    }

    def run(mode: str, key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), mode],
            env={**env, "FLOWCORE__RESULTS__SIGNING_KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run("write", "shared").returncode == 0
    assert run("read", "shared").stdout.strip() == "across"
    refused = run("read", "other")
    assert refused.returncode != 0 and "SignatureError" in refused.stderr


def test_verify_without_a_key_is_false_and_wrong_tags_do_not_raise() -> None:
    assert signing.verify(b"x", "00" * 32, None) is False
    assert signing.verify(b"x", "\u00e9" * 64, b"k") is False
    assert signing.split_header(signing.HEADER_PREFIX + b"short\n") == (
        None,
        signing.HEADER_PREFIX + b"short\n",
    )
