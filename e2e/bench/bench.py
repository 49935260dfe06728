#!/usr/bin/env python3
"""bench.py — measures B1, B2, B4, B5 (see e2e/bench/README.md) and prints the table. Run by run.sh.

    bench.py --url URL --reconcile-core BIN --serve-dir BIN --work DIR [--only B1,B2,B4,B5]
             [--bucket-core BIN --aws AWS_CLI --s3-endpoint HOST:PORT --bucket NAME --prefix P]   (B4; keys in
             BUCKET_ACCESS_KEY / BUCKET_SECRET_KEY)

Every figure is ours vs a reference measured in the same run, on the same machine, interleaved.
Wall time comes from os.wait4 of each process, peak RSS from GNU time wrapped around it (its %M is
the ru_maxrss of the process and every descendant it waited for, so for a pipeline it is the
largest process in it). Exit status: 0 when every measurement worked (a MISS is not a
failure), 1 when one broke (a command failed, output was wrong, a server answered badly).
"""

import argparse
import hashlib
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import threading
import time

# GNU time (Debian package `time`): measures each process's peak RSS.
GNU_TIME = "/usr/bin/time"

# Hard bounds on every process we start (seconds).
RUN_TIMEOUT = 120
WRK_SECONDS = 10
WRK_CONNECTIONS = 50
WRK_THREADS = 2
# B5: rounds of wrk per file and server, alternating which server goes first.
B5_ROUNDS = 3
B1_RUNS = 3
B2_RUNS = 10
B4_RUNS = 3
B4_INDEX_RUNS = 10

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


class Broken(Exception):
    """A measurement that did not measure what it should."""


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def measure(cmd, cwd=None, env=None, timeout=RUN_TIMEOUT):
    """Runs cmd; returns (wall seconds, peak RSS KiB, stdout, stderr). Raises Broken on failure.

    The peak RSS comes from GNU time, which forks and execs cmd itself: a child forked (or
    vforked) from this Python process records Python's resident set at its exec as its own peak
    (~22 MiB here), which would hide anything smaller.
    """
    out_path = os.path.join(cwd or ".", ".bench-stdout")
    err_path = os.path.join(cwd or ".", ".bench-stderr")
    rss_path = os.path.abspath(os.path.join(cwd or ".", ".bench-rss"))
    full_env = dict(os.environ, **(env or {}))
    timed = [GNU_TIME, "-f", "%M", "-o", rss_path] + list(cmd)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(timed, cwd=cwd, env=full_env, stdout=out, stderr=err, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, _ = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, encoding="utf-8", errors="replace") as f:
        stdout = f.read()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    rss_text = ""
    if os.path.exists(rss_path):
        with open(rss_path, encoding="utf-8", errors="replace") as f:
            rss_text = f.read()
        os.remove(rss_path)
    os.remove(out_path)
    os.remove(err_path)
    if p.returncode != 0:
        raise Broken("%s exited %s after %.1fs:\n%s" % (" ".join(cmd), p.returncode, wall, stderr[-2000:]))
    lines = rss_text.strip().splitlines()
    if not lines or not lines[-1].strip().isdigit():
        raise Broken("GNU time gave no peak RSS for %s: %r" % (" ".join(cmd), rss_text))
    return wall, int(lines[-1]), stdout, stderr


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


class Table:
    def __init__(self):
        self.rows = []

    def add(self, bench, metric, ours, ref, ratio, goal=None, ok=None, fmt="%.3f"):
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        self.rows.append(
            (bench, metric, fmt % ours, fmt % ref, "%.2fx" % ratio, goal or "-", verdict or "-")
        )

    def print(self):
        head = ("bench", "metric", "ours", "reference", "ours/ref", "goal", "result")
        widths = [max(len(str(r[i])) for r in [head] + self.rows) for i in range(len(head))]
        line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, head))
        print(line)
        print("-" * len(line))
        for r in self.rows:
            print("  ".join("%-*s" % (w, c) for w, c in zip(widths, r)))


def median(xs):
    return statistics.median(xs)


# ------------------------------------------------------------------------------------------- B1
def count_tar_gz(path):
    """Regular files in a tar.gz, and whether a .git entry slipped in."""
    n, has_git = 0, False
    with tarfile.open(path, "r:gz") as t:
        for m in t:
            if m.name == ".git" or m.name.startswith(".git/") or m.name.startswith("./.git"):
                has_git = True
            if m.isfile():
                n += 1
    return n, has_git


def b1(a, table, steps_out):
    url = a.url
    work = fresh_dir(os.path.join(a.work, "b1"))
    tmp = fresh_dir(os.path.join(work, "tmp"))
    env_ours = {"TMPDIR": tmp}
    ref_cmd = [
        "bash",
        "-c",
        # --exclude: the same tree as our artifact, which drops .git/ (Git ignore rules)
        'git clone -q --depth 1 "$0" dir && tar czf out.tar.gz --exclude=./.git -C dir .',
        url,
    ]
    ours, ref = [], []
    steps = {}

    def run_ours(i):
        storage = fresh_dir(os.path.join(work, "storage"))
        wall, rss, out, err = measure([a.reconcile_core, url, storage, "--branch", "main"], cwd=work, env=env_ours)
        for m in re.finditer(r"^step (\w+): ([0-9.]+)s peak-rss (\d+)KiB$", err, re.M):
            steps.setdefault(m.group(1), []).append((float(m.group(2)), int(m.group(3))))
        fields = dict(kv.split("=", 1) for kv in out.split())
        return wall, rss, fields, storage

    def run_ref(i):
        d = fresh_dir(os.path.join(work, "ref"))
        wall, rss, _, _ = measure(ref_cmd, cwd=d, env=GIT_ENV)
        return wall, rss, d

    log("B1 warm-up (one run each, not counted)")
    run_ours(-1)
    run_ref(-1)
    steps.clear()
    last_ours = last_ref = None
    for i in range(B1_RUNS):
        w, r, fields, storage = run_ours(i)
        ours.append((w, r))
        last_ours = (fields, storage)
        log("B1 ours run %d: %.2fs %.0f MiB  %s" % (i + 1, w, r / 1024, fields.get("revision")))
        w, r, d = run_ref(i)
        ref.append((w, r))
        last_ref = d
        log("B1 ref  run %d: %.2fs %.0f MiB" % (i + 1, w, r / 1024))

    # Validate: our artifact is where it says, its digest is its sha256, and it holds the same
    # files as the reference's tree, without .git.
    fields, storage = last_ours
    path = os.path.join(storage, fields["path"])
    with open(path, "rb") as f:
        digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    if digest != fields["digest"] or os.path.getsize(path) != int(fields["size"]):
        raise Broken("B1: stored artifact %s does not match the printed digest/size" % path)
    ours_files, ours_git = count_tar_gz(path)
    ref_files, ref_git = count_tar_gz(os.path.join(last_ref, "out.tar.gz"))
    if ours_files != int(fields["files"]) or ours_files != ref_files or ours_git or ref_git:
        raise Broken(
            "B1: archives differ: ours %d files (.git: %s), reference %d files (.git: %s)"
            % (ours_files, ours_git, ref_files, ref_git)
        )
    head = subprocess.run(
        ["git", "ls-remote", url, "refs/heads/main"], env=dict(os.environ, **GIT_ENV),
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()[0]
    if fields["revision"] != "main@sha1:" + head:
        raise Broken("B1: revision %s, but main is %s" % (fields["revision"], head))
    log(
        "B1 archives: ours %d files, %.1f MB; reference %d files, %.1f MB"
        % (ours_files, int(fields["size"]) / 1e6, ref_files, os.path.getsize(os.path.join(last_ref, "out.tar.gz")) / 1e6)
    )

    ow, orss = median([x[0] for x in ours]), median([x[1] for x in ours])
    rw, rrss = median([x[0] for x in ref]), median([x[1] for x in ref])
    table.add("B1", "cold reconcile wall, s (median of %d)" % B1_RUNS, ow, rw, ow / rw, "<= 0.50x", ow / rw <= 0.5, "%.2f")
    table.add("B1", "cold reconcile peak RSS, MiB", orss / 1024, rrss / 1024, orss / rrss, "<= 0.50x", orss / rrss <= 0.5, "%.1f")
    steps_out.update({k: (median([x[0] for x in v]), median([x[1] for x in v])) for k, v in steps.items()})
    shutil.rmtree(work, ignore_errors=True)


def b1_reference_split(a, notes):
    """Diagnostic only: the reference's two halves on their own (one run each)."""
    work = fresh_dir(os.path.join(a.work, "b1-split"))
    w1, r1, _, _ = measure(["git", "clone", "-q", "--depth", "1", a.url, "dir"], cwd=work, env=GIT_ENV)
    w2, r2, _, _ = measure(["tar", "czf", "out.tar.gz", "--exclude=./.git", "-C", "dir", "."], cwd=work)
    notes.append("reference split (1 run): git clone --depth 1 %.2fs %.1f MiB; tar czf %.2fs %.1f MiB" % (w1, r1 / 1024, w2, r2 / 1024))
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------- B2
def b2(a, table):
    work = fresh_dir(os.path.join(a.work, "b2"))
    storage = fresh_dir(os.path.join(work, "storage"))
    ours_cmd = [a.reconcile_core, a.url, storage, "--branch", "main", "--resolve-only"]
    ref_cmd = ["git", "ls-remote", a.url, "refs/heads/main"]
    ours, ref = [], []
    measure(ours_cmd, cwd=work, env={"TMPDIR": work})
    measure(ref_cmd, cwd=work, env=GIT_ENV)
    for _ in range(B2_RUNS):
        w, _, out, _ = measure(ours_cmd, cwd=work, env={"TMPDIR": work})
        ours.append(w)
        ours_rev = out.strip()
        w, _, out, _ = measure(ref_cmd, cwd=work, env=GIT_ENV)
        ref.append(w)
        ref_rev = out.split()[0] if out.split() else ""
        if ours_rev != "revision=main@sha1:" + ref_rev:
            raise Broken("B2: resolve printed '%s', ls-remote '%s'" % (ours_rev, ref_rev))
    log("B2 ours ms: %s" % " ".join("%.1f" % (x * 1000) for x in ours))
    log("B2 ref  ms: %s" % " ".join("%.1f" % (x * 1000) for x in ref))
    o, r = median(ours) * 1000, median(ref) * 1000
    table.add("B2", "unchanged ref: resolve vs ls-remote, ms (median of %d)" % B2_RUNS, o, r, o / r, "<= 1.20x", o / r <= 1.2, "%.1f")
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------- B4
def b4(a, table, steps_out):
    work = fresh_dir(os.path.join(a.work, "b4"))
    tmp = fresh_dir(os.path.join(work, "tmp"))
    keys = {"BUCKET_ACCESS_KEY": os.environ["BUCKET_ACCESS_KEY"], "BUCKET_SECRET_KEY": os.environ["BUCKET_SECRET_KEY"]}
    aws_env = {
        "AWS_ACCESS_KEY_ID": keys["BUCKET_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": keys["BUCKET_SECRET_KEY"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    endpoint = "http://" + a.s3_endpoint
    ref_cmd = [
        "bash", "-c",
        '"$0" s3 sync "s3://$1/$2" dir --endpoint-url "$3" --only-show-errors && tar czf out.tar.gz -C dir .',
        a.aws, a.bucket, a.prefix, endpoint,
    ]
    list_cmd = [a.aws, "s3api", "list-objects-v2", "--bucket", a.bucket, "--prefix", a.prefix,
                "--endpoint-url", endpoint, "--output", "json"]
    steps = {}

    def run_ours():
        storage = fresh_dir(os.path.join(work, "storage"))
        wall, rss, out, err = measure(
            [a.bucket_core, a.s3_endpoint, a.bucket, storage, "--prefix", a.prefix], cwd=work, env=dict(keys, TMPDIR=tmp)
        )
        for m in re.finditer(r"^step (\w+): ([0-9.]+)s peak-rss (\d+)KiB$", err, re.M):
            steps.setdefault(m.group(1), []).append((float(m.group(2)), int(m.group(3))))
        return wall, rss, dict(kv.split("=", 1) for kv in out.split()), storage

    def run_ref():
        d = fresh_dir(os.path.join(work, "ref"))
        wall, rss, _, _ = measure(ref_cmd, cwd=d, env=aws_env)
        return wall, rss, d

    log("B4 warm-up (one run each, not counted)")
    run_ours()
    run_ref()
    steps.clear()
    ours, ref = [], []
    last_ours = last_ref = None
    for i in range(B4_RUNS):
        w, r, fields, storage = run_ours()
        ours.append((w, r))
        last_ours = (fields, storage)
        log("B4 ours run %d: %.2fs %.0f MiB  %s files" % (i + 1, w, r / 1024, fields.get("files")))
        w, r, d = run_ref()
        ref.append((w, r))
        last_ref = d
        log("B4 ref  run %d: %.2fs %.0f MiB" % (i + 1, w, r / 1024))

    # Validate: the revision is the etag index digest of the reference client's own listing, the
    # artifact is its digest, and both archives hold every object.
    _, _, out, _ = measure(list_cmd, cwd=work, env=aws_env)
    import json
    listing = json.loads(out).get("Contents", [])
    lines = "".join("%s %s\n" % (o["Key"], o["ETag"].strip('"')) for o in sorted(listing, key=lambda o: o["Key"].encode()))
    want = "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    fields, storage = last_ours
    if fields["revision"] != want:
        raise Broken("B4: revision %s, but the listing gives %s" % (fields["revision"], want))
    path = os.path.join(storage, fields["path"])
    with open(path, "rb") as f:
        if "sha256:" + hashlib.sha256(f.read()).hexdigest() != fields["digest"]:
            raise Broken("B4: stored artifact %s does not match its digest" % path)
    ours_files, _ = count_tar_gz(path)
    ref_files, _ = count_tar_gz(os.path.join(last_ref, "out.tar.gz"))
    if not (ours_files == ref_files == len(listing) == int(fields["files"])):
        raise Broken("B4: files: ours %d, reference %d, listing %d" % (ours_files, ref_files, len(listing)))
    log("B4 archives: %d objects; ours %.1f MB, reference %.1f MB" % (
        ours_files, int(fields["size"]) / 1e6, os.path.getsize(os.path.join(last_ref, "out.tar.gz")) / 1e6))

    ow, orss = median([x[0] for x in ours]), median([x[1] for x in ours])
    rw, rrss = median([x[0] for x in ref]), median([x[1] for x in ref])
    table.add("B4", "cold reconcile wall, s (median of %d)" % B4_RUNS, ow, rw, ow / rw, "<= 1.00x", ow / rw <= 1.0, "%.2f")
    table.add("B4", "cold reconcile peak RSS, MiB", orss / 1024, rrss / 1024, orss / rrss, "<= 0.50x", orss / rrss <= 0.5, "%.1f")
    steps_out.update({"B4 " + k: (median([x[0] for x in v]), median([x[1] for x in v])) for k, v in steps.items()})

    # No change: our index step (listing + digest) vs one listing with the reference client.
    idx_cmd = [a.bucket_core, a.s3_endpoint, a.bucket, os.path.join(work, "storage"), "--prefix", a.prefix, "--index-only"]
    measure(idx_cmd, cwd=work, env=keys)
    measure(list_cmd, cwd=work, env=aws_env)
    io, il = [], []
    for _ in range(B4_INDEX_RUNS):
        w, r, out, _ = measure(idx_cmd, cwd=work, env=keys)
        io.append((w, r))
        if ("revision=" + want) not in out:
            raise Broken("B4: --index-only printed %r, want revision %s" % (out, want))
        w, r, _, _ = measure(list_cmd, cwd=work, env=aws_env)
        il.append((w, r))
    o, r = median([x[0] for x in io]) * 1000, median([x[0] for x in il]) * 1000
    table.add("B4", "no change: index vs one aws listing, ms (median of %d)" % B4_INDEX_RUNS, o, r, o / r, "<= 1.20x", o / r <= 1.2, "%.1f")
    orss, rrss = median([x[1] for x in io]) / 1024, median([x[1] for x in il]) / 1024
    table.add("B4", "no change peak RSS, MiB", orss, rrss, orss / rrss, None, None, "%.1f")
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------- B5
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Broken("%s exited (%s) before listening on 127.0.0.1:%d" % (what, proc.returncode, port))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Broken("%s did not listen on 127.0.0.1:%d within %ds" % (what, port, seconds))


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "k": 1e3, "M": 1e6}


CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds():
    """CPU-seconds the whole machine has been busy (all cores: user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


def process_cpu_seconds(pid):
    """CPU-seconds of process pid (all its threads) and of its child processes (nginx's workers)."""
    pids = [pid]
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, task)) as f:
            pids += [int(c) for c in f.read().split()]
    total = 0.0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def children_cpu_seconds():
    """CPU-seconds of all children bench.py has waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wrk(url, server_pid):
    """One wrk run against url: (req/s, bytes/s, socket errors or "", others' CPU-seconds).

    Others' CPU-seconds: what the machine was busy with besides the server (server_pid and its
    children) and wrk during the run, i.e. other processes competing for the same cores."""
    cmd = ["wrk", "-t%d" % WRK_THREADS, "-c%d" % WRK_CONNECTIONS, "-d%ds" % WRK_SECONDS, "--timeout", "5s", url]
    busy0, server0, kids0 = busy_cpu_seconds(), process_cpu_seconds(server_pid), children_cpu_seconds()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=WRK_SECONDS + 30)
    wrk_cpu = children_cpu_seconds() - kids0  # bench.py waits for nothing else meanwhile
    others = busy_cpu_seconds() - busy0 - (process_cpu_seconds(server_pid) - server0) - wrk_cpu
    out, err = p.stdout, p.stderr
    if p.returncode != 0:
        raise Broken("%s failed: %s" % (" ".join(cmd), err))
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    tps = re.search(r"^Transfer/sec:\s+([0-9.]+)([KMG]?B)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    if not (rps and tps and total) or int(total.group(1)) == 0:
        raise Broken("cannot read wrk output for %s:\n%s" % (url, out))
    if "Non-2xx or 3xx responses" in out:
        raise Broken("%s answered non-2xx responses under load:\n%s" % (url, out))
    errors = re.search(r"Socket errors:.*", out)
    return float(rps.group(1)), float(tps.group(1)) * UNITS[tps.group(2)], errors.group(0) if errors else "", others


NGINX_CONF = """\
# generated by e2e/bench/bench.py
worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def b5(a, table, notes):
    work = fresh_dir(os.path.join(a.work, "b5"))
    os.chmod(a.work, 0o755)
    os.chmod(work, 0o755)  # nginx workers run as nobody
    root = fresh_dir(os.path.join(work, "files"))
    os.chmod(root, 0o755)
    ngx_tmp = fresh_dir(os.path.join(work, "nginx"))
    sizes = [("10KB", "10k.bin", 10 * 1024), ("1MB", "1m.bin", 1024 * 1024)]
    blobs = {}
    for _, name, n in sizes:
        data = (hashlib.sha256(name.encode()).digest() * (n // 32 + 1))[:n]
        data = bytes(b ^ (i * 131 & 0xFF) for i, b in enumerate(data))
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(root, name), 0o644)
        blobs[name] = data
    ngx_port, our_port = free_port(), free_port()
    with open(os.path.join(ngx_tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(tmp=ngx_tmp, port=ngx_port, root=root))
    nginx = ours = None
    try:
        nginx = subprocess.Popen(
            [a.nginx, "-p", ngx_tmp, "-e", os.path.join(ngx_tmp, "error.log"), "-c", os.path.join(ngx_tmp, "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(ngx_tmp, "stderr.log"), "wb"),
        )
        ours = subprocess.Popen(
            [a.serve_dir, root, "127.0.0.1:%d" % our_port],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve_dir.log"), "wb"),
        )
        wait_port(ngx_port, nginx, "nginx")
        wait_port(our_port, ours, "serve_dir")
        for port, who in ((ngx_port, "nginx"), (our_port, "serve_dir")):
            for name, data in blobs.items():
                status, body = http_get(port, "/" + name)
                if status != 200 or body != data:
                    raise Broken("B5: %s GET /%s gave %d, %d bytes (want 200, %d bytes)" % (who, name, status, len(body), len(data)))
        servers = [(ngx_port, "nginx", nginx.pid), (our_port, "ours", ours.pid)]
        for label, name, _ in sizes:
            res = {"nginx": [], "ours": []}
            for rnd in range(B5_ROUNDS):
                # Alternate who goes first, so a drift in the machine's load hits both sides alike.
                for port, who, pid in servers if rnd % 2 == 0 else servers[::-1]:
                    log("B5 wrk -t%d -c%d -d%ds %s %s (round %d/%d)" % (WRK_THREADS, WRK_CONNECTIONS, WRK_SECONDS, who, label, rnd + 1, B5_ROUNDS))
                    res[who].append(wrk("http://127.0.0.1:%d/%s" % (port, name), pid))
                    if res[who][-1][2]:
                        notes.append("B5 %s %s round %d: %s" % (who, label, rnd + 1, res[who][-1][2]))
                (o_rps, _, _, o_other), (n_rps, _, _, n_other) = res["ours"][-1], res["nginx"][-1]
                notes.append(
                    "B5 %s round %d: ours %.0f req/s, nginx %.0f req/s, %.2fx (CPU-s used by other processes "
                    "during the run: %.1f ours, %.1f nginx)" % (label, rnd + 1, o_rps, n_rps, o_rps / n_rps, o_other, n_other)
                )
            o_rps, o_tps = median([r[0] for r in res["ours"]]), median([r[1] for r in res["ours"]])
            n_rps, n_tps = median([r[0] for r in res["nginx"]]), median([r[1] for r in res["nginx"]])
            runs = "median of %d" % B5_ROUNDS
            if label == "10KB":
                table.add("B5", "%s req/s (%s)" % (label, runs), o_rps, n_rps, o_rps / n_rps, ">= 1.00x", o_rps / n_rps >= 1.0, "%.0f")
                table.add("B5", "%s transfer, MiB/s" % label, o_tps / 2**20, n_tps / 2**20, o_tps / n_tps, None, None, "%.1f")
            else:
                table.add("B5", "%s req/s (%s)" % (label, runs), o_rps, n_rps, o_rps / n_rps, None, None, "%.0f")
                table.add(
                    "B5", "%s transfer, MiB/s" % label, o_tps / 2**20, n_tps / 2**20, o_tps / n_tps,
                    ">= 0.95x (equal, 5% noise)", o_tps / n_tps >= 0.95, "%.1f",
                )
        for p, who in ((nginx, "nginx"), (ours, "serve_dir")):
            if p.poll() is not None:
                raise Broken("B5: %s died during the load run (exit %s)" % (who, p.returncode))
    finally:
        stop(ours)
        stop(nginx)
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--reconcile-core", required=True)
    ap.add_argument("--serve-dir", required=True)
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", default="B1,B2,B4,B5")
    ap.add_argument("--bucket-core")
    ap.add_argument("--aws")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--bucket")
    ap.add_argument("--prefix", default="")
    a = ap.parse_args()
    a.reconcile_core, a.serve_dir, a.work = map(os.path.abspath, (a.reconcile_core, a.serve_dir, a.work))
    only = set(a.only.upper().split(","))
    os.makedirs(a.work, exist_ok=True)
    table, notes, steps = Table(), [], {}
    try:
        if "B1" in only:
            b1(a, table, steps)
            b1_reference_split(a, notes)
        if "B2" in only:
            b2(a, table)
        if "B4" in only:
            if not (a.bucket_core and a.aws and a.s3_endpoint and a.bucket):
                raise Broken("B4 needs --bucket-core, --aws, --s3-endpoint and --bucket")
            b4(a, table, steps)
        if "B5" in only:
            b5(a, table, notes)
    except (Broken, subprocess.SubprocessError, OSError, KeyError, ValueError) as e:
        print("\nbench: BROKEN MEASUREMENT: %s" % e, file=sys.stderr)
        return 1
    print()
    table.print()
    if steps:
        print(
            "\nours, steps (median): "
            + ", ".join("%s %.2fs (peak RSS after it %.1f MiB)" % (k, t, r / 1024) for k, (t, r) in steps.items())
        )
    for n in notes:
        print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
