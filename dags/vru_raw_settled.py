"""
### Raw settled: one transform run per night, however many feeds loaded

Runs when a feed emits a raw asset event (`raw.stop_searches`, `raw.knife_offences`,
`raw.sharp_object_admissions`, `raw.pfa_knife_offences`, `restricted.ae_attendances`), and tells
the transform when raw has settled: the transform is scheduled on this DAG's `audit.loads` event
alone, so the night's feeds, finishing minutes apart, start one transform run, not one each.

1. **wait_for_ingests**: waits (reschedule mode, no worker slot held) while any ingest is still
   loading. An ingest whose source is failing (its task waits for a retry) is not waited for: a
   dead knife crime or HES server does not hold back the stop and search marts.
2. **announce**: emits `audit.loads` (extra: the warehouse snapshot and the loads since the
   previous announcement), unless nothing loaded since the previous announcement: the events that
   started this run were already announced by the run before it (they arrived while it waited),
   so it is skipped and no second transform run starts.

A retry that later succeeds loads, emits its raw event, and starts the next settle and transform
run. See `vru.sensors.still_loading` for the rule.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetAny, Metadata, dag, get_current_context, task
from vru import registry
from vru.assets import RAW, SETTLED
from vru.incidents import task_defaults
from vru.sensors import IngestsSettledSensor


@dag(
    dag_id=registry.SETTLE_DAG,
    schedule=AssetAny(*RAW.values()),  # any feed's raw asset event
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"),
    catchup=False,
    # events that arrive while a run waits start the next one, which finds them announced
    max_active_runs=1,
    default_args=task_defaults(0),
    tags=["orchestration"],
    doc_md=__doc__,
)
def vru_raw_settled() -> None:
    settled = IngestsSettledSensor(
        task_id="wait_for_ingests",
        poke_interval=15,
        doc_md="Wait while any ingest is still loading; one whose source is failing (waiting for a retry) is not "
               "waited for (reschedule mode: no worker slot held).",
    )

    @task(inlets=[SETTLED], outlets=[SETTLED])
    def announce():  # type: ignore[no-untyped-def]
        """Emit `audit.loads` (the transform's schedule) when something loaded since the last announcement."""
        from airflow.sdk.exceptions import AirflowSkipException
        from vru.gates import loads_since, raw_snapshot

        snapshot = raw_snapshot()  # first: a load committing after it is the next run's
        previous = list(get_current_context()["inlet_events"][SETTLED].ascending(False).limit(1))
        since = str(previous[0].extra.get("snapshot", "")) if previous else ""
        loads = loads_since(since) if since else {"(first announcement)": 0}
        if not loads:
            raise AirflowSkipException("nothing loaded since the last announcement: its transform run has it")
        yield Metadata(SETTLED, {"snapshot": snapshot, "loads_since_last": loads})

    settled >> announce()


vru_raw_settled()
