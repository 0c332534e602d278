"""Every target by name. Adding a target is one module and one line in ``_TARGETS``.

Entries are ``"module:Class"`` strings, imported only when a target is asked for, so that
listing names never imports Vela, LiteRT or TFLite Micro. Pool workers receive the same
strings, which is how a target registered at run time (a test's) reaches them.
"""

from __future__ import annotations

import pkgutil

from perfsage.errors import UnknownTargetError
from perfsage.targets.base import Target

_TARGETS: dict[str, str] = {
    "ethos-u55-128": "perfsage.targets.ethos_u:EthosU55_128",
    "ethos-u65-256": "perfsage.targets.ethos_u:EthosU65_256",
    "ethos-u85-256": "perfsage.targets.ethos_u:EthosU85_256",
    "cpu-litert": "perfsage.targets.litert_cpu:CpuLiteRT",
    "cortex-m-tflm": "perfsage.targets.tflm:CortexMTflm",
}


def target_names() -> list[str]:
    """Registered target names, in registration order."""
    return list(_TARGETS)


def register(name: str, target: str | type[Target]) -> None:
    """Add (or replace) a target: a ``"module:Class"`` path or the class itself."""
    if isinstance(target, type):
        target = f"{target.__module__}:{target.__qualname__}"
    _TARGETS[name] = target


def unregister(name: str) -> None:
    """Remove a target added with :func:`register` (tests clean up with this)."""
    _TARGETS.pop(name, None)


def target_path(name: str) -> str:
    """The ``"module:Class"`` path behind a name.

    Raises:
        UnknownTargetError: no target has that name; the message lists the valid ones.
    """
    try:
        return _TARGETS[name]
    except KeyError:
        raise UnknownTargetError(name, target_names()) from None


def load_class(path: str) -> type[Target]:
    """Import the class a ``"module:Class"`` path names."""
    return pkgutil.resolve_name(path)


def target_class(name: str) -> type[Target]:
    """The class registered under a name (imports its module)."""
    return load_class(target_path(name))


def get_target(name: str, **options) -> Target:
    """A ready-to-use target by name; keyword options go to its constructor.

    Raises:
        UnknownTargetError: no target has that name.
    """
    return target_class(name)(**options)
