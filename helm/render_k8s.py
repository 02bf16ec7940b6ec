#!/usr/bin/env python3
"""Regenerate k8s/ (plain manifests for kubectl/kustomize) from the Helm chart.

    python helm/render_k8s.py           # rewrite k8s/
    python helm/render_k8s.py --check   # exit 1 and name the files if k8s/ has drifted

The chart is rendered by Helm's own engine (helm-python-sdk, no helm binary) with its
default values plus the Namespace (VALUES: `kubectl apply -k` creates and labels it, which
Helm cannot), as release "reelworks" in namespace "reelworks": one file per template, plus
k8s/kustomization.yaml listing them. tests/test_chart.py fails when k8s/ drifts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "reelworks"
K8S = ROOT / "k8s"
RELEASE = "reelworks"
NAMESPACE = "reelworks"
COMMAND = "python helm/render_k8s.py"
HEADER = f"# Generated from helm/reelworks by `{COMMAND}`: do not edit, change the chart.\n"
# The namespace with its Pod Security labels: kustomize applies it first.
VALUES = {"namespace": {"create": True}}


def render(values: dict | None = None) -> dict[str, str]:
    """k8s/ file name -> content, for the chart rendered with `values` (default: VALUES)."""
    import helm_python

    with helm_python.Chart.load(str(CHART)) as chart:
        rendered = chart.render(VALUES if values is None else values, name=RELEASE, namespace=NAMESPACE)
    files: dict[str, str] = {}
    for template, text in sorted(rendered.items()):
        name = Path(template).name
        body = text.strip()
        # NOTES.txt is for people; a template switched off renders nothing (or only comments).
        if not name.endswith(".yaml") or not _has_object(body):
            continue
        files[name] = HEADER + body + "\n"
    resources = "".join(f"  - {name}\n" for name in sorted(files))
    files["kustomization.yaml"] = (
        HEADER
        + "# PrometheusRule (prometheusrule.yaml) needs the Prometheus Operator's CRDs; the admission\n"
        + "# policies (admissionpolicy.yaml) are cluster-scoped: applying them needs cluster-admin.\n"
        + "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        + f"resources:\n{resources}"
    )
    return files


def _has_object(text: str) -> bool:
    import yaml

    return any(doc for doc in yaml.safe_load_all(text))


def drift(files: dict[str, str]) -> list[str]:
    """Files in k8s/ that differ from `files`, are missing, or are generated but stale."""
    problems = [name for name, text in files.items()
                if not (K8S / name).is_file() or (K8S / name).read_text() != text]
    problems += [path.name for path in sorted(K8S.glob("*.yaml"))
                 if path.name not in files and path.read_text().startswith(HEADER)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    args = parser.parse_args(argv)
    files = render()
    stale = drift(files)
    if args.check:
        if stale:
            print(f"k8s/ is out of date with helm/reelworks ({', '.join(stale)}): run `{COMMAND}`")
            return 1
        print("k8s/ matches helm/reelworks")
        return 0
    K8S.mkdir(exist_ok=True)
    for path in K8S.glob("*.yaml"):  # drop files of templates that no longer render
        if path.name not in files and path.read_text().startswith(HEADER):
            path.unlink()
    for name, text in files.items():
        (K8S / name).write_text(text)
    print(f"wrote {len(files)} files to k8s/" + (f" (changed: {', '.join(stale)})" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
