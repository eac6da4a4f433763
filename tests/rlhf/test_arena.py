"""The arena's ratings (rlhf/arena.py): Elo on a hand-computed example, Bradley-Terry's
maximum likelihood against the closed form of two players, bootstrap intervals that hold
the estimate and narrow with more battles, battles judged with ties.

    python -m pytest tests/rlhf/test_arena.py
"""
import numpy as np
import pytest

from minillm.rlhf.arena import Battle, bootstrap, bradley_terry, elo, expected, judged


def test_elo_by_hand():
    # A beats B from 1000 each: E = 1/2, so A += 4 * (1 - 1/2) = 1002, B = 998
    assert elo([Battle(0, 1, 1.0, "x")], 2).tolist() == [1002.0, 998.0]
    # then B beats A, k = 32: 1016/984, E_B = 1 / (1 + 10^(32/400)) = 0.454079, B = 984 + 32 * 0.545921
    r = elo([Battle(0, 1, 1.0, "x"), Battle(1, 0, 1.0, "x")], 2, k=32)
    e_b = 1 / (1 + 10 ** (32 / 400))
    assert r[1] == pytest.approx(984 + 32 * (1 - e_b)) and r[0] == pytest.approx(1016 - 32 * (1 - e_b))
    assert r[1] == pytest.approx(1001.4695, abs=1e-3)
    # a tie between equals moves nothing
    assert elo([Battle(0, 1, 0.5, "x")], 2).tolist() == [1000.0, 1000.0]


def test_expected_score_on_the_elo_scale():
    assert expected(1400, 1000) == pytest.approx(10 / 11)            # 400 points: 10 to 1
    assert expected(1000, 1000) == 0.5


def test_bradley_terry_two_players_closed_form():
    # A wins 3 of 4: the likelihood peaks where E_A = 3/4, i.e. 400 log10(3) points apart
    battles = [Battle(0, 1, 1.0, "x")] * 3 + [Battle(0, 1, 0.0, "x")]
    r = bradley_terry(battles, 2)
    assert r[0] - r[1] == pytest.approx(400 * np.log10(3), abs=0.5)
    assert r.mean() == pytest.approx(1000)
    # ties count half a win each: 2 wins and 2 ties is the same 3 of 4
    same = bradley_terry([Battle(0, 1, 1.0, "x")] * 2 + [Battle(0, 1, 0.5, "x")] * 2, 2)
    assert same == pytest.approx(r, abs=0.5)


def test_bradley_terry_orders_three_players_and_stays_finite():
    battles = [Battle(0, 1, 1.0, "x")] * 8 + [Battle(1, 2, 1.0, "x")] * 6 + [Battle(1, 2, 0.0, "x")] * 2 \
        + [Battle(0, 2, 1.0, "x")] * 5
    r = bradley_terry(battles, 3)                                    # 0 won everything
    assert r[0] > r[1] > r[2] and np.isfinite(r).all()


def test_bootstrap_intervals_hold_the_estimate_and_narrow(rng):
    def battles(n):
        return [Battle(0, 1, float(rng.random() < 0.7), "x") for _ in range(n)]
    few, many = battles(40), battles(1000)
    lo, hi = bootstrap(few, 2, bradley_terry, rounds=100, seed=0)
    r = bradley_terry(few, 2)
    assert (lo <= r + 1e-9).all() and (r <= hi + 1e-9).all()
    lo2, hi2 = bootstrap(many, 2, bradley_terry, rounds=100, seed=0)
    assert (hi2 - lo2)[0] < (hi - lo)[0] / 2
    assert lo2[0] > 1000 > hi2[1]                                    # the better one is surely better
    lo, hi, mid = bootstrap(few, 2, elo, rounds=50, seed=0, median=True)   # Elo: the median's interval
    assert (lo <= mid).all() and (mid <= hi).all()
    assert bootstrap(few, 2, bradley_terry, rounds=50, seed=1)[0].tolist() == \
        bootstrap(few, 2, bradley_terry, rounds=50, seed=1)[0].tolist()


def test_battles_are_judged_with_ties():
    results = np.array([[1.0, 0.0, 0.50], [1.0, 1.0, 0.20], [0.0, 0.0, 0.51]])
    out = judged(results, ["wp", "wp", "open"], tie=0.03)
    assert [b.score for b in out if (b.a, b.b) == (0, 1)] == [0.5, 0.0, 1.0]
    assert [b.score for b in out if (b.a, b.b) == (0, 2)] == [1.0, 0.5, 0.5]   # 0.50 vs 0.51: a tie
    assert len(out) == 9 and {b.kind for b in out} == {"wp", "open"}
