#!/usr/bin/env python3
"""b3.py — B3: rendering a generated Kluctl project (50 items, 1,000 objects, Jinja2 vars, loops,
macros from an imported library, includes) offline.

    b3.py --kluctl BIN --render-core BIN --kustomize BIN --python PY --work DIR

ours:      kluctl render --offline-kubernetes -t bench --print-all (release build)
reference: b3_reference.py — Python Jinja2 3.1 renders the same files, kustomize build per item
Goal: ours at least 40x faster. Also printed: peak RSS of both, and the share of our render time
spent in the kustomize step (from the render_core example's per-step sums).

Before timing, the rendered files of every item are compared byte for byte between the two (a
difference is a broken measurement), and both must build 1,000 objects.
"""

import argparse
import filecmp
import os
import re
import sys

from bench import Broken, Table, fresh_dir, log, measure, median

RUNS = 3
ITEMS, OBJECTS = 50, 20


def compare_rendered(ours_root, ref_root):
    """Every rendered file of every item must be equal (kustomization files aside)."""
    items = sorted(os.listdir(ref_root))
    if len(items) != ITEMS:
        raise Broken("reference rendered %d items, expected %d" % (len(items), ITEMS))
    for item in items:
        names = [n for n in os.listdir(os.path.join(ref_root, item)) if not n.startswith("kustomization.")]
        match, mismatch, errors = filecmp.cmpfiles(
            os.path.join(ours_root, "apps", item), os.path.join(ref_root, item), names, shallow=False
        )
        if mismatch or errors:
            raise Broken("rendered files of %s differ from Jinja2's: %s" % (item, mismatch + errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag in ("--kluctl", "--render-core", "--kustomize", "--python", "--work"):
        ap.add_argument(flag, required=True)
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    work = fresh_dir(os.path.join(os.path.abspath(a.work), "b3"))
    project = os.path.join(work, "project")
    measure([sys.executable, os.path.join(here, "gen_kluctl_project.py"), project,
             "--items", str(ITEMS), "--objects", str(OBJECTS)])
    env = {"KLUCTL_KUSTOMIZE": a.kustomize, "XDG_CACHE_HOME": os.path.join(work, "cache")}
    ours_cmd = [a.kluctl, "render", "--offline-kubernetes", "-t", "bench", "--print-all"]

    def run_ref():
        out = fresh_dir(os.path.join(work, "ref-out"))
        wall, rss, stdout, _ = measure(
            [a.python, os.path.join(here, "b3_reference.py"), project, out, a.kustomize], cwd=work)
        if stdout.strip() != str(ITEMS * OBJECTS):
            raise Broken("reference built %s objects, expected %d" % (stdout.strip(), ITEMS * OBJECTS))
        return wall, rss

    def run_ours():
        wall, rss, stdout, _ = measure(ours_cmd, cwd=project, env=env)
        n = len(re.findall(r"^kind: ", stdout, re.M))
        if n != ITEMS * OBJECTS:
            raise Broken("kluctl render printed %d objects, expected %d" % (n, ITEMS * OBJECTS))
        return wall, rss

    log("B3 parity: rendered files of kluctl vs Python Jinja2")
    ours_out = fresh_dir(os.path.join(work, "ours-out"))
    measure([a.kluctl, "render", "--offline-kubernetes", "-t", "bench", "--render-output-dir", ours_out],
            cwd=project, env=env)
    run_ref()
    compare_rendered(ours_out, os.path.join(work, "ref-out"))
    log("B3 warm-up (one run each, not counted)")
    run_ours()
    run_ref()
    ours, ref = [], []
    for i in range(RUNS):
        ours.append(run_ours())
        ref.append(run_ref())
        log("B3 run %d: ours %.3fs %d MiB, reference %.3fs %d MiB"
            % (i + 1, ours[-1][0], ours[-1][1] // 1024, ref[-1][0], ref[-1][1] // 1024))
    _, _, _, stderr = measure([a.render_core, project, "-t", "bench"], cwd=work, env=env)
    m = re.search(r"template ([0-9.]+)s helm ([0-9.]+)s kustomize ([0-9.]+)s postprocess ([0-9.]+)s", stderr)
    if not m:
        raise Broken("render_core printed no step times: %s" % stderr[-500:])
    steps = [float(x) for x in m.groups()]
    share = steps[2] / sum(steps) if sum(steps) else 0.0
    ow, rw = median([x[0] for x in ours]), median([x[0] for x in ref])
    orss, rrss = median([x[1] for x in ours]), median([x[1] for x in ref])
    table = Table()
    table.add("B3", "render 50 items / 1,000 objects, s", ow, rw, ow / rw, "<= 0.025x", ow / rw <= 0.025)
    table.add("B3", "peak RSS, MiB", orss / 1024, rrss / 1024, orss / rrss, None, None, "%.1f")
    print()
    table.print()
    print("\nours, B3: %.1fx faster than the reference; kustomize step %.0f%% of the summed step time "
          "(template %.3fs, helm %.3fs, kustomize %.3fs, post-process %.3fs over all items)"
          % (rw / ow, share * 100, *steps))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Broken as e:
        print("\nbench: BROKEN MEASUREMENT: %s" % e, file=sys.stderr)
        sys.exit(1)
