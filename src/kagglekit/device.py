"""The one spelling of a compute device: `--device auto|cpu|cuda` (default auto everywhere).

`auto` is the GPU when torch sees one, else the CPU; `cuda` without a GPU is one UserError rather
than a CUDA traceback halfway through a command.
"""

from __future__ import annotations

from kagglekit.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto") -> str:
    """'auto' (or None) -> 'cuda' when a GPU is visible, else 'cpu'; 'cpu'; 'cuda' / 'cuda:N' only when
    that GPU exists."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is visible to torch (use --device cpu or auto)")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UserError(
                f"--device {name}: torch sees {torch.cuda.device_count()} GPU(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )
        return name
    raise UserError(f"--device {name}: expected one of {', '.join(DEVICES)}")
