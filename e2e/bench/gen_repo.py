#!/usr/bin/env python3
"""gen_repo.py — the B1 benchmark repository, deterministic: same bytes, same commit ids, every run.

    gen_repo.py DEST.git [--files 10000] [--commits 500] [--bytes 40000000]

Writes a `git fast-import` stream into a new bare repository (branch main, HEAD -> main):
commit k adds the files k*files/commits .. (k+1)*files/commits - 1 and edits 3 files added
earlier, so the final tree holds exactly --files YAML files (Kubernetes-style manifests, about
--bytes in total) after --commits commits. Dates, names and contents come from a fixed seed.

The repository is built in DEST.git.tmp and renamed into place; an existing DEST is replaced.
Prints one line: `<commit> <files> <bytes>` of the final tree.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys

SEED = 20240501
EPOCH = 1700000000
WORDS = (
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega apply render deploy "
    "prune validate drift source bucket artifact revision digest cluster region zone tenant "
    "frontend backend worker cache queue ingress gateway service account secret config "
    "volume claim storage metrics alerts tracing logging audit policy quota limit request "
    "replica rollout canary stable blue green shadow mirror primary standby leader follower"
).split()
KINDS = ("ConfigMap", "Deployment", "Service", "Ingress", "CronJob", "StatefulSet")
EDITS_PER_COMMIT = 3


def token(rng):
    return "%s-%s-%08x" % (rng.choice(WORDS), rng.choice(WORDS), rng.getrandbits(32))


def manifest(rng, index, target, revision):
    """One YAML document of about `target` bytes."""
    kind = KINDS[index % len(KINDS)]
    name = "%s-%05d" % (rng.choice(WORDS), index)
    head = [
        "apiVersion: %s" % ("v1" if kind in ("ConfigMap", "Service") else "apps/v1"),
        "kind: %s" % kind,
        "metadata:",
        "  name: %s" % name,
        "  namespace: team-%02d" % (index % 40),
        "  labels:",
        "    app.kubernetes.io/name: %s" % name,
        "    app.kubernetes.io/part-of: %s" % rng.choice(WORDS),
        "    bench/revision: \"%d\"" % revision,
        "  annotations:",
        "    bench/owner: %s" % token(rng),
        "data:" if kind == "ConfigMap" else "spec:",
    ]
    body = []
    size = sum(len(line) + 1 for line in head)
    n = 0
    while size < target:
        if n % 7 == 0:
            line = "  section-%03d:" % n
        elif n % 7 == 3:
            line = "    list-%03d: [%s, %s, %d]" % (n, token(rng), rng.choice(WORDS), rng.randrange(10**6))
        else:
            line = "    key-%03d: \"%s %s\"" % (n, token(rng), token(rng))
        body.append(line)
        size += len(line) + 1
        n += 1
    return ("\n".join(head + body) + "\n").encode()


def path_of(index):
    return "clusters/env-%d/app-%03d/%s-%05d.yaml" % (
        index % 4,
        index // 100,
        KINDS[index % len(KINDS)].lower(),
        index,
    )


def stream(out, files, commits, total_bytes):
    rng = random.Random(SEED)
    per_commit = files // commits
    if per_commit * commits != files:
        raise SystemExit("--files must be a multiple of --commits")
    avg = total_bytes // files
    sizes = {}
    revision = {}
    for k in range(commits):
        changes = []
        first = k * per_commit
        for i in range(first, first + per_commit):
            target = rng.randrange(avg // 2, avg * 3 // 2)
            revision[i] = k
            changes.append((i, manifest(rng, i, target, k)))
        if first > 0:
            for i in rng.sample(range(first), EDITS_PER_COMMIT):
                revision[i] = k
                changes.append((i, manifest(rng, i, rng.randrange(avg // 2, avg * 3 // 2), k)))
        when = EPOCH + k * 600
        msg = ("bench commit %d: add %d manifests, edit %d\n" % (k + 1, per_commit, len(changes) - per_commit)).encode()
        out.write(b"commit refs/heads/main\n")
        out.write(b"mark :%d\n" % (k + 1))
        out.write(b"author bench <bench@example.com> %d +0000\n" % when)
        out.write(b"committer bench <bench@example.com> %d +0000\n" % when)
        out.write(b"data %d\n%s" % (len(msg), msg))
        if k > 0:
            out.write(b"from :%d\n" % k)
        for i, content in changes:
            sizes[i] = len(content)
            out.write(b"M 100644 inline %s\n" % path_of(i).encode())
            out.write(b"data %d\n%s\n" % (len(content), content))
    out.write(b"done\n")
    return len(sizes), sum(sizes.values())


def git(*args, cwd=None, **kw):
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dest")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--commits", type=int, default=500)
    ap.add_argument("--bytes", type=int, default=40_000_000)
    a = ap.parse_args()
    dest = a.dest.rstrip("/")
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    git("init", "-q", "--bare", "-b", "main", tmp)
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    fi = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"], cwd=tmp, env=env, stdin=subprocess.PIPE
    )
    try:
        nfiles, nbytes = stream(fi.stdin, a.files, a.commits, a.bytes)
        fi.stdin.close()
    except BrokenPipeError:
        pass
    if fi.wait() != 0:
        raise SystemExit("git fast-import failed")
    head = git("rev-parse", "refs/heads/main", cwd=tmp, capture_output=True, text=True).stdout.strip()
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    print(head, nfiles, nbytes)


if __name__ == "__main__":
    sys.exit(main())
