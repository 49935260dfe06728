#!/usr/bin/env python3
"""gen_kluctl_project.py — writes the B3 benchmark project: a Kluctl project with ITEMS deployment
items of OBJECTS objects each, Jinja2-templated with vars (a vars file rendered itself), loops,
conditionals, a macro library imported from the project root, and an include per item.

    gen_kluctl_project.py DIR [--items 50] [--objects 20]

Only plain Jinja2 features are used, so the reference (b3_reference.py: Python Jinja2 + kustomize
per item, the way Kluctl renders) and `kluctl render` must produce the same objects.
"""

import argparse
import os
import shutil


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--objects", type=int, default=20)
    a = ap.parse_args()
    if a.objects < 3:
        raise SystemExit("--objects must be at least 3 (a Deployment, a Service, ConfigMaps)")
    shutil.rmtree(a.dir, ignore_errors=True)
    d = a.dir
    write(f"{d}/.kluctl.yaml", """discriminator: bench-{{ target.name }}
targets:
  - name: bench
    args:
      env: prod
      replicas: 2
""")
    write(f"{d}/deployment.yaml", """vars:
  - file: vars.yaml
commonLabels:
  bench.example.com/project: b3
deployments:
  - include: apps
""")
    apps = "\n".join(
        f"""  app{i:02d}:
    replicas: {{{{ args.replicas + {i % 3} }}}}
    port: {8000 + i}
    tier: {"frontend" if i % 2 else "backend"}
    configs: {a.objects - 2}"""
        for i in range(a.items)
    )
    write(f"{d}/vars.yaml", f"""env_name: "{{{{ args.env }}}}"
apps:
{apps}
""")
    write(f"{d}/lib/common.j2", """{% macro labels(name, tier) -%}
app.kubernetes.io/name: {{ name }}
      app.kubernetes.io/part-of: bench
      tier: {{ tier }}
{%- endmacro %}
{% macro image(name) -%}
registry.example.com/{{ name }}:{{ env_name }}-1.0
{%- endmacro %}
""")
    items = "\n".join(f"  - path: app{i:02d}" for i in range(a.items))
    write(f"{d}/apps/deployment.yaml", f"deployments:\n{items}\n")
    for i in range(a.items):
        name = f"app{i:02d}"
        write(f"{d}/apps/{name}/header.j2", "# generated for {{ env_name }}\n")
        write(f"{d}/apps/{name}/configmaps.yaml", f"""{{% import "lib/common.j2" as common %}}
{{% set app = apps["{name}"] %}}
{{% include "header.j2" %}}
{{% for i in range(app.configs) %}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config-{{{{ i }}}}
  labels:
      {{{{ common.labels("{name}", app.tier) }}}}
data:
  index: "{{{{ i }}}}"
  env: {{{{ env_name }}}}
{{% if i is even %}}
  parity: even
{{% else %}}
  parity: odd
{{% endif %}}
{{% for k in ["a", "b", "c"] %}}
  key-{{{{ k }}}}: "{{{{ k | upper }}}}-{{{{ i * app.port }}}}"
{{% endfor %}}
{{% endfor %}}
""")
        write(f"{d}/apps/{name}/workload.yaml", f"""{{% import "lib/common.j2" as common %}}
{{% set app = apps["{name}"] %}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
      {{{{ common.labels("{name}", app.tier) }}}}
spec:
  replicas: {{{{ app.replicas }}}}
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
          image: {{{{ common.image("{name}") }}}}
          ports:
            - containerPort: {{{{ app.port }}}}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - port: 80
      targetPort: {{{{ app.port }}}}
""")


if __name__ == "__main__":
    main()
