#!/usr/bin/env python3
"""Checks schemas/topology.schema.json with a real JSON Schema validator.

usage: schema_check.py SCHEMA GOOD_DIR BAD_DIR [MORE_GOOD_DIRS...]

The schema must be a valid draft 2020-12 schema, accept every *.yaml in the
good directories (missing directories are skipped), and refuse the files of
BAD_DIR listed in SCHEMA_INVALID: the mistakes a schema alone can see.
Exits 77 (ctest: skipped) when python3-yaml or python3-jsonschema is
missing.
"""
import glob
import json
import os
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    print(f"skipped: {e} (apt-get install python3-yaml python3-jsonschema)")
    sys.exit(77)

SCHEMA_INVALID = [
    "empty.yaml", "root_list.yaml", "root_scalar.yaml",
    "unknown_top_key.yaml", "unknown_section_key.yaml",
    "unknown_op_key.yaml", "no_operators.yaml", "empty_operators.yaml",
    "operator_not_map.yaml", "missing_type.yaml", "bad_job_name.yaml",
    "bad_op_id.yaml", "config_not_mapping.yaml", "inputs_not_list.yaml",
    "input_missing_from.yaml", "bad_partition.yaml", "parallelism_zero.yaml",
    "max_parallelism_high.yaml", "max_parallelism_zero.yaml",
    "duration_negative.yaml", "size_syntax.yaml",
]


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    schema_path, good_dir, bad_dir = argv[1], argv[2], argv[3]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    validator = cls(schema)
    passed = failed = 0
    for d in [good_dir] + argv[4:]:
        for path in sorted(glob.glob(os.path.join(d, "*.yaml")) +
                           glob.glob(os.path.join(d, "*", "*.yaml"))):
            errors = list(validator.iter_errors(load(path)))
            if errors:
                failed += 1
                print(f"FAIL {path}: refused: {errors[0].message}")
            else:
                passed += 1
                print(f"ok   {path}")
    for name in SCHEMA_INVALID:
        path = os.path.join(bad_dir, name)
        if validator.is_valid(load(path)):
            failed += 1
            print(f"FAIL {path}: accepted, but the schema should refuse it")
        else:
            passed += 1
            print(f"ok   {path} (refused)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
