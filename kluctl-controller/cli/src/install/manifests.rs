//! The installation manifests: the YAML files of `config/` embedded at build time and assembled
//! here the way `config/default` (and the opt-in `config/legacy` and `config/webui`) assemble
//! them, for the namespace chosen. Pure: nothing is fetched or read at run time.
//!
//! ```text
//! config/crd/bases/*.yaml ─► CRDs (the legacy flux.kluctl.io one only with --legacy)
//! config/rbac/*.yaml      ─┐  flux-system and kluctl-system ─► NS (Namespace, metadata, subjects)
//! config/manager/*.yaml   ─┤► cluster-scoped names and kluctl-results' Role/RoleBinding get
//! config/webui/*.yaml     ─┘  "-NS" appended when NS is not kluctl-system (two installs don't
//!   (only with --webui)       clash)
//! every object            ─► labels part-of, component, version, instance (pod templates too)
//! ```

use anyhow::Context as _;
use serde_json::{Map, Value, json};

use crate::flags::install::DEFAULT_NAMESPACE;

/// `app.kubernetes.io/part-of` of every installed object; `check` and `uninstall` select by it.
pub const PART_OF: &str = "kluctl-gitops";

/// The legacy KluctlDeployment CRD, installed only on request.
pub const LEGACY_CRD: &str = "kluctldeployments.flux.kluctl.io";

/// Where command results are kept (the kluctl-controller's `--command-result-namespace`).
const RESULTS_NAMESPACE: &str = "kluctl-results";

/// The namespace config/rbac puts source-controller's ServiceAccount in; the installation runs
/// both controllers in one namespace.
const FLUX_NAMESPACE: &str = "flux-system";

/// (file, text) of the CRDs.
const CRD_FILES: &[(&str, &str)] = &[
    (
        "source.toolkit.fluxcd.io_gitrepositories.yaml",
        include_str!("../../../../config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml"),
    ),
    (
        "source.toolkit.fluxcd.io_buckets.yaml",
        include_str!("../../../../config/crd/bases/source.toolkit.fluxcd.io_buckets.yaml"),
    ),
    (
        "gitops.kluctl.io_kluctldeployments.yaml",
        include_str!("../../../../config/crd/bases/gitops.kluctl.io_kluctldeployments.yaml"),
    ),
    (
        "flux.kluctl.io_kluctldeployments.yaml",
        include_str!("../../../../config/crd/bases/flux.kluctl.io_kluctldeployments.yaml"),
    ),
    (
        "notification.toolkit.fluxcd.io_alerts.yaml",
        include_str!("../../../../config/crd/bases/notification.toolkit.fluxcd.io_alerts.yaml"),
    ),
    (
        "notification.toolkit.fluxcd.io_providers.yaml",
        include_str!("../../../../config/crd/bases/notification.toolkit.fluxcd.io_providers.yaml"),
    ),
    (
        "notification.toolkit.fluxcd.io_receivers.yaml",
        include_str!("../../../../config/crd/bases/notification.toolkit.fluxcd.io_receivers.yaml"),
    ),
];

/// (file, component label, text) of everything else, in apply order.
const OTHER_FILES: &[(&str, &str, &str)] = &[
    (
        "rbac/namespaces.yaml",
        "namespaces",
        include_str!("../../../../config/rbac/namespaces.yaml"),
    ),
    (
        "rbac/source-controller.yaml",
        "source-controller",
        include_str!("../../../../config/rbac/source-controller.yaml"),
    ),
    (
        "rbac/kluctl-controller.yaml",
        "kluctl-controller",
        include_str!("../../../../config/rbac/kluctl-controller.yaml"),
    ),
    (
        "manager/source-controller.yaml",
        "source-controller",
        include_str!("../../../../config/manager/source-controller.yaml"),
    ),
    (
        "manager/kluctl-controller.yaml",
        "kluctl-controller",
        include_str!("../../../../config/manager/kluctl-controller.yaml"),
    ),
];

/// (file, component label, text) of the web UI's objects (`config/webui`), after the others, only
/// with `--webui`. They need the namespaces of `rbac/namespaces.yaml`.
const WEBUI_FILES: &[(&str, &str, &str)] = &[
    (
        "webui/rbac.yaml",
        "kluctl-webui",
        include_str!("../../../../config/webui/rbac.yaml"),
    ),
    (
        "webui/deployment.yaml",
        "kluctl-webui",
        include_str!("../../../../config/webui/deployment.yaml"),
    ),
];

/// What to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The namespace both controllers run in.
    pub namespace: String,
    /// Include the legacy flux.kluctl.io CRD.
    pub legacy: bool,
    /// The controllers reconcile every namespace (else only their own).
    pub watch_all_namespaces: bool,
    /// Include the web UI (`config/webui`: its Deployment, Service, ServiceAccount and RBAC).
    pub webui: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            legacy: false,
            watch_all_namespaces: true,
            webui: false,
        }
    }
}

/// The assembled objects: CRDs (applied and waited for first), then the rest in apply order
/// (Namespaces, RBAC, Deployments and Services).
#[derive(Debug, Clone)]
pub struct Manifests {
    /// The CustomResourceDefinitions.
    pub crds: Vec<Value>,
    /// Everything else.
    pub objects: Vec<Value>,
}

impl Manifests {
    /// CRDs first, then the rest.
    pub fn all(&self) -> impl Iterator<Item = &Value> {
        self.crds.iter().chain(&self.objects)
    }

    /// The YAML stream `kluctl install --export` prints: a header, then one document per object.
    ///
    /// # Errors
    /// An object that cannot be written as YAML (not expected: they were read from YAML).
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        let mut out = format!(
            "# kluctl-gitops {} installation manifests, generated by `kluctl install --export`.\n",
            env!("CARGO_PKG_VERSION")
        );
        for o in self.all() {
            out.push_str("---\n");
            out.push_str(
                &serde_saphyr::to_string(o)
                    .with_context(|| format!("failed to write {} as YAML", describe(o)))?,
            );
        }
        Ok(out)
    }
}

impl Manifests {
    /// Removes from the CRDs what servers before 1.25 refuse under server-side apply: the CEL
    /// validation rules (`x-kubernetes-validations`, unknown to 1.20 and off by default until
    /// 1.25) and empty-string defaults (1.20 reads `default: ""` as null and rejects it; the
    /// field is then simply left unset). Returns how many were removed.
    pub fn strip_for_old_servers(&mut self) -> usize {
        fn strip(v: &mut Value) -> usize {
            match v {
                Value::Object(m) => {
                    let mut here = usize::from(m.remove("x-kubernetes-validations").is_some());
                    if m.get("default") == Some(&json!("")) {
                        m.remove("default");
                        here += 1;
                    }
                    here + m.values_mut().map(strip).sum::<usize>()
                }
                Value::Array(a) => a.iter_mut().map(strip).sum(),
                _ => 0,
            }
        }
        self.crds.iter_mut().map(strip).sum()
    }
}

/// The oldest Kubernetes minor version (1.x) that validates CEL rules by default.
pub const CEL_MINOR: u32 = 25;

/// The minor version of a `major.minor` pair when the major is 1 (`"20+"` as some providers
/// report it counts as 20); a later major counts as newer than every 1.x.
pub fn parse_minor(major: &str, minor: &str) -> Option<u32> {
    let digits = |s: &str| s.trim_end_matches('+').parse::<u32>().ok();
    match digits(major)? {
        1 => digits(minor),
        0 => Some(0),
        _ => Some(u32::MAX),
    }
}

/// The minor version of `1.20`, `v1.20.2`, `1.33+`.
///
/// # Errors
/// Not a `major.minor[.patch]` version.
pub fn parse_version(v: &str) -> anyhow::Result<u32> {
    let mut parts = v.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    parse_minor(major, minor)
        .with_context(|| format!("invalid Kubernetes version '{v}': expected MAJOR.MINOR, e.g. 1.20"))
}

/// Assembles the manifests for `opts`.
///
/// # Errors
/// An embedded file that does not parse (a build of a broken `config/`), or an invalid namespace.
pub fn assemble(opts: &Options) -> anyhow::Result<Manifests> {
    check_namespace(&opts.namespace)?;
    let labels = |component: &str| {
        json!({
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/version": env!("CARGO_PKG_VERSION"),
            "app.kubernetes.io/instance": opts.namespace,
        })
    };
    let mut crds = Vec::new();
    for (file, text) in CRD_FILES {
        for mut o in parse(file, text)? {
            if !opts.legacy && name(&o) == LEGACY_CRD {
                continue;
            }
            add_labels(&mut o, &labels("crds"));
            crds.push(o);
        }
    }
    let mut objects = Vec::new();
    let webui: &[_] = if opts.webui { WEBUI_FILES } else { &[] };
    for (file, component, text) in OTHER_FILES.iter().chain(webui) {
        for mut o in parse(file, text)? {
            if !relocate(&mut o, &opts.namespace) {
                continue;
            }
            add_labels(&mut o, &labels(component));
            if !opts.watch_all_namespaces {
                watch_own_namespace(&mut o);
            }
            objects.push(o);
        }
    }
    Ok(Manifests { crds, objects })
}

/// A namespace name Kubernetes accepts (RFC 1123 label), checked before anything is applied.
fn check_namespace(ns: &str) -> anyhow::Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    anyhow::ensure!(
        ok,
        "invalid --namespace '{ns}': a namespace is at most 63 lowercase letters, digits and '-', \
         starting and ending with a letter or digit"
    );
    Ok(())
}

fn parse(file: &str, text: &str) -> anyhow::Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .with_context(|| format!("failed to parse the embedded config/{file}"))?;
    Ok(docs.into_iter().filter(Value::is_object).collect())
}

/// Moves `o` into `ns` (see the module docs); `false` when `o` is not installed at all (the
/// flux-system Namespace, unless `ns` is flux-system).
fn relocate(o: &mut Value, ns: &str) -> bool {
    let kind = kind(o).to_owned();
    let suffix = if ns == DEFAULT_NAMESPACE {
        String::new()
    } else {
        format!("-{ns}")
    };
    let moved = |n: &str| n == FLUX_NAMESPACE || n == DEFAULT_NAMESPACE;
    let meta = &mut o["metadata"];
    if kind == "Namespace" {
        let n = meta["name"].as_str().unwrap_or_default().to_owned();
        if n == FLUX_NAMESPACE && ns != FLUX_NAMESPACE {
            return false;
        }
        if n == DEFAULT_NAMESPACE {
            meta["name"] = json!(ns);
        }
        return true;
    }
    let in_results = meta["namespace"].as_str() == Some(RESULTS_NAMESPACE);
    if let Some(n) = meta["namespace"].as_str()
        && moved(n)
    {
        meta["namespace"] = json!(ns);
    }
    let renamed = matches!(kind.as_str(), "ClusterRole" | "ClusterRoleBinding") || in_results;
    if renamed && let Some(n) = meta["name"].as_str() {
        meta["name"] = json!(format!("{n}{suffix}"));
    }
    if let Some(subjects) = o.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            if let Some(n) = s["namespace"].as_str()
                && moved(n)
            {
                s["namespace"] = json!(ns);
            }
        }
    }
    // A binding refers to the role as renamed above.
    let role_renamed = match o["roleRef"]["kind"].as_str() {
        Some("ClusterRole") => true,
        Some("Role") => in_results,
        _ => false,
    };
    if role_renamed && let Some(n) = o["roleRef"]["name"].as_str() {
        o["roleRef"]["name"] = json!(format!("{n}{suffix}"));
    }
    true
}

/// Restricts a controller Deployment to the objects of its own namespace: source-controller's
/// `--watch-all-namespaces=false`, kluctl-controller's `--namespace` (its namespace comes from
/// the downward API in `KLUCTL_CONTROLLER_NAMESPACE`).
fn watch_own_namespace(o: &mut Value) {
    if kind(o) != "Deployment" {
        return;
    }
    let controller = name(o).to_owned();
    let Some(args) = o["spec"]["template"]["spec"]["containers"][0]["args"].as_array_mut() else {
        return;
    };
    match controller.as_str() {
        "source-controller" => {
            args.retain(|a| {
                !a.as_str()
                    .is_some_and(|a| a.starts_with("--watch-all-namespaces"))
            });
            args.push(json!("--watch-all-namespaces=false"));
        }
        "kluctl-controller" => args.push(json!("--namespace=$(KLUCTL_CONTROLLER_NAMESPACE)")),
        _ => {}
    }
}

/// Merges `labels` into the object's labels and, for a Deployment, its pod template's.
fn add_labels(o: &mut Value, labels: &Value) {
    let merge = |meta: &mut Value| {
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        let target = meta.as_object_mut().and_then(|m| {
            m.entry("labels")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
        });
        if let (Some(target), Some(labels)) = (target, labels.as_object()) {
            for (k, v) in labels {
                target.insert(k.clone(), v.clone());
            }
        }
    };
    merge(&mut o["metadata"]);
    if kind(o) == "Deployment" {
        merge(&mut o["spec"]["template"]["metadata"]);
    }
}

/// `kind` of an object ("" when missing).
pub fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of an object ("" when missing).
pub fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` of an object, for namespaced objects.
pub fn namespace(o: &Value) -> Option<&str> {
    o["metadata"]["namespace"].as_str()
}

/// `Kind ns/name` or `Kind name`, how messages name an object.
pub fn describe(o: &Value) -> String {
    match namespace(o) {
        Some(ns) => format!("{} {ns}/{}", kind(o), name(o)),
        None => format!("{} {}", kind(o), name(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(ns: &str, legacy: bool) -> Options {
        Options {
            namespace: ns.to_owned(),
            legacy,
            watch_all_namespaces: true,
            webui: false,
        }
    }

    fn with_webui(ns: &str) -> Options {
        Options {
            webui: true,
            ..opts(ns, false)
        }
    }

    fn find<'a>(m: &'a Manifests, kind_: &str, name_: &str) -> &'a Value {
        m.all()
            .find(|o| kind(o) == kind_ && name(o) == name_)
            .unwrap_or_else(|| panic!("no {kind_} {name_}"))
    }

    #[test]
    fn the_default_installation_has_every_object_labelled_and_the_crds_first() {
        let m = assemble(&Options::default()).unwrap();
        assert_eq!(m.crds.len(), 6);
        assert!(m.crds.iter().all(|o| kind(o) == "CustomResourceDefinition"));
        assert!(m.objects.iter().all(|o| kind(o) != "CustomResourceDefinition"));
        assert!(
            m.all().all(|o| name(o) != LEGACY_CRD),
            "legacy CRD only with --legacy"
        );
        for o in m.all() {
            let l = &o["metadata"]["labels"];
            assert_eq!(l["app.kubernetes.io/part-of"], PART_OF, "{}", describe(o));
            assert_eq!(
                l["app.kubernetes.io/version"],
                env!("CARGO_PKG_VERSION"),
                "{}",
                describe(o)
            );
            assert_eq!(
                l["app.kubernetes.io/instance"],
                DEFAULT_NAMESPACE,
                "{}",
                describe(o)
            );
            assert!(l["app.kubernetes.io/component"].is_string(), "{}", describe(o));
        }
        let kinds: Vec<&str> = m.objects.iter().map(kind).collect();
        assert_eq!(
            kinds.first(),
            Some(&"Namespace"),
            "namespaces before what lives in them"
        );
        let namespaces: Vec<&str> = m
            .objects
            .iter()
            .filter(|o| kind(o) == "Namespace")
            .map(name)
            .collect();
        assert_eq!(
            namespaces,
            ["kluctl-system", "kluctl-results"],
            "no flux-system namespace"
        );
        for (kind_, name_, component) in [
            ("Deployment", "source-controller", "source-controller"),
            ("Deployment", "kluctl-controller", "kluctl-controller"),
            ("Service", "source-controller", "source-controller"),
            ("Service", "kluctl-controller", "kluctl-controller"),
            ("Service", "webhook-receiver", "kluctl-controller"),
            ("ServiceAccount", "source-controller", "source-controller"),
            ("ServiceAccount", "kluctl-controller", "kluctl-controller"),
        ] {
            let o = find(&m, kind_, name_);
            assert_eq!(namespace(o), Some(DEFAULT_NAMESPACE), "{kind_} {name_}");
            assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/component"], component);
        }
        let d = find(&m, "Deployment", "kluctl-controller");
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"],
            PART_OF
        );
        let crb = find(&m, "ClusterRoleBinding", "kluctl-gitops:source-controller");
        assert_eq!(crb["subjects"][0]["namespace"], DEFAULT_NAMESPACE);
    }

    #[test]
    fn cel_rules_and_empty_defaults_are_stripped_for_old_servers() {
        let mut m = assemble(&Options::default()).unwrap();
        assert!(m.to_yaml().unwrap().contains("x-kubernetes-validations"));
        assert!(
            m.to_yaml().unwrap().contains("default: ''") || m.to_yaml().unwrap().contains("default: \"\"")
        );
        assert!(m.strip_for_old_servers() > 0);
        let yaml = m.to_yaml().unwrap();
        assert!(!yaml.contains("x-kubernetes-validations"));
        assert!(!yaml.contains("default: ''") && !yaml.contains("default: \"\""));
        assert!(yaml.contains("default: false"), "other defaults stay");
        assert_eq!(m.strip_for_old_servers(), 0);
        assert_eq!(parse_version("v1.20.2").unwrap(), 20);
        assert_eq!(parse_version("1.33").unwrap(), 33);
        assert_eq!(parse_minor("1", "33+"), Some(33));
        assert!(parse_minor("2", "0").unwrap() >= CEL_MINOR);
        assert!(parse_version("one").is_err());
    }

    #[test]
    fn the_legacy_crd_comes_only_with_legacy() {
        let m = assemble(&opts(DEFAULT_NAMESPACE, true)).unwrap();
        assert_eq!(m.crds.len(), 7);
        find(&m, "CustomResourceDefinition", LEGACY_CRD);
    }

    #[test]
    fn another_namespace_moves_everything_and_renames_what_is_shared() {
        let m = assemble(&with_webui("e2e-inst")).unwrap();
        let namespaces: Vec<&str> = m
            .objects
            .iter()
            .filter(|o| kind(o) == "Namespace")
            .map(name)
            .collect();
        assert_eq!(namespaces, ["e2e-inst", "kluctl-results"]);
        for o in &m.objects {
            let ns = namespace(o);
            assert!(
                ns.is_none() || ns == Some("e2e-inst") || ns == Some(RESULTS_NAMESPACE),
                "{}",
                describe(o)
            );
            assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/instance"], "e2e-inst");
            for s in o["subjects"].as_array().into_iter().flatten() {
                assert_eq!(s["namespace"], "e2e-inst", "{}", describe(o));
            }
            if matches!(kind(o), "ClusterRole" | "ClusterRoleBinding") || ns == Some(RESULTS_NAMESPACE) {
                assert!(name(o).ends_with("-e2e-inst"), "{}", describe(o));
            }
            if let Some(r) = o["roleRef"]["name"].as_str() {
                let role = m
                    .objects
                    .iter()
                    .find(|x| kind(x) == o["roleRef"]["kind"] && name(x) == r)
                    .unwrap_or_else(|| panic!("{} refers to a missing role {r}", describe(o)));
                if kind(role) == "Role" {
                    assert_eq!(namespace(role), namespace(o), "{}", describe(o));
                }
            }
        }
        find(&m, "ClusterRole", "kluctl-gitops:kluctl-controller-e2e-inst");
        find(&m, "RoleBinding", "kluctl-controller-results-e2e-inst");
        assert!(
            assemble(&opts("Bad_NS", false))
                .unwrap_err()
                .to_string()
                .contains("invalid --namespace 'Bad_NS'")
        );
    }

    #[test]
    fn the_deployments_run_non_root_on_a_read_only_filesystem() {
        let m = assemble(&with_webui(DEFAULT_NAMESPACE)).unwrap();
        for name_ in ["source-controller", "kluctl-controller", "kluctl-webui"] {
            let d = find(&m, "Deployment", name_);
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name_}");
            assert_eq!(pod["serviceAccountName"], name_);
            let volumes: Vec<&str> = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap())
                .collect();
            for c in pod["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                assert_eq!(sc["runAsNonRoot"], true, "{name_}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{name_}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{name_}");
                assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name_}");
                assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name_}");
                assert!(c["resources"]["limits"]["memory"].is_string(), "{name_}");
                assert!(c["readinessProbe"]["httpGet"].is_object(), "{name_}");
                let mounts: Vec<&str> = c["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["mountPath"].as_str().unwrap())
                    .collect();
                assert!(mounts.contains(&"/tmp"), "{name_}: {mounts:?}");
                for v in c["volumeMounts"].as_array().unwrap() {
                    assert!(volumes.contains(&v["name"].as_str().unwrap()), "{name_}");
                }
            }
        }
        let sc = find(&m, "Deployment", "source-controller");
        let args = sc["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(
            args.contains("--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local."),
            "{args}"
        );
        assert!(
            args.contains("--events-addr=http://kluctl-controller.$(RUNTIME_NAMESPACE).svc.cluster.local./"),
            "{args}"
        );
        let own = assemble(&Options {
            watch_all_namespaces: false,
            ..Options::default()
        })
        .unwrap();
        let args = |m: &Manifests, d: &str| {
            find(m, "Deployment", d)["spec"]["template"]["spec"]["containers"][0]["args"].clone()
        };
        assert!(
            args(&m, "source-controller")
                .to_string()
                .contains("--watch-all-namespaces=true")
        );
        let sc_args = args(&own, "source-controller").to_string();
        assert!(
            sc_args.contains("--watch-all-namespaces=false") && !sc_args.contains("=true"),
            "{sc_args}"
        );
        assert!(!args(&m, "kluctl-controller").to_string().contains("--namespace="));
        assert!(
            args(&own, "kluctl-controller")
                .to_string()
                .contains("--namespace=$(KLUCTL_CONTROLLER_NAMESPACE)")
        );
        let svc = find(&m, "Service", "webhook-receiver");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-webhook");
    }

    #[test]
    fn the_webui_comes_only_with_webui_labelled_in_the_chosen_namespace() {
        let without = assemble(&opts("e2e-inst", false)).unwrap();
        let m = assemble(&with_webui("e2e-inst")).unwrap();
        let component = |o: &Value| o["metadata"]["labels"]["app.kubernetes.io/component"].clone();
        assert!(
            without
                .all()
                .all(|o| component(o) != "kluctl-webui" && !name(o).contains("webui")),
            "the web UI only with --webui"
        );
        assert_eq!(m.crds, without.crds);
        // The web UI's objects come last, after the namespaces they live in.
        let (others, webui) = m.objects.split_at(without.objects.len());
        assert_eq!(others, &without.objects[..]);
        let described: Vec<String> = webui.iter().map(describe).collect();
        assert_eq!(
            described,
            [
                "ServiceAccount e2e-inst/kluctl-webui",
                "ClusterRole kluctl-gitops:kluctl-webui-e2e-inst",
                "ClusterRoleBinding kluctl-gitops:kluctl-webui-e2e-inst",
                "Role kluctl-results/kluctl-webui-results-e2e-inst",
                "RoleBinding kluctl-results/kluctl-webui-results-e2e-inst",
                "Role e2e-inst/kluctl-webui-auth",
                "RoleBinding e2e-inst/kluctl-webui-auth",
                "Role e2e-inst/kluctl-webui-logs",
                "RoleBinding e2e-inst/kluctl-webui-logs",
                "Deployment e2e-inst/kluctl-webui",
                "Service e2e-inst/kluctl-webui",
            ],
            "no Secret: users create webui-secret themselves"
        );
        for o in webui {
            let l = &o["metadata"]["labels"];
            assert_eq!(l["app.kubernetes.io/part-of"], PART_OF, "{}", describe(o));
            assert_eq!(
                l["app.kubernetes.io/component"],
                "kluctl-webui",
                "{}",
                describe(o)
            );
            assert_eq!(l["app.kubernetes.io/instance"], "e2e-inst", "{}", describe(o));
            assert_eq!(l["app.kubernetes.io/version"], env!("CARGO_PKG_VERSION"));
            for s in o["subjects"].as_array().into_iter().flatten() {
                assert_eq!(
                    s,
                    &json!({"kind": "ServiceAccount", "name": "kluctl-webui", "namespace": "e2e-inst"})
                );
            }
        }
        let rules = |kind_: &str, name_: &str| find(&m, kind_, name_)["rules"].clone();
        assert_eq!(
            rules("ClusterRole", "kluctl-gitops:kluctl-webui-e2e-inst"),
            json!([{"apiGroups": ["gitops.kluctl.io"], "resources": ["kluctldeployments"],
                    "verbs": ["get", "list", "watch", "patch"]}])
        );
        assert_eq!(
            rules("Role", "kluctl-webui-results-e2e-inst"),
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}])
        );
        assert_eq!(
            rules("Role", "kluctl-webui-auth"),
            json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["webui-secret"],
                    "verbs": ["get"]}])
        );
        assert_eq!(
            rules("Role", "kluctl-webui-logs"),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                   {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
            "the controller's logs: its pods, in the installation's namespace only"
        );
        let default = assemble(&with_webui(DEFAULT_NAMESPACE)).unwrap();
        find(&default, "ClusterRoleBinding", "kluctl-gitops:kluctl-webui");
        find(&default, "RoleBinding", "kluctl-webui-results");
    }

    #[test]
    fn the_webui_serves_port_80_reading_its_passwords_in_its_own_namespace() {
        let m = assemble(&with_webui("e2e-inst")).unwrap();
        let d = find(&m, "Deployment", "kluctl-webui");
        let pod = &d["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"]["app.kubernetes.io/component"],
            "kluctl-webui"
        );
        assert_eq!(
            pod["metadata"]["labels"]["app.kubernetes.io/instance"],
            "e2e-inst"
        );
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["/usr/local/bin/kluctl"]));
        assert_eq!(
            c["args"],
            json!([
                "webui",
                "run",
                "--in-cluster",
                "--host",
                "0.0.0.0",
                "--port",
                "8080",
                "--auth-secret-namespace=$(KLUCTL_WEBUI_NAMESPACE)",
                "--controller-namespace=$(KLUCTL_WEBUI_NAMESPACE)"
            ]),
            "the password Secret and the controller's logs are read from the installation's namespace"
        );
        assert_eq!(
            c["env"][0],
            json!({"name": "KLUCTL_WEBUI_NAMESPACE",
                   "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                c[probe]["httpGet"],
                json!({"path": "/api/whoami", "port": "http"})
            );
        }
        assert_eq!(c["ports"][0]["containerPort"], 8080);
        let svc = find(&m, "Service", "kluctl-webui");
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}])
        );
        assert_eq!(svc["spec"]["selector"]["app"], pod["metadata"]["labels"]["app"]);
        let own = assemble(&Options {
            watch_all_namespaces: false,
            ..with_webui("e2e-inst")
        })
        .unwrap();
        assert_eq!(
            find(&own, "Deployment", "kluctl-webui"),
            d,
            "the web UI has no namespace restriction"
        );
    }

    #[test]
    fn the_export_is_a_yaml_stream_that_parses_back_crds_first() {
        let m = assemble(&opts("other", true)).unwrap();
        let text = m.to_yaml().unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let docs: Vec<Value> = docs.into_iter().filter(Value::is_object).collect();
        assert_eq!(docs.len(), m.crds.len() + m.objects.len());
        assert!(
            docs[..m.crds.len()]
                .iter()
                .all(|o| kind(o) == "CustomResourceDefinition")
        );
        assert_eq!(docs, m.all().cloned().collect::<Vec<_>>());
    }
}
