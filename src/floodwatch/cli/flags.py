"""Library errors name parameters ("gpus: must be at least 1", "... give the VH file as `vh`"), so they read
right for Python callers; a command-line user knows flags. `with_flags` rewrites those names into the flags
of the command that ran: the message's leading "name:" (or "a, b:") and any `name` in backticks."""
from __future__ import annotations

import re
from typing import Any, Sequence

#: library parameter -> the CLI parameter that feeds it, where their names differ
ALIASES = {"predictor": "model", "source": "stac", "webhooks": "webhook", "formats": "format",
           "timeout_s": "timeout", "startup_timeout_s": "startup_timeout", "poll_seconds": "poll",
           "model_name": "triton_model", "pretrained": "model"}
#: library parameters whose values come from another CLI parameter even where one of the same name exists:
#: `tta` takes the transform names, which only --tta-transforms gives (--tta is on/off)
VALUE_FROM = {"tta": "tta_transforms"}

_HEAD = re.compile(r"^([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*):")
_TICKED = re.compile(r"`([a-z_][a-z0-9_]*)`")


def command_flags(root: Any, argv: Sequence[str]) -> dict[str, str]:
    """{parameter name: its long flag (or ARGUMENT name)} of the (sub)command `argv` invokes."""
    command, args = root, list(argv)
    while hasattr(command, "commands"):  # a group (typer may bring its own click classes: duck-typed)
        name = next((a for a in args if a in command.commands), None)
        if name is None:
            return {}
        command, args = command.commands[name], args[args.index(name) + 1:]
    flags = {}
    for param in command.params:
        if param.param_type_name == "argument":
            flags[param.name] = param.name.upper()
        else:
            longs = [o for o in param.opts if o.startswith("--")]
            flags[param.name] = max(longs, key=len) if longs else param.opts[0]
    return flags


def with_flags(message: str, flags: dict[str, str]) -> str:
    def flag(name: str) -> str | None:
        return flags.get(VALUE_FROM.get(name, "")) or flags.get(name) or flags.get(ALIASES.get(name, ""))

    head = _HEAD.match(message)
    if head and all(flag(n) for n in head.group(1).split(", ")):
        message = ", ".join(flag(n) for n in head.group(1).split(", ")) + message[head.end(1):]
    return _TICKED.sub(lambda m: flag(m.group(1)) or m.group(0), message)
