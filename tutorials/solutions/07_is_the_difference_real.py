"""Worked solutions to the exercises of lesson 7 (tutorials/07_is_the_difference_real.py).

Run:  python tutorials/solutions/07_is_the_difference_real.py
"""
import math

# 1. SE = sqrt(p (1 - p) / n) = 0.005  =>  n = p (1 - p) / 0.005^2. Halving an SE takes four times the rows.
p = 0.91
n = math.ceil(p * (1 - p) / 0.005 ** 2)
print(f"for SE 0.005 at p = {p}: n = {n} rows")
assert n == 3276 and math.sqrt(p * (1 - p) / n) <= 0.005

# 2. z = (b - a) / sqrt(SE_a^2 + SE_b^2): about one standard error, which chance gives about one time in three.
#    Not a difference to report from one run each. (Scored on the same rows the two are not independent; a paired
#    test such as McNemar's, counting the rows where they disagree, is then sharper.)
a, b, rows = 0.900, 0.910, 2000
se_diff = math.sqrt(a * (1 - a) / rows + b * (1 - b) / rows)
z = (b - a) / se_diff
two_sided = math.erfc(z / math.sqrt(2))
print(f"difference {b - a:.3f}, SE of the difference {se_diff:.4f}: z = {z:.2f}, two-sided p = {two_sided:.2f}")
assert 1 < z < 1.2 and two_sided > 0.05
