"""Name -> builder registries: one per kind (tasks, losses, each task's models); names are explicit.

A registry may be given the modules that fill it: they are imported on the first lookup, so what
a registry holds never depends on what the caller happened to import before.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from kagglekit.errors import UserError


class UnknownNameError(UserError, KeyError):
    """A name no builder is registered under; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class BadArgumentsError(UserError, TypeError):
    """Keyword arguments (e.g. a config's model.kwargs) that the builder does not take."""


class Registry:
    def __init__(self, kind: str, modules: Iterable[str] = (), loader: Callable[[Registry], None] | None = None):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}
        self._modules = tuple(modules)  # imported on first lookup; they register their builders
        self._loader = loader  # or a function that fills the registry (e.g. from entry points)
        self._loaded = not (self._modules or loader)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._modules:
            importlib.import_module(module)
        if self._loader is not None:
            self._loader(self)

    def register(self, name: str, builder: Callable[..., Any] | None = None):
        """`@registry.register("name")` on a class or function, or `registry.register("name", obj)`."""

        def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders and self._builders[name] is not obj:
                raise KeyError(f"{self.kind} '{name}' is already registered ({self._builders[name]!r})")
            self._builders[name] = obj
            return obj

        return decorator(builder) if builder is not None else decorator

    def unregister(self, name: str) -> None:
        self._builders.pop(name, None)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._builders)

    def get(self, name: str) -> Callable[..., Any]:
        self._load()
        if name not in self._builders:
            raise UnknownNameError(f"unknown {self.kind} '{name}'; valid names: {', '.join(self.names())}")
        return self._builders[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        builder = self.get(name)
        params = inspect.signature(builder).parameters
        takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params] if not takes_var_kw else []
        if unknown:
            valid = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
            raise BadArgumentsError(f"{self.kind} '{name}' got unknown argument(s) {unknown}; valid: {valid}")
        try:
            return builder(**kwargs)
        except (ValueError, TypeError, AssertionError) as err:  # arguments that do not fit together (--debug: traceback)
            raise BadArgumentsError(
                f"{self.kind} '{name}' cannot be built from {kwargs}: {' '.join(str(err).split()) or type(err).__name__}"
            ) from err

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._builders
