"""``FILE.py[:FLOW]`` -> the :class:`~flowcore.core.flow.Flow` object it names.

Used by the verbs that take a flow file (``flowcore run``, ``flowcore visualize``,
``flowcore cache explain``, ``flowcore resume``). The file is imported as a module of its
own (its ``if __name__ == "__main__":`` block does not run), registered with cloudpickle
to be pickled by value, so that Dask workers and process pools, which cannot import it,
still receive its tasks. ``FLOW`` is a module-level variable name or a flow's ``name``;
without it the file must define exactly one flow.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from flowcore.cli import CliError
from flowcore.utilities.hashing import LOADED_FLOW_FILE

if TYPE_CHECKING:
    from flowcore.core.flow import Flow

__all__ = ["FlowFile", "load_flow"]


class FlowFile:
    """A loaded flow file: ``flow``, and the ``spec`` (absolute path and variable name)
    that loads the same flow again in another process."""

    def __init__(self, path: Path, variable: str, flow: Flow) -> None:
        self.path = path
        self.variable = variable
        self.flow = flow

    @property
    def spec(self) -> str:
        return f"{self.path}:{self.variable}"


def load_flow(spec: str) -> FlowFile:
    """Import ``FILE.py`` and return the flow ``FLOW`` names (see the module docstring)."""
    path_text, wanted = _split(spec)
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise CliError(
            f"No flow file {path_text!r}: give the path of a Python file defining a Flow"
        )
    module = _import(path)
    flows = _distinct_flows(vars(module))
    if wanted is not None:
        for variable, (flow, aliases) in flows.items():
            if wanted == variable or wanted in aliases:
                return FlowFile(path, wanted, flow)
        by_name = {n: v for n, v in flows.items() if v[0].name == wanted}
        if len(by_name) == 1:
            variable, (flow, _) = next(iter(by_name.items()))
            return FlowFile(path, variable, flow)
        if by_name:
            raise CliError(
                f"{path_text} defines {len(by_name)} flows named {wanted!r} "
                f"({_listing(by_name)}): it is ambiguous; name one as {path_text}:VARIABLE"
            )
        raise CliError(f"{path_text} defines no flow {wanted!r}; its flows: {_listing(flows)}")
    if len(flows) == 1:
        variable, (flow, _) = next(iter(flows.items()))
        return FlowFile(path, variable, flow)
    if not flows:
        raise CliError(f"{path_text} defines no Flow at module level")
    raise CliError(
        f"{path_text} defines {len(flows)} flows ({_listing(flows)}): name one as {path_text}:VARIABLE"
    )


def _distinct_flows(names: dict[str, Any]) -> dict[str, tuple[Flow, list[str]]]:
    """The module's flows, each once (a flow bound to several names is one flow), by the
    first name it is bound to, with its other names."""
    from flowcore.core.flow import Flow

    first: dict[int, str] = {}
    flows: dict[str, tuple[Flow, list[str]]] = {}
    for name, value in names.items():
        if not isinstance(value, Flow):
            continue
        if id(value) in first:
            flows[first[id(value)]][1].append(name)
        else:
            first[id(value)] = name
            flows[name] = (value, [])
    return flows


def _split(spec: str) -> tuple[str, str | None]:
    if Path(spec).expanduser().is_file():  # (a file named a:b.py is that file)
        return spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and head and not tail.startswith(("\\", "/")) and tail:
        return head, tail
    return spec, None


def _import(path: Path) -> Any:
    """Import ``path`` as a module named after its location (the same file is imported
    once per process)."""
    name = LOADED_FLOW_FILE + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CliError(f"Cannot import {path}: is it a Python file?")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # its sibling modules, as `python FILE.py` would
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as exc:
        del sys.modules[name]
        raise CliError(
            f"{path} called sys.exit({exc.code!r}) while being imported: a flow file must not "
            "exit; guard it with if __name__ == '__main__'"
        ) from None
    except BaseException:
        del sys.modules[name]
        raise
    cloudpickle.register_pickle_by_value(module)
    return module


def _listing(flows: dict[str, tuple[Flow, list[str]]]) -> str:
    if not flows:
        return "none"
    return ", ".join(
        f"{n}{''.join(f' = {a}' for a in aliases)} (name {f.name!r})"
        for n, (f, aliases) in sorted(flows.items())
    )
