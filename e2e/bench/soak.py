#!/usr/bin/env python3
"""soak.py — `make soak`: both controllers (release builds) under steady pushes for a long while, on
the local e2e kube-apiserver: N GitRepositories + N KluctlDeployments (b7.py's objects and
projects, 10 repositories), a push every few seconds to one of the repositories.

    soak.py --source-controller BIN --kluctl-controller BIN --work DIR --out DIR
            [--n 500] [--minutes 10] [--push-every 5] [--sample 10] [--interval 1m]

Every --sample seconds it samples each controller's RSS (/proc/<pid>/status VmRSS) and the apiserver
requests of each controller (b7.py's counters: each controller runs as a ServiceAccount of its own
whose requests a FlowSchema routes to `exempt`; `apiserver_flowcontrol_dispatched_requests_total`
per FlowSchema, which counts `apiserver_request_total`'s non-WATCH requests of that identity).

At the end it reports, and fails (exit 1) when a goal is missed:
- RSS growth after warm-up (the first --warmup seconds of the soak, default a fifth of it, at least 60 s
  and one GitRepository interval): the
  mean of the last three samples against the mean of the first three after warm-up; goal < 10%;
- the request rate of each controller: first half vs second half of the post-warm-up samples
  (goal: within 25% of each other);
- error lines in each controller's log (`"level":"ERROR"`), grouped by message; expected transient
  ones are listed in EXPECTED with the reason, and do not count;
- every push applied: once the pushes stop, every deployment's ConfigMaps hold the last value
  pushed to its repository (within --converge seconds).
It writes soak.svg (the time series, SVG by hand), soak.json (the samples) and both controller logs
to --out.

Needs the cluster and git HTTP server of `make e2e-up` (KUBECONFIG from /tmp/kluctl-gitops-e2e/env.sh).
"""

import argparse
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import time

from bench import Broken, fresh_dir, log
from b7 import (NS_LABEL, OBJECTS_PER_PROJECT, REPOS, Repo, check_cluster, cleanup_namespace, dispatched,
                kubectl, parse_duration, project_files, ready_counts, setup_identities, start_controllers,
                apply_json)

GOAL_RSS_GROWTH = 0.10
GOAL_RATE_DRIFT = 0.25

# Error lines that are expected under this load, as (pattern of the message, why). None so far: the
# one the first runs showed ("Source ... is not ready, artifact not found" when a KluctlDeployment
# is created together with its GitRepository) is a wait, now logged at info.
EXPECTED = []


def objects(ns, tag, repos, n, git_interval, kd_interval):
    docs = []
    for i in range(n):
        name = "app-%04d" % i
        docs.append({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": ns, "labels": {NS_LABEL: tag}},
            "spec": {"interval": git_interval, "url": repos[i % len(repos)].url, "ref": {"branch": "main"}},
        })
        docs.append({
            "apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
            "metadata": {"name": name, "namespace": ns, "labels": {NS_LABEL: tag}},
            "spec": {"interval": kd_interval, "target": "bench", "args": {"name": name},
                     "sourceRef": {"kind": "GitRepository", "name": name}},
        })
    return docs


def deployed_values(ns):
    """{app name: set of values of its ConfigMaps}."""
    out = json.loads(kubectl(["get", "configmaps", "-n", ns, "-o", "json"], timeout=300).stdout)
    values = {}
    for cm in out["items"]:
        m = re.match(r"^(app-\d{4})-\d+$", cm["metadata"]["name"])
        if m:
            values.setdefault(m.group(1), set()).add((cm.get("data") or {}).get("value"))
    return values


def stale_apps(ns, n, last_value):
    """Apps whose ConfigMaps do not (all) hold the last value pushed to their repository."""
    values = deployed_values(ns)
    stale = []
    for i in range(n):
        name = "app-%04d" % i
        want = last_value[i % REPOS]
        if values.get(name) != {want}:
            stale.append((name, want, sorted(v or "" for v in values.get(name, set()))))
    return stale


def error_lines(path):
    """[(message, line)] of the lines logged at level error."""
    found = []
    with open(path, errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                if re.search(r"\bERROR\b", line):
                    found.append((line.strip()[:300], line))
                continue
            if str(rec.get("level", "")).lower() == "error":
                fields = rec.get("fields") or {}
                msg = fields.get("message") or rec.get("msg") or rec.get("message") or ""
                err = fields.get("error") or rec.get("error") or ""
                found.append((("%s %s" % (msg, err)).strip()[:300], line))
    return found


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def svg(samples, warmup_t, path, title):
    """A two-panel time series (RSS MiB; apiserver requests/min), SVG by hand."""
    w, h, pad, gap = 760, 200, 50, 40
    series = [
        ("RSS, MiB", [("source-controller", "rss_source", "#1f77b4"), ("kluctl-controller", "rss_kluctl", "#d62728")]),
        ("apiserver requests/min", [("source-controller", "req_source", "#1f77b4"), ("kluctl-controller", "req_kluctl", "#d62728")]),
    ]
    t_max = max(s["t"] for s in samples) or 1
    total_h = pad + len(series) * (h + gap) + 20
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (w + 2 * pad, total_h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">%s</text>' % (pad, title)]
    for k, (label, lines) in enumerate(series):
        top = pad + k * (h + gap)
        vals = [s[key] for _, key, _ in lines for s in samples if s.get(key) is not None]
        v_max = (max(vals) if vals else 1) * 1.1 or 1
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>' % (pad, top, w, h))
        out.append('<text x="%d" y="%d">%s (max %.1f)</text>' % (pad + 4, top - 4, label, v_max / 1.1))
        for frac in (0, 0.5, 1):
            y = top + h - frac * h
            out.append('<text x="%d" y="%.1f" text-anchor="end">%.0f</text>' % (pad - 4, y + 4, frac * v_max))
        wx = pad + w * warmup_t / t_max
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#aaa" stroke-dasharray="4"/>' % (wx, top, wx, top + h))
        out.append('<text x="%.1f" y="%d" fill="#888">warm-up end</text>' % (wx + 3, top + 12))
        for j, (name, key, color) in enumerate(lines):
            pts = ["%.1f,%.1f" % (pad + w * s["t"] / t_max, top + h - h * s[key] / v_max) for s in samples if s.get(key) is not None]
            out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (color, " ".join(pts)))
            out.append('<text x="%d" y="%d" fill="%s">%s</text>' % (pad + w - 150, top + 14 + 14 * j, color, name))
        out.append('<text x="%d" y="%d" text-anchor="end">%.0f s</text>' % (pad + w, top + h + 14, t_max))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-controller", required=True)
    ap.add_argument("--kluctl-controller", required=True)
    ap.add_argument("--kustomize", default=os.environ.get("E2E_KUSTOMIZE", ""))
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True, help="where soak.svg and soak.json go")
    ap.add_argument("--n", type=int, default=int(os.environ.get("SOAK_N", "500")))
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    ap.add_argument("--push-every", type=float, default=float(os.environ.get("SOAK_PUSH_EVERY", "5")))
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=0, help="seconds (default: a fifth of the soak, at least 60 s and one interval)")
    ap.add_argument("--interval", default=os.environ.get("SOAK_INTERVAL", "1m"),
                    help="GitRepository spec.interval: how soon a push is seen (KluctlDeployments follow their source)")
    ap.add_argument("--converge", type=float, default=0, help="seconds for the last pushes to apply (default: 2 intervals + 120)")
    a = ap.parse_args()
    n = a.n
    soak_s = a.minutes * 60
    # At least one GitRepository interval: the first pushes' fetches come in a burst.
    warmup = a.warmup or max(60.0, soak_s / 5, parse_duration(a.interval))
    converge = a.converge or 2 * parse_duration(a.interval) + 120
    work = fresh_dir(os.path.join(os.path.abspath(a.work), "soak"))
    os.makedirs(a.out, exist_ok=True)
    check_cluster()
    tag = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    ns = "soak-" + tag
    log("soak setup: N=%d, %.1f min, a push every %.0fs, namespace %s" % (n, a.minutes, a.push_every, ns))
    # Identities of its own: a B7 run at the same time counts under its own FlowSchemas.
    ids = setup_identities(work, ["soak-source", "soak-kluctl"])
    repos = [Repo("soak-project-%d" % k) for k in range(REPOS)]
    last_value = {}
    for k, r in enumerate(repos):
        last_value[k] = "v0"
        r.commit(project_files(ns, value="v0"), "soak project")
    kubectl(["create", "ns", ns])
    kubectl(["create", "ns", ns + "-results"], check=False)
    source, kluctl = start_controllers(a, ns, tag, work, ids[0].kubeconfig, ids[1].kubeconfig)
    controllers = [source, kluctl]
    samples, pushes, failed = [], 0, []
    try:
        time.sleep(2)
        for c in controllers:
            c.check()
        t0 = time.time()
        apply_json(objects(ns, tag, repos, n, a.interval, "10m"), verb="create")
        log("soak: created %d objects in %.1fs" % (2 * n, time.time() - t0))
        last = None
        while True:
            g, k, waiting = ready_counts(ns)
            for c in controllers:
                c.check()
            if (g, k) != last:
                log("soak ready: %d/%d GitRepositories, %d/%d KluctlDeployments (%.0fs)" % (g, n, k, n, time.time() - t0))
                last = (g, k)
            if g == n and k == n:
                break
            if time.time() - t0 > 1800:
                raise Broken("not all Ready after 1800s: %d/%d GitRepositories, %d/%d KluctlDeployments; %s" % (g, n, k, n, waiting))
            time.sleep(3)
        t_ready = time.time() - t0
        log("soak: all %d objects Ready after %.1fs; soaking %.1f min" % (2 * n, t_ready, a.minutes))

        start = time.time()
        prev_m, prev_t = dispatched(), start
        next_push, next_sample = start, start
        while time.time() - start < soak_s:
            now = time.time()
            if now >= next_push:
                k = pushes % REPOS
                pushes += 1
                value = "v%d" % pushes
                repos[k].commit(project_files(ns, value=value), "push %d" % pushes)
                last_value[k] = value
                next_push += a.push_every
            if now >= next_sample:
                for c in controllers:
                    c.check()
                m = dispatched()
                dt = (now - prev_t) / 60
                s = {"t": now - start, "rss_source": source.rss_mib(), "rss_kluctl": kluctl.rss_mib(),
                     "cpu_source": source.cpu_seconds(), "cpu_kluctl": kluctl.cpu_seconds(), "pushes": pushes}
                if samples:
                    s["req_source"] = (m.get(ids[0].flow_schema, 0) - prev_m.get(ids[0].flow_schema, 0)) / dt
                    s["req_kluctl"] = (m.get(ids[1].flow_schema, 0) - prev_m.get(ids[1].flow_schema, 0)) / dt
                samples.append(s)
                prev_m, prev_t = m, now
                log("soak t=%4.0fs pushes=%d RSS source %.1f MiB kluctl %.1f MiB, requests/min source %s kluctl %s" % (
                    s["t"], pushes, s["rss_source"], s["rss_kluctl"],
                    "%.0f" % s["req_source"] if "req_source" in s else "-",
                    "%.0f" % s["req_kluctl"] if "req_kluctl" in s else "-"))
                next_sample += a.sample
            time.sleep(max(0.05, min(next_push, next_sample) - time.time()))

        log("soak: pushes stopped (%d); waiting up to %.0fs for the last value of each repository to be deployed" % (pushes, converge))
        c0 = time.time()
        stale = stale_apps(ns, n, last_value)
        while stale and time.time() - c0 < converge:
            for c in controllers:
                c.check()
            time.sleep(5)
            stale = stale_apps(ns, n, last_value)
        t_converge = time.time() - c0
        for c in controllers:
            c.check()
    finally:
        log("soak cleanup: deleting %d objects, namespace %s" % (2 * n, ns))
        cleanup_namespace(ns, controllers)
        for r in repos:
            r.remove()
        for i in ids:
            if os.path.exists(i.kubeconfig):
                os.remove(i.kubeconfig)
        for c in controllers:
            shutil.copy(c.log_path, os.path.join(a.out, os.path.basename(c.log_path)))

    # ---- figures
    post = [s for s in samples if s["t"] >= warmup]
    if len(post) < 6:
        raise Broken("only %d samples after the warm-up of %.0fs: soak longer (--minutes) or sample more often" % (len(post), warmup))
    print()
    print("soak: N=%d (%d GitRepositories + %d KluctlDeployments, %d ConfigMaps), %.1f min, %d pushes (every %.0fs to one of %d repositories), "
          "GitRepository interval %s, machine %d cores" % (n, n, n, n * OBJECTS_PER_PROJECT, a.minutes, pushes, a.push_every, REPOS, a.interval, os.cpu_count()))
    print("soak: all %d objects Ready %.1fs after the create; warm-up %.0fs; %d samples every %.0fs" % (2 * n, t_ready, warmup, len(samples), a.sample))
    rows = []
    for name, key in [("source-controller", "source"), ("kluctl-controller", "kluctl")]:
        rss0 = mean([s["rss_" + key] for s in post[:3]])
        rss1 = mean([s["rss_" + key] for s in post[-3:]])
        growth = (rss1 - rss0) / rss0
        peak = max(s["rss_" + key] for s in samples)
        reqs = [s["req_" + key] for s in post if "req_" + key in s]
        half = len(reqs) // 2
        r0, r1 = mean(reqs[:half]), mean(reqs[half:])
        drift = abs(r1 - r0) / r0 if r0 else 0.0
        cpu = (post[-1]["cpu_" + key] - post[0]["cpu_" + key]) / ((post[-1]["t"] - post[0]["t"]) / 60)
        rows.append((name, rss0, rss1, growth, peak, r0, r1, drift, cpu))
        print("soak %-17s RSS after warm-up %.1f MiB -> end %.1f MiB (growth %+.1f%%, goal < %d%%; peak %.1f MiB); "
              "requests/min %.0f (first half) vs %.0f (second half), drift %.0f%% (goal < %d%%); CPU %.2f s/min"
              % (name, rss0, rss1, 100 * growth, 100 * GOAL_RSS_GROWTH, peak, r0, r1, 100 * drift, 100 * GOAL_RATE_DRIFT, cpu))
        if growth >= GOAL_RSS_GROWTH:
            failed.append("%s RSS grew %.1f%% after warm-up" % (name, 100 * growth))
        if drift >= GOAL_RATE_DRIFT:
            failed.append("%s request rate drifted %.0f%%" % (name, 100 * drift))
    for c in controllers:
        errs = error_lines(os.path.join(a.out, os.path.basename(c.log_path)))
        unexpected, expected = {}, {}
        for msg, _ in errs:
            why = next((why for pat, why in EXPECTED if pat.search(msg)), None)
            bucket = expected if why else unexpected
            bucket[msg if not why else why] = bucket.get(msg if not why else why, 0) + 1
        print("soak %-17s error lines: %d unexpected, %d expected" % (c.name, sum(unexpected.values()), sum(expected.values())))
        for why, count in sorted(expected.items()):
            print("    expected x%d: %s" % (count, why))
        for msg, count in sorted(unexpected.items(), key=lambda x: -x[1])[:10]:
            print("    UNEXPECTED x%d: %s" % (count, msg))
        if unexpected:
            failed.append("%s logged %d unexpected error lines (log: %s)" % (c.name, sum(unexpected.values()), c.log_path))
    if stale:
        failed.append("%d of %d deployments lack the last pushed value %.0fs after the pushes stopped, e.g. %s" % (len(stale), n, t_converge, stale[:3]))
    print("soak every push applied: %s (%d pushes; each repository's last value deployed to all %d deployments %.1fs after the last push)"
          % ("yes" if not stale else "NO", pushes, n, t_converge))
    with open(os.path.join(a.out, "soak.json"), "w") as f:
        json.dump({"n": n, "minutes": a.minutes, "pushes": pushes, "warmup": warmup, "samples": samples}, f, indent=1)
    svg(samples, warmup, os.path.join(a.out, "soak.svg"),
        "soak: N=%d, %.1f min, %d pushes; RSS and apiserver requests/min per controller" % (n, a.minutes, pushes))
    print("soak: time series in %s (soak.svg, soak.json)" % a.out)
    if failed:
        print("soak: GOALS MISSED:\n  " + "\n  ".join(failed))
        return 1
    print("soak: every goal met")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Broken, subprocess.SubprocessError, OSError, ValueError) as e:
        print("\nsoak: BROKEN MEASUREMENT: %s" % e, file=sys.stderr)
        sys.exit(1)
