#!/usr/bin/env python3
"""Compares the test accuracies of two sets of runs (ours and PyTorch's, from bench/seeds.py's
JSON lines) after the same epoch: is our slow-start rate different from PyTorch's?

    python3 bench/seeds_stats.py docs/accuracy/epoch1-ours.jsonl docs/accuracy/epoch1-torch.jsonl

Prints, for each side: runs, mean, median, standard deviation, quantiles, the runs under 90%,
85% and 80%; then
- Fisher's exact test (two-sided) on the fraction of runs under each threshold (the "slow
  start" rate), with Newcombe's 95% interval of the difference of the two rates;
- the Mann-Whitney U test (two-sided, normal approximation with tie correction) on the whole
  distributions;
- a bootstrap 95% interval of the difference of the means and of the medians.
Standard library only (no scipy), so it runs anywhere.
"""
import json, math, random, statistics, sys


def accuracies(path):
    with open(path) as f:
        return [json.loads(line)["test_accuracy"][-1] for line in f if line.strip()]


def log_comb(n, k):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_two_sided(a, b, c, d):
    """p-value of Fisher's exact test for the table [[a, b], [c, d]] (two-sided: the sum of the
    probabilities of all tables with the same margins no more likely than the observed one)."""
    row1, col1, n = a + b, a + c, a + b + c + d

    def p(x):
        return math.exp(log_comb(col1, x) + log_comb(n - col1, row1 - x) - log_comb(n, row1))

    observed = p(a)
    lo, hi = max(0, row1 - (n - col1)), min(row1, col1)
    return min(1.0, sum(p(x) for x in range(lo, hi + 1) if p(x) <= observed * (1 + 1e-9)))


def mann_whitney(x, y):
    """(U of x, two-sided p-value) with the normal approximation and tie correction."""
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks, ties, i = [0.0] * len(pooled), 0.0, 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    n1, n2 = len(x), len(y)
    r1 = sum(r for r, (_, side) in zip(ranks, pooled) if side == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (u - n1 * n2 / 2) / sigma
    return u, math.erfc(abs(z) / math.sqrt(2))


def wilson(k, n, z=1.959964):
    """Wilson score 95% interval of a proportion k/n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe(a, n1, c, n2):
    """Newcombe's hybrid score 95% interval of the difference of proportions a/n1 - c/n2."""
    p1, p2 = a / n1, c / n2
    l1, u1 = wilson(a, n1)
    l2, u2 = wilson(c, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def bootstrap(x, y, stat, rounds=4000, seed=1):
    rng = random.Random(seed)
    diffs = sorted(stat([rng.choice(x) for _ in x]) - stat([rng.choice(y) for _ in y])
                   for _ in range(rounds))
    return diffs[int(0.025 * rounds)], diffs[int(0.975 * rounds)]


def describe(name, v):
    q = statistics.quantiles(v, n=20)
    print(f"{name}: {len(v)} runs, mean {statistics.mean(v):.2f}%, median {statistics.median(v):.2f}%, "
          f"sd {statistics.stdev(v):.2f}, 5%/25%/75% quantiles {q[0]:.2f}/{q[4]:.2f}/{q[14]:.2f}, "
          f"min {min(v):.2f}%")


def main():
    ours, theirs = accuracies(sys.argv[1]), accuracies(sys.argv[2])
    describe("ours   ", ours)
    describe("PyTorch", theirs)
    for t in (90, 85, 80):
        a, c = sum(v < t for v in ours), sum(v < t for v in theirs)
        p = fisher_two_sided(a, len(ours) - a, c, len(theirs) - c)
        lo, hi = newcombe(a, len(ours), c, len(theirs))
        print(f"runs under {t}%: ours {a}/{len(ours)} ({100 * a / len(ours):.1f}%), PyTorch "
              f"{c}/{len(theirs)} ({100 * c / len(theirs):.1f}%); Fisher's exact test p = {p:.3f}; "
              f"difference {100 * (a / len(ours) - c / len(theirs)):+.1f} points, 95% interval "
              f"[{100 * lo:+.1f}, {100 * hi:+.1f}]")
    u, p = mann_whitney(ours, theirs)
    print(f"Mann-Whitney U = {u:.0f}, p = {p:.3f} (distributions)")
    lo, hi = bootstrap(ours, theirs, statistics.mean)
    print(f"mean difference (ours - PyTorch), bootstrap 95% interval: [{lo:+.2f}, {hi:+.2f}] points")
    lo, hi = bootstrap(ours, theirs, statistics.median)
    print(f"median difference, bootstrap 95% interval: [{lo:+.2f}, {hi:+.2f}] points")


if __name__ == "__main__":
    main()
