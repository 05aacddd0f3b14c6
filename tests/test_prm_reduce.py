"""Hidden-state reduction for learned heads (core.prm_reduce) and `prm train --pca`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from specsearch.cli.main import main as cli_main
from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.prm_head import Head, HeadPRM
from specsearch.core.prm_reduce import fit_reduction, fold_into_head
from specsearch.core.prm_train import FitConfig, ReduceConfig, extract_features, reduced_feature_names, train_head

from test_prm_head import marked_items, write_items


def _random_problem(rng, rows=120, hidden=24, other=3, confounds=2):
    c = rng.normal(size=(rows, confounds))
    # Hidden states that carry the confounds along fixed directions, plus noise.
    h = c @ rng.normal(size=(confounds, hidden)) + rng.normal(size=(rows, hidden))
    return h, rng.normal(size=(rows, other)), c


class TestReduction:
    def test_erased_directions_carry_no_linear_trace_of_the_confounds(self):
        h, _, c = _random_problem(np.random.default_rng(0))
        red = fit_reduction(h, 6, confounds=c)
        z = red.apply(h)
        # Exact property of the erasure: the reduced features are uncorrelated with every confound.
        np.testing.assert_allclose((c - c.mean(0)).T @ z, 0.0, atol=1e-8)
        # Without erasure the same PCA keeps them (the confounds dominate the variance here).
        kept = fit_reduction(h, 6).apply(h)
        assert np.abs((c - c.mean(0)).T @ kept).max() > 1.0

    def test_the_folded_head_scores_raw_hidden_states_as_the_fitted_one_scored_reduced_ones(self):
        rng = np.random.default_rng(1)
        h, other, c = _random_problem(rng)
        red = fit_reduction(h, 5, confounds=c)
        reduced_x = np.hstack([other, red.apply(h)])
        mean, scale = reduced_x.mean(0), reduced_x.std(0) + 1e-6
        for layers in ([(rng.normal(size=(8, 1)), rng.normal(size=1))],
                       [(rng.normal(size=(8, 6)), rng.normal(size=6)), (rng.normal(size=(6, 1)), rng.normal(size=1))]):
            fitted = Head("x", 24, features=("a",) * 8, layers=layers, mean=mean, scale=scale)
            new_layers, new_mean, new_scale = fold_into_head(layers, mean, scale, red, n_other=3)
            folded = Head("x", 24, features=("hidden", "a", "b", "c"), layers=new_layers, mean=new_mean,
                          scale=new_scale)
            np.testing.assert_allclose(folded.predict(np.hstack([h, other])), fitted.predict(reduced_x), atol=1e-10)

    def test_more_components_than_rows_or_dimensions_is_refused(self):
        h, _, _ = _random_problem(np.random.default_rng(2), rows=10)
        with pytest.raises(ValueError, match="components"):
            fit_reduction(h, 11)


@pytest.fixture(scope="module")
def engine(tiny) -> Engine:
    with Engine(tiny["target"], LoadOptions(n_ctx=1024, batch_invariant=True)) as e:
        yield e


class TestTrainingWithReduction:
    def test_a_reduced_head_is_a_head_over_the_raw_hidden_state_that_scores_as_trained(self, engine):
        items = marked_items(60)
        reduce = ReduceConfig(components=4)
        names = reduced_feature_names(["logprob_mean", "hidden"], reduce)
        assert names == ["hidden", "logprob_mean", "log_tokens", "log_digit_tokens"]
        feats = extract_features(engine, items, names)
        report = train_head(engine, feats, items, ["logprob_mean", "hidden"], FitConfig(l2=1e-3, epochs=200),
                            held_out=0.3, reduce=reduce)
        head = report.head
        assert head.features == ("hidden", "logprob_mean")
        assert head.meta["reduction"] == {"components": 4, "erased": ["log_tokens", "log_digit_tokens"]}
        assert report.val_auroc is not None and report.val_auroc > 0.8
        # Scored at run time through the PRM: the same numbers as the training rows (confounds dropped).
        it = items[1]
        rows = feats.x[feats.item == 1][:, : head.n_features]
        np.testing.assert_allclose(HeadPRM(engine, head).score(it.problem, list(it.judged_steps)),
                                   head.predict(rows), atol=1e-4)

    def test_cli_pca_writes_a_usable_head_and_bad_combinations_are_one_line_errors(self, tiny, tmp_path, capsys):
        data = write_items(tmp_path / "items.json", marked_items(24))
        out = tmp_path / "head.npz"
        base = ["prm", "train", "--backbone", str(tiny["target"]), "--data", str(data), "--out", str(out)]
        assert cli_main(base + ["--features", "hidden,logprob_min", "--pca", "3", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["pca"] == 3 and report["erased"] is True
        assert Head.load(out).meta["reduction"]["components"] == 3
        for extra, message in ((["--features", "logprob_min", "--pca", "3"], "add hidden to --features"),
                               (["--features", "hidden", "--keep-length"], "--keep-length goes with --pca"),
                               (["--features", "hidden", "--pca", "1000"], "more than the backbone's hidden size")):
            assert cli_main(base + extra) == 2
            err = capsys.readouterr().err.strip()
            assert message in err and len(err.splitlines()) == 1
