"""Where a build's time went, from its log as NDJSON (tests/bench/buildpacks uses it).

Prints one Markdown table row's cells: builder start, assemble, layers, push, to rollout,
pull and start, health check, total to live (seconds)."""
import json
import re
import sys
from datetime import datetime


def at(records, needle):
    for record in records:
        if needle in record["text"]:
            return datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
    raise SystemExit(f"no line with {needle!r} in the build log")


records = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{") and '"text"' in line]
start = at(records, "-----> Building ")
assemble = at(records, "-----> Running assemble")
exported = at(records, "-----> Exporting:")
pushed = at(records, "-----> Pushing ")
rolling = at(records, "-----> Rolling out release")
started = at(records, "; checking http://")
live = at(records, "answers; traffic switched")
layers = next(float(m.group(1)) for r in records if (m := re.search(r"layers ([0-9.]+) s", r["text"])))
cells = [assemble - start, exported - assemble - layers, layers, pushed - exported, rolling - pushed,
         started - rolling, live - started, live - start]
print(" | ".join(f"{c:.2f} s" for c in cells))
