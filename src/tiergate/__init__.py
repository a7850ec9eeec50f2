"""tiergate: governed LLM agent runs on Temporal. The model proposes, deterministic code decides.

The names a team imports to put its own tools behind the gate:

    from tiergate import Toolset, ToolCall, Toolkit, TiergatePlugin
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tiergate.tools import Replayed, ToolCall, Toolset
    from tiergate.worker import TiergatePlugin, Toolkit

#: Public name -> the module that defines it, imported on first use so `import tiergate`
#: (which every submodule import runs) stays free.
_PUBLIC = {
    "__version__": "tiergate.core",
    "Toolset": "tiergate.tools",
    "Replayed": "tiergate.tools",
    "ToolCall": "tiergate.tools",
    "Toolkit": "tiergate.worker",
    "TiergatePlugin": "tiergate.worker",
}

__all__ = ["Replayed", "TiergatePlugin", "ToolCall", "Toolkit", "Toolset"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'tiergate' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), "VERSION" if name == "__version__" else name)
