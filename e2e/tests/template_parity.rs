//! Parity of our template engine with real Python Jinja2 (the engine Kluctl embeds).
//!
//! Every case in `e2e/fixtures/template_parity/cases.json` is rendered by
//! `kluctl_engine::template` and by `driver.py` (Jinja2 3.1 + PyYAML + python-slugify
//! with Kluctl's filter semantics) in `$KG_CACHE/venv-jinja`; outputs must be byte-identical and
//! cases that fail in Python must fail here too. Needs the venv packages installed by
//! `e2e/scripts/servers.sh install` (`make e2e-up`); no running server is used.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kluctl_engine::template::{PlaceholderImages, TemplateEngine};

fn python() -> anyhow::Result<PathBuf> {
    let cache = if let Ok(c) = std::env::var("KG_CACHE") {
        PathBuf::from(c)
    } else {
        let env = e2e::Env::load()?;
        PathBuf::from(env.get("KG_CACHE")?)
    };
    let py = cache.join("venv-jinja/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import jinja2, yaml, slugify"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "{} cannot import jinja2/yaml/slugify\nhint: run 'e2e/scripts/servers.sh install' (or 'make e2e-up'), which installs Jinja2, PyYAML and python-slugify into that venv (e2e/scripts/servers.sh: install_venv_jinja)",
            py.display()
        );
    }
    Ok(py)
}

#[test]
fn templates_render_byte_identical_to_python_jinja2() -> anyhow::Result<()> {
    let dir = e2e::project_root().join("e2e/fixtures/template_parity");
    let cases_text = fs_err::read_to_string(dir.join("cases.json"))?;
    let spec: serde_json::Value = serde_json::from_str(&cases_text)?;
    let cases = spec["cases"]
        .as_array()
        .context("cases.json has no \"cases\" list")?;
    let context = &spec["context"];

    let mut child = Command::new(python()?)
        .arg(dir.join("driver.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("failed to start the Python driver")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(cases_text.as_bytes())?;
    let out = child.wait_with_output()?;
    assert!(out.status.success(), "python driver failed");
    let expected: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    assert_eq!(expected.len(), cases.len());

    let engine = TemplateEngine::new(&dir, Arc::new(PlaceholderImages));
    let mut mismatches = Vec::new();
    for (case, want) in cases.iter().zip(&expected) {
        let name = case["name"].as_str().unwrap_or_default();
        let got = engine.render_string(name, case["template"].as_str().unwrap_or_default(), context);
        match (got, want.get("result").and_then(serde_json::Value::as_str)) {
            (Ok(g), Some(w)) if g == w => {}
            (Err(_), None) => {}
            (Ok(g), Some(w)) => mismatches.push(format!("{name}:\n  python: {w:?}\n  ours:   {g:?}")),
            (Ok(g), None) => mismatches.push(format!(
                "{name}: python failed ({}) but ours rendered {g:?}",
                want["error"]
            )),
            (Err(e), Some(w)) => {
                mismatches.push(format!("{name}: ours failed ({e}) but python rendered {w:?}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    Ok(())
}
