#!/usr/bin/env python3
"""gen_deploy_project.py — writes the B6 benchmark project: a Kluctl project that deploys exactly
1,000 objects by default — CRDS CustomResourceDefinitions (each its own API group) with one custom
resource each, and APPS apps of one Deployment (replicas 0), one Service and CONFIGMAPS ConfigMaps,
all in the namespace given as `-a namespace=NS`.

    gen_deploy_project.py DIR [--crds 20] [--apps 60] [--configmaps 14] [--items 10]

Arguments of the project (both required, declared in .kluctl.yaml):
  namespace  the namespace of every namespaced object (created by the caller beforehand)
  run        a short DNS-label id of the run: the CRD groups are g<NN>.<run>.bench.example.com,
             so every first deploy creates CRDs that did not exist before, on both sides of the
             benchmark alike (CRDs are cluster-scoped, so a fresh namespace alone would not do)

Layout: item `crds` (the CRDs) and APPS / ITEMS app items run in parallel; a barrier follows, then
item `crs` (the custom resources), so the CRs are applied after their CRDs. Every object carries
the label bench.example.com/run=<run> (commonLabels), which the benchmark uses to clean up. The
discriminator includes both args, so every run's objects are told apart from every other run's.

The files are plain YAML apart from `{{ args.* }}`: this benchmark measures deploying, B3
measures templating. Ports name their protocol: the v1.20 apiserver's server-side apply rejects a
port list entry without it (the list's key includes it and 1.20 has no default for it there).
"""

import argparse
import os
import shutil

LABEL = "bench.example.com/run"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def crd(n):
    return f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widget{n:02d}s.g{n:02d}.{{{{ args.run }}}}.bench.example.com
spec:
  group: g{n:02d}.{{{{ args.run }}}}.bench.example.com
  scope: Namespaced
  names:
    kind: Widget{n:02d}
    listKind: Widget{n:02d}List
    plural: widget{n:02d}s
    singular: widget{n:02d}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
              properties:
                size:
                  type: integer
                color:
                  type: string
"""


def cr(n):
    return f"""apiVersion: g{n:02d}.{{{{ args.run }}}}.bench.example.com/v1
kind: Widget{n:02d}
metadata:
  name: widget-{n:02d}
  namespace: "{{{{ args.namespace }}}}"
spec:
  size: {n + 1}
  color: {("red", "green", "blue")[n % 3]}
  extra:
    note: preserved by x-kubernetes-preserve-unknown-fields
"""


def app(a, configmaps):
    name = f"app{a:03d}"
    docs = [
        f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: "{{{{ args.namespace }}}}"
  labels:
    app.kubernetes.io/name: {name}
spec:
  replicas: 0
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
    spec:
      containers:
        - name: main
          image: registry.example.com/{name}:1.0.{a}
          args: ["--port", "{8000 + a}", "--config", "/etc/{name}"]
          ports:
            - containerPort: {8000 + a}
              protocol: TCP
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
""",
        f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: "{{{{ args.namespace }}}}"
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: {8000 + a}
""",
    ]
    for c in range(configmaps):
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config-{c:02d}
  namespace: "{{{{ args.namespace }}}}"
data:
  index: "{c}"
  app: {name}
  settings.yaml: |
    listen: 0.0.0.0:{8000 + a}
    workers: {1 + c % 4}
    feature-{c:02d}: enabled
    upstream: http://{name}.svc.example.com:{9000 + c}
""")
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--crds", type=int, default=20)
    ap.add_argument("--apps", type=int, default=60)
    ap.add_argument("--configmaps", type=int, default=14, help="ConfigMaps per app")
    ap.add_argument("--items", type=int, default=10, help="deployment items the apps are spread over")
    a = ap.parse_args()
    if a.crds < 1 or a.apps < 1 or a.items < 1 or a.items > a.apps or a.configmaps < 0:
        raise SystemExit("need --crds >= 1, 1 <= --items <= --apps, --configmaps >= 0")
    shutil.rmtree(a.dir, ignore_errors=True)
    d = a.dir
    write(f"{d}/.kluctl.yaml", """discriminator: bench-{{ args.namespace }}-{{ args.run }}
args:
  - name: namespace
  - name: run
targets:
  - name: bench
""")
    items = [f"  - path: apps/item{i:02d}" for i in range(a.items)]
    write(f"{d}/deployment.yaml", "\n".join(
        ["commonLabels:", f'  {LABEL}: "{{{{ args.run }}}}"', "deployments:", "  - path: crds"]
        + items
        + ["  - barrier: true", "    message: CRDs before their custom resources", "  - path: crs", ""]
    ))
    write(f"{d}/crds/crds.yaml", "---\n".join(crd(n) for n in range(a.crds)))
    write(f"{d}/crs/crs.yaml", "---\n".join(cr(n) for n in range(a.crds)))
    per_item = -(-a.apps // a.items)
    for i in range(a.items):
        docs = []
        for n in range(i * per_item, min(a.apps, (i + 1) * per_item)):
            docs.extend(app(n, a.configmaps))
        write(f"{d}/apps/item{i:02d}/objects.yaml", "---\n".join(docs))
    total = 2 * a.crds + a.apps * (2 + a.configmaps)
    print(total)


if __name__ == "__main__":
    main()
