"""A deliberately plain, scalar reading of shared/docs/sample_eval.md (dicts and one loop per rank).

Used as an independent oracle by the property tests (the vectorised port must agree bit for
bit) and as the baseline of benchmarks/bench_score.py. It takes the text of a well-formed qrels
and run file (5 / 6 tokens per line, numeric scores) and returns the exact values.
Per-topic ``iprec@rec`` values are the topic's own interpolated precisions, ``num_ret`` its lines.
"""

from __future__ import annotations

import math

CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _num(s: str) -> float:
    return float(s)


def reference_evaluate(qrels_text: str, run_text: str, max_results: int = 1000, cutoffs=CUTOFFS) -> dict:
    """{"per_topic": {topic: measures}, "summary": measures} with sample_eval's measure names (None if no topic)."""
    return reference_score(reference_qrels(qrels_text, max_results), run_text, max_results, cutoffs)


def reference_qrels(qrels_text: str, max_results: int = 1000) -> tuple:
    """The qrels tables: judgments, strata, per-stratum counts, R-hat and ideal DCG per topic."""
    q = qrels_text.split()
    rel: dict = {}
    strat: dict = {}
    N: dict = {}
    n: dict = {}
    r: dict = {}
    rg: dict = {}
    for i in range(0, len(q), 5):
        t, d, s, js = q[i], q[i + 2], q[i + 3], q[i + 4]
        j = _num(js)
        rel.setdefault(t, {})[d] = j
        strat.setdefault(t, {})[d] = s
        N.setdefault(t, {})
        N[t][s] = N[t].get(s, 0) + 1
        n.setdefault(t, {})
        r.setdefault(t, {})
        rg.setdefault(t, {}).setdefault(s, {})
        if j >= 0:
            n[t][s] = n[t].get(s, 0) + 1
        if j > 0:
            r[t][s] = r[t].get(s, 0) + 1
            rg[t][s][js] = rg[t][s].get(js, 0) + 1

    R: dict = {}
    idcg: dict = {}
    for t in N:
        est = 0
        per_grade: dict = {}
        for s in sorted(N[t]):
            if n[t].get(s, 0) != 0:
                est += r[t].get(s, 0) * N[t][s] / n[t][s]
                for g, c in rg[t][s].items():
                    per_grade[g] = per_grade.get(g, 0) + c * N[t][s] / n[t][s]
        R[t] = est
        total = 0
        start = 0.0
        for g in sorted(per_grade, reverse=True):
            k = start + 1
            while k <= start + per_grade[g]:
                total += _num(g) / (math.log(k + 1) / math.log(2))
                if k >= max_results:
                    break
                k += 1
            start += per_grade[g]
        idcg[t] = total
    return rel, strat, N, n, r, R, idcg


def reference_score(tables: tuple, run_text: str, max_results: int = 1000, cutoffs=CUTOFFS) -> dict:
    """Score a run's text against :func:`reference_qrels` tables."""
    rel, strat, N, n, r, R, idcg = tables
    toks = run_text.split()
    score: dict = {}
    lines: dict = {}
    for i in range(0, len(toks), 6):
        t, d, sc = toks[i], toks[i + 2], toks[i + 4]
        score.setdefault(t, {})[d] = _num(sc)
        lines[t] = lines.get(t, 0) + 1

    topics: dict = {}
    sums = {"ap": 0, "ndcg": 0, "rr": 0, "ret": 0, "ip": dict.fromkeys(cutoffs, 0)}
    per_topic_ip: dict = {}
    T = 0
    for t in sorted(score, key=lambda x: (float(x), x)):
        if t not in N:
            continue
        T += 1
        strata = sorted(N[t])
        docs = dict.fromkeys(strata, 0)
        samp = dict.fromkeys(strata, 0)
        relr = dict.fromkeys(strata, 0)
        sap = dict.fromkeys(strata, 0)
        gains = dict.fromkeys(strata, 0)
        D = 0
        rr = 0
        rr_at: list = []
        ip = {}
        k = 0
        for d in sorted(score[t], key=lambda x: (score[t][x], x), reverse=True):
            k += 1
            j = rel[t].get(d, 0)
            s = strat[t].get(d)
            if j > 0:
                above = 0
                for c in strata:
                    if D != 0 and docs[c] != 0:
                        above += (docs[c] / D) * (relr[c] + 0.00001) / (samp[c] + 0.00003)
                p = 1 / k + (D / k) * above
                sap[s] += p
                relr[s] += 1
                gains[s] += j / (math.log(k + 1) / math.log(2))
            if d in rel[t]:
                D += 1
                docs[s] += 1
                if j >= 0:
                    samp[s] += 1
            rr = 0
            for c in strata:
                rr += docs[c] * (relr[c] + 0.00001) / (samp[c] + 0.00003)
            rr_at.append(rr)
            if k in cutoffs:
                ip[k] = rr / k
            if k >= max_results:
                break
        for c in cutoffs:
            ip.setdefault(c, rr / c)
        ap = 0
        for s in strata:
            if n[t].get(s, 0) != 0 and R[t] != 0:
                rs = r[t].get(s, 0)
                ap += ((rs * N[t][s] / n[t][s]) / R[t]) * (sap[s] / rs if rs != 0 else 0)
        if R[t] > max_results:
            ap = ap * R[t] / max_results
        dcg = 0
        for c in strata:
            if D != 0 and samp[c] != 0:
                dcg += (docs[c] / D) * gains[c] / samp[c]
        ndcg = D * dcg / idcg[t] if idcg[t] != 0 else 0
        # 11-point, one level per rank
        lv = [x * R[t] for x in LEVELS]
        bucket = [0.0] * 11
        cur = 10
        while cur >= 0 and lv[cur] > rr:
            cur -= 1
        best = 0
        for kk in range(len(rr_at), 0, -1):
            prec = rr_at[kk - 1] / kk
            if prec > best:
                best = prec
            if cur >= 0 and lv[cur] > rr_at[kk - 1]:
                bucket[cur] += best
                cur -= 1
        while cur >= 0:
            bucket[cur] += best
            cur -= 1
        per_topic_ip[t] = bucket
        sums["ap"] += ap
        sums["ndcg"] += ndcg
        sums["rr"] += rr
        sums["ret"] += len(rr_at)
        for c in cutoffs:
            sums["ip"][c] += ip[c]
        topics[t] = _measures(ap, ndcg, bucket, {c: ip[c] for c in cutoffs}, rr, R[t], lines[t])
    if T == 0:
        return {"per_topic": {}, "summary": None}
    buckets = [0.0] * 11
    for t in sorted(per_topic_ip):
        for i in range(11):
            buckets[i] += per_topic_ip[t][i]
    sum_r = 0
    for t in sorted(R):
        sum_r += R[t]
    summary = _measures(
        sums["ap"] / T,
        sums["ndcg"] / T,
        [b / T for b in buckets],
        {c: sums["ip"][c] / T for c in cutoffs},
        sums["rr"],
        sum_r,
        sums["ret"],
    )
    return {"per_topic": topics, "summary": summary}


def _measures(ap, ndcg, iprec, ip, rr, rel, ret) -> dict:
    out = {"infAP": ap, "infNDCG": ndcg}
    out.update({f"iprec@rec{x:4.2f}": v for x, v in zip(LEVELS, iprec)})
    out.update({f"iP{c}": v for c, v in ip.items()})
    out.update({"inum_rel_ret": rr, "inum_rel": rel, "num_ret": ret})
    return {k: float(v) if k != "num_ret" else v for k, v in out.items()}
