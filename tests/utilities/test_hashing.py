"""``flowcore.utilities.hashing``: digests that are the same in every process, and paths that
count by what they name."""

from __future__ import annotations

import dataclasses
import enum
import os
import subprocess
import sys
import textwrap
import threading
from collections import OrderedDict, namedtuple
from pathlib import Path, PurePosixPath, PureWindowsPath

import dask.base
import pytest

from flowcore.utilities.hashing import (
    HashedValue,
    UnhashableValue,
    hash_mapping,
    hash_value,
    register_hasher,
)

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, source: str) -> list[str]:
    """The words ``source`` prints, run as ``__main__`` in a fresh process."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "random"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _run_twice(tmp_path: Path, source: str) -> tuple[list[str], list[str]]:
    return _run(tmp_path, source), _run(tmp_path, source)


def _rewrite(path: Path, content: bytes) -> None:
    """Write ``content`` and move the modification time on by 1 ms (coarse clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(content)
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


# -- plain values: Prefect 1's token -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1,
        "a",
        None,
        2.5,
        b"raw",
        [1, "a", (2, 3.0)],
        {"b": [1, {"c": None}], "a": (1,)},
        {1, 2, 3},
        frozenset({"x"}),
        OrderedDict([("b", 1), ("a", 2)]),
        namedtuple("Pair", "left right")(1, "r"),
        PurePosixPath("data/in.csv"),
        PureWindowsPath("C:/data/in.csv"),
    ],
    ids=repr,
)
def test_plain_values_hash_to_dask_token(value: object) -> None:
    assert hash_value(value) == dask.base.tokenize(value)


def test_hash_value_of_one_is_prefect1_token() -> None:
    assert hash_value(1) == dask.base.tokenize(1)


def test_lock_is_unhashable_alone_and_inside_values() -> None:
    with pytest.raises(UnhashableValue, match="register_hasher"):
        hash_value(threading.Lock())

    @dataclasses.dataclass
    class Holder:
        lock: object

    with pytest.raises(UnhashableValue):
        hash_value([Holder(threading.Lock())])
    with pytest.raises(UnhashableValue) as info:
        hash_mapping({"ok": 1, "guard": {"lock": threading.Lock()}})
    assert info.value.name == "guard"


# -- dataclasses, attrs and enums: the same digest in every process ------------------------------

MAIN_DATACLASSES = """
    import dataclasses, enum
    from flowcore.utilities.hashing import hash_value

    class Unit(enum.Enum):
        METRE = "m"
        FOOT = "ft"

    @dataclasses.dataclass(frozen=True)
    class Inner:
        value: float
        unit: Unit = Unit.METRE

    @dataclasses.dataclass
    class Outer:
        name: str
        inner: Inner
        tags: list = dataclasses.field(default_factory=list)

    values = [
        Outer("a", Inner(1.0)),
        Outer("a", Inner(2.0)),
        Outer("a", Inner(1.0, Unit.FOOT)),
        Outer("a", Inner(1.0), tags=["x"]),
        [Outer("a", Inner(1.0)), {"k": Inner(1.0)}],
        {Inner(1.0): "v"},
        {Inner(1.0), Inner(2.0)},
        Unit.FOOT,
    ]
    for value in values:
        print(hash_value(value))
"""


def test_main_dataclass_hashes_the_same_in_two_processes(tmp_path: Path) -> None:
    first, second = _run_twice(tmp_path, MAIN_DATACLASSES)
    assert first == second
    assert len(set(first)) == len(first)  # each field change (nested too) changes the digest


def test_main_attrs_class_hashes_the_same_in_two_processes(tmp_path: Path) -> None:
    first, second = _run_twice(
        tmp_path,
        """
        import attrs
        from flowcore.utilities.hashing import hash_value

        @attrs.define
        class Reading:
            value: float
            source: str = attrs.field(default="", eq=False)

        print(hash_value(Reading(1.0, "a")), hash_value(Reading(1.0, "b")))
        print(hash_value([Reading(2.0)]))
        """,
    )
    assert first == second
    assert first[0] == first[1] != first[2]  # eq=False fields do not count


@dataclasses.dataclass
class Inner:
    value: int


@dataclasses.dataclass
class Outer:
    inner: Inner
    items: list[Inner]
    cache: dict[str, int] = dataclasses.field(default_factory=dict, compare=False)


def test_nested_dataclasses_and_dataclasses_in_containers() -> None:
    one = Outer(Inner(1), [Inner(2)])
    assert hash_value(one) == hash_value(Outer(Inner(1), [Inner(2)], cache={"x": 1}))
    assert hash_value(one) != hash_value(Outer(Inner(1), [Inner(3)]))
    assert hash_value(one) != hash_value(Outer(Inner(9), [Inner(2)]))
    assert hash_value([one, {"k": (Inner(1),)}]) == hash_value([one, {"k": (Inner(1),)}])
    assert hash_value([one, {"k": (Inner(1),)}]) != hash_value([one, {"k": (Inner(2),)}])
    assert hash_value({"a": Inner(1)}) != hash_value({"a": Inner(1), "b": 2})
    assert HashedValue(hash_value(one)) == Outer(Inner(1), [Inner(2)])


def test_dataclass_digest_names_its_class() -> None:
    @dataclasses.dataclass
    class Other:
        value: int

    assert hash_value(Inner(1)) != hash_value(Other(1))


def test_structures_that_contain_themselves_hash() -> None:
    @dataclasses.dataclass(eq=False)
    class Node:
        name: str
        children: list[Node] = dataclasses.field(default_factory=list)
        parent: Node | None = None

    def tree(leaf: str) -> Node:
        root = Node("root")
        root.children.append(Node(leaf, parent=root))
        return root

    assert hash_value(tree("a")) == hash_value(tree("a")) != hash_value(tree("b"))
    loop: list[object] = [1]
    loop.append(loop)
    again: list[object] = [1]
    again.append(again)
    assert hash_value(loop) == hash_value(again)


def test_dask_tokenize_method_is_honoured() -> None:
    @dataclasses.dataclass
    class Custom:
        value: int

        def __dask_tokenize__(self) -> str:
            return "always the same"

    assert hash_value(Custom(1)) == hash_value(Custom(2)) == dask.base.tokenize(Custom(3))


def test_enum_members_hash_by_class_and_name() -> None:
    class Colour(enum.Enum):
        RED = 1
        GREEN = 2

    assert hash_value(Colour.RED) == hash_value(Colour(1)) != hash_value(Colour.GREEN)


# -- paths -------------------------------------------------------------------------------------


def test_same_file_same_digest(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert hash_value(path) == hash_value(Path(str(path))) == hash_value(tmp_path / "." / "in.csv")
    assert hash_value(path) != dask.base.tokenize(path)


def test_same_size_edit_changes_digest_by_mtime(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\n1,2\n")
    before = hash_value(path)
    _rewrite(path, b"a,b\n3,4\n")
    assert path.stat().st_size == 8 and hash_value(path) != before


def test_content_hashing_depends_on_bytes_not_mtime(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\n1,2\n")
    before = hash_value(path, hash_file_contents=True)
    _rewrite(path, b"a,b\n1,2\n")
    assert hash_value(path, hash_file_contents=True) == before
    assert hash_value(path) != before  # the two modes never share a digest
    _rewrite(path, b"a,b\n3,4\n")
    assert hash_value(path, hash_file_contents=True) != before


def test_content_hashing_reaches_paths_inside_values(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"1")

    @dataclasses.dataclass
    class Job:
        sources: list[Path]

    def digests() -> dict[str, str]:
        return hash_mapping({"job": Job([path]), "by_name": {"in": path}}, hash_file_contents=True)

    before = digests()
    _rewrite(path, b"1")
    assert digests() == before
    _rewrite(path, b"2")
    after = digests()
    assert after["job"] != before["job"] and after["by_name"] != before["by_name"]


def test_missing_path_hashes_and_changes_when_created(tmp_path: Path) -> None:
    path = tmp_path / "later.txt"
    missing = hash_value(path)
    assert hash_value(path, hash_file_contents=True) == hash_value(path) == missing
    assert hash_value(tmp_path / "in.csv" / "x") != missing  # another missing path
    path.write_text("now")
    assert hash_value(path) != missing


def test_directory_counts_by_listing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.txt").write_bytes(b"a")
    stat_before, content_before = hash_value(data), hash_value(data, hash_file_contents=True)
    _rewrite(data / "sub" / "a.txt", b"a")
    assert hash_value(data) != stat_before
    assert hash_value(data, hash_file_contents=True) == content_before
    (data / "b.txt").write_bytes(b"b")
    assert hash_value(data, hash_file_contents=True) != content_before


def test_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert hash_value(fifo, hash_file_contents=True) == hash_value(fifo, hash_file_contents=True)


def test_broken_links_and_link_loops_are_missing(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert hash_value(tmp_path / "loop") == hash_value(tmp_path / "loop", hash_file_contents=True)
    assert hash_value(tmp_path / "dangling") == hash_value(tmp_path / "nowhere")  # resolved
    before = hash_value(tmp_path, hash_file_contents=True)
    (tmp_path / "nowhere").write_text("here")
    assert hash_value(tmp_path, hash_file_contents=True) != before


def test_unreadable_path_is_unhashable(tmp_path: Path) -> None:
    with pytest.raises(UnhashableValue, match="cannot read"):
        hash_value(tmp_path / ("x" * 300))  # longer than a file name may be


def test_any_path_like_is_a_path(tmp_path: Path) -> None:
    class Location:
        def __init__(self, path: Path) -> None:
            self.path = path

        def __fspath__(self) -> str:
            return str(self.path)

    path = tmp_path / "in.csv"
    path.write_bytes(b"1")
    assert hash_value(Location(path)) == hash_value(path)
    with os.scandir(tmp_path) as entries:
        [entry] = entries
    assert hash_value(entry) == hash_value(path)


# -- registrations -----------------------------------------------------------------------------


def test_registered_hasher_wins_over_builtins(tmp_path: Path) -> None:
    @dataclasses.dataclass
    class Reading:
        value: float
        noise: float

    class DataPath(type(Path())):  # type: ignore[misc]  # Path subclasses need the flavour
        pass

    class SubPath(DataPath):
        pass

    assert hash_value(Reading(1.0, 0.1)) != hash_value(Reading(1.0, 0.2))
    register_hasher(Reading, lambda r: r.value)
    assert hash_value(Reading(1.0, 0.1)) == hash_value(Reading(1.0, 0.2))
    assert hash_value([Reading(1.0, 0.1)]) != hash_value([Reading(2.0, 0.1)])

    path = SubPath(tmp_path / "in.csv")
    path.write_bytes(b"1")
    register_hasher(DataPath, lambda p: p.name)
    before = hash_value(path, hash_file_contents=True)
    _rewrite(path, b"2")
    assert hash_value(path, hash_file_contents=True) == before  # the subclass's nearest hasher


def test_hasher_that_returns_its_value_does_not_loop() -> None:
    class Selfish:
        pass

    register_hasher(Selfish, lambda s: s)
    with pytest.raises(UnhashableValue, match="returned the value itself"):
        hash_value(Selfish())


def test_register_hasher_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="needs a class"):
        register_hasher("Reading", repr)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        register_hasher(int, "repr")  # type: ignore[arg-type]


# -- numpy and pandas: dask's normalizers -------------------------------------------------------


def test_numpy_and_pandas_hash_the_same_in_two_processes(tmp_path: Path) -> None:
    first, second = _run_twice(
        tmp_path,
        """
        import dataclasses
        import numpy as np, pandas as pd
        from flowcore.utilities.hashing import hash_value

        @dataclasses.dataclass
        class Batch:
            frame: pd.DataFrame

        frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
        print(hash_value(np.arange(10)), hash_value(np.arange(11)))
        print(hash_value(frame), hash_value(frame["a"]), hash_value(Batch(frame)))
        print(hash_value(pd.DataFrame({"a": [1, 3], "b": ["x", "y"]})))
        """,
    )
    assert first == second and len(set(first)) == len(first)


# -- import cost -------------------------------------------------------------------------------


def test_import_flowcore_imports_no_numpy_pandas_or_attrs(tmp_path: Path) -> None:
    script = """
        import dataclasses, sys
        from pathlib import Path
        import flowcore
        heavy = ("numpy", "pandas", "attrs", "attr")
        print(*sorted(m for m in sys.modules if m.split(".")[0] in heavy) or ["none"])
        from flowcore.utilities.hashing import hash_value

        @dataclasses.dataclass
        class Point:
            x: int

        hash_value([Point(1), Path("."), {"k": (1, "a")}])
        print(*sorted(m for m in sys.modules if m.split(".")[0] in ("attrs", "attr")) or ["none"])
    """
    assert _run(tmp_path, script) == ["none", "none"]


def test_a_type_from_a_flow_file_hashes_the_same_however_the_file_is_run() -> None:
    """``python flow.py`` (``__main__``) and the CLI's loader (``flowcore_flow_<digest>``)
    give a dataclass of the flow file one digest; another module's class stays apart."""
    from dataclasses import make_dataclass

    from flowcore.utilities.hashing import hash_value, module_name

    def point(module: str) -> object:
        cls = make_dataclass("Point", [("x", int)])
        cls.__module__ = module
        return cls(1)

    assert module_name("__main__") == module_name("flowcore_flow_0123456789ab") == "<script>"
    assert module_name("__mp_main__") == "<script>"  # (the script in a local Dask worker)
    assert hash_value(point("__main__")) == hash_value(point("flowcore_flow_0123456789ab"))
    assert hash_value(point("__main__")) != hash_value(point("shapes"))
