"""Finding a team's toolsets: by import path, and from installed packages' entry points.

``module:attribute`` names a `Toolset`, or a list or tuple of them (``tools:acme``,
``acme_billing.tools:TOOLSETS``). The current directory is importable, so a ``tools.py``
beside the agent configs works as it does for uvicorn's ``module:app``. Installed packages
offer toolsets under the entry-point group ``tiergate.toolsets``.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

from tiergate.errors import ToolRegistrationError
from tiergate.tools._toolset import Toolset

ENTRY_POINT_GROUP = "tiergate.toolsets"


def load_toolsets(path: str) -> list[Toolset]:
    """The toolsets ``path`` (``module:attribute``) names, or ToolRegistrationError saying
    what is wrong with it."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ToolRegistrationError(
            f"toolset {path!r} is not an import path",
            fix="write module:attribute, e.g. --toolset tools:acme",
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ToolRegistrationError(
            f"cannot import {module_name!r} for toolset {path!r}: {error}",
            fix="run from the folder that holds it, or install its package",
        ) from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise ToolRegistrationError(
            f"module {module_name!r} has no {attribute!r}", fix="name the Toolset variable"
        ) from None
    return _toolsets(value, path)


def offered_toolsets() -> list[Toolset]:
    """The toolsets installed packages offer (entry-point group ``tiergate.toolsets``)."""
    found: list[Toolset] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.extend(_toolsets(point.load(), f"entry point {point.name} ({point.value})"))
    return found


def _toolsets(value: object, where: str) -> list[Toolset]:
    if isinstance(value, Toolset):
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(v, Toolset) for v in value):
        return list(value)
    raise ToolRegistrationError(
        f"{where} is a {type(value).__name__}, not a Toolset",
        fix="point at a tiergate.Toolset (or a list of them)",
    )
