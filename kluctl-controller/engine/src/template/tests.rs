//! Unit tests of the template engine: options, filters, functions, errors, search path and
//! directory rendering.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::*;

fn engine(root: &Path) -> TemplateEngine {
    TemplateEngine::new(root, Arc::new(PlaceholderImages))
}

fn render(src: &str, ctx: &serde_json::Value) -> Result<String, TemplateError> {
    engine(Path::new("/nonexistent")).render_string("inline", src, ctx)
}

/// Renders with a context whose map `args.d` is written `b` before `a`: context data reaches
/// templates with sorted keys, as in Kluctl, where vars travel from Go maps through JSON.
fn r(src: &str) -> String {
    render(
        src,
        &json!({"args": {"name": "web", "n": 3, "list": [1, 2, 3], "d": {"b": 1, "a": "x"}}}),
    )
    .unwrap()
}

fn write(root: &Path, rel: &str, content: &str) -> PathBuf {
    let p = root.join(rel);
    fs_err::create_dir_all(p.parent().unwrap()).unwrap();
    fs_err::write(&p, content).unwrap();
    p
}

#[test]
fn strings_without_braces_pass_through_with_their_trailing_newline() {
    assert_eq!(r("plain: text\n"), "plain: text\n");
    assert_eq!(r("a: {{ args.name }}\n"), "a: web");
    assert_eq!(r("a: {{ args.name }}\n\n"), "a: web\n");
}

#[test]
fn whitespace_options_match_jinja2_defaults() {
    // no trim_blocks / lstrip_blocks: the newline after a block tag and its indent stay
    assert_eq!(
        r("x:\n  {% if true %}\n  y\n  {% endif %}\nz"),
        "x:\n  \n  y\n  \nz"
    );
    assert_eq!(r("{%- if true -%}\n  a\n{%- endif %}"), "a");
}

#[test]
fn no_autoescape_even_for_html_or_yaml_names() {
    let e = engine(Path::new("/x"));
    let ctx = json!({"v": "<a href=\"x\">&</a>"});
    assert_eq!(
        e.render_string("x.html", "{{ v }}", &ctx).unwrap(),
        "<a href=\"x\">&</a>"
    );
    assert_eq!(
        e.render_string("x.yaml", "{{ v }}", &ctx).unwrap(),
        "<a href=\"x\">&</a>"
    );
}

#[test]
fn strict_undefined_names_file_line_and_variable() {
    let err = render("a: 1\nb: {{ args.missing }}\n", &json!({"args": {}})).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, TemplateError::Render { line: Some(2), .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("\"inline\"") && msg.contains("line 2") && msg.contains("args.missing"),
        "{msg}"
    );
    let err = render("{% if nope %}x{% endif %}", &json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(
        render(
            "{{ nope | default('d') }}{% if nope is defined %}x{% endif %}",
            &json!({})
        )
        .unwrap()
            == "d"
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    let err = render("a\nb\n{% if %}\n", &json!({})).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, TemplateError::Render { line: Some(3), .. }),
        "{err:?}"
    );
    assert!(msg.contains("syntax error"), "{msg}");
}

#[test]
fn values_print_like_python() {
    assert_eq!(
        r("{{ args.d }} {{ args.list }} {{ none }} {{ true }} {{ 1.0 }} {{ 1e16 }}"),
        "{'a': 'x', 'b': 1} [1, 2, 3] None True 1.0 1e+16"
    );
}

#[test]
fn loop_controls_are_enabled() {
    assert_eq!(
        r(
            "{% for i in args.list %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% if i == 3 %}{% break %}{% endif %}{% endfor %}"
        ),
        "13"
    );
}

#[test]
fn python_methods_work() {
    assert_eq!(
        r("{% for k, v in args.d.items() %}{{ k }}={{ v }};{% endfor %}"),
        "a=x;b=1;"
    );
    assert_eq!(
        r("{{ args.name.upper() }} {{ 'a,b'.split(',') }} {{ args.d.get('zz', 'dflt') }}"),
        "WEB ['a', 'b'] dflt"
    );
}

#[test]
fn b64_filters_round_trip() {
    assert_eq!(r("{{ 'hello' | b64encode }}"), "aGVsbG8=");
    assert_eq!(r("{{ 'aGVsbG8=' | b64decode }}"), "hello");
}

#[test]
fn to_json_and_to_yaml_filters_match_python() {
    assert_eq!(r("{{ args.d | to_json }}"), r#"{"a": "x", "b": 1}"#);
    assert_eq!(
        r("{{ args | to_yaml }}"),
        "d:\n  a: x\n  b: 1\nlist:\n- 1\n- 2\n- 3\nn: 3\nname: web\n"
    );
    // Dicts made inside templates keep their insertion order, as Python's do.
    assert_eq!(r("{{ {'b': 1, 'a': 2} | to_json }}"), r#"{"b": 1, "a": 2}"#);
}

#[test]
fn from_yaml_parses_documents_in_order() {
    assert_eq!(
        r("{% set x = 'b: 1\na: [1, two]\n' | from_yaml %}{{ x.a[1] }} {{ x | to_json }}"),
        r#"two {"b": 1, "a": [1, "two"]}"#
    );
}

#[test]
fn sha256_filter_supports_digest_length() {
    assert_eq!(
        r("{{ 'abc' | sha256 }}"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(r("{{ 'abc' | sha256(8) }}"), "ba7816bf");
}

#[test]
fn slugify_filter_works() {
    assert_eq!(r("{{ 'Feature/My Branch' | slugify }}"), "feature-my-branch");
}

#[test]
fn render_filter_and_function_see_variables() {
    assert_eq!(
        r("{% set y = 'Y' %}{{ render('{{ args.name }}-{{ y }}') }}|{{ '{{ args.n }}' | render }}"),
        "web-Y|3"
    );
}

#[test]
fn get_var_follows_paths_and_falls_back() {
    assert_eq!(
        r(
            "{{ get_var('args.d.a', 'no') }} {{ get_var(['args.x', 'args.list[1]'], 'no') }} {{ get_var('args.zz', 'no') }}"
        ),
        "x 2 no"
    );
}

#[test]
fn merge_dict_deep_merges_without_touching_inputs() {
    assert_eq!(
        r(
            "{% set m = merge_dict(args.d, {'a': {'z': 1}, 'c': 2}) %}{{ m | to_json }} {{ args.d | to_json }}"
        ),
        r#"{"a": {"z": 1}, "b": 1, "c": 2} {"a": "x", "b": 1}"#
    );
}

#[test]
fn update_dict_fails_with_a_hint() {
    let err = render("{{ update_dict({}, {}) }}", &json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("merge_dict"), "{err}");
}

#[test]
fn raise_fails_rendering_with_the_message() {
    let err = render("a\n{{ raise('bad input ' ~ 1) }}", &json!({})).unwrap_err();
    assert!(matches!(&err, TemplateError::Render { line: Some(2), .. }));
    assert!(err.to_string().contains("bad input 1"), "{err}");
}

#[test]
fn debug_print_renders_nothing() {
    assert_eq!(r("a{{ debug_print('x') }}b"), "ab");
}

#[test]
fn time_functions_work() {
    assert_eq!(
        r(
            "{{ time.parse_iso('2024-03-01T10:20:30+02:00') }} {{ time.parse_iso('2024-03-01T10:20:30').hour() }}"
        ),
        "2024-03-01T10:20:30+02:00 10"
    );
    assert_eq!(
        r("{{ time.parse_iso('2024-03-01T10:00:00+00:00').as_timezone('Europe/Berlin') }}"),
        "2024-03-01T11:00:00+01:00"
    );
    assert_eq!(
        r(
            "{{ time.parse_iso('2024-03-04T00:00:00').weekday() }} {{ time.second }} {{ time.minute }} {{ time.hour }}"
        ),
        "0 1000000 60000000 3600000000"
    );
    assert_eq!(
        r("{{ time.parse_iso('2024-01-01T00:00:00+00:00') < time.parse_iso('2024-01-02T00:00:00+00:00') }}"),
        "True"
    );
    let now = r("{{ time.utcnow() }}");
    assert!(now.len() >= 19 && now.as_bytes()[10] == b'T', "{now}");
}

#[test]
fn images_get_image_emits_kluctl_placeholder() {
    let out = r("{{ images.get_image('nginx') }}");
    let b64 = out
        .strip_prefix(IMAGE_PLACEHOLDER_BEGIN)
        .and_then(|s| s.strip_suffix(IMAGE_PLACEHOLDER_END))
        .unwrap();
    let json = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    assert_eq!(String::from_utf8(json).unwrap(), r#"{"image": "nginx"}"#);
}

#[test]
fn images_use_the_callers_lookup() {
    struct Fixed;
    impl ImageLookup for Fixed {
        fn get_image(&self, image: &str) -> Result<String, String> {
            if image == "missing" {
                Err("failed to find fixed image for missing".into())
            } else {
                Ok(format!("{image}:1.2.3"))
            }
        }
    }
    let e = TemplateEngine::new("/x", Arc::new(Fixed));
    assert_eq!(
        e.render_string("i", "{{ images.get_image('nginx') }}", &json!({}))
            .unwrap(),
        "nginx:1.2.3"
    );
    let err = e
        .render_string("i", "{{ images.get_image('missing') }}", &json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to find fixed image for missing"), "{err}");
}

#[test]
fn includes_search_item_dir_then_project_dirs_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "common/labels.j2", "team: core");
    write(root, "deploy/common/labels.j2", "team: deploy");
    write(root, "deploy/app/lib/helper.j2", "{% include './sibling.j2' %}");
    write(root, "deploy/app/lib/sibling.j2", "sibling");
    let main = write(
        root,
        "deploy/app/cm.yaml",
        "{% include 'common/labels.j2' %}\n{% include 'lib/helper.j2' %}\n{% include './lib/sibling.j2' %}\n{{ load_template('common/labels.j2', extra=1) }}\n",
    );
    let e = engine(root);
    let dirs = [root.join("deploy/app"), root.join("deploy"), root.to_path_buf()];
    assert_eq!(
        e.render_file(&main, &dirs, &json!({})).unwrap(),
        "team: deploy\nsibling\nsibling\nteam: deploy"
    );
    // the project root alone finds the other copy
    let dirs = [root.join("deploy/app"), root.to_path_buf()];
    assert_eq!(
        e.render_file(&main, &dirs, &json!({})).unwrap(),
        "team: core\nsibling\nsibling\nteam: core"
    );
    // relative paths to render are looked up in the search dirs
    assert!(e.render_file(Path::new("cm.yaml"), &dirs, &json!({})).is_ok());
}

#[test]
fn includes_cannot_escape_the_search_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    write(dir.path(), "secret.txt", "s3cr3t");
    let main = write(&root, "a.yaml", "{% include '../secret.txt' %}");
    let e = engine(&root);
    let err = e
        .render_file(&main, std::slice::from_ref(&root), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found") && !err.contains("s3cr3t"), "{err}");
    let main = write(&root, "b.yaml", "{% include 'x/../../secret.txt' %}");
    assert!(
        e.render_file(&main, std::slice::from_ref(&root), &json!({}))
            .is_err()
    );
}

#[test]
fn errors_in_included_templates_name_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "inc/inner.j2", "ok\n{{ args.nope }}");
    write(root, "inc/outer.j2", "x\n\n{% include 'inc/inner.j2' %}");
    let main = write(root, "app/main.yaml", "{% include 'inc/outer.j2' %}");
    let err = engine(root)
        .render_file(&main, &[root.to_path_buf()], &json!({"args": {}}))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"app/main.yaml\""), "{msg}");
    assert!(msg.contains("\"inc/inner.j2\" line 2"), "{msg}");
    assert!(
        msg.contains("\"inc/outer.j2\" line 3") && msg.contains("\"app/main.yaml\" line 1"),
        "{msg}"
    );
    assert!(msg.contains("args.nope"), "{msg}");
}

#[test]
fn load_sha256_hashes_the_rendered_file_and_allows_self_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "cfg.yaml",
        "hash: {{ load_sha256('cfg.yaml') }}\nname: {{ args.name }}",
    );
    let main = write(
        root,
        "main.yaml",
        "{{ load_sha256('cfg.yaml') }}|{{ load_sha256('cfg.yaml', 6) }}",
    );
    let out = engine(root)
        .render_file(&main, &[root.to_path_buf()], &json!({"args": {"name": "n"}}))
        .unwrap();
    let full = functions_sha("hash: __self_sha256__\nname: n");
    assert_eq!(out, format!("{full}|{}", &full[..6]));
}

fn functions_sha(s: &str) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[test]
fn load_base64_reads_raw_bytes_and_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "files/data.bin", "{{ not rendered }}");
    let main = write(
        root,
        "main.yaml",
        "{{ load_base64('files/data.bin') }}\n{{ load_base64('files/data.bin', 8) }}",
    );
    let out = engine(root)
        .render_file(&main, &[root.to_path_buf()], &json!({}))
        .unwrap();
    assert_eq!(out, "e3sgbm90IHJlbmRlcmVkIH19\ne3sgbm90\nIHJlbmRl\ncmVkIH19");
}

#[test]
fn render_directory_honours_templateignore_chart_dirs_and_git() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    write(&root, ".templateignore", "*.raw\n");
    write(&root, "deploy/.templateignore", "keep/\n");
    write(&root, "deploy/app/.templateignore", "!special.raw\n");
    write(&root, "deploy/app/a.yaml", "name: {{ args.name }}\n");
    write(&root, "deploy/app/plain.txt", "no braces\n");
    write(&root, "deploy/app/x.raw", "{{ raw }}");
    write(&root, "deploy/app/special.raw", "{{ args.name }}");
    write(&root, "deploy/app/keep/k.yaml", "{{ keep }}");
    write(&root, "deploy/app/sub/.templateignore", "ign.yaml\n");
    write(&root, "deploy/app/sub/ign.yaml", "{{ ignored }}");
    write(&root, "deploy/app/sub/b.yaml", "b: {{ args.name }}");
    write(&root, "deploy/app/mychart/Chart.yaml", "name: {{ chart }}");
    write(&root, "deploy/app/mychart/templates/t.yaml", "{{ .Values.x }}");
    write(&root, "deploy/app/.git/config", "{{ git }}");
    let out = dir.path().join("out");
    let e = engine(&root);
    let item = root.join("deploy/app");
    e.render_directory(
        &item,
        &out,
        &[item.clone(), root.clone()],
        &json!({"args": {"name": "web"}}),
    )
    .unwrap();
    let read = |p: &str| fs_err::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("a.yaml"), "name: web");
    assert_eq!(read("plain.txt"), "no braces\n");
    assert_eq!(read("x.raw"), "{{ raw }}");
    assert_eq!(read("special.raw"), "web");
    assert_eq!(read("keep/k.yaml"), "{{ keep }}");
    assert_eq!(read("sub/ign.yaml"), "{{ ignored }}");
    assert_eq!(read("sub/b.yaml"), "b: web");
    assert_eq!(read("mychart/Chart.yaml"), "name: {{ chart }}");
    assert_eq!(read("mychart/templates/t.yaml"), "{{ .Values.x }}");
    assert_eq!(read(".git/config"), "{{ git }}");
}

#[test]
fn render_directory_reports_every_failing_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    write(&root, "item/a.yaml", "{{ a }}");
    write(&root, "item/b.yaml", "ok: 1\n{{ b.c }}");
    write(&root, "item/c.yaml", "{{ 'fine' }}");
    let e = engine(&root);
    let err = e
        .render_directory(
            &root.join("item"),
            &dir.path().join("out"),
            &[root.join("item")],
            &json!({}),
        )
        .unwrap_err();
    let TemplateError::Directory { errors, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(errors.len(), 2, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"item/a.yaml\": line 1") && msg.contains("\"item/b.yaml\": line 2"),
        "{msg}"
    );
}

#[test]
#[cfg(unix)]
fn render_directory_keeps_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    write(&root, "item/a.yaml", "a");
    fs_err::os::unix::fs::symlink("a.yaml", root.join("item/link.yaml")).unwrap();
    let out = dir.path().join("out");
    engine(&root)
        .render_directory(&root.join("item"), &out, &[root.join("item")], &json!({}))
        .unwrap();
    assert_eq!(
        fs_err::read_link(out.join("link.yaml")).unwrap(),
        PathBuf::from("a.yaml")
    );
}

#[test]
fn renderers_are_cached_per_search_path() {
    let e = engine(Path::new("/x"));
    let a = e.renderer(&[PathBuf::from("/x/a")]);
    let b = e.renderer(&[PathBuf::from("/x/a")]);
    let c = e.renderer(&[PathBuf::from("/x/b")]);
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &c));
}

#[test]
fn context_must_be_an_object() {
    assert!(matches!(
        render("{{ x }}", &json!([1])),
        Err(TemplateError::Context { kind: "array" })
    ));
}

#[test]
fn indent_filter_behaves_like_jinja2() {
    assert_eq!(r("{{ 'a\nb\n\nc\n' | indent(2) }}"), "a\n  b\n\n  c\n");
    assert_eq!(
        r("{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent('>', blank=true) }}"),
        "  a\n  b|a\n>\n>b"
    );
}

#[test]
fn jinja2_text_filters_missing_from_minijinja_are_provided() {
    assert_eq!(r("[{{ 'ab' | center(7) }}]"), "[   ab  ]");
    assert_eq!(
        r(
            "{{ 'hello world foo bar' | truncate(11) }}|{{ 'hello world' | truncate(8, true, '!', leeway=0) }}"
        ),
        "hello...|hello w!"
    );
    assert_eq!(
        r("{{ 'a b/c' | urlencode }} {{ {'k': 'a b', 'x': '&'} | urlencode }}"),
        "a%20b/c k=a+b&x=%26"
    );
    assert_eq!(
        r("{{ 'one two, three_3' | wordcount }} {{ '<b>x</b>' | striptags }} {{ 1000 | filesizeformat }}"),
        "3 x 1.0 kB"
    );
    assert_eq!(r("{{ 'aaa bbb ccc' | wordwrap(7) }}"), "aaa bbb\nccc");
}

#[test]
fn render_value_renders_strings_and_keys_and_reports_changes() {
    let e = engine(Path::new("/x"));
    let ctx = json!({"target": {"name": "prod"}, "args": {"n": 2}});
    let v = json!({"name": "{{ target.name }}", "static": "x", "list": ["{{ args.n }}", 1], "{{ target.name }}-key": {"deep": "{{ args.n * 2 }}"}});
    let (out, changed) = e.render_value("v", &v, &ctx).unwrap();
    assert!(changed);
    assert_eq!(
        out,
        json!({"name": "prod", "static": "x", "list": ["2", 1], "prod-key": {"deep": "4"}})
    );
    let (_, changed) = e
        .render_value(
            "v",
            &json!({"a": "plain", "b": "{{ 'same' if false else '{x}' }}"}),
            &ctx,
        )
        .unwrap();
    assert!(changed);
    let (_, changed) = e.render_value("v", &json!({"a": "plain"}), &ctx).unwrap();
    assert!(!changed);
    let err = e
        .render_value("v", &json!({"a": "{{ nope }}", "b": "{{ nope2 }}"}), &ctx)
        .unwrap_err();
    assert!(
        matches!(&err, TemplateError::Directory { errors, .. } if errors.len() == 2),
        "{err}"
    );
    assert!(
        err.to_string().contains("\"v.b\""),
        "errors name the field path: {err}"
    );
}

#[test]
fn errors_in_imported_macros_and_loaded_templates_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "lib/macros.j2",
        "{% macro m() %}\n{{ args.nope }}\n{% endmacro %}",
    );
    write(root, "lib/loaded.j2", "a\nb\n{{ args.gone }}");
    let main = write(
        root,
        "main.yaml",
        "{% import 'lib/macros.j2' as mac %}\n{{ mac.m() }}",
    );
    let e = engine(root);
    let msg = e
        .render_file(&main, &[root.to_path_buf()], &json!({"args": {}}))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("\"lib/macros.j2\" line 2") && msg.contains("args.nope"),
        "{msg}"
    );
    let main = write(root, "main2.yaml", "x\n{{ load_template('lib/loaded.j2') }}");
    let msg = e
        .render_file(&main, &[root.to_path_buf()], &json!({"args": {}}))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("\"lib/loaded.j2\" line 3")
            && msg.contains("\"main2.yaml\" line 2")
            && msg.contains("args.gone"),
        "{msg}"
    );
}

#[test]
fn crlf_line_ends_become_lf_in_rendered_templates_only() {
    assert_eq!(r("a: {{ 1 }}\r\nb\rc\r\n\r\n"), "a: 1\nb\nc\n");
    assert_eq!(r("plain\r\n"), "plain\r\n");
}

#[test]
fn tuples_print_like_python_tuples() {
    assert_eq!(
        r("{{ args.d.items() | list }} {{ (1,) }} {{ (1, 'x') }}"),
        "[('a', 'x'), ('b', 1)] (1,) (1, 'x')"
    );
}
