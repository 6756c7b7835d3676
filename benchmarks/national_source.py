"""A data.police.uk stand-in at national volume, for `benchmarks/national_nights.py`.

43 forces (the `force_areas` seed), 36 months by default, realistic volumes per force-month:
Metropolitan ~12,000 stops, eight large forces ~1,500, the others ~500 (each varied by up to
±10%, deterministically): about 41,000 stops a month and 1.48 million over 36 months, as the issue
measured at data.police.uk. The vocabularies and their frequencies are the real ones observed in
the shared data.police.uk files (`../shared/data/police_uk/vocab_stop_and_search_observed.json`,
21 monthly files of 7 forces); each field is drawn independently, so combinations are not the real
ones (a benchmark needs the shape and the volume, not the correlations).

Rows are generated when a force-month is requested, never stored: deterministic (seeded by force,
month and version: the same request gives the same bytes, which is what lets the ingest see "no
change"), and streamed in chunks through the sample server (`vru_sample.server`), which serves the
same endpoints as for the bundled files: `crimes-street-dates`, `crime-last-updated`, `forces`,
`stops-force`. `crime-last-updated` moves when the stand-in publishes a month or republishes
(revises) force-months, as data.police.uk's does.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from vru_sample.server import SampleApi

REPO = Path(__file__).resolve().parents[1]
# the shared data beside the repository (../shared/data), or wherever VRU_SHARED_DATA says (a clone
# elsewhere, e.g. a benchmark run from /tmp)
SHARED_DATA = Path(os.environ.get("VRU_SHARED_DATA") or REPO.parent / "shared" / "data")
VOCABULARY = SHARED_DATA / "police_uk" / "vocab_stop_and_search_observed.json"
FORCES_SEED = REPO / "dbt_project" / "seeds" / "force_areas.csv"

METROPOLITAN = "metropolitan"
# The eight large forces besides the Metropolitan: with ~500 for the other 34 this makes the
# ~41,000 stops a month (1,476,012 over 36 months) the issue counted at data.police.uk.
LARGE = frozenset({"west-midlands", "greater-manchester", "merseyside", "west-yorkshire", "thames-valley",
                   "kent", "essex", "hampshire"})
VOLUME = {"metropolitan": 12_000, "large": 1_500, "other": 500}
STREETS = ("On or near High Street", "On or near Station Road", "On or near Parking Area",
           "On or near Shopping Area", "On or near Supermarket", "On or near Park/Open Space",
           "On or near Petrol Station", "On or near Nightclub", "On or near Sports/Recreation Area",
           "On or near Church Street", "On or near Mill Lane", "On or near Victoria Road")
_CHUNK_ROWS = 2_000


def all_forces() -> list[str]:
    with open(FORCES_SEED, encoding="utf-8", newline="") as handle:
        return sorted(row["force_id"] for row in csv.DictReader(handle))


def months_back(last: str, count: int) -> list[str]:
    """`count` months ending with `last` ('YYYY-MM'), oldest first."""
    year, month = (int(x) for x in last.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def next_month(month: str) -> str:
    year, m = (int(x) for x in month.split("-"))
    return f"{year + m // 12:04d}-{m % 12 + 1:02d}"


def volume(force: str) -> int:
    return VOLUME[METROPOLITAN if force == METROPOLITAN else "large" if force in LARGE else "other"]


class _Field:
    """One field's observed values with their frequencies, each value already a JSON literal."""

    def __init__(self, counts: dict[str, int], kind: str = "text") -> None:
        self.values = [self._literal(v, kind) for v in counts]
        total = 0
        self.cum: list[int] = []
        for n in counts.values():
            total += n
            self.cum.append(total)

    @staticmethod
    def _literal(value: str, kind: str) -> str:
        if kind == "bool":
            return {"True": "true", "False": "false"}.get(value, "null")
        return "null" if value == "" else json.dumps(value)

    def draw(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.values, cum_weights=self.cum, k=k)


class Vocabulary:
    """The observed values of each stop field (CSV header -> counts)."""

    def __init__(self, path: Path = VOCABULARY) -> None:
        if not path.exists():
            raise SystemExit(f"{path} is missing: the national stand-in draws its vocabularies from it "
                             "(set VRU_SHARED_DATA to the shared data folder)")
        observed = json.loads(path.read_text())["csv_2019_12_to_2020_02"]
        self.type = _Field(observed["Type"])
        self.gender = _Field(observed["Gender"])
        self.age = _Field(observed["Age range"])
        self.self_ethnicity = _Field(observed["Self-defined ethnicity"])
        self.officer_ethnicity = _Field(observed["Officer-defined ethnicity"])
        self.legislation = _Field(observed["Legislation"])
        self.object = _Field(observed["Object of search"])
        self.outcome = _Field(observed["Outcome"])
        self.linked = _Field(observed["Outcome linked to object of search"], "bool")
        self.removal = _Field(observed["Removal of more than just outer clothing"], "bool")
        self.operation = _Field(observed["Part of a policing operation"], "bool")


def _days_in(month: str) -> int:
    year, m = (int(x) for x in month.split("-"))
    following = date(year + m // 12, m % 12 + 1, 1)
    return (following - date(year, m, 1)).days


def stops_json(vocab: Vocabulary, force: str, month: str, version: int) -> Iterator[bytes]:
    """One force-month's `stops-force` response, in chunks: deterministic for (force, month, version)."""
    rng = random.Random(f"vru-national:{force}:{month}:{version}")
    n = round(volume(force) * rng.uniform(0.9, 1.1))
    days = _days_in(month)
    # a centre per force (stable across months), somewhere in England and Wales
    place = random.Random(f"vru-national-place:{force}")
    lat0, lon0 = place.uniform(50.6, 54.8), place.uniform(-4.2, 1.2)
    yield b"["
    first = True
    for start in range(0, n, _CHUNK_ROWS):
        k = min(_CHUNK_ROWS, n - start)
        columns = zip(vocab.type.draw(rng, k), vocab.gender.draw(rng, k), vocab.age.draw(rng, k),
                      vocab.self_ethnicity.draw(rng, k), vocab.officer_ethnicity.draw(rng, k),
                      vocab.legislation.draw(rng, k), vocab.object.draw(rng, k), vocab.outcome.draw(rng, k),
                      vocab.linked.draw(rng, k), vocab.removal.draw(rng, k), vocab.operation.draw(rng, k),
                      strict=True)
        parts = []
        for kind, gender, age, self_eth, officer_eth, law, obj, outcome, linked, removal, operation in columns:
            when = (f"{month}-{rng.randint(1, days):02d}T{rng.randint(0, 23):02d}:"
                    f"{rng.randint(0, 59):02d}:00+00:00")
            if rng.random() < 0.25:  # about a quarter of published stops have no location
                location = "null"
            else:
                location = (f'{{"latitude": "{lat0 + rng.uniform(-0.3, 0.3):.6f}", "street": {{"id": '
                            f'{rng.randint(500000, 1500000)}, "name": "{rng.choice(STREETS)}"}}, '
                            f'"longitude": "{lon0 + rng.uniform(-0.4, 0.4):.6f}"}}')
            parts.append(
                f'{{"age_range": {age}, "outcome": {outcome}, "involved_person": '
                f'{"true" if "Person" in kind else "false"}, "self_defined_ethnicity": {self_eth}, '
                f'"gender": {gender}, "legislation": {law}, "outcome_linked_to_object_of_search": {linked}, '
                f'"datetime": "{when}", "removal_of_more_than_outer_clothing": {removal}, '
                f'"outcome_object": {{"id": "", "name": {outcome if outcome != "null" else chr(34) * 2}}}, '
                f'"location": {location}, "operation": {operation}, "officer_defined_ethnicity": {officer_eth}, '
                f'"type": {kind}, "operation_name": null, "object_of_search": {obj}}}')
        yield (("" if first else ",") + ",".join(parts)).encode()
        first = False
    yield b"]"


class NationalApi(SampleApi):
    """What the stand-in publishes: force-months (each with a version, bumped by a revision) and
    the last-updated date. Mutated between nights by the benchmark; served by `SampleServer`."""

    def __init__(self, forces: list[str], months: list[str], last_updated: str) -> None:
        super().__init__(REPO / "benchmarks", last_updated=last_updated)
        self.vocab = Vocabulary()
        self.versions: dict[tuple[str, str], int] = {(f, m): 0 for f in forces for m in months}
        self.forces = forces

    def files(self) -> dict[tuple[str, str], Path]:
        # the handler needs only the keys: which force-months are listed
        return {key: Path(f"{key[1]}-{key[0]}-stop-and-search.csv") for key in self.versions}

    def stops(self, force: str, month: str, no_location_only: bool = False) -> Iterator[bytes] | None:
        version = self.versions.get((force, month))
        if version is None or no_location_only:  # the ingest never asks for stops-no-location
            return None
        return stops_json(self.vocab, force, month, version)

    def expected_rows(self, force: str, month: str) -> int:
        """How many stops the force-month has now (for the benchmark's own count)."""
        rng = random.Random(f"vru-national:{force}:{month}:{self.versions[(force, month)]}")
        return round(volume(force) * rng.uniform(0.9, 1.1))

    def months(self) -> list[str]:
        return sorted({m for _, m in self.versions})

    def publish_month(self, month: str, last_updated: str) -> int:
        """A new month for every force; the source's last-updated date moves. Returns its stops."""
        with self.lock:
            for force in self.forces:
                self.versions[(force, month)] = 0
            self.last_updated = last_updated
        return sum(self.expected_rows(f, month) for f in self.forces)

    def republish(self, pairs: list[tuple[str, str]], last_updated: str) -> None:
        """Revise these force-months (new content) and move the last-updated date."""
        with self.lock:
            for key in pairs:
                self.versions[key] += 1
            self.last_updated = last_updated
