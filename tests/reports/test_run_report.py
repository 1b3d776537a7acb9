"""``offrl report``: runs' learning curves on one page, with their mean and spread."""

from __future__ import annotations

from offrl.cli import main


def test_the_run_report_overlays_runs_with_their_mean_and_writes_pngs(tmp_path, capsys):
    from offrl.train import TrainConfig, train

    for seed in (0, 1):
        train(TrainConfig(steps=200, log_interval=50, eval_interval=100, eval_episodes=1, seed=seed,
                          output_dir=str(tmp_path), run_name=f"s{seed}", progress=False))  # fmt: skip
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert page.count("<tr><td>s") == 2 and "mean" in page and "<script" not in page
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "score.png" in pngs and "critic_loss.png" in pngs and "actor_loss.png" in pngs
    assert all((out / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert main(["report", str(tmp_path / "s0"), "--out", str(out)]) != 0  # an existing report is kept
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2")]) != 0
    assert "no config.json" in capsys.readouterr().err
