"""Validate objects against the upstream CRD schemas in ../shared/data/crds/ (see SOURCE.md there).

`validate(obj)` checks an object against its CRD's `openAPIV3Schema`, strictly: every schema
object that lists `properties` (and does not preserve unknown fields) rejects fields it does not
list, as the API server does with strict field validation. CEL rules are not checked.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from tests.conftest import missing


def crds_dir() -> Path:
    from reelworks.settings import shared_data_dir

    path = shared_data_dir() / "crds"
    if not path.is_dir():
        missing(f"the CRD schemas are not at {path} (set REELWORKS_SHARED_DATA)")
    return path


def _strict(schema):
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        # SOURCE.md: a Go RE2 pattern with a global flag after `^`, which Python's re refuses.
        if schema.get("pattern") == "^(?i)(abort|warn)?$":
            schema["pattern"] = "(?i)^(abort|warn)?$"
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.lru_cache(maxsize=None)
def _schemas() -> dict[tuple[str, str], dict]:
    out = {}
    for path in sorted(crds_dir().glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # MBs of schema
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            out[(f"{group}/{version['name']}", kind)] = _strict(version["schema"]["openAPIV3Schema"])
    return out


def validate(obj: dict) -> None:
    """Raise jsonschema.ValidationError unless `obj` is valid for its CRD (strictly)."""
    import jsonschema

    key = (obj["apiVersion"], obj["kind"])
    schemas = _schemas()
    assert key in schemas, f"no CRD for {key}; known: {sorted(schemas)}"
    jsonschema.Draft4Validator(copy.deepcopy(schemas[key]), format_checker=jsonschema.FormatChecker()).validate(obj)


def schema(api_version: str, kind: str) -> dict:
    """The `openAPIV3Schema` of `kind` in `api_version` (strict, as `validate` uses it)."""
    schemas = _schemas()
    assert (api_version, kind) in schemas, f"no CRD for {(api_version, kind)}; known: {sorted(schemas)}"
    return schemas[(api_version, kind)]


# --------------------------------------------------------------------------- CEL field paths

MACROS = {"all", "exists", "exists_one", "filter", "map"}


class FieldPaths:
    """The object field paths the CEL expressions of a ValidatingAdmissionPolicy read, each
    resolved against a CRD schema: `object` is the root; comprehension variables (all, exists,
    filter, map) take the element schema of what they range over (list items, map values through
    `[key]`); `variables.<name>` takes the schema of its expression, so a path through a variable
    is checked in full. `paths` holds every path resolved, `missing` those the schema lacks.
    Parsed by cel-python's parser (the CEL grammar), not matched with regular expressions."""

    def __init__(self, root: dict):
        from celpy import celparser

        self.parser = celparser.CELParser()
        self.root = root
        self.variables: dict[str, object] = {}
        self.paths: set[str] = set()
        self.missing: set[str] = set()

    def add_variable(self, name: str, expression: str) -> None:
        self.variables[name] = self.resolve(expression)

    def resolve(self, expression: str):
        return self._walk(self.parser.parse(expression), {"object": ("object", self.root)})

    # A resolved value is (path, schema dict), ("list", element) for lists CEL builds, or None.
    def _walk(self, node, scope):
        from lark import Token, Tree

        if isinstance(node, Token):
            return None
        children = [c for c in node.children if c is not None]
        rule = node.data
        if rule == "ident":
            return scope.get(str(children[0]), "variables" if str(children[0]) == "variables" else None)
        if rule == "member_dot":
            return self._field(self._walk(children[0], scope), str(children[1]))
        if rule == "member_index":
            self._walk(children[1], scope)
            return self._element(self._walk(children[0], scope), index=True)
        if rule == "member_dot_arg":
            return self._call(children, scope)
        if rule == "list_lit":
            items = [self._walk(c, scope) for c in children]
            return ("list", next((i for i in items if i is not None), None))
        if rule == "expr" and len(children) == 3:  # cond ? a : b
            self._walk(children[0], scope)
            first, second = self._walk(children[1], scope), self._walk(children[2], scope)
            return first if first is not None else second
        results = [self._walk(c, scope) for c in children if isinstance(c, Tree)]
        return results[0] if len(results) == 1 and len(children) == 1 else None

    def _call(self, children, scope):
        target, method = children[0], str(children[1])
        args = children[2].children if len(children) > 2 else []
        base = self._walk(target, scope)
        if method not in MACROS:
            for arg in args:
                self._walk(arg, scope)
            return None
        variable = self._identifier(args[0])
        inner = {**scope, variable: self._element(base)}
        results = [self._walk(arg, inner) for arg in args[1:]]
        if method == "map":
            return ("list", results[-1])
        return base if method == "filter" else None

    @staticmethod
    def _identifier(node) -> str:
        from lark import Token

        tokens = [t for t in node.scan_values(lambda v: isinstance(v, Token))]
        assert len(tokens) == 1, f"a comprehension variable must be one identifier: {tokens}"
        return str(tokens[0])

    def _field(self, base, name: str):
        if base == "variables":
            assert name in self.variables, f"variables.{name} is used before it is defined"
            return self.variables[name]
        if not isinstance(base, tuple) or base[0] == "list":
            return None
        path, schema = base
        path = f"{path}.{name}"
        if name in schema.get("properties", {}):
            self.paths.add(path)
            return (path, schema["properties"][name])
        if isinstance(schema.get("additionalProperties"), dict):  # a map: `m.key`
            return (f"{path[:-len(name) - 1]}[{name}]", schema["additionalProperties"])
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            self.missing.add(path)
        return None

    @staticmethod
    def _element(base, index: bool = False):
        """What a comprehension over `base` (or `base[i]`) sees: list items, or a map's keys (its
        values through `[key]`)."""
        if not isinstance(base, tuple):
            return None
        if base[0] == "list":
            return base[1]
        path, schema = base
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            return (f"{path}[*]", schema["items"])
        if isinstance(schema.get("additionalProperties"), dict):
            return (f"{path}[*]", schema["additionalProperties"]) if index else None  # keys are strings
        return None
