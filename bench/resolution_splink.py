"""Splink's side of the resolution benchmark, configured as a careful user would.

The same records, cleaned the same way our resolver cleans them (names through
``protocol.matching.normalise_name``; metaphone codes, the postcode district and the
day–month swapped date of birth derived up front, as Splink's docs advise for
phonetic and custom blocking). Then, with the DuckDB backend:

* blocking rules of the same families as the hub's keys (NHS number, UPN, date of
  birth (or its swap) with the family name's code, the given name or the postcode
  district; birth month or year with family code and initial, former surnames too;
  given name with postcode district);
* comparisons on the same fields: names by exact match (with term-frequency
  adjustment) and Jaro–Winkler levels, a former-surname level, date of birth exact /
  swapped / one edit / within a year, sex, postcode full / sector / district / area,
  address by Jaro–Winkler, NHS number and UPN exact;
* the prior from deterministic rules, u by random sampling, m by EM in two sessions
  (blocked on names, then on date of birth), as Splink's tutorials do; postcode m is
  fixed at what movers show (see ``_settings``: Splink 5's EM cannot estimate it here);
* ``predict`` and connected-components clustering at a match weight of 6 bits
  (probability 0.985), the same bar as our link threshold.
"""

from __future__ import annotations

import csv
import logging
import resource
import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from protocol.matching import normalise_name, phonetic

THRESHOLD_WEIGHT = 6.0      # bits; our DEFAULT_MODEL links at a total of 6.0 too
DETERMINISTIC_RECALL = 0.7  # what a user would guess for NHS / UPN / exact name+DOB rules
OTHER_THRESHOLDS = (0.5, 0.9, 0.99, 0.999, 0.9999)  # scored too, after the clock stops


def _prepare(records_csv: Path) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {c: [] for c in (
        "unique_id", "council", "given_name", "given_initial", "other_given_names",
        "family_name", "family_metaphone", "former_family_name", "former_metaphone", "dob",
        "dob_swapped", "birth_year", "birth_month", "sex", "postcode", "postcode_sector",
        "postcode_district", "postcode_area", "address_line", "nhs_number", "upn")}
    with records_csv.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            given, family = normalise_name(r["given_name"]), normalise_name(r["family_name"])
            former = normalise_name(r["former_family_name"]) or None
            dob = date.fromisoformat(r["dob"])
            postcode = r["postcode"] or None
            row = {
                "unique_id": f"{r['council']}/{r['local_id']}", "council": r["council"],
                "given_name": given or None, "given_initial": given[:1] or None,
                "other_given_names": normalise_name(r["other_given_names"]) or None,
                "family_name": family or None, "family_metaphone": phonetic(family) or None,
                "former_family_name": former,
                "former_metaphone": phonetic(former) if former else None,
                "dob": dob,
                "dob_swapped": date(dob.year, dob.day, dob.month) if dob.day <= 12 else None,
                "birth_year": dob.year, "birth_month": f"{dob:%Y-%m}",
                "sex": None if r["sex"] in ("0", "9") else r["sex"],
                "postcode": postcode,
                "postcode_sector": postcode[:-2] if postcode else None,
                "postcode_district": postcode.split()[0] if postcode else None,
                "postcode_area": postcode[:2].rstrip("0123456789") if postcode else None,
                "address_line": r["address_line"].lower() or None,
                "nhs_number": r["nhs_number"] or None, "upn": r["upn"] or None,
            }
            for name, value in row.items():
                columns[name].append(value)
    return columns


def _settings() -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    family = cl.CustomComparison(output_column_name="family_name", comparison_levels=[
        cll.NullLevel("family_name"),
        cll.ExactMatchLevel("family_name", term_frequency_adjustments=True),
        cll.CustomLevel("family_name_l = former_family_name_r"
                        " OR former_family_name_l = family_name_r", "former surname"),
        cll.JaroWinklerLevel("family_name", 0.92),
        cll.JaroWinklerLevel("family_name", 0.8),
        cll.ElseLevel(),
    ])
    dob = cl.CustomComparison(output_column_name="dob", comparison_levels=[
        cll.NullLevel("dob"),
        cll.ExactMatchLevel("dob"),
        cll.CustomLevel("dob_l = dob_swapped_r", "day and month swapped"),
        cll.CustomLevel("damerau_levenshtein(CAST(dob_l AS VARCHAR),"
                        " CAST(dob_r AS VARCHAR)) <= 1", "one edit"),
        cll.AbsoluteDateDifferenceLevel("dob", input_is_string=False, threshold=1,
                                        metric="year"),
        cll.ElseLevel(),
    ])
    # Every true pair here is a child who moved between councils, so a true pair almost
    # never shares a postcode, and Splink 5's EM stops on the m of 0.0 it estimates for
    # "full postcode" ("below the minimum allowed value"). A user who knows the data is
    # about movers fixes postcode m at what movers show: our resolver's across-council m.
    postcode = cl.CustomComparison(output_column_name="postcode", comparison_levels=[
        cll.NullLevel("postcode"),
        *(level.configure(m_probability=m, fix_m_probability=True) for level, m in (
            (cll.ExactMatchLevel("postcode"), 0.05),
            (cll.ExactMatchLevel("postcode_sector"), 0.005),
            (cll.ExactMatchLevel("postcode_district"), 0.01),
            (cll.ExactMatchLevel("postcode_area"), 0.035),
            (cll.ElseLevel(), 0.9))),
    ])
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("nhs_number"),
            block_on("upn"),
            block_on("dob", "family_metaphone"),
            CustomRule("l.dob = r.dob_swapped AND l.family_metaphone = r.family_metaphone"),
            CustomRule("l.dob_swapped = r.dob AND l.family_metaphone = r.family_metaphone"),
            block_on("dob", "given_name"),
            block_on("dob", "postcode_district"),
            block_on("birth_month", "family_metaphone", "given_initial"),
            block_on("family_metaphone", "birth_year", "given_initial"),
            CustomRule("l.former_metaphone = r.family_metaphone AND l.birth_year = r.birth_year"
                       " AND l.given_initial = r.given_initial"),
            CustomRule("l.family_metaphone = r.former_metaphone AND l.birth_year = r.birth_year"
                       " AND l.given_initial = r.given_initial"),
            block_on("given_name", "postcode_district"),
        ],
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.JaroWinklerAtThresholds("other_given_names", [0.9]),
            family,
            dob,
            cl.ExactMatch("sex"),
            postcode,
            cl.JaroWinklerAtThresholds("address_line", [0.95, 0.85]),
            cl.ExactMatch("nhs_number"),
            cl.ExactMatch("upn"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def _clusters(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {str(r["unique_id"]): str(r["cluster_id"]) for r in rows}


def run(records_csv: Path, u_pairs: float, seed: int) -> dict[str, Any]:
    """In a process of its own, so its peak memory is its own."""
    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    logging.getLogger("splink").setLevel(logging.WARNING)
    columns = _prepare(records_csv)
    con = duckdb.connect()
    con.register("prepared", columns_table(columns))
    con.execute("CREATE TABLE records AS SELECT * FROM prepared")
    db_api = DuckDBAPI(connection=con)
    started = time.perf_counter()
    linker = Linker(db_api.register("records"), _settings(), log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs_number"), block_on("upn"), block_on("given_name", "family_name", "dob")],
        recall=DETERMINISTIC_RECALL)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "family_name"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    trained = time.perf_counter() - started
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_weight=THRESHOLD_WEIGHT)
    chosen = _clusters(clustered.as_record_list())
    seconds = time.perf_counter() - started
    # fetchall: a result left unfetched blocks the connection for Splink's next query
    rows = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchall()
    predicted_pairs = int(rows[0][0])  # pairs above probability 0.01
    others = {}
    for p in OTHER_THRESHOLDS:
        at = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=p)
        others[p] = _clusters(at.as_record_list())
    return {"seconds": seconds, "train_seconds": trained, "clusters": chosen,
            "other_thresholds": others, "predicted_pairs": predicted_pairs,
            "prior": linker._settings_obj._probability_two_random_records_match,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def columns_table(columns: dict[str, list[Any]]) -> Any:
    import pyarrow as pa

    return pa.table(columns)
