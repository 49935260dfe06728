#!/usr/bin/env python3
"""b7.py — B7: both controllers at scale on the local e2e kube-apiserver: N GitRepositories and N
KluctlDeployments (sourceRef to their GitRepository; small projects from 10 repositories on the
local git server), after settling.

    b7.py --source-controller BIN --kluctl-controller BIN --work DIR [--n 1000] [--idle 60]
          [--interval 5m]

Every object has `spec.interval` --interval (default 5m, env B7_INTERVAL); the idle window spans
one interval (at least 60 s), so every object reconciles in it once.

Measured (release builds of our source-controller and kluctl-controller):
- time from creating all 2N objects (one `kubectl create` of a List) to all of them Ready;
- idle RSS of each process (VmRSS after settling);
- CPU-seconds per minute at idle (utime + stime from /proc/<pid>/stat over the idle window, which
  includes the periodic reconciles);
- apiserver requests per minute at idle, per controller, exactly: each controller runs as a
  ServiceAccount of its own whose requests a FlowSchema routes to the `exempt` priority level;
  `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}` before/after the window
  counts them (long-running WATCH requests bypass that filter and are not counted).
Beside goals and references: RSS <= 20 MiB (source-controller) and <= 57 MiB (kluctl-controller);
Flux published 67 Mi / 190 Mi; drift < 1 request per object per interval; Flux's 1m25s (1,000
OCIRepositories) and 4m16s (1,000 Kustomizations) on a 16-core runner (fluxcd/flux-benchmark
RESULTS.md).

Needs the cluster of `make e2e-up` (KUBECONFIG from /tmp/kluctl-gitops-e2e/env.sh, admin) and its
git HTTP server. B7_N (or --n) shrinks N while developing.
"""

import argparse
import base64
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import time

from bench import GIT_ENV, Broken, Table, fresh_dir, log

NS_LABEL = "bench.example.com/b7"
ID_NS = "kluctl-bench-b7"
REPOS = 10
OBJECTS_PER_PROJECT = 3
READY_TIMEOUT = 3600
# What the goals and references say (see README.md).
GOAL_RSS_SOURCE, GOAL_RSS_KLUCTL = 20, 57
FLUX_RSS_SOURCE, FLUX_RSS_KLUCTL = 67, 190
FLUX_READY_SOURCE, FLUX_READY_KLUCTL = 85, 256


def kubectl(args, stdin=None, check=True, timeout=120, kubeconfig=None):
    cmd = ["kubectl"] + (["--kubeconfig", kubeconfig] if kubeconfig else []) + args
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise Broken("kubectl %s failed (exit %d): %s" % (" ".join(args), p.returncode, p.stderr.strip()[-1500:]))
    return p


def apply_json(docs, verb="apply"):
    kubectl([verb, "-f", "-"], stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}), timeout=1800)


def check_cluster():
    p = kubectl(["get", "--raw", "/readyz"], check=False, timeout=20)
    if p.returncode != 0 or p.stdout.strip() != "ok":
        raise Broken("the e2e kube-apiserver does not answer /readyz (KUBECONFIG=%s): %s. "
                     "Start the environment with `make e2e-up`." % (os.environ.get("KUBECONFIG"), (p.stderr or p.stdout).strip()[-300:]))


def git(cwd, *args):
    p = subprocess.run(["git"] + list(args), cwd=cwd, capture_output=True, text=True, env=dict(os.environ, **GIT_ENV))
    if p.returncode != 0:
        raise Broken("git %s failed: %s" % (" ".join(args), p.stderr.strip()[-500:]))
    return p.stdout.strip()


class Repo:
    """A bare repository under $E2E_GIT_REPOS with a work tree to commit from."""

    def __init__(self, name):
        repos = os.environ.get("E2E_GIT_REPOS") or os.path.join(os.environ.get("E2E_STATE", "/tmp/kluctl-gitops-e2e"), "git/repos")
        self.name = name
        self.bare = os.path.join(repos, name + ".git")
        self.work = os.path.join(repos, ".work-" + name)
        shutil.rmtree(self.bare, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        git(repos, "init", "-q", "--bare", "-b", "main", self.bare)
        git(repos, "init", "-q", "-b", "main", self.work)
        git(self.work, "remote", "add", "origin", self.bare)
        self.url = "%s/%s.git" % (os.environ.get("E2E_GIT_HTTP_URL", "http://127.0.0.1:18080/git"), name)

    def commit(self, files, message):
        for path, content in files.items():
            p = os.path.join(self.work, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(content)
        git(self.work, "add", "-A")
        git(self.work, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "origin", "HEAD:refs/heads/main")
        return git(self.work, "rev-parse", "HEAD")

    def remove(self):
        shutil.rmtree(self.bare, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


def project_files(ns, objects=OBJECTS_PER_PROJECT, value="1"):
    """A small Kluctl project: ConfigMaps named after arg `name` in `ns`, own discriminator."""
    cms = "".join(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"{{ args.name }}-%d\"\n  namespace: %s\n"
        "data:\n  value: \"%s\"\n" % (i, ns, value) for i in range(objects))
    return {
        ".kluctl.yaml": "args:\n  - name: name\ntargets:\n  - name: bench\n    discriminator: \"bench-{{ args.name }}\"\n",
        "deployment.yaml": "deployments:\n  - path: app\n",
        "app/configmaps.yaml": cms,
    }


class Identity:
    """A ServiceAccount (cluster-admin) whose requests a FlowSchema of its own counts."""

    def __init__(self, name, work):
        self.name = name
        self.flow_schema = "kluctl-bench-b7-" + name
        self.kubeconfig = os.path.join(work, name + ".kubeconfig")

    def docs(self):
        return [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.name, "namespace": ID_NS}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": self.flow_schema, "labels": {NS_LABEL: "identity"}},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"kind": "ServiceAccount", "name": self.name, "namespace": ID_NS}]},
            {"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1", "kind": "FlowSchema",
             "metadata": {"name": self.flow_schema, "labels": {NS_LABEL: "identity"}},
             "spec": {"matchingPrecedence": 2, "priorityLevelConfiguration": {"name": "exempt"},
                      "rules": [{"subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": self.name, "namespace": ID_NS}}],
                                 "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                    "clusterScope": True, "namespaces": ["*"]}],
                                 "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}},
        ]

    def write_kubeconfig(self):
        secret = ""
        for _ in range(100):
            secret = kubectl(["-n", ID_NS, "get", "sa", self.name, "-o", "jsonpath={.secrets[0].name}"]).stdout.strip()
            if secret:
                break
            time.sleep(0.1)
        if not secret:
            raise Broken("no token Secret for ServiceAccount %s/%s within 10s" % (ID_NS, self.name))
        token = base64.b64decode(kubectl(["-n", ID_NS, "get", "secret", secret, "-o", "jsonpath={.data.token}"]).stdout.strip()).decode()
        server = kubectl(["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]).stdout.strip()
        ca = os.environ.get("E2E_CA") or ""
        if not (server and ca and os.path.exists(ca)):
            raise Broken("cannot build a kubeconfig: server %r, E2E_CA %r (source /tmp/kluctl-gitops-e2e/env.sh)" % (server, ca))
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("apiVersion: v1\nkind: Config\n"
                    "clusters: [{name: e2e, cluster: {server: %s, certificate-authority: %s}}]\n"
                    "users: [{name: %s, user: {token: %s}}]\n"
                    "contexts: [{name: c, context: {cluster: e2e, user: %s}}]\ncurrent-context: c\n"
                    % (server, ca, self.name, token, self.name))


def dispatched():
    """Requests dispatched per FlowSchema (the apiserver's counters)."""
    text = kubectl(["get", "--raw", "/metrics"]).stdout
    out = {}
    for m in re.finditer(r'^apiserver_flowcontrol_dispatched_requests_total\{flow_schema="([^"]+)",[^}]*\} ([0-9.e+]+)$', text, re.M):
        out[m.group(1)] = out.get(m.group(1), 0) + int(float(m.group(2)))
    return out


def setup_identities(work, names):
    ids = [Identity(n, work) for n in names]
    kubectl(["create", "ns", ID_NS], check=False)
    apply_json([d for i in ids for d in i.docs()])
    for i in ids:
        i.write_kubeconfig()
    # The FlowSchemas count once the APF controller has seen them.
    for i in ids:
        before = dispatched().get(i.flow_schema, 0)
        for _ in range(50):
            kubectl(["get", "--raw", "/version"], kubeconfig=i.kubeconfig)
            if dispatched().get(i.flow_schema, 0) > before:
                break
            time.sleep(0.2)
        else:
            raise Broken("requests of ServiceAccount %s/%s are not counted under FlowSchema %s" % (ID_NS, i.name, i.flow_schema))
    return ids


class Process:
    """A controller process with its log file; killed by stop()."""

    def __init__(self, name, cmd, log_path, env=None, drop_env=()):
        self.name = name
        self.log_path = log_path
        self.log_file = open(log_path, "w")
        full_env = dict(os.environ, **(env or {}))
        for k in drop_env:
            full_env.pop(k, None)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log_file, env=full_env)

    def alive(self):
        return self.proc.poll() is None

    def check(self):
        if not self.alive():
            with open(self.log_path) as f:
                tail = f.read()[-2000:]
            raise Broken("%s exited (%s); end of its log %s:\n%s" % (self.name, self.proc.returncode, self.log_path, tail))

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): utime and stime are fields 14 and 15
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise Broken("no VmRSS for %s" % self.name)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def start_controllers(a, ns, tag, work, source_kc, kluctl_kc):
    storage = fresh_dir(os.path.join(work, "storage"))
    source = Process("source-controller", [
        a.source_controller, "--kubeconfig", source_kc, "--storage-path", storage,
        "--storage-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
        "--watch-label-selector", "%s=%s" % (NS_LABEL, tag), "--log-encoding", "json",
    ], os.path.join(work, "source-controller.log"),
        # the machine presets CA bundles for child processes; the controller must not rely on them
        drop_env=("GIT_SSL_CAINFO", "SSL_CERT_FILE"))
    kluctl = Process("kluctl-controller", [
        a.kluctl_controller, "--kubeconfig", kluctl_kc, "--namespace", ns,
        "--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0",
        "--receiver-listen-addr", "127.0.0.1:0", "--events-listen-addr", "127.0.0.1:0",
        "--cache-dir", os.path.join(work, "kluctl-cache"), "--log-format", "json", "--concurrency", "4",
        "--command-result-namespace", ns + "-results",
    ], os.path.join(work, "kluctl-controller.log"), env={"KLUCTL_KUSTOMIZE": a.kustomize} if a.kustomize else None)
    return source, kluctl


def objects_for(ns, tag, repos, n, interval):
    docs = []
    for i in range(n):
        name = "app-%04d" % i
        docs.append({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": ns, "labels": {NS_LABEL: tag}},
            "spec": {"interval": interval, "url": repos[i % len(repos)].url, "ref": {"branch": "main"}},
        })
        docs.append({
            "apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
            "metadata": {"name": name, "namespace": ns, "labels": {NS_LABEL: tag}},
            "spec": {"interval": interval, "target": "bench", "args": {"name": name},
                     "sourceRef": {"kind": "GitRepository", "name": name}},
        })
    return docs


def ready_counts(ns):
    """(GitRepositories Ready, KluctlDeployments Ready, not-ready messages sample)."""
    out = json.loads(kubectl(["get", "gitrepositories.source.toolkit.fluxcd.io,kluctldeployments.gitops.kluctl.io",
                              "-n", ns, "-o", "json"], timeout=300).stdout)
    counts = {"GitRepository": 0, "KluctlDeployment": 0}
    waiting = []
    for o in out["items"]:
        conds = (o.get("status") or {}).get("conditions") or []
        ready = next((c for c in conds if c.get("type") == "Ready"), None)
        if ready and ready.get("status") == "True" and (o.get("status") or {}).get("observedGeneration") == o["metadata"].get("generation"):
            counts[o["kind"]] += 1
        elif len(waiting) < 3:
            waiting.append("%s/%s: %s" % (o["kind"], o["metadata"]["name"], ready.get("message") if ready else "no Ready yet"))
    return counts["GitRepository"], counts["KluctlDeployment"], waiting


def cleanup_namespace(ns, controllers):
    """Deletes the benchmark objects while the controllers still run (they release their
    finalizers), then the namespaces."""
    kubectl(["delete", "kluctldeployments.gitops.kluctl.io,gitrepositories.source.toolkit.fluxcd.io", "--all",
             "-n", ns, "--wait=false", "--ignore-not-found"], check=False, timeout=600)
    deadline = time.time() + 600
    while time.time() < deadline and all(c.alive() for c in controllers):
        left = kubectl(["get", "kluctldeployments.gitops.kluctl.io,gitrepositories.source.toolkit.fluxcd.io",
                        "-n", ns, "-o", "name"], check=False).stdout.split()
        if not left:
            break
        time.sleep(1)
    for c in controllers:
        c.stop()
    # Whatever is left (a controller died): drop the finalizers so the namespace can go.
    for obj in kubectl(["get", "kluctldeployments.gitops.kluctl.io,gitrepositories.source.toolkit.fluxcd.io",
                        "-n", ns, "-o", "name"], check=False).stdout.split():
        kubectl(["-n", ns, "patch", obj, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'], check=False)
    kubectl(["delete", "ns", ns, ns + "-results", "--wait=false", "--ignore-not-found"], check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-controller", required=True)
    ap.add_argument("--kluctl-controller", required=True)
    ap.add_argument("--kustomize", default=os.environ.get("E2E_KUSTOMIZE", ""))
    ap.add_argument("--work", required=True)
    ap.add_argument("--n", type=int, default=int(os.environ.get("B7_N", "1000")))
    ap.add_argument("--idle", type=int, default=0,
                    help="seconds of the idle window (default: one interval, at least 60): every object reconciles once in it")
    ap.add_argument("--settle", type=int, default=30, help="seconds to wait after all Ready before the idle window")
    ap.add_argument("--interval", default=os.environ.get("B7_INTERVAL", "5m"), help="spec.interval of every object")
    a = ap.parse_args()
    n = a.n
    interval_s = parse_duration(a.interval)
    a.idle = a.idle or max(60, int(interval_s))
    work = fresh_dir(os.path.join(os.path.abspath(a.work), "b7"))
    check_cluster()
    tag = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    ns = "b7-" + tag
    log("B7 setup: N=%d, namespace %s, identities and FlowSchemas, %d repositories" % (n, ns, REPOS))
    ids = setup_identities(work, ["source", "kluctl"])
    repos = [Repo("b7-project-%d" % k) for k in range(REPOS)]
    for r in repos:
        r.commit(project_files(ns), "bench project")
    kubectl(["create", "ns", ns])
    kubectl(["label", "ns", ns, NS_LABEL + "=run"])
    source, kluctl = start_controllers(a, ns, tag, work, ids[0].kubeconfig, ids[1].kubeconfig)
    controllers = [source, kluctl]
    try:
        time.sleep(2)
        for c in controllers:
            c.check()
        docs = objects_for(ns, tag, repos, n, a.interval)
        t0 = time.time()
        apply_json(docs, verb="create")
        t_created = time.time() - t0
        log("B7 created %d objects in %.1fs" % (2 * n, t_created))
        last = None
        while True:
            g, k, waiting = ready_counts(ns)
            for c in controllers:
                c.check()
            if (g, k) != last:
                log("B7 ready: %d/%d GitRepositories, %d/%d KluctlDeployments (%.0fs)%s" % (
                    g, n, k, n, time.time() - t0, "; e.g. " + "; ".join(waiting) if waiting else ""))
                last = (g, k)
            if g == n and k == n:
                break
            if time.time() - t0 > READY_TIMEOUT:
                raise Broken("not all Ready after %ds: %d/%d GitRepositories, %d/%d KluctlDeployments" % (READY_TIMEOUT, g, n, k, n))
            time.sleep(2)
        t_ready = time.time() - t0
        log("B7 all %d objects Ready after %.1fs; settling %ds" % (2 * n, t_ready, a.settle))
        time.sleep(a.settle)
        m0 = dispatched()
        cpu0 = {c.name: c.cpu_seconds() for c in controllers}
        w0 = time.time()
        time.sleep(a.idle)
        cpu1 = {c.name: c.cpu_seconds() for c in controllers}
        m1 = dispatched()
        minutes = (time.time() - w0) / 60
        for c in controllers:
            c.check()
        rss = {c.name: c.rss_mib() for c in controllers}
        cpu = {name: (cpu1[name] - cpu0[name]) / minutes for name in cpu0}
        reqs = {i.name: (m1.get(i.flow_schema, 0) - m0.get(i.flow_schema, 0)) / minutes for i in ids}
    finally:
        log("B7 cleanup: deleting %d objects (controllers release their finalizers), namespace %s" % (2 * n, ns))
        cleanup_namespace(ns, controllers)
        for r in repos:
            r.remove()
        for i in ids:
            if os.path.exists(i.kubeconfig):
                os.remove(i.kubeconfig)

    objects = n * OBJECTS_PER_PROJECT
    # Requests per deployed object per interval, at idle (every reconcile in it included; the
    # window spans at least one interval, so each object reconciled in it).
    per_object = reqs["kluctl"] * (interval_s / 60) / objects
    table = Table()
    table.add("B7", "source-controller idle RSS, MiB (ref: Flux 67 Mi)", rss["source-controller"], FLUX_RSS_SOURCE,
              rss["source-controller"] / FLUX_RSS_SOURCE, "<= %d MiB" % GOAL_RSS_SOURCE, rss["source-controller"] <= GOAL_RSS_SOURCE, "%.1f")
    table.add("B7", "kluctl-controller idle RSS, MiB (ref: Flux 190 Mi)", rss["kluctl-controller"], FLUX_RSS_KLUCTL,
              rss["kluctl-controller"] / FLUX_RSS_KLUCTL, "<= %d MiB" % GOAL_RSS_KLUCTL, rss["kluctl-controller"] <= GOAL_RSS_KLUCTL, "%.1f")
    table.add("B7", "all %d objects Ready, s (ref: Flux 1,000 OCIRepos 85 s, 16 cores)" % (2 * n), t_ready, FLUX_READY_SOURCE,
              t_ready / FLUX_READY_SOURCE, None, None, "%.1f")
    table.add("B7", "  (ref: Flux 1,000 Kustomizations 256 s, 16 cores)", t_ready, FLUX_READY_KLUCTL,
              t_ready / FLUX_READY_KLUCTL, None, None, "%.1f")
    table.add("B7", "kluctl-controller idle requests per object per interval", per_object, 1, per_object,
              "< 1", per_object < 1, "%.2f")
    print()
    table.print()
    print()
    print("B7 N=%d (%d GitRepositories + %d KluctlDeployments, %d ConfigMaps deployed), interval %s, machine %d cores"
          % (n, n, n, objects, a.interval, os.cpu_count()))
    print("B7 created in %.1fs, all Ready %.1fs after the create started" % (t_created, t_ready))
    for c in controllers:
        key = "source" if c.name == "source-controller" else "kluctl"
        print("B7 %-17s idle: RSS %.1f MiB, CPU %.2f s/min, apiserver requests %.1f/min" % (c.name, rss[c.name], cpu[c.name], reqs[key]))
    print("B7 requests: each controller's own ServiceAccount, counted by its FlowSchema "
          "(apiserver_flowcontrol_dispatched_requests_total over %ds); WATCH not counted" % a.idle)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def parse_duration(text):
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Broken, subprocess.SubprocessError, OSError, ValueError) as e:
        print("\nbench: BROKEN MEASUREMENT: %s" % e, file=sys.stderr)
        sys.exit(1)
