"""bench.harness.paired: A and B alternate who goes first, and every pair is recorded and checked.
bench.run.stage_shares: what B3's rows say of each stage."""
from __future__ import annotations

from bench.harness import Comparison, paired


def test_pairs_alternate_which_side_runs_first_and_are_all_checked():
    calls, checked = [], []

    def side(name):
        def run():
            calls.append(name)
            return name
        return run

    cmp = paired(Comparison("Bx", "demo", "a", "b"), side("a"), side("b"), 3,
                 check=lambda a, b: checked.append((a, b)))
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert checked == [("a", "b")] * 3
    assert len(cmp.a_seconds) == len(cmp.b_seconds) == 3


def test_the_median_is_of_the_paired_ratios():
    cmp = Comparison("Bx", "demo", "a", "b", a_seconds=[2.0, 9.0, 3.0], b_seconds=[1.0, 3.0, 3.0])
    assert cmp.ratios == [2.0, 3.0, 1.0]
    assert cmp.median_ratio == 2.0


def test_results_keep_comparisons_an_earlier_run_measured_and_replace_the_remeasured(tmp_path, monkeypatch):
    import json

    from bench import harness

    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    first = [Comparison("B4", "ingest", "a", "b", [4.0], [2.0]), Comparison("B2", "lens: rfm", "a", "b", [3.0], [1.0])]
    harness.write_results("S", first, {"pairs": 1})
    harness.write_results("S", [Comparison("B2", "lens: rfm", "a", "b", [1.0], [1.0])], {"pairs": 7})
    written = json.loads((tmp_path / "S.json").read_text())
    assert [(c["id"], c["median_ratio"]) for c in written["comparisons"]] == [("B4", 2.0), ("B2", 1.0)]
    assert written["pairs"] == 7


def test_stage_shares_name_each_stage_with_its_seconds_and_share():
    from bench.run import stage_shares

    stages = {"ingest": {"seconds": 10.0}, "stitch": {"seconds": 30.0}, "rfm": {"seconds": 0.0, "skipped": True},
              "lens": {"seconds": 60.0}}
    assert stage_shares(stages) == "ingest 10.0 (10 %), stitch 30.0 (30 %), rfm 0.0 (0 %), lens 60.0 (60 %)"
