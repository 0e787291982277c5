"""Parses a Prometheus exposition (stdin) with the reference parsers of
prometheus_client: the text format 0.0.4, or OpenMetrics with the argument
`openmetrics`. Prints every sample as JSON lines:
{"family": ..., "type": ..., "name": ..., "labels": {...}, "value": ...}.
A parse error exits non-zero."""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    openmetrics = sys.argv[1:] == ["openmetrics"]
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    for family in parse(text):
        for sample in family.samples:
            print(json.dumps({"family": family.name, "type": family.type, "name": sample.name,
                              "labels": sample.labels, "value": sample.value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
