"""Moved to fwi/data/generated.py (the data layer owns the generated-folder format); kept only
until fwi/pseudo.py imports from there."""

from kagglekit.fwi.data.generated import GeneratedRows, format_origin, parse_origin, write_generated_folder

__all__ = ["GeneratedRows", "format_origin", "parse_origin", "write_generated_folder"]
