"""`helm template` for the Hearth chart, in Python, for machines without helm (CI here has none).

It implements the part of Go templates and Helm's functions that deploy/helm/hearth uses, no more:
actions `{{ pipeline }}`, `{{- ... -}}` whitespace trimming, comments, `if`/`else`/`end`; terms
`.Values.x`, `.Release.Name`, `.Release.Namespace`, `.Chart.*`, string and number literals and
parenthesised pipelines; functions quote, toYaml, toJson, nindent, indent, default, not, and, or,
eq, add, printf and fail. Anything else raises, so the chart cannot drift into what this renderer
would render wrongly. When helm is installed, tests/deploy/test_scaleout.py compares the two.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


class ChartError(Exception):
    """The chart called `fail`, or uses something this renderer does not implement."""


def _empty(value) -> bool:  # Go templates' notion of false
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def _to_yaml(value) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _printf(fmt: str, *args) -> str:
    values = iter(args)
    return re.sub(r"%[sdv]", lambda _: str(next(values)), fmt)


FUNCTIONS = {
    "quote": lambda v: json.dumps("" if v is None else str(v)),
    "toYaml": _to_yaml,
    "toJson": lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")),
    "nindent": lambda n, s: "\n" + "\n".join(" " * n + line for line in str(s).split("\n")),
    "indent": lambda n, s: "\n".join(" " * n + line for line in str(s).split("\n")),
    "default": lambda d, v: d if _empty(v) else v,
    "not": lambda v: _empty(v),
    "and": lambda *vs: next((v for v in vs if _empty(v)), vs[-1]),
    "or": lambda *vs: next((v for v in vs if not _empty(v)), vs[-1]),
    "eq": lambda a, b: a == b,
    "add": lambda *vs: sum(int(v) for v in vs),
    "printf": _printf,
}


def _split_terms(text: str) -> list[str]:
    """Words of a command, keeping "strings" and (sub pipelines) whole."""
    terms, depth, current, quoted = [], 0, "", False
    for ch in text:
        if quoted:
            current += ch
            quoted = ch != '"' or current.endswith('\\"')
        elif ch == '"':
            current, quoted = current + ch, True
        elif ch == "(":
            depth, current = depth + 1, current + ch
        elif ch == ")":
            depth, current = depth - 1, current + ch
        elif ch.isspace() and depth == 0:
            terms, current = terms + [current] if current else terms, ""
        else:
            current += ch
    return terms + [current] if current else terms


def _split_pipe(text: str) -> list[str]:
    parts, depth, current, quoted = [], 0, "", False
    for ch in text:
        if ch == '"' and not current.endswith("\\"):
            quoted = not quoted
        if not quoted:
            depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "|" and depth == 0 and not quoted:
            parts, current = parts + [current.strip()], ""
        else:
            current += ch
    return parts + [current.strip()]


class Renderer:
    def __init__(self, chart: Path, values: dict, release: str = "hearth", namespace: str = "hearth"):
        self.chart = chart
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        self.context = {"Values": values, "Release": {"Name": release, "Namespace": namespace},
                        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]}}

    def term(self, text: str):
        if text.startswith("(") and text.endswith(")"):
            return self.pipeline(text[1:-1])
        if text.startswith('"'):
            return json.loads(text)
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if text in ("true", "false"):
            return text == "true"
        if text.startswith("."):
            value = self.context
            for key in filter(None, text.split(".")):
                value = value.get(key) if isinstance(value, dict) else None
            return value
        raise ChartError(f"unsupported term {text!r}")

    def pipeline(self, text: str):
        value, first = None, True
        for command in _split_pipe(text):
            words = _split_terms(command)
            name, args = words[0], [self.term(w) for w in words[1:]]
            if name == "fail":
                raise ChartError(self.term(words[1]))
            if name in FUNCTIONS:
                value = FUNCTIONS[name](*args, *([] if first else [value]))
            elif first and not args:
                value = self.term(name)
            else:
                raise ChartError(f"unsupported function {name!r}")
            first = False
        return value

    def render_text(self, source: str) -> str:
        # Tokens: text, then (trim_left, action, trim_right) triples.
        pieces, pos = [], 0
        for m in ACTION.finditer(source):
            pieces.append(source[pos:m.start()])
            pieces.append((m.group(1) == "-", m.group(2), m.group(3) == "-"))
            pos = m.end()
        pieces.append(source[pos:])
        for i, piece in enumerate(pieces):  # apply trimming to the neighbouring text
            if isinstance(piece, tuple):
                if piece[0]:
                    pieces[i - 1] = pieces[i - 1].rstrip()
                if piece[2]:
                    pieces[i + 1] = pieces[i + 1].lstrip()
        out: list[str] = []
        stack: list[tuple[bool, bool]] = []  # (this branch renders, some branch already taken)

        def live() -> bool:
            return all(on for on, _ in stack)

        for piece in pieces:
            if isinstance(piece, str):
                if live():
                    out.append(piece)
                continue
            action = piece[1]
            if action.startswith("/*"):
                continue
            word = action.split(None, 1)[0] if action else ""
            if word == "if":
                on = live() and not _empty(self.pipeline(action[2:].strip()))
                stack.append((on, on))
            elif word == "else":
                _, taken = stack.pop()
                stack.append((not taken, True))
            elif word == "end":
                stack.pop()
            elif word in ("range", "with", "define", "include", "template", "block"):
                raise ChartError(f"unsupported action {word!r}")
            elif live():
                value = self.pipeline(action)
                out.append("" if value is None else ("true" if value is True else "false" if value is False
                                                     else str(value)))
        if stack:
            raise ChartError("an `if` has no `end`")
        return "".join(out)

    def render(self) -> dict[str, str]:
        """templates/<file> -> rendered text, as `helm template` prints it (files starting with _ skipped)."""
        return {f"templates/{p.name}": self.render_text(p.read_text())
                for p in sorted((self.chart / "templates").glob("*.yaml")) if not p.name.startswith("_")}


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def render(chart: Path, overrides: dict | None = None, release: str = "hearth", namespace: str = "hearth") -> list[dict]:
    """Every document of the rendered chart, parsed."""
    values = deep_merge(yaml.safe_load((chart / "values.yaml").read_text()), overrides or {})
    texts = Renderer(chart, values, release, namespace).render()
    return [doc for text in texts.values() for doc in yaml.safe_load_all(text) if doc]


def helm_command(chart: Path, overrides: dict, release: str, namespace: str, values_file: Path) -> list[str]:
    values_file.write_text(yaml.safe_dump(overrides))
    return shlex.split(f"helm template {release} {chart} --namespace {namespace} -f {values_file}")
