"""Packaging glue: `components/` and `pipelines/` live at the repository root (the
layout Kubeflow users expect) but install as `reelworks.components` and
`reelworks.pipelines`, so images and the CLI find them without the checkout.

Namespace discovery for `reelworks` so that its data folders (`reelworks/plots/data/...`, no
`__init__.py`) are declared packages and their files ship as package data."""
from setuptools import find_namespace_packages, find_packages, setup

ROOTS = {"reelworks.components": "components", "reelworks.pipelines": "pipelines"}

packages = find_namespace_packages(include=["reelworks", "reelworks.*"])
package_dir = {}
for name, folder in ROOTS.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir, include_package_data=True,
      package_data={"reelworks": ["**/*.txt", "**/*.json", "**/*.yaml"]})
