//! The `kluctl` binary as a user meets it when something is wrong: usage errors (exit status 2,
//! before any work), failed commands (exit status 1, the error count, the first error with its
//! object and a `hint:` on stderr, also when `-o` writes the result to a file), and the outputs
//! of `list-targets`.
//!
//! Needs the `kluctl` binary (`cargo build -p kluctl --bin kluctl`) and the cluster of
//! `make e2e-up`.

use std::process::Output;

use e2e::{DeleteOnDrop, Env, run_kluctl, unique_name as unique};

/// A project with target `test` (discriminator `disc-<ns>`) deploying `items` of namespace
/// `ns`, which it creates first.
fn project(ns: &str, items: &[(&str, String)]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("kluctl-cli-").tempdir()?;
    let mut files = vec![
        (
            ".kluctl.yaml".to_owned(),
            format!("discriminator: disc-{ns}\ntargets:\n  - name: test\n  - name: other\n"),
        ),
        (
            "deployment.yaml".to_owned(),
            "deployments:\n  - path: app\n".to_owned(),
        ),
        (
            "app/0-ns.yaml".to_owned(),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        ),
    ];
    files.extend(items.iter().map(|(p, c)| (format!("app/{p}"), c.clone())));
    for (path, content) in files {
        let p = dir.path().join(path);
        if let Some(parent) = p.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(p, content)?;
    }
    Ok(dir)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn namespace_exists(env: &Env, ns: &str) -> bool {
    env.kubectl(&["get", "namespace", ns, "-o", "name"]).is_ok()
}

#[test]
fn no_command_prints_the_help_with_the_exit_codes_and_exits_2() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = run_kluctl(dir.path(), &[], &[])?;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("Usage: kluctl <COMMAND>"), "{err}");
    assert!(
        err.contains("Exit status:") && err.contains("2  usage error"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "the help of a usage error goes to stderr");
    Ok(())
}

#[test]
fn a_bad_output_format_fails_before_the_cluster_is_touched() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique("kcli-badout");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let dir = project(&ns, &[])?;
    for (args, vars) in [
        (&["deploy", "-y", "-t", "test", "-o", "xml"][..], &[][..]),
        (
            &["deploy", "-y", "-t", "test"],
            &[("KLUCTL_OUTPUT_FORMAT", "xml")],
        ),
    ] {
        let out = run_kluctl(dir.path(), args, vars)?;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {vars:?}: {err}");
        assert!(err.contains("unknown format 'xml'"), "{err}");
        assert!(out.stdout.is_empty(), "nothing was diffed or deployed");
        assert!(
            !namespace_exists(&env, &ns),
            "{args:?}: the namespace was created"
        );
    }
    Ok(())
}

/// A deploy whose Service cannot be applied: the ConfigMap goes in, the Service fails.
fn failing_project(ns: &str) -> anyhow::Result<tempfile::TempDir> {
    project(
        ns,
        &[
            (
                "cm.yaml",
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n  namespace: {ns}\ndata:\n  a: \"1\"\n"
                ),
            ),
            (
                "svc.yaml",
                format!(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: {ns}\nspec:\n  type: NoSuchType\n  ports: [{{port: 80}}]\n"
                ),
            ),
        ],
    )
}

#[test]
fn a_failed_deploy_names_the_count_the_first_error_and_a_hint_on_stderr() -> anyhow::Result<()> {
    let env = Env::load()?;
    let ns = unique("kcli-fail");
    let _cleanup = DeleteOnDrop::namespace(&env, &ns);
    let dir = failing_project(&ns)?;
    // Runs the deploy (plus `extra`), requires exit status 1 and the report on stderr:
    // the count, the first error with its object, and `hint`; returns stdout.
    let deploy_fails = |extra: &[&str], hint: &str| -> anyhow::Result<String> {
        let mut args = vec!["deploy", "-y", "-t", "test", "--write-command-result=false"];
        args.extend_from_slice(extra);
        let out = run_kluctl(dir.path(), &args, &[])?;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("error: deploy failed with 1 error\n"), "{err}");
        assert!(err.contains(&format!("  {ns}/Service/bad: ")), "{err}");
        assert!(err.contains(&format!("hint: {hint}")), "{err}");
        assert!(!err.contains("command failed"), "the old bare message: {err}");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };

    // Text on stdout: stderr says what failed and where the rest is.
    let stdout = deploy_fails(&[], "every error is listed in the result above")?;
    assert!(
        stdout.contains("Errors:") && stdout.contains(&format!("{ns}/Service/bad")),
        "{stdout}"
    );

    // The result in a file: stderr still names the failure, and the hint names the file.
    let file = dir.path().join("result.yaml");
    let arg = format!("yaml={}", file.display());
    let stdout = deploy_fails(
        &["-o", &arg],
        &format!("the full result is in '{}'", file.display()),
    )?;
    assert!(stdout.is_empty(), "{stdout}");
    let result = fs_err::read_to_string(&file)?;
    assert!(
        result.contains("errors:") && result.contains("name: bad"),
        "{result}"
    );
    assert!(
        env.kubectl(&["get", "configmap", "fine", "-n", &ns, "-o", "name"])
            .is_ok(),
        "the good object was still deployed"
    );
    Ok(())
}

#[test]
fn list_targets_gives_every_output_the_names_and_json_as_json() -> anyhow::Result<()> {
    let dir = project("kcli-unused", &[])?;
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let (a_arg, b_arg) = (a.display().to_string(), b.display().to_string());
    let out = run_kluctl(
        dir.path(),
        &["list-targets", "--only-names", "-o", &a_arg, "-o", &b_arg],
        &[],
    )?;
    assert!(out.status.success(), "{}", stderr(&out));
    // (Targets are listed sorted by name.)
    assert_eq!(fs_err::read_to_string(&a)?, "other\ntest\n");
    assert_eq!(
        fs_err::read_to_string(&b)?,
        "other\ntest\n",
        "the second -o got nothing"
    );

    let out = run_kluctl(dir.path(), &["list-targets", "--only-names", "-o", "json"], &[])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<String> = serde_json::from_slice(&out.stdout)?;
    assert_eq!(names, ["other", "test"]);

    let out = run_kluctl(dir.path(), &["list-targets", "-o", "json", "-o", "-"], &[])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout)?;
    let (json, yaml) = stdout
        .split_once("\n]\n")
        .ok_or_else(|| anyhow::anyhow!("no JSON list first: {stdout}"))?;
    let targets: serde_json::Value = serde_json::from_str(&format!("{json}\n]"))?;
    assert_eq!(targets[1]["name"], "test");
    assert!(yaml.contains("  name: test\n"), "Kluctl's YAML on '-': {yaml}");
    Ok(())
}
