"""What OpenLineage costs each task, read from the task logs of a real run.

    .venv/bin/python benchmarks/lineage_cost.py <VRU_HOME>/airflow/logs

No run of its own: point it at the logs of a `vru run` (or of the end-to-end test's VRU_HOME).
For every task attempt it takes, from the log's timestamps:
- START: from "Worker startup parse complete" (the task is about to run) to the provider's
  "Successfully emitted OpenLineage `START` event" (extraction, the client, the file written);
- COMPLETE: from "::group::Post Execute" to "... `COMPLETE` event" (the same, after the task);
- for dbt tasks, from dbt's "Done. PASS=..." to "Post Execute": Cosmos's work after dbt, which
  includes parsing dbt's artifacts into OpenLineage events (not separable in the log).
A sensor in reschedule mode is left out of COMPLETE (its post-execute and its end are pokes apart).
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import datetime
from pathlib import Path


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _first(events: list[dict[str, object]], marker: str, start: bool = True) -> datetime | None:
    for event in events:
        text = str(event.get("event", ""))
        if (text.startswith(marker) if start else marker in text) and "timestamp" in event:
            return _time(str(event["timestamp"]))
    return None


def main(logs: Path) -> None:
    start_costs: list[float] = []
    complete_costs: list[float] = []
    after_dbt: list[float] = []
    for path in sorted(logs.glob("dag_id=*/run_id=*/task_id=*/attempt=*.log")):
        events = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        parsed = _first(events, "Worker startup parse complete")
        started = _first(events, "emitted OpenLineage `START`", start=False)
        post = _first(events, "::group::Post Execute")
        completed = _first(events, "emitted OpenLineage `COMPLETE`", start=False)
        done = _first(events, "Done. PASS=", start=False)
        if parsed and started:
            start_costs.append((started - parsed).total_seconds())
        if post and completed and "wait_for_ingests" not in str(path):
            complete_costs.append((completed - post).total_seconds())
        if done and post:
            after_dbt.append((post - done).total_seconds())
    for label, values in (("START", start_costs), ("COMPLETE", complete_costs),
                          ("dbt done -> post-execute", after_dbt)):
        if values:
            print(f"{label}: {len(values)} task attempts, median {statistics.median(values):.2f} s, "
                  f"max {max(values):.2f} s")
        else:
            print(f"{label}: no task attempts found")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lineage_cost.py <VRU_HOME>/airflow/logs")
    main(Path(sys.argv[1]))
