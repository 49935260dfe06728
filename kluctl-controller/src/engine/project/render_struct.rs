//! Rendering every string inside a configuration value with Jinja2, as Kluctl does for targets
//! and vars sources before using them (map keys stay as they are).

use serde_json::Value;

use crate::engine::template::{TemplateEngine, TemplateError};

/// Renders every string leaf of `value` with `ctx`; returns the result and whether anything
/// changed. `name` prefixes the template names (for errors), followed by the field path.
///
/// # Errors
/// The first string that fails to render.
pub fn render_strings(
    engine: &TemplateEngine,
    value: &Value,
    ctx: &Value,
    name: &str,
) -> Result<(Value, bool), TemplateError> {
    let mut changed = false;
    let out = walk(engine, value, ctx, name, &mut changed)?;
    Ok((out, changed))
}

fn walk(
    engine: &TemplateEngine,
    value: &Value,
    ctx: &Value,
    name: &str,
    changed: &mut bool,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => {
            let r = engine.render_string(name, s, ctx)?;
            if r != *s {
                *changed = true;
            }
            Value::String(r)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| walk(engine, v, ctx, &format!("{name}[{i}]"), changed))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), walk(engine, v, ctx, &format!("{name}.{k}"), changed)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}
