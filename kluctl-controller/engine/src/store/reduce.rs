//! Fitting a command result into one Secret, without a client. The apiserver refuses a Secret
//! whose data exceeds 1 MiB (and etcd any request over 1.5 MiB); Kluctl then fails the whole
//! command (kluctl#1324). We never fail a command for its result: a result over the budget is
//! cut step by step until it fits, the Secret says so in an annotation and the stored result in
//! a warning, and the caller learns what was cut ([`Reduction`]).
//!
//! ```text
//! encode whole ─ fits? ─► stored as is
//!      │ no
//!      ├─ annotations over their limit? ─► messages: first 100 errors / warnings, 1 KiB each
//!      ├─ objects:     bodies cut to identity, labels, annotations   (compactedObjects likewise)
//!      ├─ diffs:       + changes keep path and type, no values, no unified diff
//!      ├─ object-list: + no objects at all (the summary annotation keeps their counts)
//!      └─ messages (when not cut yet), then stored whatever the size: the apiserver has the word
//! ```
//!
//! Each step re-encodes from the whole result and stops at the first that fits, so a result
//! loses no more than it must. The summary annotation is always the whole result's (object
//! counts, total changes); only its errors and warnings follow the stored result.

use std::fmt;

use gitops_api::kluctl::results::DeploymentError;
use gitops_api::kluctl::v1beta1::ObjectRef;
use k8s_openapi::api::core::v1::Secret;

use super::{RESULT_REDUCED_ANNOTATION, StoreError, encode};
use crate::result::{CommandResult, CommandResultSummary};

/// Most bytes of data values plus annotations (keys and values) one result Secret may hold.
/// The apiserver refuses Secret data over 1 MiB and etcd requests over 1.5 MiB; 900 KiB leaves
/// room for the name, labels and managed fields.
pub const MAX_SECRET_BYTES: usize = 900 * 1024;
/// Most bytes of annotations (keys and values) one result Secret may hold: the apiserver
/// refuses more than 256 KiB in all; 8 KiB are left for annotations others add.
pub const MAX_ANNOTATION_BYTES: usize = 248 * 1024;
/// Errors, and warnings, a cut message list keeps (the first ones).
pub const KEPT_MESSAGES: usize = 100;
/// Longest error or warning message a cut message list keeps, in bytes.
pub const KEPT_MESSAGE_BYTES: usize = 1024;

/// How much of the objects a reduced result keeps; each step includes the ones before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectCut {
    /// Object bodies cut to identity, labels and annotations (as in `reducedResult`).
    Bodies,
    /// Also changes cut to path and type: no old or new value, no unified diff.
    Diffs,
    /// No objects at all; the summary annotation keeps their counts.
    List,
}

impl ObjectCut {
    /// Every cut, in the order they are tried.
    pub const ALL: [Self; 3] = [Self::Bodies, Self::Diffs, Self::List];

    /// Its name in the [`RESULT_REDUCED_ANNOTATION`] value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bodies => "objects",
            Self::Diffs => "diffs",
            Self::List => "object-list",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Bodies => "without object bodies",
            Self::Diffs => "without object bodies and change diffs",
            Self::List => "without objects (their counts are in the summary)",
        }
    }
}

/// What the store cut from a command result to fit it into one Secret. Its text is the warning
/// added to the stored result: `command result too large for one Secret (N bytes): stored
/// without object bodies`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduction {
    /// How much of the objects was cut, if anything.
    pub objects: Option<ObjectCut>,
    /// Whether errors and warnings were cut to [`KEPT_MESSAGES`] each of at most
    /// [`KEPT_MESSAGE_BYTES`].
    pub messages: bool,
    /// Bytes (data plus annotations) the whole result would have taken.
    pub full_bytes: usize,
}

impl Reduction {
    /// The [`RESULT_REDUCED_ANNOTATION`] value: the cuts' names joined by `,`
    /// (`objects`, `diffs`, `object-list`, `messages`).
    pub fn annotation_value(&self) -> String {
        let mut names: Vec<&str> = self.objects.iter().map(|c| c.name()).collect();
        if self.messages {
            names.push("messages");
        }
        names.join(",")
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command result too large for one Secret ({} bytes): stored ",
            self.full_bytes
        )?;
        let messages = format!(
            "with only the first {KEPT_MESSAGES} errors and warnings of at most {KEPT_MESSAGE_BYTES} bytes each"
        );
        match (self.objects, self.messages) {
            (Some(cut), true) => write!(f, "{}, {messages}", cut.what()),
            (Some(cut), false) => f.write_str(cut.what()),
            (None, _) => f.write_str(&messages),
        }
    }
}

/// A result Secret ready to apply and what was cut to fit it.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The Secret.
    pub secret: Secret,
    /// `None` when the whole result fits.
    pub reduction: Option<Reduction>,
}

/// The limits a result Secret must keep.
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    /// Data plus annotation bytes.
    pub total: usize,
    /// Annotation bytes.
    pub annotations: usize,
}

impl Budget {
    /// The apiserver's limits with room to spare ([`MAX_SECRET_BYTES`], [`MAX_ANNOTATION_BYTES`]).
    pub const APISERVER: Self = Self {
        total: MAX_SECRET_BYTES,
        annotations: MAX_ANNOTATION_BYTES,
    };

    fn fits(self, secret: &Secret) -> bool {
        let annotations = annotation_bytes(secret);
        annotations <= self.annotations && annotations + data_bytes(secret) <= self.total
    }
}

/// The Secret for `stored` (already obfuscated), cut as far as needed to stay within
/// [`MAX_SECRET_BYTES`] and [`MAX_ANNOTATION_BYTES`].
///
/// # Caveats
/// A result still too large with every cut (a huge deployment config or target in it) is
/// returned cut as far as possible; the apiserver may then refuse it.
///
/// # Errors
/// Serialising or compressing a part failed.
pub fn fit_command_result(namespace: &str, stored: &CommandResult) -> Result<Fitted, StoreError> {
    fit_within(namespace, stored, Budget::APISERVER)
}

pub(super) fn fit_within(
    namespace: &str,
    stored: &CommandResult,
    budget: Budget,
) -> Result<Fitted, StoreError> {
    let whole = encode::command_result_secret(namespace, stored)?;
    if budget.fits(&whole) {
        return Ok(Fitted {
            secret: whole,
            reduction: None,
        });
    }
    let summary = stored.summary();
    let mut plan = Reduction {
        objects: None,
        messages: false,
        full_bytes: data_bytes(&whole) + annotation_bytes(&whole),
    };
    // Only cutting messages shrinks the annotations (the summary carries errors and warnings);
    // when they are what is too large, the objects may stay.
    if annotation_bytes(&whole) > budget.annotations {
        plan.messages = true;
        let secret = encode_reduced(namespace, stored, &summary, &plan)?;
        if budget.fits(&secret) {
            return Ok(fitted(secret, plan));
        }
    }
    let mut secret = whole;
    for cut in ObjectCut::ALL {
        plan.objects = Some(cut);
        secret = encode_reduced(namespace, stored, &summary, &plan)?;
        if budget.fits(&secret) {
            return Ok(fitted(secret, plan));
        }
    }
    if !plan.messages {
        plan.messages = true;
        secret = encode_reduced(namespace, stored, &summary, &plan)?;
    }
    Ok(fitted(secret, plan))
}

fn fitted(secret: Secret, plan: Reduction) -> Fitted {
    Fitted {
        secret,
        reduction: Some(plan),
    }
}

/// The Secret of `stored` cut as `plan` says, with the whole result's summary counts, the
/// warning and the annotation.
fn encode_reduced(
    namespace: &str,
    stored: &CommandResult,
    whole: &CommandResultSummary,
    plan: &Reduction,
) -> Result<Secret, StoreError> {
    let mut r = match plan.objects {
        None => stored.clone(),
        Some(ObjectCut::List) => {
            let mut r = stored.to_reduced_objects();
            r.objects.clear();
            r
        }
        Some(cut) => {
            let mut r = stored.to_reduced_objects();
            if cut == ObjectCut::Diffs {
                for c in r.objects.iter_mut().flat_map(|o| &mut o.changes) {
                    c.old_value = None;
                    c.new_value = None;
                    c.unified_diff.clear();
                }
            }
            r
        }
    };
    if plan.messages {
        cut_messages(&mut r.errors);
        cut_messages(&mut r.warnings);
    }
    r.warnings.push(DeploymentError {
        object_ref: ObjectRef::default(),
        message: plan.to_string(),
    });
    let summary = CommandResultSummary {
        errors: r.errors.clone(),
        warnings: r.warnings.clone(),
        ..whole.clone()
    };
    let mut secret = encode::command_result_secret_with_summary(namespace, &r, &summary)?;
    secret
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(RESULT_REDUCED_ANNOTATION.to_owned(), plan.annotation_value());
    Ok(secret)
}

/// Keeps the first [`KEPT_MESSAGES`], each cut to [`KEPT_MESSAGE_BYTES`] (at a character
/// boundary, marked with `...`).
fn cut_messages(list: &mut Vec<DeploymentError>) {
    list.truncate(KEPT_MESSAGES);
    for e in list {
        if e.message.len() > KEPT_MESSAGE_BYTES {
            let mut end = KEPT_MESSAGE_BYTES;
            while !e.message.is_char_boundary(end) {
                end -= 1;
            }
            e.message.truncate(end);
            e.message.push_str("...");
        }
    }
}

/// Bytes of the Secret's data values (what the apiserver's 1 MiB limit counts).
pub fn data_bytes(secret: &Secret) -> usize {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.0.len())
        .sum()
}

/// Bytes of the Secret's annotation keys and values (what the apiserver's 256 KiB limit counts).
pub fn annotation_bytes(secret: &Secret) -> usize {
    secret
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{OutputOptions, format_text};
    use crate::result::{Change, ChangeType, ResultObject};
    use crate::store::encode::{decode_command_result, gunzip};
    use crate::store::{COMPACTED_OBJECTS_KEY, REDUCED_RESULT_KEY};
    use serde_json::{Value, json};

    /// Text that gzip cannot shrink much (alphanumerics from a fixed xorshift sequence).
    fn noise(seed: u64, len: usize) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(ALNUM[usize::try_from(x % 62).unwrap()])
            })
            .collect()
    }

    fn cm_ref(i: usize) -> ObjectRef {
        ObjectRef {
            version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("cm-{i}"),
            namespace: "app".into(),
            ..ObjectRef::default()
        }
    }

    /// `n` changed ConfigMaps, each with `body` bytes of data and a change of `diff` bytes.
    fn result(n: usize, body: usize, diff: usize) -> CommandResult {
        let mut r = CommandResult {
            id: "big-1".into(),
            ..CommandResult::default()
        };
        r.command.command = "deploy".into();
        for i in 0..n {
            let seed = u64::try_from(i).unwrap();
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": format!("cm-{i}"), "namespace": "app",
                                         "labels": {"app": "web"}},
                            "data": {"blob": noise(seed, body)}});
            r.objects.push(ResultObject {
                object: cm_ref(i),
                new: i % 2 == 0,
                changes: vec![Change {
                    change_type: ChangeType::Update,
                    json_path: "data.blob".into(),
                    old_value: Some(json!(noise(seed + 7, diff / 2))),
                    new_value: Some(json!(noise(seed + 9, diff / 2))),
                    unified_diff: noise(seed + 11, diff),
                }],
                rendered: Some(cm.clone()),
                applied: Some(cm),
                ..ResultObject::default()
            });
        }
        r.errors.push(DeploymentError {
            object_ref: cm_ref(0),
            message: "failed to apply".into(),
        });
        r
    }

    fn annotation(s: &Secret, key: &str) -> Option<String> {
        s.metadata.annotations.as_ref()?.get(key).cloned()
    }

    fn stored_summary(s: &Secret) -> CommandResultSummary {
        encode::parse_command_summary(s.metadata.annotations.as_ref().unwrap()).unwrap()
    }

    fn data_json(s: &Secret, key: &str) -> Value {
        serde_json::from_slice(&gunzip(&s.data.as_ref().unwrap()[key].0).unwrap()).unwrap()
    }

    /// The summary without the lists that a reduction may change.
    fn counts(s: &CommandResultSummary) -> CommandResultSummary {
        CommandResultSummary {
            errors: Vec::new(),
            warnings: Vec::new(),
            ..s.clone()
        }
    }

    #[test]
    fn small_results_are_stored_whole() {
        let r = result(3, 100, 20);
        let fitted = fit_command_result("ns", &r).unwrap();
        assert_eq!(fitted.reduction, None);
        assert_eq!(fitted.secret, encode::command_result_secret("ns", &r).unwrap());
        assert_eq!(annotation(&fitted.secret, RESULT_REDUCED_ANNOTATION), None);
        assert_eq!(decode_command_result(&fitted.secret).unwrap(), r);
    }

    /// kluctl#1324: a result over 1 MiB is stored without its object bodies instead of failing.
    #[test]
    fn results_too_large_for_a_secret_lose_object_bodies_and_keep_their_counts() {
        // 40 objects of 40 KB incompressible data: about 1.3 MB once gzipped.
        let r = result(40, 40_000, 200);
        let whole = encode::command_result_secret("ns", &r).unwrap();
        assert!(data_bytes(&whole) > MAX_SECRET_BYTES, "{}", data_bytes(&whole));

        let fitted = fit_command_result("ns", &r).unwrap();
        let s = &fitted.secret;
        let reduction = fitted.reduction.clone().expect("reduced");
        assert_eq!(reduction.objects, Some(ObjectCut::Bodies));
        assert!(!reduction.messages);
        assert_eq!(
            reduction.full_bytes,
            data_bytes(&whole) + annotation_bytes(&whole)
        );
        assert!(data_bytes(s) + annotation_bytes(s) <= MAX_SECRET_BYTES);
        assert_eq!(
            annotation(s, RESULT_REDUCED_ANNOTATION).as_deref(),
            Some("objects")
        );
        let warning = format!(
            "command result too large for one Secret ({} bytes): stored without object bodies",
            reduction.full_bytes
        );
        assert_eq!(reduction.to_string(), warning);

        // The summary keeps the whole result's counts and carries the warning.
        let summary = stored_summary(s);
        assert_eq!(counts(&summary), counts(&r.summary()));
        assert_eq!(summary.rendered_objects, 40);
        assert_eq!(summary.new_objects, 20);
        assert_eq!(summary.total_changes, 40);
        assert_eq!(summary.errors, r.errors);
        assert_eq!(summary.warnings.last().unwrap().message, warning);

        // Reading back: objects with identity bodies, changes intact, the warning last.
        let back = decode_command_result(s).unwrap();
        assert_eq!(back.warnings.last().unwrap().message, warning);
        assert_eq!(back.objects.len(), 40);
        assert_eq!(back.objects[3].changes, r.objects[3].changes);
        assert_eq!(
            back.objects[3].rendered,
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "cm-3", "namespace": "app", "labels": {"app": "web"}}}))
        );
        assert_eq!(back.summary().new_objects, 20);
        // What `kluctl gitops` prints of it: the objects, their changes and the warning.
        let text = format_text(&back, &OutputOptions::default());
        assert!(text.contains("New objects:\n  app/ConfigMap/cm-0\n"), "{text}");
        assert!(text.contains("Diff for object app/ConfigMap/cm-3"), "{text}");
        assert!(text.contains("stored without object bodies"), "{text}");
    }

    #[test]
    fn diffs_go_next_then_the_object_list() {
        let r = result(200, 50, 1000);
        let whole = encode::command_result_secret("ns", &r).unwrap();
        let bodies = encode_reduced(
            "ns",
            &r,
            &r.summary(),
            &Reduction {
                objects: Some(ObjectCut::Bodies),
                messages: false,
                full_bytes: 0,
            },
        )
        .unwrap();
        let size = |s: &Secret| data_bytes(s) + annotation_bytes(s);
        // The changes carry most of the size, so cutting bodies alone is not enough.
        let budget = Budget {
            total: size(&bodies) / 3,
            annotations: MAX_ANNOTATION_BYTES,
        };
        let fitted = fit_within("ns", &r, budget).unwrap();
        let reduction = fitted.reduction.unwrap();
        assert_eq!(reduction.objects, Some(ObjectCut::Diffs));
        assert_eq!(reduction.full_bytes, size(&whole));
        assert_eq!(
            annotation(&fitted.secret, RESULT_REDUCED_ANNOTATION).as_deref(),
            Some("diffs")
        );
        assert!(
            reduction
                .to_string()
                .ends_with("stored without object bodies and change diffs")
        );
        let back = decode_command_result(&fitted.secret).unwrap();
        assert_eq!(back.objects.len(), 200);
        let c = &back.objects[5].changes[0];
        assert_eq!(
            (
                c.change_type,
                c.json_path.as_str(),
                &c.old_value,
                &c.new_value,
                c.unified_diff.as_str()
            ),
            (ChangeType::Update, "data.blob", &None, &None, "")
        );
        assert_eq!(counts(&stored_summary(&fitted.secret)), counts(&r.summary()));

        // A budget only the summary fits: no objects, counts still in the summary.
        let budget = Budget {
            total: annotation_bytes(&whole) + 1500,
            annotations: MAX_ANNOTATION_BYTES,
        };
        let fitted = fit_within("ns", &r, budget).unwrap();
        let reduction = fitted.reduction.unwrap();
        assert_eq!(reduction.objects, Some(ObjectCut::List));
        assert!(budget.fits(&fitted.secret));
        assert_eq!(
            annotation(&fitted.secret, RESULT_REDUCED_ANNOTATION).as_deref(),
            Some("object-list")
        );
        assert_eq!(data_json(&fitted.secret, COMPACTED_OBJECTS_KEY), json!([]));
        assert_eq!(data_json(&fitted.secret, REDUCED_RESULT_KEY).get("objects"), None);
        let summary = stored_summary(&fitted.secret);
        assert_eq!(counts(&summary), counts(&r.summary()));
        assert_eq!(summary.changed_objects, 200);
        let back = decode_command_result(&fitted.secret).unwrap();
        assert!(back.objects.is_empty());
        // What `kluctl gitops` prints of it: no objects, the warning.
        let text = format_text(&back, &OutputOptions::default());
        assert!(
            !text.contains("New objects:") && !text.contains("Changed objects:"),
            "{text}"
        );
        assert!(text.contains("stored without objects"), "{text}");
        assert_eq!(
            back.warnings.last().unwrap().message,
            format!(
                "command result too large for one Secret ({} bytes): stored without objects (their counts are in the summary)",
                size(&whole)
            )
        );
    }

    #[test]
    fn too_many_errors_for_the_annotations_cut_messages_and_keep_the_objects() {
        let mut r = result(3, 100, 20);
        let long = "é".repeat(KEPT_MESSAGE_BYTES);
        r.errors = (0..300)
            .map(|i| DeploymentError {
                object_ref: cm_ref(i),
                message: format!("{i}: {long}"),
            })
            .collect();
        let whole = encode::command_result_secret("ns", &r).unwrap();
        assert!(annotation_bytes(&whole) > MAX_ANNOTATION_BYTES);
        let fitted = fit_command_result("ns", &r).unwrap();
        let reduction = fitted.reduction.unwrap();
        assert_eq!((reduction.objects, reduction.messages), (None, true));
        assert_eq!(
            annotation(&fitted.secret, RESULT_REDUCED_ANNOTATION).as_deref(),
            Some("messages")
        );
        assert!(Budget::APISERVER.fits(&fitted.secret));
        let back = decode_command_result(&fitted.secret).unwrap();
        // Objects whole; errors cut to the first 100 at a character boundary.
        assert_eq!(back.objects, r.objects);
        assert_eq!(back.errors.len(), KEPT_MESSAGES);
        assert!(back.errors[99].message.starts_with("99: é"));
        assert!(back.errors[99].message.ends_with("é..."));
        assert!(back.errors[99].message.len() <= KEPT_MESSAGE_BYTES + 3);
        assert_eq!(
            back.warnings.last().unwrap().message,
            format!(
                "command result too large for one Secret ({} bytes): stored with only the first 100 errors and warnings of at most 1024 bytes each",
                reduction.full_bytes
            )
        );
        let summary = stored_summary(&fitted.secret);
        assert_eq!(summary.errors, back.errors);
        assert_eq!(counts(&summary), counts(&r.summary()));
    }

    #[test]
    fn annotation_values_and_messages_name_every_cut() {
        let r = Reduction {
            objects: Some(ObjectCut::List),
            messages: true,
            full_bytes: 5,
        };
        assert_eq!(r.annotation_value(), "object-list,messages");
        assert_eq!(
            r.to_string(),
            "command result too large for one Secret (5 bytes): stored without objects (their counts are in the summary), with only the first 100 errors and warnings of at most 1024 bytes each"
        );
    }
}
