//! `images.get_image(...)`: templates emit a placeholder, and after kustomize each placeholder
//! is replaced by the matching fixed image, knowing the object's namespace, `Kind/name` and
//! container that the template could not see.
//!
//! ```text
//! template: images.get_image("nginx") ─► "XXXXXbegin_get_image_<base64 {"image":"nginx"}>_end_get_imageXXXXX"
//! render:   placeholder in spec.containers[0].image of Deployment/web
//!           ─► match list: CLI -F / target images (last match wins), then the `images` var
//!           ─► replaced, and recorded as a seen image (for `kluctl list-images`)
//! ```

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::postprocess::ItemMetadata;
use crate::project::config::{FixedImage, ObjectRef};

use crate::template::{IMAGE_PLACEHOLDER_BEGIN as BEGIN, IMAGE_PLACEHOLDER_END as END};

/// Why a placeholder could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// No fixed image matches.
    #[error("failed to find fixed image for {image}")]
    NotFound {
        /// The image name passed to `get_image`.
        image: String,
    },
    /// A placeholder is damaged (a begin marker without end, bad base64 or JSON).
    #[error("invalid image placeholder in {object}: {message}")]
    Invalid {
        /// `Kind/name` of the object.
        object: String,
        /// What is wrong.
        message: String,
    },
    /// A fixed image has an invalid `imageRegex`.
    #[error("invalid imageRegex '{regex}': {message}")]
    Regex {
        /// The expression.
        regex: String,
        /// The parser's message.
        message: String,
    },
}

/// Fixed images of a render (CLI `-F`/`--fixed-image(s-file)` and target `images`) and the
/// images seen while resolving placeholders.
#[derive(Debug, Default)]
pub struct Images {
    fixed: Vec<FixedImage>,
    seen: Mutex<Vec<FixedImage>>,
}

impl Images {
    /// Images with the given fixed list (later entries win).
    #[must_use]
    pub fn new(fixed: Vec<FixedImage>) -> Self {
        Self {
            fixed,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Every image seen so far, sorted by image name; `simple` keeps only image and result.
    #[must_use]
    pub fn seen(&self, simple: bool) -> Vec<FixedImage> {
        let mut out: Vec<FixedImage> = self
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|fi| {
                if simple {
                    FixedImage {
                        image: fi.image,
                        result_image: fi.result_image,
                        ..FixedImage::default()
                    }
                } else {
                    fi
                }
            })
            .collect();
        out.sort_by(|a, b| {
            let key = |f: &FixedImage| f.image.clone().or_else(|| f.image_regex.clone());
            key(a).cmp(&key(b))
        });
        out
    }

    /// Replaces every placeholder in `object` (any string leaf) and records each as seen.
    ///
    /// # Errors
    /// [`ImageError::NotFound`] for the first placeholder without a match (the remaining ones
    /// are left as they are), [`ImageError::Invalid`] for a damaged placeholder.
    pub fn resolve_placeholders(
        &self,
        object: &mut Value,
        meta: &ItemMetadata,
        vars_images: &[FixedImage],
    ) -> Result<(), ImageError> {
        let kind = str_at(object, "/kind");
        let name = str_at(object, "/metadata/name");
        let namespace = str_at(object, "/metadata/namespace");
        let (group, version) = match str_at(object, "/apiVersion").rsplit_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), str_at(object, "/apiVersion")),
        };
        let deployment = format!("{kind}/{name}");
        let mut found = Vec::new();
        collect(object, &mut Vec::new(), "", &mut found);
        for (path, container) in found {
            let Some(Value::String(s)) = object.pointer_mut(&path) else {
                continue;
            };
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find(BEGIN) {
                let after = &rest[start + BEGIN.len()..];
                let end = after.find(END).ok_or_else(|| ImageError::Invalid {
                    object: deployment.clone(),
                    message: "begin marker without end marker".to_owned(),
                })?;
                let image = decode(&after[..end]).map_err(|message| ImageError::Invalid {
                    object: deployment.clone(),
                    message,
                })?;
                let result = self.lookup(&image, &namespace, &deployment, &container, vars_images)?;
                self.record(FixedImage {
                    image: Some(image.clone()),
                    namespace: Some(namespace.clone()),
                    object: Some(ObjectRef {
                        group: group.clone(),
                        version: version.clone(),
                        kind: kind.clone(),
                        name: name.clone(),
                        namespace: namespace.clone(),
                    }),
                    deployment: Some(deployment.clone()),
                    container: Some(container.clone()),
                    deploy_tags: meta.tags.clone(),
                    deployment_dir: Some(meta.item_dir.clone()),
                    result_image: result.clone().unwrap_or_default(),
                    ..FixedImage::default()
                });
                let result = result.ok_or(ImageError::NotFound { image })?;
                out.push_str(&rest[..start]);
                out.push_str(&result);
                rest = &after[end + END.len()..];
            }
            out.push_str(rest);
            *s = out;
        }
        Ok(())
    }

    fn record(&self, fi: FixedImage) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(fi);
        }
    }

    fn lookup(
        &self,
        image: &str,
        namespace: &str,
        deployment: &str,
        container: &str,
        vars_images: &[FixedImage],
    ) -> Result<Option<String>, ImageError> {
        for list in [self.fixed.as_slice(), vars_images] {
            for fi in list.iter().rev() {
                if fi.image.as_deref().is_some_and(|i| i != image) {
                    continue;
                }
                if let Some(re) = &fi.image_regex {
                    let r = regex::Regex::new(re).map_err(|e| ImageError::Regex {
                        regex: re.clone(),
                        message: e.to_string(),
                    })?;
                    if !r.is_match(image) {
                        continue;
                    }
                }
                if fi.namespace.as_deref().is_some_and(|n| n != namespace)
                    || fi.deployment.as_deref().is_some_and(|d| d != deployment)
                    || fi.container.as_deref().is_some_and(|c| c != container)
                {
                    continue;
                }
                return Ok(Some(fi.result_image.clone()));
            }
        }
        Ok(None)
    }
}

fn decode(b64: &str) -> Result<String, String> {
    let bytes = STANDARD.decode(b64).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    v.get("image")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "placeholder without image".to_owned())
}

fn str_at(o: &Value, pointer: &str) -> String {
    o.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Collects the JSON pointers of string leaves holding a placeholder, with the `name` of the
/// map holding the leaf (the container name for `containers[].image`).
fn collect(v: &Value, path: &mut Vec<String>, parent_name: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if s.contains(BEGIN) => {
            let mut pointer = String::new();
            for p in path.iter() {
                pointer.push('/');
                pointer.push_str(&p.replace('~', "~0").replace('/', "~1"));
            }
            out.push((pointer, parent_name.to_owned()));
        }
        Value::Object(m) => {
            let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
            for (k, child) in m {
                path.push(k.clone());
                collect(child, path, name, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                path.push(i.to_string());
                collect(child, path, "", out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{ImageLookup as _, PlaceholderImages};
    use serde_json::json;

    /// What `images.get_image(image)` renders to in a template.
    fn placeholder(image: &str) -> String {
        PlaceholderImages.get_image(image).unwrap()
    }

    fn fixed(image: &str, result: &str) -> FixedImage {
        FixedImage {
            image: Some(image.to_owned()),
            result_image: result.to_owned(),
            ..FixedImage::default()
        }
    }

    fn deployment(image_value: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "main", "image": image_value},
                {"name": "side", "image": "busybox"}
            ]}}}
        })
    }

    fn meta() -> ItemMetadata {
        ItemMetadata {
            tags: vec!["web".to_owned()],
            item_dir: "apps/web".to_owned(),
            ..ItemMetadata::default()
        }
    }

    #[test]
    fn placeholders_resolve_last_match_wins_and_cli_before_vars() {
        let images = Images::new(vec![fixed("nginx", "nginx:1"), fixed("nginx", "nginx:2")]);
        let mut o = deployment(&placeholder("nginx"));
        images
            .resolve_placeholders(&mut o, &meta(), &[fixed("nginx", "nginx:vars")])
            .unwrap();
        assert_eq!(o["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2");
        let from_vars = Images::default();
        let mut o = deployment(&placeholder("nginx"));
        from_vars
            .resolve_placeholders(&mut o, &meta(), &[fixed("nginx", "nginx:vars")])
            .unwrap();
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:vars"
        );
    }

    #[test]
    fn filters_on_namespace_deployment_and_container() {
        let mut scoped = fixed("nginx", "nginx:scoped");
        scoped.namespace = Some("prod".to_owned());
        scoped.deployment = Some("Deployment/web".to_owned());
        scoped.container = Some("main".to_owned());
        let mut other = fixed("nginx", "nginx:other-ns");
        other.namespace = Some("dev".to_owned());
        let images = Images::new(vec![scoped, other]);
        let mut o = deployment(&format!("{}-suffix", placeholder("nginx")));
        images.resolve_placeholders(&mut o, &meta(), &[]).unwrap();
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:scoped-suffix"
        );
        let seen = images.seen(false);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].container.as_deref(), Some("main"));
        assert_eq!(seen[0].deployment.as_deref(), Some("Deployment/web"));
        assert_eq!(seen[0].deployment_dir.as_deref(), Some("apps/web"));
        assert_eq!(images.seen(true)[0], fixed("nginx", "nginx:scoped"));
    }

    #[test]
    fn regex_images_match_and_a_miss_is_an_error_naming_the_image() {
        let images = Images::new(vec![FixedImage {
            image_regex: Some("^registry/.*".to_owned()),
            result_image: "registry/x:1".to_owned(),
            ..FixedImage::default()
        }]);
        let mut o = deployment(&placeholder("registry/x"));
        images.resolve_placeholders(&mut o, &meta(), &[]).unwrap();
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry/x:1"
        );
        let mut o = deployment(&placeholder("redis"));
        assert_eq!(
            images
                .resolve_placeholders(&mut o, &meta(), &[])
                .unwrap_err()
                .to_string(),
            "failed to find fixed image for redis"
        );
        assert_eq!(images.seen(true).len(), 2, "misses are recorded too");
    }
}
