"""The OpenLineage extractor of our TaskFlow tasks: what `vru.lineage.declares` declared.

Registered through `[openlineage] extractors` (`vru.lineage.airflow_settings` sets it). Kept out
of `vru.lineage` because it imports the OpenLineage provider, which DAG files need not import.
A task without a declaration gets an empty answer, and the provider falls back, as it would
without this extractor, to the task's `inlets` and `outlets`.
"""

from __future__ import annotations

from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage
from airflow.providers.openlineage.utils.utils import translate_airflow_asset
from airflow.sdk import Asset

from vru.lineage import Source, declared


def to_openlineage(dataset: Asset | Source) -> Dataset | None:
    """One declared dataset as OpenLineage names it (an asset through its provider's converter)."""
    if isinstance(dataset, Source):
        return Dataset(namespace=dataset.namespace, name=dataset.name)
    converted = translate_airflow_asset(dataset, None)
    return converted if isinstance(converted, Dataset) else None


class DeclaredLineageExtractor(BaseExtractor):
    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator"]  # what @task builds

    def _execute_extraction(self) -> OperatorLineage[Dataset, RunFacet] | None:
        lineage = declared(getattr(self.operator, "python_callable", None))
        if lineage is None:
            return OperatorLineage()
        found: dict[str, list[Dataset]] = {"inputs": [], "outputs": []}
        for side, datasets in (("inputs", lineage.inputs), ("outputs", lineage.outputs)):
            for dataset in datasets:
                converted = to_openlineage(dataset)
                if converted is None:  # an asset whose scheme no installed provider converts
                    self.log.warning("%s: no OpenLineage name for %s; left out of its %s",
                                     self.operator.task_id, dataset, side)
                else:
                    found[side].append(converted)
        return OperatorLineage(inputs=found["inputs"], outputs=found["outputs"])
