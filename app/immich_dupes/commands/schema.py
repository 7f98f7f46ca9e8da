"""``immich-dupes schema``: the plan file's JSON Schema, generated from the models."""

from __future__ import annotations

import argparse
import json

from immich_dupes.analysis.plan import plan_json_schema


def run(args: argparse.Namespace) -> int:
    print(json.dumps(plan_json_schema(), indent=2))
    return 0
