"""The effect sentences of the outcomes report: pure rules, checked on hand-written mart rows.

A number is said only for an estimate the method stands behind; the wording follows the status.
"""

from __future__ import annotations

from decimal import Decimal

from vru.effects_report import Row, sentence


def _row(**changes: object) -> Row:
    row: Row = {"status": "estimated", "status_reason": None, "estimate_pct": Decimal("-15.2"),
                "ci_low_pct": Decimal("-22.0"), "ci_high_pct": Decimal("-7.9"),
                "p_value_permutation": Decimal("0.004"), "permutations": 999}
    row.update(changes)
    return row


def test_a_clear_change_is_said_with_its_interval_and_its_permutation_test() -> None:
    assert sentence(_row()) == (
        "The rate per resident fell in the VRU areas against the comparison areas by -15.2% "
        "(95% interval -22.0% to -7.9%); a difference this large arose in only 0.4% of 999 random "
        "reassignments of the funding dates, so it is unlikely to be chance alone.")
    assert " rose " in sentence(_row(estimate_pct=Decimal("8.0"), ci_low_pct=Decimal("2.0"),
                                     ci_high_pct=Decimal("14.5")))


def test_an_interval_across_zero_or_a_permutation_test_that_is_not_clear_is_no_finding() -> None:
    across = _row(estimate_pct=Decimal("-3.0"), ci_low_pct=Decimal("-11.0"), ci_high_pct=Decimal("6.0"))
    assert sentence(across) == ("No change that we can distinguish from chance: -3.0% "
                                "(95% interval -11.0% to +6.0%).")
    # the model's interval excludes 0, but random reassignments often give as large a difference
    assert sentence(_row(p_value_permutation=Decimal("0.12"))).startswith("No change that we can distinguish")
    assert sentence(_row(p_value_permutation=None)).startswith("No change that we can distinguish")


def test_no_figure_is_printed_unless_the_estimate_stands() -> None:
    for status, opening in (("not interpretable", "Not interpretable: "),
                            ("not possible", "Not possible to estimate yet: "),
                            ("not available", "Not available: ")):
        said = sentence(_row(status=status, status_reason="a reason"))
        assert said.startswith(opening + "a reason")
        assert "%" not in said and "15.2" not in said
