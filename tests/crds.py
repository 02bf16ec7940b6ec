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
