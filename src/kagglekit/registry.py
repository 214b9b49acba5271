"""Name -> builder registries. One registry per kind (models, losses); names are explicit."""

from __future__ import annotations

import inspect
from typing import Any, Callable


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise KeyError(f"{self.kind} '{name}' is already registered ({self._builders[name]!r})")
            self._builders[name] = builder
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self._builders)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._builders:
            raise KeyError(f"unknown {self.kind} '{name}'; valid names: {', '.join(self.names())}")
        return self._builders[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        builder = self.get(name)
        params = inspect.signature(builder).parameters
        takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params] if not takes_var_kw else []
        if unknown:
            valid = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
            raise TypeError(f"{self.kind} '{name}' got unknown argument(s) {unknown}; valid: {valid}")
        return builder(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._builders


MODELS = Registry("model")
LOSSES = Registry("loss")
TASKS = Registry("task")
