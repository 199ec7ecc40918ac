"""``flowcore.exceptions``: two roots, Prefect 1's alias names, helpful messages."""

from __future__ import annotations

import pickle

import pytest

from flowcore import exceptions
from flowcore.engine import signals
from flowcore.exceptions import (
    FlowcoreException,
    FlowcoreSignal,
    MissingExtraError,
    PrefectException,
    PrefectSignal,
    ResultNotImplementedError,
    TaskTimeoutSignal,
    TemplateKeyError,
)


def test_prefect_names_are_aliases() -> None:
    assert PrefectSignal is FlowcoreSignal
    assert PrefectException is FlowcoreException


def test_signals_root_is_a_base_exception() -> None:
    assert issubclass(FlowcoreSignal, BaseException)
    assert not issubclass(FlowcoreSignal, Exception)
    for signal in (TaskTimeoutSignal, signals.ENDRUN, signals.PrefectStateSignal, signals.FAIL):
        assert issubclass(signal, FlowcoreSignal)


def test_errors_root_is_an_exception() -> None:
    assert issubclass(FlowcoreException, Exception)
    assert not issubclass(FlowcoreException, FlowcoreSignal)


def test_except_exception_does_not_catch_a_timeout_signal() -> None:
    with pytest.raises(TaskTimeoutSignal):
        try:
            raise TaskTimeoutSignal("too slow")
        except Exception:
            pytest.fail("TaskTimeoutSignal was caught by `except Exception`")


def test_result_not_implemented_error_is_also_a_not_implemented_error() -> None:
    error = ResultNotImplementedError("no storage")
    assert isinstance(error, NotImplementedError) and isinstance(error, PrefectException)
    with pytest.raises(NotImplementedError, match="no storage"):
        raise error


def test_missing_extra_error_names_the_package_and_the_extra() -> None:
    error = MissingExtraError("S3Result", "boto3", "aws")
    assert str(error) == "S3Result needs the 'boto3' package: pip install 'flowcore[aws]'"
    assert error.extra == "aws"
    assert isinstance(error, ImportError) and isinstance(error, FlowcoreException)
    with pytest.raises(ImportError):
        raise error


def test_template_key_error_is_a_key_error_and_a_value_error_with_a_plain_message() -> None:
    error = TemplateKeyError("template 'x/{day}' uses unknown key 'day'; known keys: a")
    assert isinstance(error, KeyError) and isinstance(error, ValueError)
    assert isinstance(error, FlowcoreException)
    assert str(error) == "template 'x/{day}' uses unknown key 'day'; known keys: a"
    assert str(KeyError("quoted")) == "'quoted'"  # what the override avoids


def test_exceptions_pickle() -> None:
    for error in (
        FlowcoreException("a"),
        ResultNotImplementedError("b"),
        TaskTimeoutSignal("c"),
        TemplateKeyError("d"),
        MissingExtraError("GCSResult", "google.cloud.storage", "gcp"),
    ):
        copy_ = pickle.loads(pickle.dumps(error))
        assert type(copy_) is type(error) and copy_.args == error.args
        assert str(copy_) == str(error)


def test_all_lists_every_public_name() -> None:
    assert sorted(exceptions.__all__) == sorted(
        name for name in vars(exceptions) if not name.startswith("_") and name[0].isupper()
    )
