#!/usr/bin/env python3
"""b10.py — B10: the web UI (`kluctl webui run`, release) with many KluctlDeployments and stored
results, in headless Chromium.

    b10.py --kluctl BIN --work DIR [--deployments 1000] [--results 5000] [--window 60]

Setup, on the cluster of `make e2e-up`: N KluctlDeployments (one `kubectl create` of a List; no
controller runs) with a status as the controller writes it (Ready, keys, last deploy and validate
summaries, a drift message), and M command-result Secrets in the store's format (summary
annotation, gzip data), M/N per deployment. The server runs as a ServiceAccount whose requests a
FlowSchema of its own counts (as in B7).

Measured:
- overview first paint: a fresh page load until the overview shows every deployment
  (`performance.mark('kluctl:overview')` of the page, ms since navigation start), median of 5;
- a deployment page: from setting `location.hash` until the page shows its data
  (`kluctl:deployment`), median of 5 different deployments;
- the server's RSS (VmRSS) after those, and its peak (VmHWM);
- apiserver requests per minute of the server's ServiceAccount over `--window` seconds with one
  browser open and with 20 (20 headless Chromium processes, each with the overview and its event
  stream open), while a deployment changes every 2 s (so events flow to every browser); long-running WATCH
  requests are not counted by the FlowSchema counter.
Goals: first paint < 1 s, deployment page < 1 s, RSS <= 50 MiB, requests/min with 20 browsers
within 10% (or 2 requests) of one browser.
"""

import argparse
import base64
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from b7 import Process, dispatched, kubectl, setup_identities
from bench import Broken, log, median

NS = "kluctl-bench-b10"
RESULTS_NS = NS + "-results"
GOAL_PAINT_MS, GOAL_PAGE_MS, GOAL_RSS_MIB = 1000, 1000, 50
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def create_list(items, chunk=500):
    for i in range(0, len(items), chunk):
        doc = {"apiVersion": "v1", "kind": "List", "items": items[i:i + chunk]}
        kubectl(["create", "-f", "-"], stdin=json.dumps(doc), timeout=600)


def summary(i, j, now):
    """A deploy result summary of deployment i, the j-th newest."""
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600 * j - i))
    return {
        "id": str(uuid.uuid4()), "reconcileId": str(uuid.uuid4()),
        "projectKey": {"repoKey": "git.example.invalid/project-%d" % (i % 50)},
        "targetKey": {"targetName": "prod", "clusterId": "bench", "discriminator": "bench-%04d" % i},
        "target": {"name": "prod", "discriminator": "bench-%04d" % i},
        "commandInfo": {"initiator": "KluctlDeployment", "startTime": start, "endTime": start, "command": "deploy",
                        "target": "prod", "args": {"name": "app-%04d" % i}},
        "kluctlDeployment": {"name": "app-%04d" % i, "namespace": NS, "clusterId": "bench"},
        "gitInfo": {"url": "https://git.example.invalid/project-%d.git" % (i % 50), "ref": {"branch": "main"},
                    "commit": "%040x" % (i * 7919 + j)},
        "clusterInfo": {"clusterId": "bench"}, "renderedObjects": 12, "remoteObjects": 12, "appliedObjects": 12,
        "appliedHookObjects": 0, "newObjects": 0, "changedObjects": j % 3, "orphanObjects": 0, "deletedObjects": 0,
        "errors": None, "warnings": None,
    }


def result_secret(s):
    gz = lambda v: base64.b64encode(gzip.compress(json.dumps(v).encode())).decode()
    reduced = {"id": s["id"], "projectKey": s["projectKey"], "targetKey": s["targetKey"], "target": s["target"],
               "command": s["commandInfo"], "kluctlDeployment": s["kluctlDeployment"], "gitInfo": s["gitInfo"],
               "clusterInfo": s["clusterInfo"], "objects": []}
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "cr-bench-" + s["id"], "namespace": RESULTS_NS,
                         "labels": {"kluctl.io/result": "true", "kluctl.io/command-result-id": s["id"]},
                         "annotations": {"kluctl.io/command-result-summary": json.dumps(s),
                                         "kluctl.io/result-deployment-name": s["kluctlDeployment"]["name"],
                                         "kluctl.io/result-deployment-namespace": NS}},
            "data": {"reducedResult": gz(reduced), "compactedObjects": gz([])}}


def kd(i):
    return {"apiVersion": "gitops.kluctl.io/v1beta1", "kind": "KluctlDeployment",
            "metadata": {"name": "app-%04d" % i, "namespace": NS},
            "spec": {"interval": "5m", "target": "prod", "args": {"name": "app-%04d" % i},
                     "source": {"git": {"url": "https://git.example.invalid/project-%d.git" % (i % 50),
                                        "ref": {"branch": "main"}}}}}


class Proxy:
    """`kubectl proxy` for the status patches (kubectl of this cluster has no --subresource)."""

    def __init__(self, work):
        self.log = open(os.path.join(work, "b10-proxy.log"), "w")
        self.proc = subprocess.Popen(["kubectl", "proxy", "--port=0"], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if "127.0.0.1:" not in line:
            raise Broken("kubectl proxy did not report its port: %r" % line)
        self.base = "http://" + line.strip().rsplit(" ", 1)[1]

    def patch_status(self, name, status):
        req = urllib.request.Request("%s/apis/gitops.kluctl.io/v1beta1/namespaces/%s/kluctldeployments/%s/status" % (self.base, NS, name),
                                     data=json.dumps({"status": status}).encode(), method="PATCH",
                                     headers={"Content-Type": "application/merge-patch+json"})
        urllib.request.urlopen(req, timeout=30).read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def status_of(i, last):
    return {
        "observedGeneration": 1, "observedCommit": last["gitInfo"]["commit"],
        "projectKey": last["projectKey"], "targetKey": last["targetKey"],
        "lastObjectsHash": "%064x" % i, "lastDeployResult": last,
        "lastDriftDetectionResultMessage": "no drift",
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                        "message": "deploy succeeded. validate succeeded.", "lastTransitionTime": last["commandInfo"]["startTime"]}],
    }


class Driver:
    """ChromeDriver with one headless Chromium session (plain WebDriver over HTTP)."""

    def __init__(self, work):
        for p, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
            if not os.path.exists(p):
                raise Broken("%s is missing: install Debian's %s (e2e/scripts/servers.sh install)" % (p, pkg))
        self.proc = subprocess.Popen([CHROMEDRIVER, "--port=0", "--allowed-ips=127.0.0.1"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        port = None
        for _ in range(20):
            line = self.proc.stdout.readline()
            if "started successfully on port" in line:
                port = int(line.rsplit(" ", 1)[1].strip(". \n"))
                break
        if not port:
            raise Broken("chromedriver did not report its port")
        self.base = "http://127.0.0.1:%d" % port
        self.work = work
        self.sessions = []
        self.session = self.new_session()

    def new_session(self):
        """A new browser (its own Chromium process and profile, so its own connection pool)."""
        profile = tempfile.mkdtemp(prefix="b10-chromium-", dir=self.work)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,900", "--user-data-dir=" + profile]
        v = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}})
        self.sessions.append(v["sessionId"])
        return v["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            v = json.loads(urllib.request.urlopen(req, timeout=120).read())["value"]
        except urllib.error.HTTPError as e:
            v = json.loads(e.read() or b"{}").get("value") or {"error": str(e)}
        if isinstance(v, dict) and v.get("error"):
            raise Broken("WebDriver %s: %s: %s" % (path, v["error"], v.get("message", "")[:500]))
        return v

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def eval(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, what, script, *args, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.eval(script, *args)
            if v not in (None, False):
                return v
            time.sleep(0.05)
        raise Broken("the page never showed %s within %ds" % (what, timeout))

    def stop(self):
        for session in self.sessions:
            try:
                self.call("DELETE", "/session/" + session)
            except Exception:  # noqa: BLE001 - the driver goes anyway
                pass
        self.proc.terminate()
        self.proc.wait()


def rss(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise Broken("no %s for pid %d" % (key, pid))


def requests_per_minute(ident, window, churn):
    before = dispatched().get(ident.flow_schema, 0)
    t0 = time.time()
    k = 0
    while time.time() - t0 < window:
        churn(k)
        k += 1
        time.sleep(2)
    after = dispatched().get(ident.flow_schema, 0)
    return (after - before) * 60.0 / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kluctl", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--deployments", type=int, default=int(os.environ.get("B10_DEPLOYMENTS", "1000")))
    ap.add_argument("--results", type=int, default=int(os.environ.get("B10_RESULTS", "5000")))
    ap.add_argument("--window", type=int, default=60)
    a = ap.parse_args()
    n, m = a.deployments, a.results
    per = max(1, m // n)
    log("B10 setup: %d KluctlDeployments in %s, %d results in %s" % (n, NS, per * n, RESULTS_NS))
    kubectl(["delete", "ns", NS, RESULTS_NS, "--ignore-not-found", "--wait=true"], timeout=600)
    kubectl(["create", "ns", NS])
    kubectl(["create", "ns", RESULTS_NS])
    ident = setup_identities(a.work, ["webui"])[0]
    now = time.time()
    create_list([kd(i) for i in range(n)])
    lasts = {}
    secrets = []
    for i in range(n):
        for j in range(per):
            s = summary(i, j, now)
            if j == 0:
                lasts[i] = s
            secrets.append(result_secret(s))
    create_list(secrets, chunk=250)
    proxy = Proxy(a.work)
    try:
        for i in range(n):
            proxy.patch_status("app-%04d" % i, status_of(i, lasts[i]))
    finally:
        proxy.stop()
    log("B10: objects created; starting kluctl webui run")
    server = Process("kluctl webui", [a.kluctl, "webui", "run", "--port", "0", "--kubeconfig", ident.kubeconfig,
                                      "--command-result-namespace", RESULTS_NS],
                     os.path.join(a.work, "b10-webui.log"))
    driver = None
    try:
        url = None
        for _ in range(300):
            server.check()
            with open(server.log_path) as f:
                for line in f:
                    if "Serving the kluctl web UI at " in line:
                        url = line.split(" at ", 1)[1].strip()
            if url:
                break
            time.sleep(0.1)
        if not url:
            raise Broken("kluctl webui run did not print its address")
        deadline = time.time() + 300
        while True:
            snap = json.loads(urllib.request.urlopen(url + "api/overview", timeout=60).read())
            if snap["synced"] and len(snap["deployments"]) >= n and len(snap["results"]) >= per * n:
                break
            if time.time() > deadline:
                raise Broken("the server never listed everything: %d deployments, %d results" % (len(snap["deployments"]), len(snap["results"])))
            time.sleep(0.5)
        driver = Driver(a.work)
        paints = []
        for _ in range(6):
            driver.s("POST", "/url", {"url": url + "?r=%d" % len(paints)})
            ms = driver.wait("the overview", "const m = performance.getEntriesByName('kluctl:overview'); "
                             "return m.length && document.querySelectorAll('[data-testid=deployment-row]').length >= arguments[0] ? m[0].startTime : null", n)
            paints.append(ms)
        paints = paints[1:]  # the first load also fills the browser's cache
        pages = []
        for k in range(5):
            name = "app-%04d" % ((k * 197 + 13) % n)
            ms = driver.eval("performance.clearMarks('kluctl:deployment'); window.__t0 = performance.now(); "
                             "location.hash = '#/d/' + arguments[0]; return true", "%s/%s" % (NS, name))
            ms = driver.wait("deployment " + name, "const m = performance.getEntriesByName('kluctl:deployment'); "
                             "return m.length ? m[0].startTime - window.__t0 : null")
            pages.append(ms)
        driver.s("POST", "/url", {"url": url})
        rss_now, rss_peak = rss(server.proc.pid, "VmRSS"), rss(server.proc.pid, "VmHWM")

        def churn(k):
            kubectl(["-n", NS, "annotate", "--overwrite", "kluctldeployments.gitops.kluctl.io", "app-%04d" % (k % n),
                     "bench.example.com/tick=%d" % k])

        one = requests_per_minute(ident, a.window, churn)
        # 19 more browsers, each its own Chromium (tabs of one browser would share its six
        # HTTP/1.1 connections per host, see docs/webui.md).
        for _ in range(19):
            session = driver.new_session()
            driver.call("POST", "/session/%s/url" % session, {"url": url})
        twenty = requests_per_minute(ident, a.window, churn)
        server.check()
        p, d = median(paints), median(pages)
        steady = twenty <= max(one * 1.1, one + 2)
        print()
        print("B10 web UI: %d KluctlDeployments, %d stored results; kluctl webui run (release) as its own ServiceAccount" % (n, per * n))
        print("  overview first paint   median %4.0f ms of %s  goal < %d ms  %s" % (p, [round(x) for x in paints], GOAL_PAINT_MS, "PASS" if p < GOAL_PAINT_MS else "MISS"))
        print("  deployment page        median %4.0f ms of %s  goal < %d ms  %s" % (d, [round(x) for x in pages], GOAL_PAGE_MS, "PASS" if d < GOAL_PAGE_MS else "MISS"))
        print("  server RSS             %.1f MiB (peak %.1f)  goal <= %d MiB  %s" % (rss_now, rss_peak, GOAL_RSS_MIB, "PASS" if rss_peak <= GOAL_RSS_MIB else "MISS"))
        print("  apiserver requests/min 1 browser %.1f, 20 browsers %.1f (a deployment changes every 2 s; WATCH not counted)  %s" % (one, twenty, "PASS" if steady else "MISS"))
    finally:
        if driver:
            driver.stop()
        server.stop()
        kubectl(["delete", "ns", NS, RESULTS_NS, "--ignore-not-found", "--wait=false"], check=False)


if __name__ == "__main__":
    try:
        main()
    except Broken as e:
        print("B10 broken: %s" % e, file=sys.stderr)
        sys.exit(1)
