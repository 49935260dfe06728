#!/usr/bin/env python3
"""b3_reference.py — the B3 reference: renders a project made by gen_kluctl_project.py the way
Kluctl does, with Python Jinja2 3.1 and the kustomize binary: target args from .kluctl.yaml, the
vars file rendered and loaded, every file of every deployment item rendered (StrictUndefined,
loopcontrols, search path item dir → project dirs), a kustomization generated per item and
`kustomize build` run per item. Prints the number of objects built.

    b3_reference.py PROJECT_DIR OUT_DIR KUSTOMIZE_BIN
"""

import os
import subprocess
import sys

import jinja2
import yaml


def env_for(search, ctx):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.loopcontrols"],
        keep_trailing_newline=False,
    )
    # Kluctl hands its vars to Jinja2 as environment globals, so imported macros see them too.
    env.globals.update(ctx)
    return env


def render_file(search, rel, ctx):
    return env_for(search, ctx).get_template(rel).render()


def main():
    root, out, kustomize = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(root, ".kluctl.yaml")) as f:
        project = yaml.safe_load(f)
    target = dict(project["targets"][0])
    ctx = {"args": dict(target.get("args") or {}), "target": target}
    ctx.update(yaml.safe_load(render_file([root], "vars.yaml", ctx)))
    apps_dir = os.path.join(root, "apps")
    items = yaml.safe_load(render_file([apps_dir, root], "deployment.yaml", ctx))["deployments"]
    total = 0
    for item in items:
        src = os.path.join(apps_dir, item["path"])
        dst = os.path.join(out, item["path"])
        os.makedirs(dst, exist_ok=True)
        search = [src, apps_dir, root]
        files = sorted(os.listdir(src))
        for name in files:
            with open(os.path.join(dst, name), "w") as f:
                f.write(render_file(search, name, ctx))
        resources = [n for n in files if n.endswith((".yaml", ".yml"))]
        with open(os.path.join(dst, "kustomization.yaml"), "w") as f:
            yaml.safe_dump({"resources": resources}, f)
        built = subprocess.run(
            [kustomize, "build", "--load-restrictor", "LoadRestrictionsNone", dst],
            check=True, capture_output=True, text=True,
        ).stdout
        total += sum(1 for d in yaml.safe_load_all(built) if d)
    print(total)


if __name__ == "__main__":
    main()
