"""Calibration on synthetic scores with known probabilities; ECE against a loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize

from labelwise.calibration import (
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
    calibrator_from_dict,
    debiased_calibration_error,
    expected_calibration_error,
    load_calibrator,
    reliability_diagram,
)
from labelwise.calibration._logistic import fit_groups
from labelwise.errors import DataFormatError, NotFittedError


def _known(n=20000, L=4, a=1.7, b=-0.8, seed=0):
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n, L)) * 2
    P = 1 / (1 + np.exp(-(a * S + b)))
    return S, (rng.random((n, L)) < P).astype(float), P


def test_platt_recovers_a_b_and_ece_small():
    S, Y, _ = _known()
    cal = PlattCalibrator().fit(S, Y)
    assert cal.shared_[0] == pytest.approx(1.7, abs=0.06)
    assert cal.shared_[1] == pytest.approx(-0.8, abs=0.06)
    S2, Y2, _ = _known(seed=1)
    assert expected_calibration_error(Y2, cal.transform(S2)) < 0.01
    raw = 1 / (1 + np.exp(-S2))  # uncalibrated map
    assert expected_calibration_error(Y2, raw) > 0.03


def test_per_label_platt_recovers_each_label_and_pools_rare_ones():
    rng = np.random.default_rng(0)
    n, L = 6000, 8
    a = rng.uniform(0.5, 2.5, L)
    b = rng.uniform(-2, 0.5, L)
    S = rng.normal(size=(n, L)) * 2
    Y = (rng.random((n, L)) < 1 / (1 + np.exp(-(a * S + b)))).astype(float)
    cal = PlattCalibrator(per_label=True).fit(S, Y)
    assert np.allclose(cal.a_, a, atol=0.25) and np.allclose(cal.b_, b, atol=0.25)
    # a label seen 5 times: its fit stays near the shared one
    S3 = S.copy()
    Y3 = Y.copy()
    S3 = np.column_stack([S3, np.zeros(n)])
    Y3 = np.column_stack([Y3, np.zeros(n)])
    S3[:5, -1] = 3.0
    Y3[:5, -1] = 1.0
    S3 = sp.csr_matrix(np.where(np.arange(L + 1)[None, :] < L, S3, 0))
    S3 = sp.csr_matrix(S3)  # last column: only 5 stored entries
    pooled = PlattCalibrator(per_label=True).fit(S3, Y3)
    a0, b0 = pooled.shared_
    assert abs(pooled.a_[-1] - a0) < 1.0 and abs(pooled.b_[-1] - b0) < 1.5


def test_fit_groups_matches_scipy_minimiser():
    rng = np.random.default_rng(3)
    s = rng.normal(size=300)
    y = (rng.random(300) < 0.4).astype(float)
    g = rng.integers(0, 3, 300)
    a, b, _ = fit_groups(s, y, g, 3, a0=0.5, b0=-0.2, lam_a=2.0, lam_b=3.0)
    for k in range(3):
        sk, yk = s[g == k], y[g == k]

        def f(w, sk=sk, yk=yk):
            z = w[0] * sk + w[1]
            return (np.logaddexp(0, z) - yk * z).sum() + (w[0] - .5) ** 2 + 1.5 * (w[1] + .2) ** 2

        ref = minimize(f, [0.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
        assert a[k] == pytest.approx(ref[0], abs=1e-5) and b[k] == pytest.approx(ref[1], abs=1e-5)


def test_temperature_recovers_scale():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20000, 3)) * 2
    Y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(float)
    cal = TemperatureCalibrator().fit(z * 3.0, Y)  # logits inflated 3x
    assert cal.temperature_ == pytest.approx(3.0, rel=0.05)


def test_isotonic_monotone_and_calibrated():
    S, Y, _ = _known(seed=2)
    cal = IsotonicCalibrator().fit(S, Y)
    grid = np.linspace(-8, 8, 400).reshape(100, 4)
    out = cal.transform(grid).ravel()
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1
    S2, Y2, _ = _known(seed=3)
    assert expected_calibration_error(Y2, cal.transform(S2)) < 0.015


def test_sparse_topk_keeps_layout_and_missing_probability():
    S, Y, _ = _known(n=3000, L=6)
    keep = S >= np.sort(S, axis=1)[:, [-2]]
    Ssp = sp.csr_matrix(np.where(keep, S, 0.0))
    Ssp = sp.csr_matrix((S[keep], np.nonzero(keep)[1], np.r_[0, np.cumsum(keep.sum(1))]),
                        shape=S.shape)
    cal = PlattCalibrator().fit(Ssp, Y)
    P = cal.transform(Ssp)
    assert sp.issparse(P) and P.nnz == Ssp.nnz and np.array_equal(P.indices, Ssp.indices)
    unretrieved_rate = (Y.sum() - Y[keep].sum()) / (~keep).sum()
    assert cal.missing_probability_ <= P.data.min() + 1e-7
    assert cal.missing_probability_ == pytest.approx(min(unretrieved_rate, P.data.min()), rel=1e-6)


def _ece_ref(y, p, n_bins):
    total, err = 0, 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (p >= lo) & ((p < hi) if b < n_bins - 1 else (p <= 1))
        if m.any():
            err += abs(y[m].sum() - p[m].sum())
            total += m.sum()
    return err / total


def test_ece_matches_loop_reference_and_missing_pairs():
    rng = np.random.default_rng(4)
    P = rng.random((50, 4))
    Y = (rng.random((50, 4)) < P ** 2).astype(float)
    assert expected_calibration_error(Y, P, n_bins=10) == pytest.approx(
        _ece_ref(Y.ravel(), P.ravel(), 10))
    macro = np.mean([_ece_ref(Y[:, j], P[:, j], 10) for j in range(4)])
    assert expected_calibration_error(Y, P, n_bins=10, average="macro") == pytest.approx(macro)
    # sparse with missing=q equals dense with the unstored pairs set to q
    keep = rng.random((50, 4)) < 0.5
    Psp = sp.csr_matrix((P[keep], np.nonzero(keep)[1], np.r_[0, np.cumsum(keep.sum(1))]),
                        shape=P.shape)
    dense = np.where(keep, P, 0.03)
    assert expected_calibration_error(Y, Psp, n_bins=10, missing=0.03) == pytest.approx(
        _ece_ref(Y.ravel(), dense.ravel(), 10))
    assert expected_calibration_error(Y, Psp, n_bins=10) == pytest.approx(
        _ece_ref(Y[keep], P[keep], 10))
    d = reliability_diagram(Y, P, n_bins=5)
    assert d.count.sum() == 200 and len(d.to_dict()["edges"]) == 6


@pytest.mark.parametrize("cal", [PlattCalibrator(), PlattCalibrator(per_label=True),
                                 PlattCalibrator(per_label=True, isotonic=True),
                                 PlattCalibrator(isotonic=True, centered=True),
                                 IsotonicCalibrator(), IsotonicCalibrator(centered=True),
                                 TemperatureCalibrator()])
def test_save_load_roundtrip(tmp_path, cal):
    S, Y, _ = _known(n=500)
    cal.fit(S, Y)
    cal.save(tmp_path)
    back = load_calibrator(tmp_path)
    assert np.array_equal(back.transform(S), cal.transform(S))
    assert np.array_equal(calibrator_from_dict(cal.to_dict(), cal.arrays()).transform(S),
                          cal.transform(S))
    assert back.explain() == cal.explain()


def test_errors():
    S, Y, _ = _known(n=100)
    with pytest.raises(NotFittedError):
        PlattCalibrator().transform(S)
    with pytest.raises(DataFormatError, match="probabilities"):
        expected_calibration_error(Y, S)
    with pytest.raises(DataFormatError, match="unknown calibrator"):
        calibrator_from_dict({"kind": "pickle"}, {})
    cal = PlattCalibrator().fit(S, Y)
    with pytest.raises(DataFormatError, match="labels"):
        cal.transform(S[:, :2])


def test_platt_then_isotonic_equals_the_two_steps_by_hand():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(5)
    S = rng.normal(size=(400, 3)) * 2
    Y = (rng.random(S.shape) < 1 / (1 + np.exp(-S ** 3 / 4))).astype(float)  # not a sigmoid
    both = PlattCalibrator(per_label=True, isotonic=True).fit(S, Y)
    platt = PlattCalibrator(per_label=True).fit(S, Y)
    z = platt.transform(S)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z.ravel(),
                                                                               Y.ravel())
    S2 = rng.normal(size=(50, 3)) * 2
    assert np.allclose(both.transform(S2), iso.predict(platt.transform(S2).ravel()).reshape(
        50, 3), atol=1e-12)
    assert both.explain()["isotonic_breakpoints"] == iso.X_thresholds_.size


def test_isotonic_step_fixes_a_shape_platt_cannot():
    # true probability sigmoid(s^3 / 4): Platt's sigmoid(a s + b) is too flat in the middle
    def draw(n, seed):
        r = np.random.default_rng(seed)
        S = r.normal(size=(n, 4)) * 2
        return S, (r.random(S.shape) < 1 / (1 + np.exp(-S ** 3 / 4))).astype(float)

    S, Y = draw(5000, 7)
    S2, Y2 = draw(5000, 8)
    plain = PlattCalibrator().fit(S, Y).transform(S2)
    both = PlattCalibrator(isotonic=True).fit(S, Y).transform(S2)
    assert debiased_calibration_error(Y2, plain) > 0.04
    assert debiased_calibration_error(Y2, both) < 0.015


def _cir_ref(x, y):
    """Pool-adjacent-violators by hand, then one point per block at the mean x."""
    groups = {}  # isotonic regression fits one value per distinct x: pool them first
    for xv, yv in zip(x, y, strict=True):
        g = groups.setdefault(float(xv), [0.0, 0, 0.0])
        g[0] += yv
        g[1] += 1
        g[2] += xv
    blocks = []  # [sum_y, count, sum_x]
    for xv in sorted(groups):
        blocks.append(list(groups[xv]))
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            b = blocks.pop()
            for t in range(3):
                blocks[-1][t] += b[t]
    return (np.array([b[2] / b[1] for b in blocks]), np.array([b[0] / b[1] for b in blocks]))


def test_centered_isotonic_matches_reference_and_is_strictly_increasing():
    rng = np.random.default_rng(9)
    s = np.round(rng.normal(size=300), 1)  # ties
    y = (rng.random(300) < 1 / (1 + np.exp(-2 * s))).astype(float)
    cal = IsotonicCalibrator(centered=True).fit(s[:, None], y[:, None])
    cx, cy = _cir_ref(s, y)
    assert np.allclose(cal.x_, cx) and np.allclose(cal.y_, cy)
    assert np.all(np.diff(cal.x_) > 0) and np.all(np.diff(cal.y_) > 0)
    grid = np.linspace(cal.x_[0], cal.x_[-1], 200)[:, None]
    assert np.all(np.diff(cal.transform(grid).ravel()) > 0)  # no ties inside the range
    plain = IsotonicCalibrator().fit(s[:, None], y[:, None])
    assert np.any(np.diff(plain.transform(grid).ravel()) == 0)  # the steps it removes


def test_cli_and_pipeline_list_the_same_calibrations():
    """labelwise tune --calibration keeps a copy (the CLI starts without the pipeline)."""
    from labelwise.cli.tune import CALIBRATIONS as cli_names
    from labelwise.pipeline import CALIBRATIONS, make_calibrator

    assert cli_names == CALIBRATIONS
    cal = make_calibrator("platt-per-label+context")
    assert cal.per_label and cal.context
