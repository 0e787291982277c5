"""Parses a Prometheus text exposition (stdin) with the reference parser,
prometheus_client, and prints every sample as JSON lines:
{"family": ..., "type": ..., "name": ..., "labels": {...}, "value": ...}.
A parse error exits non-zero."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(json.dumps({"family": family.name, "type": family.type, "name": sample.name,
                              "labels": sample.labels, "value": sample.value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
