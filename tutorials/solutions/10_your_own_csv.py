"""Worked solutions to the exercises of lesson 10 (tutorials/10_your_own_csv.py).

Run:  python tutorials/solutions/10_your_own_csv.py

No encoder here: logits drawn at random, with labels drawn from their own softmax, are a model whose probabilities
are calibrated by construction; scaling them makes one that is not.
"""
import numpy as np

from minift.data import DataError, LabelMap
from minift.metrics import expected_calibration_error, fit_temperature, nll

rng = np.random.default_rng(0)


def softmax(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    e = np.exp(z / t - (z / t).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated(n: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(n, C) logits and (n,) labels, each label drawn from softmax of its row: calibrated by construction."""
    z = rng.normal(0.0, 2.0, size=(n, classes))
    p = softmax(z)
    y = (rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)  # inverse-CDF draw from each row's p
    return z, y


# 1. Over-confidence on purpose: multiply calibrated logits by 3. Every confidence moves towards 1 while the
#    accuracy stays, so ECE rises; the temperature that undoes it is 3, and fit_temperature finds it from the data
#    (up to the sampling noise of 5,000 rows). A grid search of the NLL over T lands on the same T.
z, y = calibrated(5000)
sharp = 3 * z
ece = {"calibrated": expected_calibration_error(softmax(z), y), "x3": expected_calibration_error(softmax(sharp), y)}
t = fit_temperature(sharp, y)
ece["x3, then T"] = expected_calibration_error(softmax(sharp, t), y)
grid = np.linspace(1.0, 6.0, 2001)
t_grid = grid[np.argmin([nll(sharp, y, g) for g in grid])]
print(f"ECE {ece}; fitted T {t:.3f}, grid search T {t_grid:.3f}")
assert ece["x3"] > 3 * ece["calibrated"] and ece["x3, then T"] < ece["x3"] / 3
assert abs(t - 3) < 0.3 and abs(t - t_grid) <= grid[1] - grid[0]

# 2. ECE is estimated from bins of a finite sample: within a bin, the accuracy of a handful of rows scatters around
#    the true one, and |accuracy - confidence| turns every scatter into a positive gap. So even a perfectly
#    calibrated model has ECE > 0; the bias shrinks as rows grow (about 1 / sqrt(rows per bin)) and grows with the
#    number of bins (fewer rows in each). Averaged over 20 samples to see the trend, not one sample's noise.
table = {}
for n in (200, 20_000):
    for bins in (5, 15, 50):
        table[n, bins] = float(np.mean([expected_calibration_error(softmax(zz), yy, n_bins=bins)
                                        for zz, yy in (calibrated(n) for _ in range(20))]))
        print(f"  perfectly calibrated, {n:6,} rows, {bins:2} bins: mean ECE {table[n, bins]:.4f}")
assert all(table[200, b] > 3 * table[20_000, b] for b in (5, 15, 50))
assert table[200, 5] < table[200, 15] < table[200, 50]

# 3. Label maps: labels that are all integers sort as numbers ("2" < "9" < "10"); one that is not makes them all
#    text, sorted as strings ("10" < "9" < "b"). The ids follow that order. A label training never saw cannot be
#    encoded: the model has no output for it, and the error says so.
numbers, words = LabelMap.from_labels(["10", "9", "2", "9"]), LabelMap.from_labels(["10", "9", "b"])
print("ids:", numbers.ids, words.ids)
assert numbers.names == ["2", "9", "10"] and words.names == ["10", "9", "b"]
try:
    numbers.encode("11")
    raise AssertionError("an unseen label must not get an id")
except DataError as e:
    print("unseen label:", e)
