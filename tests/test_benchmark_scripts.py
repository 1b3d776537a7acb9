"""The benchmark harness (benchmarks/scores.py) and the suite builder (benchmarks/make_suite.py), on tiny settings."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offrl.data import load_dataset
from tests.data.test_collect import tiny_actor

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def script(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # the scripts import their shared helpers
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_scores_runs_in_parallel_resumes_and_writes_the_table_into_a_file(tmp_path, capsys):
    scores = script("scores")
    markdown = tmp_path / "BENCH.md"
    markdown.write_text("# Benchmarks\n\nkept text\n")
    argv = [
        "--datasets", "pendulum-mixed", "--task", "pendulum", "--algos", "bc,td3bc", "--seeds", "0",
        "--steps", "200", "--eval-interval", "100", "--eval-episodes", "1", "--final-episodes", "2",
        "--checkpoint-interval", "100", "--out", str(tmp_path / "bench"), "--jobs", "2", "--into", str(markdown),
    ]  # fmt: skip
    scores.main(argv)
    printed = capsys.readouterr().out
    assert "0 of 2 runs already finished; 2 to run" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| pendulum-mixed")]
    assert [row.split(" | ")[1] for row in rows] == ["bc", "td3bc"]
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert set(results) == {"pendulum-mixed/bc-s0", "pendulum-mixed/td3bc-s0"}
    assert all(r["step"] == 200 and r["final_many/normalized_score"] is not None for r in results.values())
    assert (tmp_path / "bench" / "pendulum-mixed" / "bc-s0" / "final_eval.json").exists()

    scores.main([*argv, "--archive", str(tmp_path / "kept")])  # all finished: nothing trains, the table is replaced
    assert "2 of 2 runs already finished; 0 to run" in capsys.readouterr().out
    kept = tmp_path / "kept" / "pendulum-mixed" / "bc-s0"
    assert {p.name for p in kept.iterdir()} == {
        "summary.json",
        "eval.csv",
        "final_eval.json",
        "config.json",
        "timing.json",
    }
    timing = json.loads((kept / "timing.json").read_text())
    assert timing["updates"] == 200 and timing["update_seconds"] > 0 and timing["median_rate"] > 0  # from metrics
    table_only = ["--datasets", "pendulum-mixed", "--algos", "bc,td3bc", "--seeds", "0", "--steps", "200"]
    scores.main([*table_only, "--final-episodes", "2", "--table-only", "--out", str(tmp_path / "kept")])
    archived = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| pendulum-mixed")]
    assert archived == rows  # the table from the archive alone is the same, updates/s and minutes included
    text = markdown.read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")
    assert text.count("<!-- scores:bench -->") == 1 and text.count("| pendulum-mixed (") == 2


def test_a_run_another_process_is_training_is_skipped_and_a_left_over_lock_file_is_not_in_the_way(tmp_path, capsys):
    scores = script("scores")
    argv = [
        "--datasets", "pendulum-mixed", "--task", "pendulum", "--algos", "bc", "--seeds", "0", "--steps", "100",
        "--eval-interval", "100", "--eval-episodes", "1", "--final-episodes", "0", "--out", str(tmp_path),
    ]  # fmt: skip
    lock = tmp_path / "pendulum-mixed" / ".bc-s0.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("4242")
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the process training that run holds it
        scores.main(argv)
    assert "pendulum-mixed/bc-s0: running in process 4242, skipped" in capsys.readouterr().out
    assert not (tmp_path / "pendulum-mixed" / "bc-s0" / "summary.json").exists()
    scores.main(argv)  # the file is still there, nobody holds it (its process ended): the run goes ahead
    assert (tmp_path / "pendulum-mixed" / "bc-s0" / "summary.json").exists()


def test_scores_refuses_runs_trained_on_other_data_than_the_file_they_name(tmp_path, capsys):
    """A dataset file rebuilt with other contents (a suite file made again on another machine) must not mix into one
    table row with the runs trained on the old one: continuing or tabulating them is refused, naming them."""
    from offrl.data.builtin import load_builtin
    from offrl.data.dataset import concatenate
    from offrl.data.formats.npz import save_dataset

    data = load_dataset(str(load_builtin("pendulum-mixed")[1]))
    path = tmp_path / "pendulum-mine.npz"
    save_dataset(data, path)
    argv = [
        "--datasets", str(path), "--task", "pendulum", "--algos", "bc", "--seeds", "0", "--steps", "100",
        "--eval-interval", "100", "--eval-episodes", "1", "--final-episodes", "0", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    scores = script("scores")
    scores.main(argv)
    scores.main([*argv, "--table-only"])  # the same file: fine
    save_dataset(concatenate([data, data]), path, overwrite=True)  # the file rebuilt with other contents
    for extra in ([], ["--table-only"]):
        with pytest.raises(SystemExit, match=r"pendulum-mine/bc-s0 \(trained on data [0-9a-f]{12}\.\.\."):
            scores.main([*argv, *extra])
    assert (tmp_path / "out" / "pendulum-mine" / "bc-s0" / "summary.json").exists()  # nothing removed


def test_scores_trains_groups_resumes_them_and_reads_their_runs_like_any_other(tmp_path, capsys):
    scores = script("scores")
    argv = [
        "--datasets", "pendulum-mixed,pendulum-random", "--task", "pendulum", "--algos", "bc", "--seeds", "0,1",
        "--steps", "200", "--eval-interval", "100", "--eval-episodes", "1", "--final-episodes", "2",
        "--checkpoint-interval", "100", "--out", str(tmp_path / "bench"), "--group",
    ]  # fmt: skip
    (tmp_path / "bench" / "pendulum-random").mkdir(parents=True)
    (tmp_path / "bench" / "pendulum-random" / ".bc-s1.lock").write_text("")
    with open(tmp_path / "bench" / "pendulum-random" / ".bc-s1.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process trains this one: the group goes on without it
        scores.main(argv)
    printed = capsys.readouterr().out
    assert (
        "group of 3 bc runs: 0 to continue, 3 new" in printed and "pendulum-random/bc-s1: running in process" in printed
    )
    run = tmp_path / "bench" / "pendulum-mixed" / "bc-s1"
    assert json.loads((run / "config.json").read_text())["group"] == {"members": 3, "index": 2}
    assert json.loads((run / "final_eval.json").read_text())["episodes"] == 2
    scores.main(argv)  # the one left over trains now, alone
    printed = capsys.readouterr().out
    assert "3 of 4 runs already finished; 1 to run" in printed and "group of 1 bc runs" in printed
    assert printed.count("| pendulum-") == 2
    stopped = tmp_path / "bench" / "pendulum-mixed" / "bc-s0"  # as if killed before its first checkpoint
    shutil.rmtree(stopped / "checkpoints")
    (stopped / "summary.json").unlink()
    scores.main(argv)
    assert "pendulum-mixed/bc-s0: stopped before its first checkpoint; starting it again" in capsys.readouterr().out
    assert json.loads((stopped / "summary.json").read_text())["step"] == 200


def test_scores_needs_datasets(capsys):
    with pytest.raises(SystemExit):
        script("scores").main(["--out", "x"])
    assert "--datasets (or --suite)" in capsys.readouterr().err


def test_make_suite_builds_every_kind_with_offrl_commands(tmp_path, capsys):
    """The recipe on pendulum with tiny stand-in actors (the real ones are ../shared/experts/{sac,tqc}_F.npz)."""
    experts = tmp_path / "experts"
    experts.mkdir()
    tiny_actor(experts / "sac_pendulum.npz", seed=0)
    tiny_actor(experts / "tqc_pendulum.npz", seed=1)
    out = tmp_path / "suite"
    argv = ["--families", "pendulum", "--out", str(out), "--experts", str(experts)]
    script("make_suite").main([*argv, "--transitions", "400", "--random-transitions", "200", "--replay-steps", "400"])
    manifest = json.loads((out / "suite.json").read_text())
    assert set(manifest) == {
        f"pendulum-{k}.hdf5" for k in ("random", "medium", "expert", "medium-expert", "medium-replay")
    }
    sizes = {name: load_dataset(out / name).size for name in manifest}
    assert sizes == {
        "pendulum-random.hdf5": 200,
        "pendulum-medium.hdf5": 400,
        "pendulum-expert.hdf5": 400,
        "pendulum-medium-expert.hdf5": 800,
        "pendulum-medium-replay.hdf5": 400,
    }
    assert manifest["pendulum-medium.hdf5"]["commands"][0].startswith("offrl dataset make --task pendulum --policy")
    assert "--stop-return" in manifest["pendulum-medium-replay.hdf5"]["commands"][0]
    assert (
        load_dataset(out / "pendulum-medium-replay.hdf5").metadata["behavior"] == "replay buffer of an offrl online run"
    )
    both = load_dataset(out / "pendulum-medium-expert.hdf5")
    np.testing.assert_array_equal(both.observations[:400], load_dataset(out / "pendulum-medium.hdf5").observations)
    script("make_suite").main(argv)  # existing files are kept
    assert capsys.readouterr().out.count("exists, kept") == 5

    # --reuse copies a kind from the first folder that has it (the versioned medium-replay file among them)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copyfile(out / "pendulum-random.hdf5", tmp_path / "a" / "pendulum-random.hdf5")
    shutil.copyfile(out / "pendulum-medium-replay.hdf5", tmp_path / "b" / "pendulum-medium-replay.hdf5")
    again = tmp_path / "again"
    reuse = ["--reuse", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--kinds", "random,medium-replay"]
    script("make_suite").main(["--families", "pendulum", "--out", str(again), "--experts", str(experts), *reuse])
    copied = json.loads((again / "suite.json").read_text())
    assert copied["pendulum-medium-replay.hdf5"]["commands"] == [
        f"cp {tmp_path / 'b' / 'pendulum-medium-replay.hdf5'} {again / 'pendulum-medium-replay.hdf5'}"
    ]
    assert copied["pendulum-random.hdf5"]["sha256"] == manifest["pendulum-random.hdf5"]["sha256"]


def test_a_stopped_d3rlpy_peer_run_continues_from_its_last_evaluation(tmp_path):
    """Only where d3rlpy is installed (the ``bench`` extra): a run killed after its first evaluation is continued
    from the saved model, and the record has the whole curve."""
    pytest.importorskip("d3rlpy")
    import subprocess

    peer = script("peer_d3rlpy")
    from offrl.data.builtin import load_builtin

    data = str(load_builtin("pendulum-mixed")[1])
    resume = tmp_path / "resume"
    argv = [
        sys.executable, str(BENCHMARKS / "peer_d3rlpy.py"), "--algo", "td3bc", "--dataset", str(data),
        "--task", "pendulum", "--steps", "400", "--seed", "0", "--eval-interval", "200", "--eval-episodes", "1",
        "--final-episodes", "1", "--resume-dir", str(resume), "--save-interval", "100",
        "--out", str(tmp_path / "first.json"),
    ]  # fmt: skip
    first = subprocess.Popen(argv)
    while not (resume / "progress.json").exists() and first.poll() is None:
        time.sleep(0.05)
    first.kill()
    first.wait()
    progress = json.loads((resume / "progress.json").read_text())
    assert progress["step"] in (100, 200) and (resume / progress["model"]).exists()  # saved every 100 updates
    assert [point["step"] for point in progress["curve"]] == [200][: progress["step"] // 200]  # evaluated every 200
    record = peer.train_and_evaluate(
        "td3bc", str(data), "pendulum", 400, 0, 200, 1, 1, resume_dir=resume, save_interval=100
    )
    assert [point["step"] for point in record["curve"]] == [200, 400]
    assert record["resumed"] == 1
    # one rate per epoch of 100 updates, over both invocations (the killed one's saved epochs included)
    assert len(json.loads((resume / "progress.json").read_text())["epoch_rates"]) == 4 and record["median_rate"] > 0
    with pytest.raises(ValueError, match="another run"):
        peer.train_and_evaluate("iql", str(data), "pendulum", 400, 0, 200, 1, 1, resume_dir=resume)
    assert record["fingerprint"] == load_dataset(data).fingerprint()  # scores.py checks it against the file
    from offrl.data.dataset import concatenate
    from offrl.data.formats.npz import save_dataset

    save_dataset(concatenate([load_dataset(data)] * 2), tmp_path / "other.npz")
    with pytest.raises(ValueError, match="trained on other data"):
        peer.train_and_evaluate("td3bc", str(tmp_path / "other.npz"), "pendulum", 400, 0, 200, 1, 1, resume_dir=resume)


def test_every_benchmark_config_loads_and_per_task_settings_apply():
    """Each ``benchmarks/configs/ALGO-FAMILY.json`` names only options its algorithm has; ``per_task`` overrides."""
    scores = script("scores")
    tasks = {"mujoco": "hopper", "classic": "pendulum"}
    files = sorted((BENCHMARKS / "configs").glob("*.json"))
    assert files
    for path in files:
        algo, family = path.stem.rsplit("-", 1)
        config, source, _ = scores.paper_config(algo, tasks[family])
        assert source.endswith(path.name), source
    assert scores.paper_config("prdc", "hopper")[0].alpha == 2.5
    assert scores.paper_config("prdc", "halfcheetah")[0].alpha == 40.0
    rebrac, _, batch_size = scores.paper_config("rebrac", "hopper", "hopper-medium-replay")
    assert (rebrac.actor_bc_coef, rebrac.critic_bc_coef, batch_size) == (0.05, 0.5, 1024)
    assert scores.paper_config("rebrac", "hopper", "someone-elses-data")[0].actor_bc_coef == 0.01


def test_corrupted_variants_get_their_own_rows_and_record_the_corruption(tmp_path, capsys):
    scores = script("scores")
    argv = [
        "--datasets", "pendulum-mixed", "--task", "pendulum", "--algos", "bc", "--seeds", "1", "--steps", "100",
        "--eval-interval", "100", "--eval-episodes", "1", "--final-episodes", "1", "--checkpoint-interval", "100",
        "--corruptions", "none,rewards:random:0.3", "--out", str(tmp_path / "bench"),
    ]  # fmt: skip
    scores.main(argv)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| pendulum-mixed")]
    assert len(rows) == 2 and rows[1].startswith("| pendulum-mixed+rewards-random-0.3")
    saved = json.loads((tmp_path / "bench" / "pendulum-mixed+rewards-random-0.3" / "bc-s1" / "config.json").read_text())
    assert saved["train"]["corruption"] == "rewards:random:0.3" and saved["train"]["corruption_seed"] == 1
    clean = json.loads((tmp_path / "bench" / "pendulum-mixed" / "bc-s1" / "config.json").read_text())
    assert clean["train"]["corruption"] == ""
    with pytest.raises(ValueError, match="kind must be one of"):
        scores.main([*argv[:-2], "--corruptions", "wind:random:0.3", "--out", str(tmp_path / "other")])


def test_the_report_screenshot_check_finds_a_blank_page_and_passes_real_reports(tmp_path):
    """The pixel checks refuse a blank page; with Chromium installed (apt-get install chromium) the screenshots of a
    real dataset report and a real run report pass them."""
    import shutil

    import matplotlib.image

    sys.path.insert(0, str(BENCHMARKS))
    import report_screenshot

    blank = tmp_path / "blank.png"
    matplotlib.image.imsave(blank, np.ones((1600, 1200, 3)))
    assert "the page is blank" in report_screenshot.check(blank)
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium on this machine")
    from offrl.cli import main

    page = tmp_path / "report.html"
    assert main(["dataset", "report", "pendulum-expert", "--reference", "pendulum-mixed", "--out", str(page)]) == 0
    png = report_screenshot.screenshot(page, tmp_path / "report.png")
    assert report_screenshot.check(png) == []
    assert "no run curves" in report_screenshot.check(png, "runs")  # the checks tell the two kinds apart

    from offrl.train import TrainConfig, train

    for seed in (0, 1):
        train(TrainConfig(steps=300, log_interval=50, eval_interval=100, eval_episodes=1, seed=seed,
                          output_dir=str(tmp_path), run_name=f"s{seed}", progress=False))  # fmt: skip
    assert main(["report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "runs")]) == 0
    png = report_screenshot.screenshot(tmp_path / "runs" / "index.html", tmp_path / "runs.png")
    assert report_screenshot.check(png, "runs") == []


def test_the_finetune_table_runs_each_method_with_its_preset_and_writes_the_table(tmp_path):
    """Two methods (RLPD's preset has no offline steps), one run each, in two processes; a second call skips the
    finished runs; the table goes between its markers in the Markdown file."""
    sys.path.insert(0, str(BENCHMARKS))
    import finetune_table

    markdown = tmp_path / "B.md"
    markdown.write_text("# results\n")
    argv = ["--methods", "iql,rlpd", "--datasets", "pendulum-random", "--seeds", "0", "--offline-steps", "100",
            "--online-steps", "100", "--eval-interval", "100", "--eval-episodes", "1", "--jobs", "2",
            "--out", str(tmp_path / "runs"), "--into", str(markdown)]  # fmt: skip
    finetune_table.main(argv)
    summaries = {m: json.loads((tmp_path / "runs" / "pendulum-random" / f"{m}-s0" / "summary.json").read_text())
                 for m in ("iql", "rlpd")}  # fmt: skip
    assert summaries["iql"]["offline_step"] == 100 and summaries["rlpd"]["offline_step"] == 0
    assert all(s["online_step"] == 100 for s in summaries.values())
    first = markdown.read_text()
    assert first.count("| pendulum-random |") == 2 and finetune_table.BEGIN in first
    mtime = (tmp_path / "runs" / "pendulum-random" / "iql-s0" / "summary.json").stat().st_mtime
    finetune_table.main(argv)  # nothing left to run
    assert (tmp_path / "runs" / "pendulum-random" / "iql-s0" / "summary.json").stat().st_mtime == mtime
    assert markdown.read_text() == first


def test_the_h2o_gap_table_gathers_every_finished_arm_of_separate_invocations(tmp_path, capsys):
    """Seeds run as separate invocations; --table-only reads each arm's record (not the runs' own JSON files) and
    writes them, arm by arm and seed by seed, to the table and the JSON file."""
    h2o_gap = script("h2o_gap")
    out = tmp_path / "gap"
    (out / "H2O-s1" / "checkpoints").mkdir(parents=True)
    (out / "H2O-s1" / "checkpoints" / "step_000001000.json").write_text("{}")  # a run's own file, not a record
    scores = {("H2O", 1): 30.0, ("H2O", 0): 20.0, ("offline-only (IQL)", 0): 17.0, ("simulator-only (SAC)", 0): 11.0}
    for (arm, seed), score in scores.items():
        record = {"arm": arm, "seed": seed, "real_score": score, "minutes": 1.0}
        (out / f"{arm.split()[0]}-s{seed}.json").write_text(json.dumps(record))
    h2o_gap.main(["--table-only", "--out", str(out), "--json", str(tmp_path / "gap.json")])
    table = capsys.readouterr().out
    assert "| H2O | 2 | 25.0 ± 5.0 (20.0, 30.0) |" in table and "| offline-only (IQL) | 1 | 17.0" in table
    assert table.index("offline-only") < table.index("simulator-only") < table.index("| H2O")
    records = json.loads((tmp_path / "gap.json").read_text())["records"]
    assert [(r["arm"], r["seed"]) for r in records][-2:] == [("H2O", 0), ("H2O", 1)] and len(records) == 4
    with pytest.raises(SystemExit, match="no finished arms"):
        h2o_gap.main(["--table-only", "--out", str(tmp_path / "empty")])


def test_dataset_measures_reads_each_datasets_scores_from_the_first_results_folder_that_has_it(tmp_path):
    dataset_measures = script("dataset_measures")

    def archive(folder, dataset, run, score, final=True):
        (tmp_path / folder / dataset / run).mkdir(parents=True)
        name = "final_eval.json" if final else "summary.json"
        (tmp_path / folder / dataset / run / name).write_text(json.dumps({"eval/normalized_score": score}))

    archive("hopper", "hopper-medium", "bc-s0", 30.0)
    archive("hopper", "hopper-medium", "bc-s1", 40.0, final=False)  # a run without a 100-episode evaluation
    archive("hopper", "hopper-medium", "iql-s0", 50.0)
    (tmp_path / "hopper" / "hopper-medium" / "d3rlpy-iql-s0.json").write_text("{}")  # a peer's record: not offrl's
    archive("walker", "walker2d-medium", "td3bc-s2", 70.0)
    folders = [tmp_path / "hopper", tmp_path / "walker"]
    assert dataset_measures.final_scores(folders, "hopper-medium") == {"bc": 35.0, "iql": 50.0}
    assert dataset_measures.best_and_bc_close({"bc": 35.0, "iql": 50.0}) == (None, "-")  # TD3+BC not finished yet
    assert dataset_measures.best_and_bc_close({"bc": 46.0, "td3bc": 40.0, "iql": 50.0}) == (50.0, "yes")
    assert dataset_measures.best_and_bc_close({"bc": 44.9, "td3bc": 40.0, "iql": 50.0}) == (50.0, "no")
    assert dataset_measures.final_scores(folders, "walker2d-medium") == {"td3bc": 70.0}
    assert dataset_measures.final_scores(folders, "walker2d-expert") == {}


def test_dataset_measures_scores_the_dataset_reports_verdict_against_the_algorithms():
    held = script("dataset_measures").report_verdict_held
    assert held("bc", {"bc": 46.0, "td3bc": 40.0, "iql": 50.0}) == "yes"  # BC within 5 of the best
    assert held("bc", {"bc": 44.9, "td3bc": 40.0, "iql": 50.0}) == "no"
    assert held("bc", {"bc": 60.0, "td3bc": 40.0, "iql": 50.0}) == "yes"  # BC the best
    assert held("q-learning", {"bc": 15.7, "td3bc": 30.1, "iql": 31.4}) == "yes"  # more than 5 ahead of BC
    assert held("q-learning", {"bc": 61.3, "td3bc": 5.9, "iql": 59.7}) == "no"
    assert held("poor", {"bc": 1.5, "td3bc": 3.2, "iql": 6.7}) == "yes"  # nothing reaches 50
    assert held("poor", {"bc": 35.9, "td3bc": 35.3, "iql": 50.0}) == "no"
    assert held("q-learning", {"bc": 65.5, "td3bc": 76.0, "iql": 66.0}) == "yes"  # TD3+BC alone ahead
    assert held("bc", {"bc": 45.0, "td3bc": 50.0, "iql": 10.0}) == "yes"  # exactly 5 behind TD3+BC
    assert held("q-learning", {"bc": 45.0, "td3bc": 50.0, "iql": 10.0}) == "no"  # exactly 5 ahead is not more
    assert held("poor", {"bc": 50.0, "td3bc": 1.0, "iql": 1.0}) == "no"  # BC reaches 50
    assert held("bc-baseline", {"bc": 1.0, "td3bc": 90.0, "iql": 50.0}) == "-"  # allows every outcome
    assert held("bc", {"bc": 46.0, "iql": 50.0}) == "-"  # TD3+BC not finished yet


def test_fqe_suite_statistics():
    fqe_suite = script("fqe_suite")
    assert fqe_suite.spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0])) == pytest.approx(0.5)
    assert fqe_suite.spearman(np.array([1.0, 1.0, 2.0]), np.array([1.0, 1.0, 5.0])) == pytest.approx(1.0)  # ties
    assert np.isnan(fqe_suite.spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])))

    def record(dataset, algo, estimate, true, low, high):
        return {"run": f"{dataset}/{algo}-s0", "dataset": dataset, "algo": algo,
                "fqe": {"estimate": estimate, "low": low, "high": high},
                "online": {"discounted_return": true, "discounted_return_sem": 0.0,
                           "normalized_score": 0.0}}  # fmt: skip

    records = [record("a", "bc", 10, 8, 9, 11), record("a", "iql", 12, 4, 11, 13), record("a", "td3bc", 5, 6, 4, 7),
               record("b", "bc", 1, 1, 0, 2)]  # fmt: skip
    s = fqe_suite.summarise(records)
    assert s["per_dataset"]["a"]["regret_at_1"] == pytest.approx(4.0)  # FQE picks iql (12), worth 4; the best is 8
    assert s["per_dataset"]["b"]["regret_at_1"] == 0.0 and s["interval_coverage"] == pytest.approx(0.5)
    assert s["mean_absolute_error"] == pytest.approx((2 + 8 + 1 + 0) / 4)
    assert "regret@1" in fqe_suite.table(records, s)
    # one row per environment (the dataset name's first part) once the records span several
    records = [dict(r, dataset=f"hopper-{r['dataset']}") for r in records[:3]] + [
        dict(records[3], dataset="walker2d-b")
    ]
    s = fqe_suite.summarise(records)
    assert set(s["per_environment"]) == {"hopper", "walker2d"}
    assert s["per_environment"]["hopper"]["mean_absolute_error"] == pytest.approx((2 + 8 + 1) / 3)
    assert s["per_environment"]["walker2d"]["policies"] == 1 and not s["per_environment"]["hopper"]["per_environment"]
    assert "| walker2d | 1 |" in fqe_suite.table(records, s)


def test_the_fqe_and_workflow_suites_judge_runs_and_write_their_tables(tmp_path, capsys):
    """A tiny TD3+BC run on a pendulum dataset kept with every checkpoint: the workflow suite trains and judges it,
    the FQE suite evaluates it; both resume (nothing is redone) and write their tables between their markers."""
    from offrl.data.builtin import load_builtin
    from offrl.data.formats.d4rl import save_d4rl_hdf5

    workflow_suite, fqe_suite = script("workflow_suite"), script("fqe_suite")
    data, _ = load_builtin("pendulum-mixed")
    save_d4rl_hdf5(data, tmp_path / "data" / "pendulum-mixed.hdf5")
    markdown = tmp_path / "B.md"
    markdown.write_text(f"{workflow_suite.BEGIN}\n{workflow_suite.END}\n{fqe_suite.BEGIN}\n{fqe_suite.END}\n")
    argv = ["--data-dir", str(tmp_path / "data"), "--datasets", "pendulum-mixed", "--algos", "td3bc",
            "--steps", "300", "--interval", "100", "--episodes", "1", "--out", str(tmp_path / "runs"),
            "--into", str(markdown)]  # fmt: skip
    assert workflow_suite.main(argv) == 0
    run = tmp_path / "runs" / "pendulum-mixed" / "td3bc-s0"
    record = json.loads((run / "workflow.json").read_text())
    assert [c["step"] for c in record["checkpoints"]] == [100, 200, 300]
    assert all(c["online_score"] is not None for c in record["checkpoints"])
    assert record["regret"] == pytest.approx(record["best_score"] - record["recommended_score"])
    assert record["regret"] >= 0
    assert "| pendulum-mixed | td3bc |" in markdown.read_text()
    mtime = (run / "workflow.json").stat().st_mtime
    published = tmp_path / "workflow-suite.json"
    assert workflow_suite.main([*argv, "--table-only", "--json", str(published)]) == 0
    assert (run / "workflow.json").stat().st_mtime == mtime and json.loads(published.read_text()) == [record]

    fqe_argv = ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "fqe"), "--members", "3", "--steps",
                "200", "--episodes", "2", "--into", str(markdown)]  # fmt: skip
    with pytest.warns(UserWarning, match="Bellman backups"):
        assert fqe_suite.main(fqe_argv) == 0
    fqe = json.loads((tmp_path / "fqe" / "pendulum-mixed" / "td3bc-s0.json").read_text())
    assert fqe["fqe"]["low"] <= fqe["fqe"]["high"] and np.isfinite(fqe["online"]["discounted_return"])
    capsys.readouterr()
    assert fqe_suite.main(fqe_argv) == 0 and "[1/1]" not in capsys.readouterr().out  # already evaluated
    assert "| pendulum-mixed | td3bc-s0 |" in markdown.read_text()

    from offrl.data.dataset import concatenate

    save_d4rl_hdf5(concatenate([data, data]), tmp_path / "data" / "pendulum-mixed.hdf5", overwrite=True)  # rebuilt
    with pytest.raises(SystemExit, match=r"pendulum-mixed/td3bc-s0 \(trained on data [0-9a-f]{12}\.\.\."):
        workflow_suite.main([*argv, "--table-only"])
    shutil.rmtree(tmp_path / "fqe")
    with pytest.raises(SystemExit, match="trained on other data"):
        fqe_suite.main(fqe_argv)

    # the run's machine is lost: --table-only keeps its published record, and only with the file that holds it
    shutil.rmtree(tmp_path / "runs")
    markdown.write_text(f"{workflow_suite.BEGIN}\n{workflow_suite.END}\n")
    assert workflow_suite.main([*argv, "--table-only"]) == 1
    capsys.readouterr()
    assert workflow_suite.main([*argv, "--table-only", "--json", str(published)]) == 0
    assert "pendulum-mixed/td3bc-s0: not finished here; its record in" in capsys.readouterr().out
    assert "| pendulum-mixed | td3bc |" in markdown.read_text() and json.loads(published.read_text()) == [record]


def test_the_cartpole_workflow_makes_its_datasets_trains_each_critic_and_judges_it(tmp_path, capsys):
    """expert-N and mixed-N from an expert log (here a short random one), one tiny critic: trained, judged from its
    checkpoints, tabulated; a second call redoes nothing, and a malformed critic or dataset name is refused."""
    from offrl.data import load_dataset, save_dataset

    workflow_cartpole = script("workflow_cartpole")
    save_dataset(workflow_cartpole.random_episodes(300, seed=3), tmp_path / "log.npz")
    markdown = tmp_path / "B.md"
    markdown.write_text(f"{workflow_cartpole.BEGIN}\n{workflow_cartpole.END}\n")
    argv = ["--datasets", "expert-2,mixed-1", "--critics", "16", "--steps", "200", "--interval", "100",
            "--episodes", "1", "--random-transitions", "150", "--expert-log", str(tmp_path / "log.npz"),
            "--out", str(tmp_path / "runs"), "--into", str(markdown)]  # fmt: skip
    assert workflow_cartpole.main(argv) == 0
    log = load_dataset(tmp_path / "log.npz")
    expert2 = load_dataset(tmp_path / "runs" / "data" / "cartpole-expert-2.npz")
    mixed1 = load_dataset(tmp_path / "runs" / "data" / "cartpole-mixed-1.npz")
    assert expert2.num_episodes == 2 and expert2.size == log.first_episodes(2).size
    assert mixed1.size == log.first_episodes(1).size + 150 and mixed1.discrete
    run = tmp_path / "runs" / "cartpole-mixed-1" / "cql-discrete-16-s0"
    record = json.loads((run / "workflow.json").read_text())
    assert [c["step"] for c in record["checkpoints"]] == [100, 200] and record["algo"] == "CQL 16"
    assert all(c["target_variance"] >= 0 for c in record["checkpoints"])
    assert json.loads((run / "config.json").read_text())["algo_config"]["hidden_dims"] == [16]
    assert "| cartpole-mixed-1 | CQL 16, seed 0 |" in markdown.read_text()
    capsys.readouterr()
    assert workflow_cartpole.main(argv) == 0 and "training" not in capsys.readouterr().out
    for bad, message in ((["--critics", "256xwide"], "is not a list of widths"),
                         (["--datasets", "expert-many"], "unknown dataset 'expert-many'")):  # fmt: skip
        with pytest.raises(SystemExit):
            workflow_cartpole.main([*argv, *bad])
        assert message in capsys.readouterr().err


@pytest.mark.slow  # the group path itself is in CI through scores.py's test
def test_the_workflow_suite_trains_its_runs_as_groups(tmp_path, capsys):
    from offrl.data.builtin import load_builtin
    from offrl.data.formats.d4rl import save_d4rl_hdf5

    workflow_suite = script("workflow_suite")
    for name in ("pendulum-mixed", "pendulum-random"):
        save_d4rl_hdf5(load_builtin(name)[0], tmp_path / "data" / f"{name}.hdf5")
    argv = ["--data-dir", str(tmp_path / "data"), "--datasets", "pendulum-mixed,pendulum-random", "--algos", "td3bc",
            "--seeds", "0,1", "--steps", "200", "--interval", "100", "--episodes", "1", "--out", str(tmp_path / "runs"),
            "--group"]  # fmt: skip
    assert workflow_suite.main(argv) == 0
    out = capsys.readouterr().out
    assert "group of 4 td3bc runs: 0 to continue, 4 new" in out and out.count("| td3bc |") == 4
    run = tmp_path / "runs" / "pendulum-random" / "td3bc-s1"
    assert json.loads((run / "config.json").read_text())["group"]["members"] == 4
    assert [c["step"] for c in json.loads((run / "workflow.json").read_text())["checkpoints"]] == [100, 200]


def test_a_table_replaces_its_own_block_and_keeps_the_rest_of_the_file(tmp_path):
    write_block = script("markdown_block").write_block
    path = tmp_path / "B.md"
    write_block(path, "<!-- a -->", "<!-- /a -->", "one")  # a new file
    assert path.read_text() == "<!-- a -->\none\n<!-- /a -->\n"
    path.write_text("# title\n\n<!-- a -->\nold\n<!-- /a -->\n\nkept\n")
    write_block(path, "<!-- a -->", "<!-- /a -->", "new")
    write_block(path, "<!-- b -->", "<!-- /b -->", "other")  # absent markers: appended
    assert path.read_text() == "# title\n\n<!-- a -->\nnew\n<!-- /a -->\n\nkept\n\n<!-- b -->\nother\n<!-- /b -->\n"
