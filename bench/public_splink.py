"""Splink 5 on a public benchmark's records, as a careful user would set it up.

It gets every source record, including those our feed validation refuses (a blank or
impossible date of birth is simply null to Splink), with the same field values the
feeds carry. DuckDB backend; comparisons on given name, other given names and family
name (Splink's name comparison: exact with term frequencies, Jaro–Winkler levels),
date of birth (Splink's date-of-birth comparison: exact, edit distance, within a
month, a year, ten years), address line (Jaro–Winkler) and postcode (Splink's
postcode comparison: full, sector, district, area). Blocking on each of given name,
family name, date of birth and postcode paired with another field. The prior from
deterministic rules (two of given name, family name and date of birth agree) at a
guessed recall, u by random sampling, m by EM in two sessions, as Splink's tutorials
do: blocked on the first two letters of both names, then on the birth year and
month (prefixes, not whole fields: see ``run``).
Clustered at the same bar as ``bench.resolution_splink`` (6 bits).
"""

from __future__ import annotations

import logging
import resource
import time
from typing import Any

from bench.public_data import Record
from bench.resolution_splink import THRESHOLD_WEIGHT, columns_table
from protocol.matching import normalise_name

DETERMINISTIC_RECALL = 0.8  # a guess for "two of names and date of birth agree"


def _iso_or_none(value: str) -> str | None:
    from datetime import date

    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _columns(records: list[Record]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {c: [] for c in (
        "unique_id", "given_name", "other_given_names", "family_name", "dob",
        "address_line", "postcode")}
    for r in records:
        row = r.row
        values = {
            "unique_id": r.source_ref,
            "given_name": normalise_name(row["given_name"]) or None,
            "other_given_names": normalise_name(row["other_given_names"]) or None,
            "family_name": normalise_name(row["family_name"]) or None,
            "dob": _iso_or_none(row["dob"]),
            "address_line": row["address_line"].lower() or None,
            "postcode": row["postcode"] or None,
        }
        for name, value in values.items():
            columns[name].append(value)
    return columns


def _settings() -> Any:
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "family_name"),
            block_on("dob", "family_name"),
            block_on("dob", "given_name"),
            block_on("postcode", "given_name"),
            block_on("postcode", "family_name"),
            block_on("postcode", "dob"),
            block_on("substr(given_name, 1, 1)", "substr(family_name, 1, 1)", "dob"),
        ],
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.JaroWinklerAtThresholds("other_given_names", [0.9]),
            cl.NameComparison("family_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.JaroWinklerAtThresholds("address_line", [0.95, 0.85]),
            cl.PostcodeComparison("postcode"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def run(records: list[Record], u_pairs: float, seed: int) -> dict[str, Any]:
    """Train, predict and cluster; record id (source_ref) → cluster, and timings.
    In a process of its own, so its peak memory is its own."""
    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    # Splink notes levels it could not train: expected on a tiny smoke run, noise here
    logging.getLogger("splink").setLevel(logging.ERROR)
    con = duckdb.connect()
    con.register("prepared", columns_table(_columns(records)))
    con.execute("CREATE TABLE records AS SELECT * FROM prepared")
    started = time.perf_counter()
    linker = Linker(DuckDBAPI(connection=con).register("records"), _settings(),
                    log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match([
        block_on("given_name", "family_name", "substr(dob, 1, 7)"),
        block_on("given_name", "dob"), block_on("family_name", "dob")],
        recall=DETERMINISTIC_RECALL)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=seed)
    # EM blocked on prefixes, not whole fields: where a duplicate carries one error
    # (RLdata10000's do), a block on exact names keeps only the duplicates whose error
    # is in the date of birth, and EM learns that dates of birth of a match disagree.
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("substr(given_name, 1, 2)", "substr(family_name, 1, 2)"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("substr(dob, 1, 7)"))
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_weight=THRESHOLD_WEIGHT)
    clusters = {str(r["unique_id"]): str(r["cluster_id"]) for r in clustered.as_record_list()}
    return {"seconds": time.perf_counter() - started, "clusters": clusters,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
