"""What the ``raymer`` subcommands share: a config's settings as ``--help`` text, and the
parser of a command driven by a typed config (its input flag, --output, --config, key=value)."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable

from pydantic import BaseModel

from raymer.config import ConfigError


def fields_help(cls: type[BaseModel]) -> str:
    """Every config field with its default and description: the key=value overrides."""
    lines = ["settings (in --config YAML or as key=value overrides):"]
    lines += _field_lines(cls, "", skip=tuple(getattr(cls, "UNUSED", {})))
    return "\n".join(lines)


def _field_lines(
    cls: type[BaseModel], prefix: str, defaults: BaseModel | None = None, skip: tuple = ()
) -> list[str]:
    """``defaults``: the command's own instance of a nested part (its defaults differ from
    the part's class: recognize's decode.max_file_mb is not extract's); ``skip``: dotted keys
    the command has no use for (``CommandConfig.UNUSED``)."""
    lines = []
    for name, field in cls.model_fields.items():
        if f"{prefix}{name}" in skip:
            continue
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            if defaults is not None:
                inner = getattr(defaults, name)
            elif field.is_required():
                inner = None
            else:
                inner = field.get_default(call_default_factory=True)
            inner = inner if isinstance(inner, BaseModel) else None
            if field.description:
                lines += textwrap.wrap(
                    f"{prefix}{name}.*: {field.description}",
                    78,
                    initial_indent="  ",
                    subsequent_indent="      ",
                )
            lines += _field_lines(field.annotation, f"{prefix}{name}.", inner, skip)  # a.b=value
            continue
        if field.is_required():
            default = "required"
        elif defaults is not None:
            default = repr(getattr(defaults, name))
        else:
            default = repr(field.get_default(call_default_factory=True))
        lines.append(f"  {prefix}{name} (default {default})")
        lines += textwrap.wrap(
            field.description or "", 76, initial_indent="      ", subsequent_indent="      "
        )
    return lines


def config_command(
    sub,
    name: str,
    cls: type[BaseModel],
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    source: tuple[str, str],
    output: str,
    configs: str,
    redo: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand driven by a typed config: its input, --output, --config and key=value
    (``configs``: the folder of its shipped YAML configs)."""
    cmd = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=fields_help(cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument(source[0], help=source[1])
    cmd.add_argument("--output", help=output)
    cmd.add_argument("--config", help=f"YAML config file (see {configs})")
    if redo:
        cmd.add_argument(
            "--redo",
            action="store_const",
            const=True,
            help="replace an output made with other settings (redo=true)",
        )
    cmd.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    cmd.set_defaults(func=func)
    return cmd


def where(items: list[str] | None) -> dict[str, list[str]]:
    """``--where COLUMN=V1,V2`` (repeatable) -> {column: values}."""
    out = {}
    for item in items or []:
        column, sep, values = item.partition("=")
        if not sep:
            raise ConfigError(f"--where {item!r} is not of the form COLUMN=V1,V2")
        out[column] = values.split(",")
    return out
