"""The provider's metadata: valid for Airflow, and discovered by Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources

import jsonschema

from ntropy_provider import get_provider_info


def test_provider_info_validates_against_airflow_schema() -> None:
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_declared_module_and_class_imports() -> None:
    import importlib

    info = get_provider_info()
    modules = [
        m
        for key in ("hooks", "operators", "sensors", "triggers")
        for e in info[key]
        for m in e["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    dotted = [c["hook-class-name"] for c in info["connection-types"]]
    dotted += [p["plugin-class"] for p in info.get("plugins", [])]
    for path in dotted:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def test_airflow_providers_list_shows_the_provider() -> None:
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    out = subprocess.run(
        [airflow, "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    packages = {entry["package_name"]: entry for entry in json.loads(out.stdout)}
    assert "ntropy-airflow-provider" in packages, sorted(packages)
