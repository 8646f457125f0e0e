"""Parses an OpenMetrics text exposition with prometheus-client's own parser (written by the
Prometheus authors, not by us) and prints every sample as `name{label="v",...} value`, sorted.

Usage: parse_metrics.py < metrics.txt. Exits non-zero if the text does not parse. Run by the
Rust test `status::metrics_parse_and_move`.
"""

import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    lines = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            lines.append(f"{s.name}{{{labels}}} {s.value}")
    print("\n".join(sorted(lines)))


if __name__ == "__main__":
    main()
