"""LocalResult specifics: directories, placing (symlinks, home, absolute templates), atomic
and durable writes, stale temporaries, and writers killed mid-write."""

from __future__ import annotations

import os
import pickle
import random
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flowcore.engine.results import LocalResult
from flowcore.engine.serializers import Serializer
from flowcore.exceptions import LocationEscapeError, ResultStorageError, UnreadableValueError
from flowcore.utilities.configuration import set_temporary_config


def test_default_dir_is_under_the_home_dir(tmp_path: Path) -> None:
    with set_temporary_config({"home_dir": str(tmp_path / "home")}):
        result = LocalResult()
    assert result.dir == str(tmp_path / "home" / "results")
    assert os.path.isdir(result.dir)


def test_a_dir_inside_the_home_dir_is_kept(tmp_path: Path) -> None:
    with set_temporary_config({"home_dir": str(tmp_path)}):
        result = LocalResult(dir=tmp_path / "my-results")
    assert result.dir == str(tmp_path / "my-results")


def test_validate_dir_makes_it_absolute_and_creates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = LocalResult(dir="relative/out")
    assert result.dir == str(tmp_path / "relative" / "out") and os.path.isdir(result.dir)
    lazy = LocalResult(dir="not/created", validate_dir=False)
    assert lazy.dir == "not/created" and not (tmp_path / "not").exists()


def test_an_uncreatable_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ResultStorageError, match="cannot create its directory"):
        LocalResult(dir=blocker / "sub")


def test_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path, location="deep/er/x.pkl")
    written = result.write(list(range(1000)))
    assert written.location == str(tmp_path / "deep" / "er" / "x.pkl")
    assert sorted(os.listdir(tmp_path / "deep" / "er")) == ["x.pkl"]


class _Exploding(Serializer):
    def serialize(self, value: object) -> bytes:
        raise RuntimeError("cannot serialize this")


def test_a_failing_serializer_writes_nothing(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path, location="out.pkl", serializer=_Exploding())
    with pytest.raises(RuntimeError, match="cannot serialize"):
        result.write(1)
    assert os.listdir(tmp_path) == []


def test_absolute_template_stays_absolute(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path / "root", location=str(tmp_path / "elsewhere" / "{name}.pkl"))
    written = result.write(7, name="abs")
    assert written.location == str(tmp_path / "elsewhere" / "abs.pkl")
    assert result.read(str(tmp_path / "elsewhere" / "abs.pkl")).value == 7


def test_a_writer_killed_mid_write_leaves_no_file_at_the_target(tmp_path: Path) -> None:
    """SIGKILL a process while it writes a large result: the target location never holds
    a partial file, and the next run computes and writes it."""
    script = tmp_path / "writer.py"
    marker = tmp_path / "ran.txt"
    script.write_text(
        textwrap.dedent(f"""
        from flowcore import Flow, task
        from flowcore.engine.results import LocalResult

        @task(result=LocalResult(dir={str(tmp_path / "store")!r}), target="big.bin")
        def big():
            with open({str(marker)!r}, "a") as fh:
                fh.write("ran\\n")
            return b"x" * (300 * 1024 * 1024)

        with Flow("crash") as flow:
            big()

        state = flow.run(context={{"checkpointing": True}})
        assert state.is_successful(), state
    """)
    )
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.exists() and any(name.endswith(".tmp") for name in os.listdir(store)):
            break
        assert process.poll() is None, "the writer finished before it could be killed"
        time.sleep(0.001)
    else:
        process.kill()
        pytest.fail("the writer never started writing")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (store / "big.bin").exists()
    assert marker.read_text() == "ran\n"

    rerun = subprocess.run(
        [sys.executable, str(script)], env=env, stderr=subprocess.PIPE, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert marker.read_text() == "ran\nran\n"
    assert (store / "big.bin").stat().st_size > 300 * 1024 * 1024


# -- placing: symlinks, home, absolute paths ------------------------------------------


def test_a_symlinked_directory_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    result = LocalResult(dir=root, location="{name}/x.pkl")
    with pytest.raises(LocationEscapeError, match="symlinks"):
        result.write(1, name="link")
    with pytest.raises(LocationEscapeError):
        result.write_bytes_at("link/y.bin", b"nope")
    with pytest.raises(LocationEscapeError):
        result.exists("link/x.pkl")
    assert list(outside.iterdir()) == []


def test_a_symlinked_file_out_of_the_root_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.pkl"
    secret.write_bytes(pickle.dumps("secret"))
    root = tmp_path / "root"
    root.mkdir()
    (root / "value.pkl").symlink_to(secret)
    result = LocalResult(dir=root)
    for operation in (result.read, result.read_bytes_at, result.delete):
        with pytest.raises(LocationEscapeError):
            operation("value.pkl")
    assert secret.exists()


def test_symlinks_that_stay_inside_the_root_are_fine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    result = LocalResult(dir=root, location="alias/{n}.pkl")
    written = result.write(3, n=1)
    assert written.location == str(root / "alias" / "1.pkl")
    assert (root / "real" / "1.pkl").exists() and result.read(written.location).value == 3


@pytest.mark.parametrize("value", ["", "."])
def test_a_location_rendering_to_the_root_writes_nothing_beside_it(
    tmp_path: Path, value: str
) -> None:
    """Writing over the root would put the temporary file in the root's parent."""
    root = tmp_path / "root"
    result = LocalResult(dir=root, location="{p}")
    with pytest.raises(LocationEscapeError, match=f"renders to the root {str(root)!r} itself"):
        result.write("v", p=value)
    assert sorted(os.listdir(tmp_path)) == ["root"] and os.listdir(root) == []


@pytest.mark.timeout(20)  # without the check, opening the FIFO waits for a writer forever
def test_a_fifo_where_a_value_belongs_is_a_storage_error_not_a_hang(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path, location="{n}.pkl")
    os.mkfifo(tmp_path / "1.pkl")
    for operation in (result.read, result.read_bytes_at):
        with pytest.raises(ResultStorageError, match="is a FIFO .named pipe., not a regular file"):
            operation("1.pkl")
    with pytest.raises(UnreadableValueError, match="FIFO") as info:
        result.read_if_exists("{n}.pkl", n=1)
    assert str(tmp_path / "1.pkl") in str(info.value.__cause__)
    written = result.write("v", n=1)  # a write replaces it with the value
    assert written.location is not None and result.read(written.location).value == "v"
    assert stat.S_ISREG(os.lstat(tmp_path / "1.pkl").st_mode)


def test_a_directory_or_socket_where_a_value_belongs_is_a_storage_error(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path)
    (tmp_path / "dir.pkl").mkdir()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "sock.pkl"))
        with pytest.raises(ResultStorageError, match="is a directory, not a regular file"):
            result.read_bytes_at("dir.pkl")
        with pytest.raises(ResultStorageError, match="cannot read"):
            result.read_bytes_at("sock.pkl")
    with pytest.raises(ResultStorageError, match="cannot write"):  # never over a directory
        result.write_bytes_at("dir.pkl", b"v")
    assert os.listdir(tmp_path / "dir.pkl") == []


def test_a_root_reached_through_a_symlink_works(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real", target_is_directory=True)
    result = LocalResult(dir=tmp_path / "via", location="{n}.pkl")
    written = result.write(4, n="a")
    assert written.location == str(tmp_path / "via" / "a.pkl")
    assert result.read(written.location).value == 4 and result.list() == [written.location]


def test_a_literal_home_template_is_expanded_but_interpolated_home_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = LocalResult(dir=tmp_path / "root", location="~/out/{name}.pkl")
    written = result.write(5, name="v")
    assert written.location == str(tmp_path / "home" / "out" / "v.pkl")
    assert result.read(written.location).value == 5
    with pytest.raises(LocationEscapeError):
        LocalResult(dir=tmp_path / "root", location="{name}.pkl").write(5, name="~/v")
    with pytest.raises(LocationEscapeError):
        LocalResult(dir=tmp_path / "root").read("~/out/v.pkl")


def test_an_absolute_template_confines_its_values_to_its_literal_directory(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path / "root", location=str(tmp_path / "elsewhere" / "{name}.pkl"))
    with pytest.raises(LocationEscapeError, match="elsewhere"):
        result.write(1, name="../escaped")
    with pytest.raises(LocationEscapeError):
        result.read(str(tmp_path / "other" / "x.pkl"))
    assert sorted(os.listdir(tmp_path)) == ["root"]


def test_an_absolute_location_outside_the_root_is_refused_without_an_absolute_template(
    tmp_path: Path,
) -> None:
    result = LocalResult(dir=tmp_path / "root")
    outside = str(tmp_path / "x.pkl")
    with pytest.raises(LocationEscapeError):
        result.write_at(outside, 1)
    with pytest.raises(LocationEscapeError):
        result.read(outside)
    inside = result.write_at(str(tmp_path / "root" / "x.pkl"), 1)
    assert (
        inside.location == str(tmp_path / "root" / "x.pkl")
        and result.read(inside.location).value == 1
    )


# -- writes: durable, atomic, and no leftovers ----------------------------------------


def test_a_write_syncs_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        synced.append(
            os.readlink(f"/proc/self/fd/{descriptor}") if os.path.exists("/proc/self/fd") else "?"
        )
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    location = LocalResult(dir=tmp_path).write_bytes_at("d/x.bin", b"data")
    assert len(synced) == 2
    if synced[0] != "?":
        assert synced[0].startswith(str(tmp_path / "d" / ".x.bin.")) and synced[1] == str(
            tmp_path / "d"
        )
    assert Path(location).read_bytes() == b"data"


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "inside").write_text("x")
    result = LocalResult(dir=tmp_path)
    with pytest.raises(ResultStorageError, match="cannot write"):
        result.write_bytes_at("taken", b"data")
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    with pytest.raises(ResultStorageError, match="cannot delete"):
        result.delete("taken")


def _temporary(folder: Path, name: str, age: float) -> Path:
    path = folder / f".{name}.{os.urandom(6).hex()}.tmp"
    path.write_bytes(b"partial")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_remove_stale_temporaries_removes_only_old_temporaries(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    old = [_temporary(tmp_path, "a.pkl", 7200), _temporary(tmp_path / "deep" / "er", "b.pkl", 4000)]
    fresh = _temporary(tmp_path, "c.pkl", 60)
    lookalikes = [
        tmp_path / ".a.pkl.tmp",
        tmp_path / "a.pkl.0123456789ab.tmp",
        tmp_path / ".a.XYZ456789abc.tmp",
    ]
    for path in lookalikes:
        path.write_text("not ours")
        os.utime(path, (0, 0))
    assert result.remove_stale_temporaries() == 2
    assert not any(path.exists() for path in old)
    assert fresh.exists() and all(path.exists() for path in lookalikes)
    assert result.remove_stale_temporaries(max_age=0) == 1 and not fresh.exists()
    assert LocalResult(dir=tmp_path / "missing", validate_dir=False).remove_stale_temporaries() == 0


def test_list_skips_temporaries(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path)
    location = result.write_bytes_at("v.bin", b"v")
    _temporary(tmp_path, "w.bin", 0)
    assert result.list() == [location]


class _CountingSweeps(LocalResult):
    sweeps: list[str] = []

    def remove_stale_temporaries(self, max_age: float = 3600.0) -> int:
        self.sweeps.append(self.dir)
        return super().remove_stale_temporaries(max_age)


def test_the_first_write_in_a_process_sweeps_its_root_once_across_threads(tmp_path: Path) -> None:
    stale = _temporary(tmp_path, "old.pkl", 7200)
    result = _CountingSweeps(dir=tmp_path, location="{n}.pkl")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: result.write(n, n=n), range(32)))
    result.write(99, n=99)
    assert _CountingSweeps.sweeps == [str(tmp_path)] and not stale.exists()
    assert len(result.list()) == 33


_KILLED_WRITER = """
import sys
from flowcore.engine.results import LocalResult

result = LocalResult(dir=sys.argv[1])
data = bytes(range(256)) * (int(sys.argv[2]) // 256)
print("ready", flush=True)
while True:
    result.write_bytes_at("big.bin", data)
"""

_SWEEPER = """
import os, sys
from flowcore.engine.results import LocalResult

LocalResult(dir=sys.argv[1]).write_bytes_at("small.bin", b"small")
print(sum(name.endswith(".tmp") for _, _, names in os.walk(sys.argv[1]) for name in names))
"""


def test_writers_killed_mid_write_leave_only_temporaries_that_a_new_process_sweeps(
    tmp_path: Path,
) -> None:
    """SIGKILL a process 20 times while it rewrites a large value: the target is always
    absent or complete, and the next process's first write removes the old leftovers."""
    store, size = tmp_path / "store", 8 * 1024 * 1024
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    target = store / "big.bin"
    for _ in range(20):
        writer = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, str(store), str(size)],
            env=env,
            stdout=subprocess.PIPE,
        )
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + random.uniform(0.005, 0.15)
        while time.monotonic() < deadline:
            assert not target.exists() or target.stat().st_size == size
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
        assert not target.exists() or target.read_bytes() == bytes(range(256)) * (size // 256)
    leftovers = [path for path in store.iterdir() if path.name.endswith(".tmp")]
    assert leftovers, "no writer was killed mid-write"
    for path in leftovers:
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    sweeper = subprocess.run(
        [sys.executable, "-c", _SWEEPER, str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sweeper.returncode == 0, sweeper.stderr[-2000:]
    assert sweeper.stdout.strip() == "0"
    assert sorted(path.name for path in store.iterdir()) == sorted(
        {"small.bin"} | ({"big.bin"} if target.exists() else set())
    )


@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20) + 3])
def test_bytes_of_any_size_read_back_whole(tmp_path: Path, size: int) -> None:
    result = LocalResult(dir=str(tmp_path))
    data = os.urandom(size)
    result.write_bytes_at("blob.bin", data)
    assert result.read_bytes_at("blob.bin") == data
