"""Write dbt_project/seeds/vru_membership_years.csv: VRU membership and allocations per area and year.

    .venv/bin/python scripts/make_vru_membership_seed.py

One row per force area (43, from seeds/force_areas.csv) per financial year 2019/20 to 2025/26:
whether the area had a Home Office funded VRU that year (the 18 areas of 2019/20; Cleveland and
Humberside from April 2022) and its VRU allocation where a cited figure exists. The figures and
quotes are those of ../shared/data/population/pfa_mid_year/vru_funding_citations.csv, each with
its URL; 2019/20 keeps the force_areas seed's allocations (docs/domain.md, several of them banded
and marked approximate) except where a citation gives the area's own figure. A lower bound ("more
than £3.3m"), a multi-year sum or a figure that mixes VRU and Grip money is NOT an allocation: the
amount stays empty and allocation_note says what is known. Nothing is estimated.

The CSV is the reviewed artefact; this script records how it was made and keeps it reproducible.
"""

from __future__ import annotations

import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "dbt_project" / "seeds"
OUT = SEEDS / "vru_membership_years.csv"
YEARS = range(2019, 2026)  # 2019/20 .. 2025/26
LATER_MEMBERS = {"cleveland": 2022, "humberside": 2022}

ITV = "https://www.itv.com/news/2019-12-29/police-commissioners-to-receive-extra-35m-for-violence-reduction-units/"
GOV_2023 = ("https://www.gov.uk/government/publications/serious-violence-funding-allocations/"
            "serious-violence-funding-allocations")
SUSSEX_2021 = "https://sussex999.co.uk/breaking/news-229622/"
CLEVELAND = ("https://www.cleveland.pcc.police.uk/working-for-you/decisions/decision-notices/"
             "decision-22-23-0037-curv-equipment-funding/")
HUMBERSIDE = ("https://humberside-pcc.gov.uk/News/News-Archive/2022/"
              "Funding-announced-to-reduce-violent-crime-in-Humber-region.aspx")

MEMBERSHIP_SOURCE = {
    2019: "18 PCC areas awarded £35m to set up VRUs (Home Office, August 2019): "
          "http://www.government-world.com/author/hm-government/page/13156/?print=print-search",
    2020: f"the 18 VRUs funded for a second year, £35m (ITV, 29 December 2019): {ITV}",
    2021: "£35.5m for 2021/22, 'the third year of funding for 18 Violence Reduction Units': "
          "https://www.politicmag.net/politics-news/35-5m-to-support-young-people-at-risk-of-involvement-in-"
          "serious-violence-37039-2021/",
    2022: f"the 18 VRUs plus Cleveland and Humberside from April 2022 (their PCCs: {CLEVELAND} ; {HUMBERSIDE})",
    2023: f"£55m for the 20 VRUs in 2023/24 (gov.uk, Serious violence: funding allocations): {GOV_2023}",
    2024: "20 VRUs: no list for 2024/25 is held; the same 20 in 2023/24 and 2025/26, and 2024/25 allocations "
          "are cited for Essex and London",
    2025: "'we have allocated £47m to a network of 20 VRUs' (2025/26): https://www.parallelparliament.co.uk/mp/"
          "Victoria_Foxcroft/bill-debate-contributions?document_type=bill-debate-contributions&memb_pk=4491&page=4",
}

# (force_id, fy_start) -> (amount or None, approximate, note, url, quote)
Cited = tuple[int | None, bool, str, str, str]
CITED: dict[tuple[str, int], Cited] = {
    ("nottinghamshire", 2019): (880_000, False, "", "https://www.nottsvrp.co.uk/post/pcc-welcomes-880k-funding-"
                                "grant-to-launch-violence-reduction-unit",
                                "Nottinghamshire Police has been provisionally granted £880,000 from the Home Office "
                                "to fund a specialist unit"),
    ("leicestershire", 2019): (880_000, False, "", "https://www.leics.pcc.police.uk/News-and-Events/News-Archive/"
                               "2019/PR-308.aspx", "granted an additional £880,000 to tackle serious violence"),
    ("south-yorkshire", 2019): (1_600_000, False, "", "https://southyorkshire-pcc.gov.uk/news/violence-reduction-"
                                "unit-funding-announcement/",
                                "originally launched in September, using £1.6m of government funding"),
    ("south-yorkshire", 2020): (1_600_000, False, "", "https://southyorkshire-pcc.gov.uk/news/violence-reduction-"
                                "unit-funding-announcement/",
                                "a further £1.6m ... for the financial year starting in April 2020"),
    ("metropolitan", 2020): (7_000_000, False, "", ITV,
                             "The Metropolitan Police area will receive the most money – £7 million"),
    ("metropolitan", 2021): (7_000_000, False, "", "https://questions-statements.parliament.uk/written-questions/"
                             "detail/2021-07-20/36699/",
                             "includes a £7 million allocation for London in the 2021/22 financial year"),
    ("northumbria", 2021): (1_600_000, False, "", "https://archive.northumbria-pcc.gov.uk/violence-reduction-unit/"
                            "vru-phase-3-funded-projects-2021-2022",
                            "a further £1.6m has been allocated to Northumbria (Year 3)"),
    ("metropolitan", 2022): (12_600_000, True, "'c.' in the source: approximate",
                             "https://www.parallelparliament.co.uk/question/45049",
                             "c.£12.6m allocation for this financial year (2022/23)"),
    ("nottinghamshire", 2022): (1_400_000, False, "core grant", "https://touch.policeoracle.com/news/article.cfm?"
                                "id=108870", "Nottinghamshire is to receive a core grant of £1.4m for 2022-23"),
    ("humberside", 2022): (None, False, "£1.853m for VRU and Grip together (over £400,000 of it Grip): the VRU "
                           "share is not given", HUMBERSIDE,
                           "invited ... to apply for £1.853m ... This includes over £400,000 of 'Grip' funding"),
    ("metropolitan", 2023): (9_497_400, False, "", GOV_2023,
                             "Metropolitan Police/London £8,907,532 [Grip] £9,497,400 [VRU]"),
    ("south-yorkshire", 2023): (2_163_720, False, "", GOV_2023, "South Yorkshire £1,217,527 £2,163,720"),
    ("northumbria", 2023): (2_163_720, False, "", GOV_2023, "Northumbria £1,079,203 £2,163,720"),
    ("thames-valley", 2023): (1_618_667, False, "", GOV_2023, "Thames Valley £861,445 £1,618,667"),
    ("essex", 2024): (1_512_572, False, "", "https://www.essex.pfcc.police.uk/documents/home-office-funding-"
                      "violence-reduction-unit-and-seriousviolence-duty-2024-25/",
                      "Essex has been allocated £1,512,572 of Home Office VRU funding for 2024- 25"),
    ("metropolitan", 2025): (9_397_400, False, "", "https://www.london.gov.uk/programmes-strategies/mayors-office-"
                             "policing-and-crime-mopac/mopac-governance-and-decision-making/mopac-decisions/"
                             "pcd-1792-vru-home-office-funding-2025-2026-and-lcpf-2025-2028",
                             "£9,397,400 grant allocation for London VRU for 2025-2026"),
    ("west-yorkshire", 2025): (None, False, "over £4.3m: a lower bound, not the allocation",
                               "https://www.parallelparliament.co.uk/question/49246/youth-services-huddersfield",
                               "making over £4.3m available to the West Yorkshire VRU this year"),
}
for force in ("greater-manchester", "merseyside", "west-midlands", "west-yorkshire"):
    CITED[(force, 2020)] = (None, False, "more than £3.3m: a lower bound, not the allocation", ITV,
                            "will each get more £3.3 million")
    CITED[(force, 2023)] = (4_388_080, False, "", GOV_2023, "West Midlands £3,371,824 £4,388,080 ... (Grip, VRU); "
                            "the same VRU figure for Greater Manchester, Merseyside and West Yorkshire")
for force in ("northumbria", "thames-valley", "lancashire", "essex", "avon-and-somerset", "kent"):
    CITED[(force, 2020)] = (None, False, "more than £1.1m: a lower bound, not the allocation", ITV,
                            "will each get more than £1.1 million")
for force in ("nottinghamshire", "leicestershire", "bedfordshire", "sussex", "hampshire", "south-wales"):
    CITED[(force, 2020)] = (880_000, False, "", ITV, "will each get £880,000")
for force in ("sussex", "hampshire"):
    CITED[(force, 2021)] = (880_000, False, "'up to': the maximum grant", SUSSEX_2021,
                            "Sussex and Hampshire police force areas will each receive up to £880,000")
for force in ("kent", "thames-valley"):
    CITED[(force, 2021)] = (1_160_000, False, "'up to': the maximum grant", SUSSEX_2021,
                            "Kent and Thames Valley police force areas will each receive up to £1.16 million")
for year in (2022, 2023, 2024):
    CITED[("cleveland", year)] = (None, False, "£3.5m over 2022/23-2024/25 together: no figure per year",
                                  CLEVELAND, "would receive a budget of £3.5m over the next three years to establish "
                                  "a local VRU")

NOT_HELD = {
    2021: "no figure for the area held (£35.5m for the 18 areas; at least £880,000 each)",
    2023: "no figure for the area held (the stored copy of the gov.uk table stops after 9 of its 20 rows)",
}
HEADER = ["force_id", "fy_start", "financial_year", "is_vru", "vru_joined", "allocation_gbp",
          "allocation_is_approximate", "allocation_note", "allocation_source", "allocation_quote",
          "membership_source"]


def main() -> None:
    with open(SEEDS / "force_areas.csv", encoding="utf-8", newline="") as handle:
        areas = list(csv.DictReader(handle))
    rows = []
    for area in areas:
        force = area["force_id"]
        original = area["is_vru_area"] == "true" and area["vru_start_date"] < "2020-04-01"
        joined = 2019 if original else LATER_MEMBERS.get(force)
        for year in YEARS:
            member = joined is not None and year >= joined
            amount: int | None = None
            approximate, note, url, quote = False, "", "", ""
            if (force, year) in CITED:
                amount, approximate, note, url, quote = CITED[(force, year)]
            elif member and year == 2019:
                amount = int(float(area["vru_allocation_2019_20_gbp"]))
                approximate = area["vru_allocation_is_approximate"] == "true"
                note = "banded figure, approximate" if approximate else ""
                url = "docs/domain.md: Home Office 2019/20 VRU allocations (the force_areas seed)"
            elif member:
                note = NOT_HELD.get(year, "no figure for the area held")
            if not member:
                assert amount is None, (force, year)
            rows.append({
                "force_id": force, "fy_start": year, "financial_year": f"{year}/{(year + 1) % 100:02d}",
                "is_vru": "true" if member else "false",
                "vru_joined": f"{joined}-04-01" if joined is not None else "",
                "allocation_gbp": "" if amount is None else amount,
                "allocation_is_approximate": ("true" if approximate else "false") if amount is not None else "",
                "allocation_note": note, "allocation_source": url, "allocation_quote": quote,
                "membership_source": MEMBERSHIP_SOURCE[year],
            })
    with open(OUT, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT.relative_to(REPO)}: {len(rows)} rows")


if __name__ == "__main__":
    main()
