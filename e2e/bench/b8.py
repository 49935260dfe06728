#!/usr/bin/env python3
"""b8.py — B8: latency from a git push to the changed object in the apiserver, through both
controllers (release builds) on the local e2e kube-apiserver.

    b8.py --source-controller BIN --kluctl-controller BIN --work DIR [--pushes 50]

One GitRepository (interval 10m) on the local git HTTP server and one KluctlDeployment (interval
10m, `sourceRef` to it) deploying ConfigMap `app-0` whose `data.value` is the push number. Per
push: commit + push the new value, then the trigger: `kubectl annotate gitrepository
reconcile.fluxcd.io/requestedAt=<now>` (what `flux reconcile source git` and a receiver webhook
do). The source-controller fetches the new revision, the kluctl-controller reconciles on the
artifact revision change and deploys. The time from the trigger (the annotate returned) to the
moment a `kubectl get --watch` of the ConfigMap shows the new value is one sample; p50 and p99 of
the samples against the goals p50 < 1 s, p99 < 3 s.
"""

import argparse
import os
import random
import string
import subprocess
import sys
import threading
import time

from b7 import NS_LABEL, Process, Repo, check_cluster, kubectl, project_files, start_controllers
from bench import Broken, Table, fresh_dir, log

PUSHES = 50
SAMPLE_TIMEOUT = 60


class Watch:
    """`kubectl get configmap --watch` printing `data.value`; records (time, value) per event."""

    def __init__(self, ns, name):
        self.events = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            ["kubectl", "get", "configmap", name, "-n", ns, "--watch", "-o", "jsonpath={.data.value}{\"\\n\"}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.events.append((time.time(), line.strip()))
                self.cond.notify_all()

    def wait_value(self, value, timeout):
        """The time the value was first seen (waiting up to timeout)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for t, v in self.events:
                    if v == value:
                        return t
                left = deadline - time.time()
                if left <= 0 or self.proc.poll() is not None:
                    raise Broken("ConfigMap value %r not seen within %ds (last: %r)" % (
                        value, timeout, self.events[-1][1] if self.events else None))
                self.cond.wait(left)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def requested_at():
    """Now in RFC 3339 with nanoseconds, as `flux reconcile` writes it: a new value per push (the
    source-controller reconciles when the value changes)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%09dZ" % (ns % 10**9)


def percentile(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-controller", required=True)
    ap.add_argument("--kluctl-controller", required=True)
    ap.add_argument("--kustomize", default=os.environ.get("E2E_KUSTOMIZE", ""))
    ap.add_argument("--work", required=True)
    ap.add_argument("--pushes", type=int, default=PUSHES)
    a = ap.parse_args()
    work = fresh_dir(os.path.join(os.path.abspath(a.work), "b8"))
    check_cluster()
    tag = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    ns = "b8-" + tag
    admin = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    repo = Repo("b8-project-" + tag)
    repo.commit(project_files(ns, objects=1, value="0"), "value 0")
    kubectl(["create", "ns", ns])
    kubectl(["label", "ns", ns, NS_LABEL + "=run"])
    source, kluctl = start_controllers(a, ns, tag, work, admin, admin)
    controllers = [source, kluctl]
    watch = None
    samples, totals = [], []
    try:
        kubectl(["apply", "-f", "-"], stdin="""
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: app, namespace: %(ns)s, labels: {%(label)s: %(tag)s}}
spec: {interval: 10m, url: "%(url)s", ref: {branch: main}}
---
apiVersion: gitops.kluctl.io/v1beta1
kind: KluctlDeployment
metadata: {name: app, namespace: %(ns)s}
spec:
  interval: 10m
  target: bench
  args: {name: app}
  sourceRef: {kind: GitRepository, name: app}
""" % {"ns": ns, "label": NS_LABEL, "tag": tag, "url": repo.url})
        deadline = time.time() + 120
        while kubectl(["get", "configmap", "app-0", "-n", ns, "-o", "jsonpath={.data.value}"], check=False).stdout != "0":
            for c in controllers:
                c.check()
            if time.time() > deadline:
                raise Broken("the first deploy did not create ConfigMap %s/app-0 within 120s" % ns)
            time.sleep(0.5)
        watch = Watch(ns, "app-0")
        watch.wait_value("0", 30)
        log("B8 first deploy done; %d pushes" % a.pushes)
        for i in range(1, a.pushes + 1):
            t_push = time.time()
            repo.commit(project_files(ns, objects=1, value=str(i)), "value %d" % i)
            kubectl(["annotate", "gitrepository", "app", "-n", ns, "--overwrite",
                     "reconcile.fluxcd.io/requestedAt=%s" % requested_at()])
            t_trigger = time.time()
            seen = watch.wait_value(str(i), SAMPLE_TIMEOUT)
            samples.append(seen - t_trigger)
            totals.append(seen - t_push)
            for c in controllers:
                c.check()
        log("B8 %d samples" % len(samples))
    finally:
        if watch:
            watch.stop()
        from b7 import cleanup_namespace
        cleanup_namespace(ns, controllers)
        repo.remove()
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    table = Table()
    table.add("B8", "git push -> object in apiserver, after the trigger: p50, s", p50, 1.0, p50, "< 1 s", p50 < 1.0, "%.3f")
    table.add("B8", "  p99, s", p99, 3.0, p99 / 3.0, "< 3 s", p99 < 3.0, "%.3f")
    print()
    table.print()
    print()
    print("B8 %d pushes: after the trigger p50 %.3fs p99 %.3fs min %.3fs max %.3fs; from the start of the push "
          "(commit + push + annotate) p50 %.3fs p99 %.3fs" % (
              len(samples), p50, p99, min(samples), max(samples), percentile(totals, 50), percentile(totals, 99)))
    print("B8 reference column: the goal (no reference tool measured)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Broken, subprocess.SubprocessError, OSError, ValueError) as e:
        print("\nbench: BROKEN MEASUREMENT: %s" % e, file=sys.stderr)
        sys.exit(1)
