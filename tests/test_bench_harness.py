"""The benchmark harness (benchmarks/timing.py, benchmarks/run.py): rows keep each side's spread
and say whether their goal is met; `make bench` writes RESULTS.md whole from the rows."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def module(name):
    sys.path.insert(0, str(BENCHMARKS))  # run.py imports timing as the benchmarks do
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_a_row_keeps_the_spread_of_both_sides_and_of_the_paired_ratios():
    timing = module("timing")
    r = timing.row("x", [1.0, 3.0, 2.0], [2.0, 2.0, 4.0], "<= 1.3 (a goal)")
    assert r["ours"] == dict(min=1.0, median=2.0, max=3.0, n=3)
    assert r["ratio"] == pytest.approx(1.0)  # median over median
    assert r["ratio_spread"] == pytest.approx((0.5, 1.5))  # ours[i] / reference[i]
    assert r["met"] is True
    assert timing.row("x", 2.0, 1.0, "<= 1.3")["met"] is False
    assert timing.row("x", 2.0, 1.0, "about 1 s cached")["met"] is None


def test_results_are_written_whole_with_missed_goals_named(tmp_path, monkeypatch):
    run = module("run")
    (tmp_path / "bench_fake.py").write_text(
        "from timing import row\n"
        "def run():\n"
        "    return [row('fast thing', [1.0, 1.2], [2.0, 2.0], '<= 0.9'),\n"
        "            row('slow thing', [3.0, 3.0], [2.0, 2.0], '<= 1.3', state='frozen')]\n")
    (tmp_path / "RESULTS.md").write_text("# old\n## Notes\nhand-written, gone after the run\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    assert run.main([]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "hand-written" not in text and "Goals met: 1 of 2; missed: slow thing (frozen)." in text
    two = "(2.0000–2.0000, 2 runs)"
    assert (f"| bench_fake.py | fast thing | - | 1.1000 (1.0000–1.2000, 2 runs) | 2.0000 {two} | "
            f"0.550 (0.500–0.600) | <= 0.9 | met |") in text
    assert (f"| bench_fake.py | slow thing | frozen | 3.0000 (3.0000–3.0000, 2 runs) | 2.0000 {two} | "
            f"1.500 | <= 1.3 | **missed** |") in text


def test_an_unknown_benchmark_name_runs_nothing_and_keeps_the_results(tmp_path, monkeypatch,
                                                                    capsys):
    run = module("run")
    (tmp_path / "bench_core.py").write_text("def run():\n    raise AssertionError('ran')\n")
    (tmp_path / "RESULTS.md").write_text("# the last run\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    assert run.main(["core", "tracnig"]) == 2
    assert "no benchmark named 'tracnig'; the benchmarks are: core" in capsys.readouterr().err
    assert (tmp_path / "RESULTS.md").read_text() == "# the last run\n"


def test_a_pipe_in_a_note_stays_inside_its_cell():
    assert module("run").cell("max |Δp| 1e-6") == "max \\|Δp\\| 1e-6"


def test_a_peer_row_is_met_below_every_peer_a_tie_within_the_best_peers_spread_else_missed():
    peers = module("bench_peers")
    plain = [1.0, 1.0, 1.0]

    def judged(ours, pyvene):
        times = {"plain": plain, "nbtoolkit": ours, "pyvene": pyvene, "nnsight": [2.0] * 3}
        r = peers.comparison_row("x", "frozen", times, "plain", {"pyvene": 0.0}, "", "plain")
        return r["met"], r["tie"]

    assert judged([1.00, 1.01, 1.02], [1.02, 1.03, 1.04]) == (True, False)
    assert judged([1.02, 1.03, 1.05], [0.99, 1.01, 1.03]) == (False, True)  # spreads overlap
    assert judged([1.20, 1.21, 1.22], [1.00, 1.01, 1.02]) == (False, False)


def test_a_peer_gap_profile_names_the_op_calls_only_one_side_makes():
    import re
    import torch

    peers = module("bench_peers")
    a = torch.randn(2048, 2048)  # clones of 16 MB: well above 0.1 ms each

    def peer():
        return torch.relu(a) + 1

    def ours():  # the same work, plus two clones: a hook path's own ops
        return torch.relu(a.clone().clone()) + 1

    text = peers.profile_gap(ours, peer, "pyvene")
    assert "clone ×2" in text and "pyvene's 0.0 ms" in text
    shown = re.search(r"extra op calls ([0-9.]+) ms", text)
    assert float(shown.group(1)) > 0
    reverse = peers.profile_gap(peer, ours, "pyvene")  # the other way round: the clones are theirs
    assert "nbtoolkit's extra op calls 0.0 ms ()" in reverse and "pyvene's 0.0 ms" not in reverse


def test_the_das_mlp_rows_join_the_repeats_of_several_fresh_processes(monkeypatch):
    """Each child process reports its timings; the row takes the medians over all of their
    repeats and names each process's own ratio; a failing child's error is raised, not parsed."""
    import json
    import subprocess

    bench_das = module("bench_das")
    children = iter([1.0, 2.0, 1.0])  # the second process is twice as slow on our side

    def child(argv, **_):
        ours = next(children)
        timings = {"ours": [ours] * 3, "plain R": [1.0] * 3, "reference": [1.0] * 3,
                   "rotation": [0.1]}
        out = json.dumps([timings] * len(bench_das.MLP_ROWS))
        return subprocess.CompletedProcess(argv, 0, stdout="a warning\n" + out + "\n", stderr="")

    monkeypatch.setattr(bench_das.subprocess, "run", child)
    rows = bench_das.mlp_rows(repeats=9)
    assert len(rows) == len(bench_das.MLP_ROWS)
    first = rows[0]
    assert first["ours"]["n"] == 9 and first["ours"]["max"] == 2.0
    assert first["ratio"] == 1.0 and first["ratio_spread"] == (1.0, 2.0) and first["met"]
    assert ("3 fresh processes × 3 repeats, the ratio in each: 1.00, 2.00, 1.00"
            in first["note"])

    monkeypatch.setattr(bench_das.subprocess, "run", lambda argv, **_: subprocess.CompletedProcess(
        argv, 1, stdout="", stderr="Traceback ...\nValueError: broken"))
    with pytest.raises(RuntimeError, match=r"child process failed:(.|\n)*ValueError: broken"):
        bench_das.mlp_rows(repeats=4)
