"""`prm distill`: a head on the drafter fitted to a teacher head's scores, on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from specsearch.cli.main import main as cli_main
from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.prm_distill import distill_head, fit_student, teacher_scores
from specsearch.core.prm_head import Head, HeadPRM, file_sha256
from specsearch.core.prm_train import FeatureSet, extract_features

from test_prm_head import marked_items, random_head, write_items

FEATURES = ["hidden", "logprob_mean", "digit_logprob_min"]


@pytest.fixture(scope="module")
def target(tiny) -> Engine:
    with Engine(tiny["target"], LoadOptions(n_ctx=1024, batch_invariant=True)) as e:
        yield e


class TestTheFit:
    def test_a_target_linear_in_the_features_is_recovered_exactly(self):
        rng = np.random.default_rng(0)
        x = rng.normal(3.0, 2.0, (200, 12))
        logit = x @ rng.normal(0, 0.1, 12) - 1.0  # within the clip (|logit| < 9)
        assert np.abs(logit).max() < 9
        fs = FeatureSet(x, np.ones(200), np.arange(200), np.zeros(200))
        weights, mean, scale, bias = fit_student(fs, 1 / (1 + np.exp(-logit)), l2=0.0)
        np.testing.assert_allclose(((x - mean) / scale) @ weights + bias, logit, atol=1e-6)

    def test_the_penalty_shrinks_towards_the_mean_score(self):
        rng = np.random.default_rng(1)
        x = rng.normal(0, 1, (100, 5))
        t = 1 / (1 + np.exp(-(x @ np.ones(5))))
        fs = FeatureSet(x, np.ones(100), np.arange(100), np.zeros(100))
        small = np.abs(fit_student(fs, t, 1e-3)[0]).sum()
        large = np.abs(fit_student(fs, t, 10.0)[0]).sum()
        assert large < small / 5


class TestOnTinyModels:
    def test_a_teacher_on_the_same_features_is_reproduced_on_held_out_items(self, target):
        # Teacher and student read the same backbone and features, and the teacher is linear
        # in them: the distilled head must score every held-out step as the teacher does.
        items = marked_items(80)
        teacher = random_head(target, features=tuple(FEATURES), seed=3)
        w, b = teacher.layers[0]
        teacher.layers = [(w * 0.2, b)]  # scores strictly inside the fit's clip to (1e-4, 1 - 1e-4)
        targets = teacher_scores(target, teacher, items)
        rows = extract_features(target, items, FEATURES)
        assert np.abs(teacher.logits(rows.x)).max() < 9
        assert rows.x.shape[0] > rows.x.shape[1]  # more steps than features: the fit is determined
        report = distill_head(target, rows, FEATURES, targets, items, l2=0.0, held_out=0.25)
        assert report.val_correlation > 0.999
        prm = HeadPRM(target, report.head)
        it = items[5]
        np.testing.assert_allclose(prm.score(it.problem, list(it.judged_steps)),
                                   HeadPRM(target, teacher).score(it.problem, list(it.judged_steps)), atol=1e-3)
        assert report.head.backbone_sha256 == file_sha256(target.path)

    def test_held_out_zero_fits_every_item_and_reports_nothing(self, target):
        items = marked_items(12)
        rows = extract_features(target, items, ["hidden"])
        targets = np.linspace(0.2, 0.9, len(rows.y))
        report = distill_head(target, rows, ["hidden"], targets, items, l2=1.0, held_out=0.0)
        assert (report.train_steps, report.val_steps, report.val_auroc) == (len(rows.y), 0, None)
        weights, mean, scale, bias = fit_student(rows, targets, 1.0)
        np.testing.assert_allclose(report.head.layers[0][0][:, 0], weights)

    def test_teacher_scores_are_the_teacher_prms_scores(self, target):
        items = marked_items(6)
        teacher = random_head(target, features=("hidden",), seed=4)
        flat = teacher_scores(target, teacher, items)
        expected = [s for it in items for s in HeadPRM(target, teacher).score(it.problem, list(it.judged_steps))]
        np.testing.assert_allclose(flat, expected, atol=1e-4)


class TestCli:
    def test_distill_writes_a_head_for_the_drafter_that_prm_eval_uses(self, tiny, tmp_path, capsys):
        with Engine(tiny["target"], LoadOptions(n_ctx=1024)) as teacher_engine:
            teacher = random_head(teacher_engine, features=("hidden", "logprob_mean"), seed=5)
        teacher.save(tmp_path / "teacher.npz")
        data = write_items(tmp_path / "items.json", marked_items(30))
        out = tmp_path / "student.npz"
        code = cli_main(["prm", "distill", "--backbone", str(tiny["draft"]), "--teacher", str(tiny["target"]),
                         "--teacher-head", str(tmp_path / "teacher.npz"), "--data", str(data), "--out", str(out),
                         "--features", "hidden,logprob_mean", "--json"])
        assert code == 0
        report = json.loads(capsys.readouterr().out)
        assert report["items"] == 30 and report["train_steps"] > 0 and report["val_steps"] > 0
        assert -1.0 <= report["val_correlation"] <= 1.0
        student = Head.load(out)
        assert student.backbone_sha256 == file_sha256(tiny["draft"])
        assert student.meta["distilled_from"] == {"backbone": "target.gguf", "head": "teacher.npz"}
        code = cli_main(["prm", "eval", "--prm", str(tiny["draft"]), "--prm-kind", "head", "--head", str(out),
                         "--data", str(data), "--calibrate", str(data), "--json"])
        assert code == 0
        assert json.loads(capsys.readouterr().out)["items"] == 30

    def test_a_teacher_head_for_another_backbone_is_a_one_line_error(self, tiny, tmp_path, capsys):
        with Engine(tiny["draft"], LoadOptions(n_ctx=1024)) as other:
            random_head(other, seed=6).save(tmp_path / "teacher.npz")
        data = write_items(tmp_path / "items.json", marked_items(4))
        out = tmp_path / "student.npz"
        code = cli_main(["prm", "distill", "--backbone", str(tiny["draft"]), "--teacher", str(tiny["target"]),
                         "--teacher-head", str(tmp_path / "teacher.npz"), "--data", str(data), "--out", str(out)])
        assert code == 2
        err = capsys.readouterr().err
        assert "trained on backbone" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()

    def test_unknown_features_are_refused_before_any_model_loads(self, tiny, tmp_path, capsys):
        code = cli_main(["prm", "distill", "--backbone", str(tiny["draft"]), "--teacher", "missing.gguf",
                         "--teacher-head", "missing.npz", "--data", "gsm8k", "--out", str(tmp_path / "s.npz"),
                         "--features", "hidden,nope"])
        assert code == 2
        assert "unknown features" in capsys.readouterr().err
