"""Where a build's time went, from its log as NDJSON.

    stages.py LOG             one Markdown table row's cells (tests/bench/buildpacks): builder
                              start (0 when no builder ran), assemble, layers, push, to rollout,
                              pull and start, health check, total to live (seconds)
    stages.py --timeline LOG  each heading and readiness line with its seconds from the first
                              (tests/bench/in-cluster: a build pod's steps have other lines)"""
import json
import re
import sys
from datetime import datetime


def seconds(record):
    return datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def at(records, *needles):
    """The time of the first line with the first of `needles` that the log has."""
    for needle in needles:
        for record in records:
            if needle in record["text"]:
                return seconds(record)
    raise SystemExit(f"no line with any of {needles!r} in the build log")


timeline = sys.argv[1] == "--timeline"
records = [json.loads(line) for line in open(sys.argv[-1]) if line.strip().startswith("{") and '"text"' in line]
if timeline:
    first = seconds(records[0])
    for record in records:
        text = record["text"].strip()
        if text.startswith("----->") or "answers" in text or "Ready" in text:
            print(f"  {seconds(record) - first:6.2f}  {text[:110]}")
    sys.exit(0)
start = at(records, "-----> Building ")
# A build with no builder (a copy, or unchanged dependencies) has no builder start.
assemble = at(records, "-----> Running assemble", "no builder to run")
exported = at(records, "-----> Exporting:")
pushed = at(records, "-----> Pushing ")
rolling = at(records, "-----> Rolling out release")
started = at(records, "; checking http://")
live = at(records, "answers; traffic switched")
layers = next(float(m.group(1)) for r in records if (m := re.search(r"layers ([0-9.]+) s", r["text"])))
cells = [assemble - start, exported - assemble - layers, layers, pushed - exported, rolling - pushed,
         started - rolling, live - started, live - start]
print(" | ".join(f"{c:.2f} s" for c in cells))
