#!/usr/bin/env python3
"""b6.py — B6: deploying 1,000 objects (20 CRDs with a custom resource each, ConfigMaps, Services,
Deployments scaled to 0) to the local e2e kube-apiserver, first deploy and unchanged redeploy.

    b6.py --kluctl BIN --kustomize BIN --work DIR [--runs 3] [--no-warmup] [--sides kluctl,kubectl]
          [--variants loopback,delay] [--delay-ms 5]

ours:      kluctl deploy -y --project-dir P -t bench -a namespace=NS -a run=ID --kubeconfig KC
reference: kubectl apply --server-side of the same objects, rendered by `kluctl render
           --offline-kubernetes --print-all` with the same args; the way a kubectl user deploys
           CRDs and their custom resources: apply the CRDs, `kubectl wait --for
           condition=established`, apply the rest (all three commands are in the timed script).
Two variants, each with both sides: `loopback` talks to the apiserver directly; `delay` talks to it
through a TCP proxy in this process that holds every chunk 5 ms in each direction (10 ms round
trip, a cluster one network hop away; TLS passes through untouched). Goals (issue 18): loopback
first deploy <= 0.50x of the reference and our wall time <= 1.25x the apiserver's CPU-seconds of
the same deploy (the floor: both sides are bound by it on a 2-core machine); delay first deploy <=
0.33x; unchanged redeploy <= 0.1 apiserver requests per object and no writes; peak RSS <= 0.5x.
Also printed: requests per verb, peak RSS, and how many objects the "unchanged" redeploy rewrote
(resourceVersion moved) on each side.

Needs the cluster of `make e2e-up` (KUBECONFIG from /tmp/kluctl-gitops-e2e/env.sh, admin).

Requests are counted exactly per side, not by subtracting a baseline: both sides run as the
ServiceAccount kluctl-bench/bench (cluster-admin), and FlowSchemas of the API Priority and Fairness
filter route that account's requests, one FlowSchema per verb, to the `exempt` priority level (no
queueing). `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}` then counts that
account's requests and nobody else's: the controller-manager (which reacts to the new Deployments,
Services and namespaces) and other tests on the same apiserver run as other users. Long-running
requests (WATCH) bypass that filter and are not counted on either side.

Every run uses a fresh namespace and a fresh CRD group (`-a run=ID`), so each first deploy creates
everything anew; after each run the namespace and the CRDs are deleted and the benchmark waits
until they are gone, so that no deletion runs while the next run is timed.
"""

import argparse
import asyncio
import os
import random
import re
import shutil
import string
import subprocess
import sys
import threading
import time

from bench import Broken, Table, fresh_dir, log, measure, median

RUNS = 3
# Shape of the generated project (gen_deploy_project.py): 2*CRDS + APPS*(2+CONFIGMAPS) = 1,000.
CRDS, APPS, CONFIGMAPS, ITEMS = 20, 60, 14, 10
OBJECTS = 2 * CRDS + APPS * (2 + CONFIGMAPS)
RUN_LABEL = "bench.example.com/run"
NS_LABEL = "bench.example.com/b6"
FIELD_MANAGER = "kubectl-bench"
CLEANUP_TIMEOUT = 180
SA_NS, SA_NAME = "kluctl-bench", "bench"
DELAY_MS = 5
# The delay proxy stops accepting and closes its connections after this long, whatever happens.
PROXY_LIFETIME = 3 * 3600
VARIANTS = ("loopback", "delay")
WRITE_VERBS = ("create", "patch", "update", "delete")

# Verb -> FlowSchema; order is matching precedence (lower first). Non-resource requests
# (discovery: /api, /apis, /openapi, /version) get their own, and so do the Secrets of Kluctl's
# command-result store (namespace kluctl-results: one result written per deploy, old ones
# expired), so that "writes" are those of the deployed objects.
RESULTS_NS = "kluctl-results"
VERBS = [
    ("discovery", None),
    ("result", "secrets in " + RESULTS_NS),
    ("get", ["get"]),
    ("list", ["list", "watch"]),
    ("create", ["create"]),
    ("patch", ["patch"]),
    ("update", ["update"]),
    ("delete", ["delete", "deletecollection"]),
    ("other", ["*"]),
]


def flowschemas():
    docs = []
    for prec, (verb, verbs) in enumerate(VERBS, start=2):
        rule = {
            "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": SA_NAME, "namespace": SA_NS}}],
        }
        if verbs is None:
            rule["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
        elif verb == "result":
            rule["resourceRules"] = [{"verbs": ["*"], "apiGroups": [""], "resources": ["secrets"],
                                      "namespaces": [RESULTS_NS]}]
        else:
            rule["resourceRules"] = [{"verbs": verbs, "apiGroups": ["*"], "resources": ["*"],
                                      "clusterScope": True, "namespaces": ["*"]}]
        docs.append({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1",
            "kind": "FlowSchema",
            "metadata": {"name": "kluctl-bench-" + verb, "labels": {NS_LABEL: "identity"}},
            "spec": {"matchingPrecedence": prec, "priorityLevelConfiguration": {"name": "exempt"}, "rules": [rule]},
        })
    return docs


IDENTITY = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SA_NS, "labels": {NS_LABEL: "identity"}}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA_NAME, "namespace": SA_NS}},
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "kluctl-bench", "labels": {NS_LABEL: "identity"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NS}],
    },
]


class Kube:
    """kubectl as the cluster admin (setup, checks, metrics, cleanup): never timed or counted."""

    def run(self, args, stdin=None, check=True, timeout=60):
        p = subprocess.run(["kubectl"] + args, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise Broken("kubectl %s failed (exit %d): %s" % (" ".join(args), p.returncode, p.stderr.strip()[-1500:]))
        return p

    def apply_json(self, docs):
        import json
        self.run(["apply", "-f", "-"], stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    def metrics(self):
        """Our account's dispatched requests per verb FlowSchema, and every client's total."""
        text = self.run(["get", "--raw", "/metrics"]).stdout
        ours = {verb: 0 for verb, _ in VERBS}
        for m in re.finditer(
            r'^apiserver_flowcontrol_dispatched_requests_total\{flow_schema="kluctl-bench-(\w+)",[^}]*\} ([0-9.e+]+)$',
            text, re.M,
        ):
            ours[m.group(1)] = ours.get(m.group(1), 0) + int(float(m.group(2)))
        total = sum(int(float(m.group(1))) for m in re.finditer(r"^apiserver_request_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))
        if total == 0:
            raise Broken("the apiserver's /metrics has no apiserver_request_total")
        return ours, total


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that delivers every chunk it reads `delay` seconds later, in
    each direction, without limiting throughput (chunks are queued with their due time, not
    slept on one by one): a network hop's latency on loopback. It speaks TCP only, so TLS to the
    apiserver passes through untouched. Runs its own asyncio loop on a daemon thread; stop()
    ends it, and it ends by itself after `lifetime` seconds.

    Hand-written because nothing on the machine adds latency per client without root (`tc netem`
    would delay every user of loopback, the other tests on the shared apiserver included).
    """

    def __init__(self, target, delay, lifetime=PROXY_LIFETIME):
        self.target, self.delay, self.lifetime = target, delay, lifetime
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = None
        self.error = None
        self.thread = threading.Thread(target=self._run, name="b6-delay-proxy", daemon=True)
        self.thread.start()
        if not self.ready.wait(10) or self.port is None:
            raise Broken("B6 delay proxy did not start: %s" % self.error)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except Exception as e:  # reported through start() or the deploys that fail
            self.error = e
            self.ready.set()

    async def _serve(self):
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.conns = set()
        self.ready.set()
        try:
            await asyncio.wait_for(self.stopping.wait(), self.lifetime)
        except asyncio.TimeoutError:
            log("B6 delay proxy: lifetime of %ds over, closing" % self.lifetime)
        server.close()
        for w in list(self.conns):
            w.close()
        await server.wait_closed()

    async def _handle(self, c_reader, c_writer):
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.close()
            return
        self.conns.update((c_writer, u_writer))
        try:
            await asyncio.gather(self._pipe(c_reader, u_writer), self._pipe(u_reader, c_writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (c_writer, u_writer):
                self.conns.discard(w)
                w.close()

    async def _pipe(self, reader, writer):
        queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def pump():
            while True:
                try:
                    data = await reader.read(65536)
                except (ConnectionError, OSError):
                    data = b""
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    return

        async def deliver():
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(pump(), deliver())

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
            self.thread.join(10)


def delayed_kubeconfig(kc, proxy_port, work):
    """The bench kubeconfig with its server pointed at the delay proxy (same host: the
    apiserver's certificate is valid for 127.0.0.1)."""
    with open(kc) as f:
        text = f.read()
    m = re.search(r"server: https://127\.0\.0\.1:(\d+)", text)
    if not m:
        raise Broken("the bench kubeconfig does not name https://127.0.0.1:PORT: the delay proxy needs the "
                     "apiserver on loopback")
    path = os.path.join(work, "bench-delay.kubeconfig")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text.replace(m.group(0), "server: https://127.0.0.1:%d" % proxy_port))
    return path, int(m.group(1))


def process_cpu(name):
    """utime + stime in seconds of the e2e cluster's process `name` (its pid file under
    $E2E_STATE/cluster/run, written by e2e/scripts/cluster.sh), or None when it is not there."""
    state = os.environ.get("E2E_STATE", "/tmp/kluctl-gitops-e2e")
    try:
        with open(os.path.join(state, "cluster", "run", name + ".pid")) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    # fields[0] is the state (field 3 of proc(5)): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_cluster(kube):
    p = kube.run(["get", "--raw", "/readyz"], check=False, timeout=20)
    if p.returncode != 0 or p.stdout.strip() != "ok":
        raise Broken("the e2e kube-apiserver does not answer /readyz (KUBECONFIG=%s): %s. "
                     "Start the environment with `make e2e-up`."
                     % (os.environ.get("KUBECONFIG"), (p.stderr or p.stdout).strip()[-300:]))


def setup_identity(kube, work):
    """ServiceAccount + cluster-admin + per-verb FlowSchemas; returns the path of its kubeconfig."""
    kube.apply_json(IDENTITY + flowschemas())
    secret = ""
    for _ in range(100):
        secret = kube.run(["-n", SA_NS, "get", "sa", SA_NAME, "-o", "jsonpath={.secrets[0].name}"]).stdout.strip()
        if secret:
            break
        time.sleep(0.1)
    if not secret:
        raise Broken("the kube-controller-manager created no token Secret for ServiceAccount %s/%s within 10s"
                     % (SA_NS, SA_NAME))
    import base64
    token = base64.b64decode(
        kube.run(["-n", SA_NS, "get", "secret", secret, "-o", "jsonpath={.data.token}"]).stdout.strip()
    ).decode()
    server = kube.run(["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]).stdout.strip()
    ca = os.environ.get("E2E_CA") or ""
    if not (server and ca and os.path.exists(ca)):
        raise Broken("cannot build the bench kubeconfig: server %r, E2E_CA %r (source /tmp/kluctl-gitops-e2e/env.sh)"
                     % (server, ca))
    path = os.path.join(work, "bench.kubeconfig")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "apiVersion: v1\nkind: Config\n"
            "clusters: [{name: e2e, cluster: {server: %s, certificate-authority: %s}}]\n"
            "users: [{name: kluctl-bench, user: {token: %s}}]\n"
            "contexts: [{name: kluctl-bench, context: {cluster: e2e, user: kluctl-bench}}]\n"
            "current-context: kluctl-bench\n" % (server, ca, token)
        )
    # The FlowSchemas take effect once the APF controller has seen them: wait until one of our
    # requests shows up under them.
    before, _ = kube.metrics()
    for _ in range(50):
        subprocess.run(["kubectl", "--kubeconfig", path, "get", "--raw", "/version"], capture_output=True, timeout=20)
        after, _ = kube.metrics()
        if after["discovery"] > before["discovery"]:
            return path
        time.sleep(0.2)
    raise Broken("requests of ServiceAccount %s/%s are not counted under FlowSchema kluctl-bench-discovery "
                 "(is API Priority and Fairness enabled on the apiserver?)" % (SA_NS, SA_NAME))


def cleanup_all(kube):
    """Deletes what earlier (maybe aborted) B6 runs left, and waits until it is gone."""
    kube.run(["delete", "crd", "-l", RUN_LABEL, "--wait=false", "--ignore-not-found"])
    kube.run(["delete", "ns", "-l", NS_LABEL + "=run", "--wait=false", "--ignore-not-found"])
    wait_gone(kube, ["crd", "-l", RUN_LABEL], ["ns", "-l", NS_LABEL + "=run"])


def wait_gone(kube, *queries):
    deadline = time.time() + CLEANUP_TIMEOUT
    while True:
        left = []
        for q in queries:
            left += kube.run(["get", "-o", "name"] + q).stdout.split()
        if not left:
            return
        if time.time() > deadline:
            raise Broken("cleanup: still present after %ds: %s" % (CLEANUP_TIMEOUT, " ".join(left[:10])))
        time.sleep(0.5)


def crd_resources(run_id):
    return ["widget%02ds.g%02d.%s.bench.example.com" % (n, n, run_id) for n in range(CRDS)]


def list_objects(kube, ns, run_id):
    """name -> resourceVersion of every deployed object (CRDs included)."""
    out = kube.run(["get", "-n", ns, "-l", "%s=%s" % (RUN_LABEL, run_id), "-o",
                    "custom-columns=K:.kind,N:.metadata.name,RV:.metadata.resourceVersion", "--no-headers",
                    ",".join(["configmaps", "services", "deployments.apps"] + crd_resources(run_id))]).stdout
    out += kube.run(["get", "crd", "-l", "%s=%s" % (RUN_LABEL, run_id), "-o",
                     "custom-columns=K:.kind,N:.metadata.name,RV:.metadata.resourceVersion", "--no-headers"]).stdout
    objs = {}
    for line in out.splitlines():
        k, n, rv = line.split()
        objs[k + "/" + n] = rv
    return objs


def check_objects(objs, side, phase):
    kinds = {}
    for key in objs:
        k = key.split("/")[0]
        k = "Widget" if k.startswith("Widget") else k
        kinds[k] = kinds.get(k, 0) + 1
    want = {"CustomResourceDefinition": CRDS, "Widget": CRDS, "Deployment": APPS, "Service": APPS,
            "ConfigMap": APPS * CONFIGMAPS}
    if kinds != want or len(objs) != OBJECTS:
        raise Broken("B6 %s %s: the cluster holds %s, expected %s" % (side, phase, kinds, want))


def rewritten(before, after):
    """Objects whose resourceVersion moved. Deployments are left out: the controller-manager
    writes their status after every change, and CRDs: the apiserver writes their status."""
    return sum(1 for k, rv in before.items()
               if not k.startswith(("Deployment/", "CustomResourceDefinition/")) and after.get(k) != rv)


def split_rendered(text):
    """kluctl render --print-all output -> (CRD documents, other documents), counting both."""
    crds, rest = [], []
    for doc in re.split(r"^---[ \t]*$", text, flags=re.M):
        if not re.search(r"^kind:", doc, re.M):
            continue
        (crds if re.search(r"^kind: CustomResourceDefinition$", doc, re.M) else rest).append(doc.strip("\n"))
    return crds, rest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kluctl", required=True)
    ap.add_argument("--kustomize", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=RUNS)
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--sides", default="kluctl,kubectl", help="kluctl,kubectl or one of them (testing)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="loopback,delay or one of them: direct, or through the delay proxy")
    ap.add_argument("--delay-ms", type=float, default=DELAY_MS, help="delay proxy: ms added in each direction")
    a = ap.parse_args()
    sides = [s for s in a.sides.split(",") if s]
    if not sides or any(s not in ("kluctl", "kubectl") for s in sides):
        raise Broken("--sides takes kluctl, kubectl or both")
    variants = [v for v in a.variants.split(",") if v]
    if not variants or any(v not in VARIANTS for v in variants):
        raise Broken("--variants takes loopback, delay or both")
    here = os.path.dirname(os.path.abspath(__file__))
    work = fresh_dir(os.path.join(os.path.abspath(a.work), "b6"))
    kube = Kube()
    check_cluster(kube)
    kluctl = os.path.abspath(a.kluctl)
    project = os.path.join(work, "project")
    _, _, out, _ = measure([sys.executable, os.path.join(here, "gen_deploy_project.py"), project,
                            "--crds", str(CRDS), "--apps", str(APPS), "--configmaps", str(CONFIGMAPS),
                            "--items", str(ITEMS)], cwd=work)
    if out.strip() != str(OBJECTS):
        raise Broken("gen_deploy_project.py wrote %s objects, expected %d" % (out.strip(), OBJECTS))
    log("B6 setup: ServiceAccount %s/%s, FlowSchemas kluctl-bench-*, leftovers of earlier runs" % (SA_NS, SA_NAME))
    kc = setup_identity(kube, work)
    kubeconfigs = {"loopback": kc}
    proxy = None
    if "delay" in variants:
        with open(kc) as f:
            port = int(re.search(r"server: https://127\.0\.0\.1:(\d+)", f.read()).group(1))
        proxy = DelayProxy(("127.0.0.1", port), a.delay_ms / 1000)
        kubeconfigs["delay"], _ = delayed_kubeconfig(kc, proxy.port, work)
        log("B6 delay proxy: 127.0.0.1:%d -> 127.0.0.1:%d, %.1f ms each way" % (proxy.port, port, a.delay_ms))
    cleanup_all(kube)
    env = {"KLUCTL_KUSTOMIZE": a.kustomize, "XDG_CACHE_HOME": os.path.join(work, "cache")}
    kubectl_env = {"KUBECONFIG": kc}
    cache_dir = os.path.join(work, "kubectl-cache")
    apply = "kubectl apply --server-side --field-manager %s --cache-dir \"$0\"" % FIELD_MANAGER
    kubectl_script = ("set -e; %s -f crds.yaml; "
                      "kubectl wait --cache-dir \"$0\" --for condition=established --timeout=60s -f crds.yaml; "
                      "%s -f rest.yaml" % (apply, apply))
    tag = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(4))
    results = {v: {s: {"first": [], "redeploy": []} for s in sides} for v in variants}

    def one(variant, side, n, record):
        run_id = "%s%s%s%d" % (side[:2], variant[0], tag, n)
        kc = kubeconfigs[variant]
        ns = "b6-" + run_id
        d = fresh_dir(os.path.join(work, run_id))
        kube.run(["create", "ns", ns])
        kube.run(["label", "ns", ns, NS_LABEL + "=run"])
        # the controller-manager's reaction to a new namespace (default ServiceAccount, token, CA
        # ConfigMap) happens before the timed part, not during it
        for _ in range(100):
            got = kube.run(["-n", ns, "get", "configmap/kube-root-ca.crt", "serviceaccount/default",
                            "-o", "name"], check=False).stdout.split()
            if len(got) == 2:
                break
            time.sleep(0.1)
        args = ["-a", "namespace=" + ns, "-a", "run=" + run_id]
        if side == "kluctl":
            cmd = [kluctl, "deploy", "-y", "--project-dir", project, "-t", "bench", "--kubeconfig", kc] + args
            # KUBECONFIG too: were --kubeconfig ignored, the admin's kubeconfig would be used and
            # the requests would go uncounted (the check below catches that as well)
            cmd_env = dict(env, KUBECONFIG=kc)
        else:
            _, _, out, _ = measure([kluctl, "render", "--offline-kubernetes", "-t", "bench", "--print-all",
                                    "--project-dir", project] + args, cwd=d, env=env)
            crds, rest = split_rendered(out)
            if len(crds) != CRDS or len(crds) + len(rest) != OBJECTS:
                raise Broken("kluctl render printed %d CRDs and %d other objects, expected %d and %d"
                             % (len(crds), len(rest), CRDS, OBJECTS - CRDS))
            for name, docs in (("crds.yaml", crds), ("rest.yaml", rest)):
                with open(os.path.join(d, name), "w") as f:
                    f.write("\n---\n".join(docs) + "\n")
            cmd = ["bash", "-c", kubectl_script, cache_dir]
            cmd_env = dict(kubectl_env, KUBECONFIG=kc)
        row = {}
        try:
            before = None
            for phase in ("first", "redeploy"):
                m0, t0 = kube.metrics()
                c0, e0 = process_cpu("kube-apiserver"), process_cpu("etcd")
                wall, rss, _, _ = measure(cmd, cwd=d, env=cmd_env)
                c1, e1 = process_cpu("kube-apiserver"), process_cpu("etcd")
                m1, t1 = kube.metrics()
                cpu = c1 - c0 if c0 is not None and c1 is not None else float("nan")
                etcd_cpu = e1 - e0 if e0 is not None and e1 is not None else float("nan")
                reqs = {v: m1[v] - m0[v] for v in m1}
                n_reqs = sum(reqs.values())
                if n_reqs < (OBJECTS if phase == "first" else 1):
                    raise Broken("B6 %s %s: only %d requests of ServiceAccount %s/%s were counted for %d objects: "
                                 "did the command use another kubeconfig than %s?" % (side, phase, n_reqs, SA_NS, SA_NAME,
                                                                                      OBJECTS, kc))
                objs = list_objects(kube, ns, run_id)
                check_objects(objs, side, phase)
                changed = rewritten(before, objs) if before else 0
                before = objs
                row[phase] = (wall, rss, n_reqs, reqs, changed, cpu)
                log("B6 %-8s %-7s %-8s %s: %.2fs %5.1f MiB %4d requests (%s); apiserver %.2f CPU-s, etcd %.2f; "
                    "other clients %d, load %.1f%s" % (
                    variant, side, phase, "warm-up" if not record else "run %d" % n, wall, rss / 1024, n_reqs,
                    " ".join("%s %d" % (v, c) for v, c in reqs.items() if c), cpu, etcd_cpu,
                    # apiserver_request_total leaves discovery (non-resource) requests out
                    (t1 - t0) - (n_reqs - reqs["discovery"]), os.getloadavg()[0], "; rewrote %d objects" % changed if phase == "redeploy" else ""))
        finally:
            t = time.time()
            kube.run(["delete", "ns", ns, "--wait=false", "--ignore-not-found"])
            kube.run(["delete", "crd", "-l", "%s=%s" % (RUN_LABEL, run_id), "--wait=false", "--ignore-not-found"])
            wait_gone(kube, ["crd", "-l", "%s=%s" % (RUN_LABEL, run_id)], ["ns", "-l", NS_LABEL + "=run"])
            log("B6 %-7s cleanup: namespace %s and its CRDs gone after %.1fs" % (side, ns, time.time() - t))
        if record:
            for phase, v in row.items():
                results[variant][side][phase].append(v)

    t_start = time.time()
    try:
        if not a.no_warmup:
            log("B6 warm-up (one run each, not counted)")
            for variant in variants:
                for side in sides:
                    one(variant, side, 0, False)
        for i in range(1, a.runs + 1):
            for variant in variants:
                for side in sides if i % 2 else list(reversed(sides)):
                    one(variant, side, i, True)
    finally:
        if proxy:
            proxy.stop()
        for path in kubeconfigs.values():  # they hold the ServiceAccount's token
            os.remove(path)
    log("B6 done in %.0fs" % (time.time() - t_start))

    def stats(variant, side, phase):
        rows = results[variant][side][phase]
        verbs = {v: median([r[3][v] for r in rows]) for v, _ in VERBS}
        return (median([r[0] for r in rows]), median([r[1] for r in rows]) / 1024,
                median([r[2] for r in rows]), verbs, max(r[4] for r in rows), median([r[5] for r in rows]))

    table = Table()
    both = sorted(sides) == ["kluctl", "kubectl"]
    for variant in variants if both else []:
        b = "B6" if variant == "loopback" else "B6 delay"
        of, ok_ = stats(variant, "kluctl", "first"), stats(variant, "kubectl", "first")
        orr, rr = stats(variant, "kluctl", "redeploy"), stats(variant, "kubectl", "redeploy")
        first_goal = 0.5 if variant == "loopback" else 0.33
        table.add(b, "first deploy of %d objects, s (median of %d)" % (OBJECTS, a.runs), of[0], ok_[0],
                  of[0] / ok_[0], "<= %.2fx" % first_goal, of[0] / ok_[0] <= first_goal, "%.2f")
        table.add(b, "first deploy: apiserver requests", of[2], ok_[2], of[2] / ok_[2], None, None, "%.0f")
        table.add(b, "unchanged redeploy, s", orr[0], rr[0], orr[0] / rr[0], None, None, "%.2f")
        table.add(b, "unchanged redeploy: apiserver requests/object", orr[2] / OBJECTS, rr[2] / OBJECTS,
                  orr[2] / max(rr[2], 1), "<= 0.1/object", orr[2] / OBJECTS <= 0.1, "%.3f")
        writes = sum(orr[3][v] for v in WRITE_VERBS)
        table.add(b, "unchanged redeploy: writes (create/patch/update/delete)", writes,
                  sum(rr[3][v] for v in WRITE_VERBS), writes / max(sum(rr[3][v] for v in WRITE_VERBS), 1),
                  "0", writes == 0, "%.0f")
        if variant == "loopback":
            table.add(b, "first deploy: apiserver CPU-s (the floor)", of[5], ok_[5], of[5] / ok_[5], None, None, "%.2f")
            table.add(b, "first deploy: wall / apiserver CPU-s", of[0] / of[5], ok_[0] / ok_[5],
                      (of[0] / of[5]) / (ok_[0] / ok_[5]), "ours <= 1.25", of[0] / of[5] <= 1.25, "%.2f")
            table.add(b, "unchanged redeploy: apiserver CPU-s", orr[5], rr[5], orr[5] / max(rr[5], 0.01), None, None,
                      "%.2f")
            table.add(b, "first deploy: peak RSS, MiB", of[1], ok_[1], of[1] / ok_[1], "<= 0.50x",
                      of[1] / ok_[1] <= 0.5, "%.1f")
            table.add(b, "unchanged redeploy: peak RSS, MiB", orr[1], rr[1], orr[1] / rr[1], "<= 0.50x",
                      orr[1] / rr[1] <= 0.5, "%.1f")
    if table.rows:
        print()
        table.print()
    print()
    for variant in variants:
        for side in sides:
            for phase in ("first", "redeploy"):
                w, r, n, verbs, changed, cpu = stats(variant, side, phase)
                print("B6 %-8s %-7s %-8s: %.2fs, %.1f MiB, %.0f requests = %.3f/object (%s); apiserver %.2f CPU-s%s" % (
                    variant, side, phase, w, r, n, n / OBJECTS,
                    ", ".join("%s %.0f" % (v, c) for v, c in verbs.items() if c), cpu,
                    "; objects rewritten (most of any run): %d" % changed if phase == "redeploy" else ""))
    print("B6 requests: the ServiceAccount's own, per verb FlowSchema (apiserver_flowcontrol_dispatched_requests_total);"
          " WATCH not counted")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Broken, subprocess.SubprocessError, OSError, ValueError) as e:
        print("\nbench: BROKEN MEASUREMENT: %s" % e, file=sys.stderr)
        sys.exit(1)
