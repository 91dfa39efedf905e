#!/usr/bin/env python3
"""Validates every PodMonitor in YAML files against the Prometheus Operator's CRD schema.

The schema comes as the pydantic models that PyPI's cloudcoil-models-prometheus-operator
generates from the operator's CRDs (types, required fields, patterns such as durations).
Those models ignore unknown fields, so strictness is added here: the document must survive a
round trip through the model unchanged (a dropped key is one the CRD does not have).

usage: validate_podmonitor.py FILE...   (exit 1 on any invalid PodMonitor, 2 if none found)
"""
import sys

import yaml
from cloudcoil.models.prometheus_operator import v1


def unknown_keys(given, kept, path=""):
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "."]
        out = []
        for k, v in given.items():
            if k not in kept:
                out.append(f"{path}.{k}")
            else:
                out += unknown_keys(v, kept[k], f"{path}.{k}")
        return out
    if isinstance(given, list) and isinstance(kept, list):
        out = []
        for i, (g, k) in enumerate(zip(given, kept)):
            out += unknown_keys(g, k, f"{path}[{i}]")
        return out
    return []


found, failed = 0, 0
for name in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(name)):
        if not doc or doc.get("kind") != "PodMonitor":
            continue
        found += 1
        what = f"{name}: PodMonitor {doc.get('metadata', {}).get('name')}"
        try:
            model = v1.PodMonitor.model_validate(doc)
        except Exception as e:
            print(f"ERROR {what}: {e}")
            failed += 1
            continue
        kept = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
        extra = unknown_keys(doc, kept)
        if extra:
            print(f"ERROR {what}: unknown fields {extra}")
            failed += 1
        else:
            print(f"INFO {what} valid")
if found == 0:
    print("ERROR no PodMonitor found")
    sys.exit(2)
sys.exit(1 if failed else 0)
