//! Generated differential test of the kustomize step's native path (issue 6): builds 200 seeded,
//! generated kustomizations whose objects reference each other (RoleBinding subjects and roleRefs,
//! pod references to ConfigMaps, Secrets, ServiceAccounts and claims, webhook and APIService
//! services, Ingress backends, HPA targets) under combinations of `namespace`, `namePrefix`,
//! `nameSuffix`, `commonLabels`, generators and a nested base. Whenever the native path accepts a
//! kustomization, its objects must equal, in order, what the pinned kustomize 5.8.1 binary
//! (`E2E_KUSTOMIZE` from the e2e env) prints; builds the binary rejects must be declined. Needs only
//! the binaries installed by `make e2e-up`, not the cluster.

use e2e::Env;
use kluctl_engine::Object;
use kluctl_engine::kustomize::{BuildPath, KustomizeBinary, Kustomizer};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

/// Number of generated kustomizations.
const CASES: u64 = 200;

/// Names the generated objects and references draw from, few enough that references often hit.
const NAMES: [&str; 3] = ["app", "default", "web"];

/// Namespaces written into objects and references (`None`: no field).
const NAMESPACES: [Option<&str>; 3] = [None, Some("old"), Some("other")];

fn binary() -> anyhow::Result<KustomizeBinary> {
    let env = Env::load()?;
    let bin = KustomizeBinary::new(env.get("E2E_KUSTOMIZE")?);
    bin.check()?;
    Ok(bin)
}

/// SplitMix64: a small deterministic generator, so a failing case can be rebuilt from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn name(&mut self) -> &'static str {
        self.pick(&NAMES)
    }

    fn namespace(&mut self) -> Option<&'static str> {
        self.pick(&NAMESPACES)
    }
}

fn meta(name: &str, ns: Option<&str>) -> Value {
    match ns {
        Some(ns) => json!({"name": name, "namespace": ns}),
        None => json!({"name": name}),
    }
}

/// A `{name, namespace?}` reference (subjects add `kind`).
fn reference(rng: &mut Rng) -> Value {
    meta(rng.name(), rng.namespace())
}

/// A pod spec referring to ConfigMaps, Secrets, a ServiceAccount and a claim of the pool.
fn pod_spec(rng: &mut Rng) -> Value {
    let mut container = json!({"name": "c", "image": "busybox"});
    if rng.chance(50) {
        container["envFrom"] = json!([{"configMapRef": {"name": rng.name()}}]);
    }
    if rng.chance(40) {
        container["env"] =
            json!([{"name": "S", "valueFrom": {"secretKeyRef": {"name": rng.name(), "key": "k"}}}]);
    }
    let mut spec = json!({"containers": [container]});
    if rng.chance(50) {
        spec["serviceAccountName"] = json!(rng.name());
    }
    let mut volumes = Vec::new();
    if rng.chance(30) {
        volumes.push(json!({"name": "cm", "configMap": {"name": rng.name()}}));
    }
    if rng.chance(25) {
        volumes.push(json!({"name": "sec", "secret": {"secretName": rng.name()}}));
    }
    if rng.chance(25) {
        volumes.push(json!({"name": "pvc", "persistentVolumeClaim": {"claimName": rng.name()}}));
    }
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes);
    }
    spec
}

fn subjects(rng: &mut Rng) -> Value {
    let n = 1 + rng.below(3);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut s = reference(rng);
        s["kind"] = json!(rng.pick(&["ServiceAccount", "ServiceAccount", "User", "Group"]));
        out.push(s);
    }
    // A subject kustomize cannot read as a reference (no name): rare, and an error in the binary.
    if rng.chance(3) {
        out.push(json!({"kind": "User"}));
    }
    Value::Array(out)
}

/// One generated object; objects of different kinds refer to each other through the name pool.
fn object(rng: &mut Rng) -> Value {
    let name = rng.name();
    let ns = rng.namespace();
    let m = meta(name, ns);
    match rng.below(16) {
        0 => json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": m}),
        1 => json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": {"k": "v"}}),
        2 => json!({"apiVersion": "v1", "kind": "Secret", "metadata": m, "stringData": {"k": "v"}}),
        3 => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": m,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": rng.pick(&["Role", "ClusterRole"]), "name": rng.name()},
            "subjects": subjects(rng)}),
        4 => {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rng.name()},
            "subjects": subjects(rng)})
        }
        5 => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": m,
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": [rng.name()]}]}),
        6 => {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [rng.name()]}]})
        }
        7 => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": m,
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(rng)}}}),
        8 => json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": m,
            "spec": {"serviceName": rng.name(), "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(rng)}}}),
        9 => json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": m,
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec(rng)}}}}}),
        10 => json!({"apiVersion": "v1", "kind": "Service", "metadata": m,
            "spec": {"selector": {"app": rng.name()}, "ports": [{"port": 80}]}}),
        11 => json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": m,
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        12 => json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": m,
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": rng.name()}, "maxReplicas": 3}}),
        13 => {
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name},
            "webhooks": [{"name": "v.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                          "clientConfig": {"service": reference(rng)}}]})
        }
        14 => {
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": format!("v1.{name}.example.com")},
            "spec": {"group": format!("{name}.example.com"), "version": "v1", "service": reference(rng)}})
        }
        _ => json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": m,
            "spec": {"defaultBackend": {"service": {"name": rng.name(), "port": {"number": 80}}},
                     "tls": [{"secretName": rng.name()}]}}),
    }
}

/// Kustomize's identity of an object before transformation; the generator keeps them unique.
fn id(o: &Value) -> String {
    format!(
        "{}/{}/{}/{}",
        o["apiVersion"], o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]
    )
}

/// Writes `objects` over one to three files and returns their names.
fn write_objects(dir: &Path, objects: &[Value], rng: &mut Rng) -> anyhow::Result<Vec<String>> {
    let files = 1 + rng.below(3).min(objects.len().saturating_sub(1));
    let mut texts = vec![String::new(); files];
    for (i, o) in objects.iter().enumerate() {
        let text = &mut texts[i % files];
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(o)?);
    }
    let mut names = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        let name = format!("objects-{i}.yaml");
        fs_err::write(dir.join(&name), text)?;
        names.push(name);
    }
    Ok(names)
}

/// Generated objects with unique ids.
fn objects(rng: &mut Rng, seen: &mut HashSet<String>) -> Vec<Value> {
    let n = 2 + rng.below(6);
    let mut out = Vec::new();
    for _ in 0..n {
        let o = object(rng);
        if seen.insert(id(&o)) {
            out.push(o);
        }
    }
    out
}

/// The kustomization fields of one generated level; `top` adds the renaming transformers.
fn kustomization(rng: &mut Rng, resources: &[String], top: bool) -> Value {
    let mut k = json!({"resources": resources});
    if rng.chance(if top { 60 } else { 30 }) {
        k["namespace"] = json!(rng.pick(&["new", "old", "default"]));
    }
    if top {
        if rng.chance(12) {
            k["namePrefix"] = json!("p-");
        }
        if rng.chance(8) {
            k["nameSuffix"] = json!("-s");
        }
        if rng.chance(10) {
            k["commonLabels"] = json!({"team": "a"});
        }
        if rng.chance(10) {
            k["configMapGenerator"] = json!([{"name": rng.name(), "literals": ["k=v"]}]);
        }
        if rng.chance(6) {
            k["secretGenerator"] = json!([{"name": rng.name(), "literals": ["k=v"]}]);
        }
    }
    k
}

/// Writes generated case `seed` into `dir`.
fn generate_case(dir: &Path, seed: u64) -> anyhow::Result<()> {
    let mut rng = Rng(seed);
    let mut ids = HashSet::new();
    let mut resources = Vec::new();
    if rng.chance(30) {
        let base = dir.join("base");
        fs_err::create_dir_all(&base)?;
        let objs = objects(&mut rng, &mut ids);
        let files = write_objects(&base, &objs, &mut rng)?;
        let k = kustomization(&mut rng, &files, false);
        fs_err::write(base.join("kustomization.yaml"), serde_saphyr::to_string(&k)?)?;
        resources.push("base".to_string());
    }
    let objs = objects(&mut rng, &mut ids);
    resources.extend(write_objects(dir, &objs, &mut rng)?);
    let k = kustomization(&mut rng, &resources, true);
    fs_err::write(dir.join("kustomization.yaml"), serde_saphyr::to_string(&k)?)?;
    Ok(())
}

/// Every file of a generated case, for the failure message.
fn describe_case(dir: &Path) -> String {
    let mut out = String::new();
    for sub in ["", "base"] {
        let Ok(entries) = fs_err::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths.iter().filter(|p| p.is_file()) {
            let text = fs_err::read_to_string(p).unwrap_or_default();
            let _ = write!(
                out,
                "==> {sub}/{}\n{text}",
                p.file_name().unwrap_or_default().to_string_lossy()
            );
        }
    }
    out
}

fn names(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}/{}",
                o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]
            )
        })
        .collect()
}

#[test]
fn native_path_matches_kustomize_binary_on_generated_cross_referencing_kustomizations() -> anyhow::Result<()>
{
    let bin = binary()?;
    let tmp = tempfile::tempdir()?;
    let (mut accepted, mut declined, mut declined_for_references, mut rejected_by_binary) = (0, 0, 0, 0);
    for seed in 0..CASES {
        let dir = tmp.path().join(format!("case-{seed}"));
        fs_err::create_dir_all(&dir)?;
        generate_case(&dir, seed)?;
        let reference = bin.build(&dir);
        match Kustomizer::build_native(&dir) {
            Ok(native) => {
                accepted += 1;
                let reference = reference.map_err(|e| {
                    anyhow::anyhow!(
                        "case {seed}: native accepted what kustomize rejects: {e}\n{}",
                        describe_case(&dir)
                    )
                })?;
                assert_eq!(
                    names(&native),
                    names(&reference),
                    "case {seed}: objects or order differ\n{}",
                    describe_case(&dir)
                );
                for (n, r) in native.iter().zip(&reference) {
                    assert_eq!(n, r, "case {seed}: object differs\n{}", describe_case(&dir));
                }
            }
            Err(why) => {
                declined += 1;
                if why.contains("name-reference") {
                    declined_for_references += 1;
                }
                if reference.is_err() {
                    rejected_by_binary += 1;
                }
            }
        }
    }
    println!(
        "e2e: {CASES} generated kustomizations: {accepted} native and identical, {declined} declined ({declined_for_references} for name references, {rejected_by_binary} rejected by kustomize too)"
    );
    // Both sides must be exercised, or the test could pass by declining (or accepting) everything.
    assert!(
        accepted >= CASES / 5,
        "only {accepted} of {CASES} cases were native"
    );
    assert!(
        declined >= CASES / 5,
        "only {declined} of {CASES} cases were declined"
    );
    assert!(
        declined_for_references > 0,
        "no case was declined for a name reference"
    );
    Ok(())
}

/// Issue 6: with `namespace:` kustomize rewrites the namespace of a RoleBinding subject naming a
/// ServiceAccount of the same build; the native path used to keep the old one.
#[test]
fn role_binding_subject_follows_its_service_account_into_the_namespace() -> anyhow::Result<()> {
    let k = Kustomizer::new(binary()?);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    fs_err::write(
        dir.join("kustomization.yaml"),
        "namespace: new\nresources: [rbac.yaml]\n",
    )?;
    fs_err::write(
        dir.join("rbac.yaml"),
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app, namespace: old}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: app}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: app}\nsubjects:\n- {kind: ServiceAccount, name: app, namespace: old}\n- {kind: ServiceAccount, name: elsewhere, namespace: old}\n",
    )?;
    let (objects, path) = k.build_traced(dir)?;
    assert!(
        matches!(&path, BuildPath::Binary(why) if why.contains("RoleBinding 'app' field 'subjects' refers to ServiceAccount 'app'")),
        "{path:?}"
    );
    assert_eq!(
        objects[1]["subjects"][0]["namespace"], "new",
        "subject follows the ServiceAccount"
    );
    assert_eq!(
        objects[1]["subjects"][1]["namespace"], "old",
        "subject outside the build is kept"
    );
    assert_eq!(objects[0]["metadata"]["namespace"], "new");
    Ok(())
}
