"""What a task's *code* is, for ``TASK_SOURCE``: its function and what that function uses.

``code_digest(fn)`` hashes a tagged description of ``fn`` that follows, to a bounded depth,
everything whose change should change the task's result::

    the function itself      qualified name + its syntax tree (comments, blank lines,
                             layout, the docstring and decorators do not count; line
                             shifts do not count); bytecode when there is no source
    its closure cells        each captured value, described by the rules below
    the globals it reads     each name the code (and its nested code) loads from the
                             function's module, described by the rules below; for a
                             module of the user's code (``import helpers``), the names
                             the code loads that the module has (``helpers.helper``)

    a value is described as
      a function of the user's code              its own description (recursively)
      a class of the user's code                 its syntax tree; each method's (static and
                                                 class methods', properties' accessors')
                                                 closure and globals, as a function's; its
                                                 bases. Class attributes by their source
      a wrapper (functools.wraps: lru_cache,     the wrapper (a function's own code, an
        the user's decorators)                   object's type) and the function it wraps
                                                 (the __wrapped__ chain, inspect.unwrap)
      functools.partial / partialmethod          its function and the arguments it binds
      a bound method                             its function and its object
      code of an installed distribution          ("dist", name, version): not its source
      code of the standard library               ("stdlib", Python major.minor)
      a module                                   its name, or its distribution's version
      a plain value (number, str, bytes, bool,   the value itself (flowcore's hash_value),
        None, and tuples/lists/dicts/sets of     so editing a module constant changes it
        them)
      anything else (a logger, a connection...)  its type's qualified name only

"The user's code" is any module not installed from a distribution and not in the standard
library: ``__main__``, the project's own modules, and editable installs (``pip install -e``).
A qualified name names a script's module ``<script>``, whether the file runs as ``python
flow.py`` or is loaded by ``flowcore run`` / ``flowcore cache explain``, so all of them
compute the same keys.

Each function and class is described once per digest; met again (a method that names its
own class, functions that call each other) it is ``("code", name, "seen")``.

Not followed: attribute lookups on objects (``self.helper()``, ``obj.method()``) other than
the methods of a class the code names, the class of an object (an instance counts by its
type's name), code reached through dynamic dispatch (``getattr``, registries), and files or
data the code reads. Bump ``Task(cache_version=...)`` when such a change should invalidate
the cache.

Digests are memoised per process and function object: a module edited while the process
runs keeps its first digest until the next process.

Other processes: cloudpickle sends a flow file's code (``__main__``) to a process-pool
worker by value, without its file, so the worker cannot read its source and would hash
bytecode instead. A task with ``TASK_SOURCE`` therefore carries :func:`carried_digest` of
its function, made where it was pickled (``Task.__getstate__``); a process that cannot read
the function's source and has the same bytecode uses it (``code_digest(fn, carried=...)``).
A process that can read the source makes its own digest, so a task pickled long ago is not
trusted after its code was edited.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import inspect
import json
import sys
import textwrap
import threading
import types
from collections.abc import Iterator, Mapping
from typing import Any

from flowcore.utilities.hashing import UnhashableValue, hash_value, module_name

__all__ = ["carried_digest", "code_digest", "source_digest"]

MAX_DEPTH = 6
_PLAIN = (int, float, complex, str, bytes, bool, type(None))
_MEMO: dict[Any, str] = {}
_MEMO_LOCK = threading.Lock()


def code_digest(fn: Any, depth: int = MAX_DEPTH, carried: tuple[str, str] | None = None) -> str:
    """The digest of ``fn``'s code and what it uses (see the module docstring).

    Args:
        fn: the function (or class).
        depth: how deep to follow what it uses.
        carried: :func:`carried_digest` of ``fn`` made in another process; its digest is
            used when this process cannot read ``fn``'s source and ``fn`` is the same code
            (its bytecode is the one carried). Where the source can be read, the digest is
            made afresh, so a pickle loaded after the code was edited is not mistaken.
    """
    fn = inspect.unwrap(fn)
    if carried is not None and source_digest(fn) == carried[0]:
        return carried[1]
    return _code_digest(fn, depth)


def _code_digest(fn: Any, depth: int) -> str:
    try:
        found = _MEMO.get(fn)
    except TypeError:  # an unhashable callable object
        return hash_value(_describe(fn, depth, set()))
    if found is None:
        found = hash_value(_describe(fn, depth, set()))
        with _MEMO_LOCK:
            _MEMO[fn] = found
    return found


def source_digest(obj: Any) -> str:
    """The digest of one function's or class's own code: its syntax tree without comments,
    layout, docstrings and decorators; its bytecode when the source is unavailable."""
    try:
        found = _SOURCES.get(obj)
    except TypeError:
        return _source_digest(obj)
    if found is None:
        found = _SOURCES[obj] = _source_digest(obj)
    return found


_SOURCES: dict[Any, str] = {}


def carried_digest(fn: Any) -> tuple[str, str]:
    """``fn``'s digest, made to travel with ``fn`` to a process that may not read its source.

    cloudpickle sends the code of a flow file (``__main__``) by value, without its file: in
    a process-pool worker :func:`source_digest` can only hash bytecode there, and the digest
    would differ from the one made in the process that read the file. The pair is what
    stands for ``fn`` where its source cannot be read, and ``fn``'s digest made here; see
    :func:`code_digest`'s ``carried``.
    """
    fn = inspect.unwrap(fn)
    return _sourceless_digest(fn), code_digest(fn)


def _source_digest(obj: Any) -> str:
    # a function's own lines, found from its code object: inspect.getsource(function) would
    # give a functools.wraps wrapper's wrapped function instead
    own = obj.__code__ if isinstance(obj, types.FunctionType) else obj
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(own)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return _sourceless_digest(obj)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:32]


def _sourceless_digest(obj: Any) -> str:
    """What stands for code whose source cannot be read: its bytecode (its name, for an
    object with no code)."""
    code = getattr(obj, "__code__", None)
    if code is None:
        return hash_value(("no source", _qualified_name(obj)))
    found = _BYTECODES.get(code)
    if found is None:  # (a task pickled for every call makes its carried digest each time)
        found = _BYTECODES[code] = hashlib.sha256(_bytecode(code).encode()).hexdigest()[:32]
    return found


_BYTECODES: dict[types.CodeType, str] = {}  # code object -> _sourceless_digest, per process


def _describe(value: Any, depth: int, seen: set[int]) -> Any:
    """A tagged, hashable description of ``value`` (see the module docstring)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list, set, frozenset, dict)):
        return _describe_plain_container(value)
    if isinstance(value, types.ModuleType):
        return ("module", value.__name__, _origin(value.__name__))
    wrapped = _wrapped(value)
    if wrapped is not None:
        return ("wraps", _describe_callable(value, depth, seen), _describe(wrapped, depth, seen))
    return _describe_callable(value, depth, seen)


def _describe_callable(value: Any, depth: int, seen: set[int]) -> Any:
    if isinstance(value, (functools.partial, functools.partialmethod)):
        return _describe_partial(value, depth, seen)
    if isinstance(value, types.MethodType):
        return (
            "method",
            _describe(value.__func__, depth, seen),
            _describe(value.__self__, depth, seen),
        )
    if not isinstance(value, (types.FunctionType, type)):
        if isinstance(value, types.BuiltinFunctionType):
            owner = getattr(value, "__module__", None) or ""
            return ("callable", _qualified_name(value), _origin(owner))
        return ("object", _qualified_name(type(value)))
    module = getattr(value, "__module__", None) or ""
    origin = _origin(module)
    if origin is not None:
        return ("code", _qualified_name(value), origin)
    if id(value) in seen or depth <= 0:
        return ("code", _qualified_name(value), "seen" if id(value) in seen else "depth")
    seen.add(id(value))
    if isinstance(value, type):
        return _describe_class(value, depth, seen)
    return (
        "function",
        _qualified_name(value),
        source_digest(value),
        tuple(_closure(value, depth, seen)),
        tuple(_globals_read(value, depth, seen)),
    )


def _wrapped(value: Any) -> Any:
    """What a decorator that used ``functools.wraps`` wrapped (``lru_cache``, the user's own
    decorators), else None. Only a callable that has ``__wrapped__`` itself is unwrapped, so
    that an object's ``__getattr__`` never runs here; a class is never unwrapped."""
    if isinstance(value, type) or not callable(value):
        return None
    if inspect.getattr_static(value, "__wrapped__", None) is None:
        return None
    try:
        inner = inspect.unwrap(value)
    except ValueError:  # a cycle of __wrapped__, or a chain too long to follow
        return None
    return None if inner is value else inner


def _describe_partial(value: Any, depth: int, seen: set[int]) -> Any:
    """``functools.partial`` / ``partialmethod``: the function and the arguments it binds."""
    keywords = sorted(value.keywords.items())
    return (
        "partial",
        _describe(value.func, depth, seen),
        tuple(_describe(arg, depth - 1, seen) for arg in value.args),
        tuple((name, _describe(arg, depth - 1, seen)) for name, arg in keywords),
    )


def _describe_class(cls: type, depth: int, seen: set[int]) -> Any:
    """A class of the user's code: its source, then each method's code and what it reads
    (as a function's), then its bases. Class attributes count by their source."""
    members = ((name, _member_functions(member)) for name, member in sorted(vars(cls).items()))
    methods = tuple(
        (name, tuple(_describe(fn, depth, seen) for fn in functions))
        for name, functions in members
        if functions
    )
    bases = tuple(_describe(base, depth, seen) for base in cls.__bases__)
    return ("class", _qualified_name(cls), source_digest(cls), methods, bases)


def _member_functions(member: Any) -> tuple[Any, ...]:
    """The code a class member runs: a method, static or class method, the accessors of a
    property, a cached property's function; a wrapped or partial function as itself."""
    if isinstance(member, (staticmethod, classmethod)):
        return (member.__func__,)
    if isinstance(member, property):
        return tuple(fn for fn in (member.fget, member.fset, member.fdel) if fn is not None)
    if isinstance(member, functools.cached_property):
        return (member.func,)
    if isinstance(member, (types.FunctionType, functools.partial, functools.partialmethod)):
        return (member,)
    return (member,) if _wrapped(member) is not None else ()


def _describe_plain_container(value: Any) -> Any:
    try:
        return ("value", hash_value(value))
    except UnhashableValue:
        return ("object", _qualified_name(type(value)))


def _closure(fn: types.FunctionType, depth: int, seen: set[int]) -> Iterator[Any]:
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned later)
            continue
        yield (name, _describe(content, depth - 1, seen))


def _globals_read(fn: types.FunctionType, depth: int, seen: set[int]) -> Iterator[Any]:
    namespace = fn.__globals__
    names = _names_loaded(fn.__code__)
    for name in sorted(names):
        if name not in namespace:
            if not hasattr(builtins, name):
                yield (name, "undefined")
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType) and _origin(value.__name__) is None:
            yield (name, _user_module(value, names, depth, seen))
        else:
            yield (name, _describe(value, depth - 1, seen))


def _user_module(module: types.ModuleType, names: set[str], depth: int, seen: set[int]) -> Any:
    """A module of the user's code, as the attributes the function may use from it
    (``helpers.helper``, ``helpers.K``): every name the code loads that the module has."""
    members = vars(module)
    used = tuple((n, _describe(members[n], depth - 1, seen)) for n in sorted(names) if n in members)
    return ("module", module.__name__, used)


def _names_loaded(code: types.CodeType) -> set[str]:
    """Global (and attribute) names used by ``code`` and the code objects nested in it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_loaded(const)
    return names


def _bytecode(code: types.CodeType) -> str:
    consts = [_bytecode(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return json.dumps([code.co_code.hex(), consts, list(code.co_names)])


def _qualified_name(obj: Any) -> str:
    """``module.qualname``; a script's module is named ``<script>`` (see
    :func:`flowcore.utilities.hashing.module_name`)."""
    return f"{module_name(getattr(obj, '__module__', None))}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


# -- where code comes from -----------------------------------------------------------------

_ORIGINS: dict[str, Any] = {}


def _origin(module: str) -> Any:
    """None for the user's code; else what stands for the code (stdlib or distribution)."""
    top = module.partition(".")[0]
    if top in _ORIGINS:
        return _ORIGINS[top]
    if not top or top == "__main__":
        found = None
    elif top in sys.stdlib_module_names or top == "builtins":
        found = ("stdlib", f"{sys.version_info.major}.{sys.version_info.minor}")
    else:
        found = _distribution(top)
    _ORIGINS[top] = found
    return found


_PACKAGES: Mapping[str, list[str]] | None = None


def _distribution(top: str) -> Any:
    """``("dist", name, version)`` for a module installed from a distribution (not an
    editable install of the user's own project), else None."""
    from importlib import metadata

    global _PACKAGES
    packages = _PACKAGES
    if packages is None:
        packages = _PACKAGES = metadata.packages_distributions()
    for name in packages.get(top, ()):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if _editable(dist):
            return None
        return ("dist", name, dist.version)
    return None


def _editable(dist: Any) -> bool:
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(direct.get("dir_info", {}).get("editable"))
