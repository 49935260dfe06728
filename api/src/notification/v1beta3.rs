//! `notification.toolkit.fluxcd.io/v1beta3`: Alert and Provider.
//!
//! An Alert selects events (by source object, severity and message) and forwards them to a Provider,
//! which describes the destination: a chat service, a Git forge commit status, a generic webhook, ...
//!
//! Beyond Flux (whose Alert and Provider have no status): both have a status subresource,
//! [`DispatchStatus`], with `Ready` and the last dispatch time and error, so a broken destination
//! shows in `kubectl get alerts,providers`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::CrossNamespaceObjectReference;
use crate::meta::LocalObjectReference;
use crate::schema::{DURATION_PATTERN, conditions};

/// Kind name of the Alert resource.
pub const ALERT_KIND: &str = "Alert";
/// Kind name of the Provider resource.
pub const PROVIDER_KIND: &str = "Provider";

/// Send timeout of a Provider whose spec sets none.
pub const DEFAULT_PROVIDER_TIMEOUT: &str = "15s";

/// CEL rule of the Provider spec: `commitStatusExpr` only for commit-status provider types.
pub const PROVIDER_COMMIT_STATUS_RULE: &str = "self.type == 'github' || self.type == 'gitlab' || self.type == 'gitea' || self.type == 'bitbucketserver' || self.type == 'bitbucket' || self.type == 'azuredevops' || !has(self.commitStatusExpr)";
/// Message of [`PROVIDER_COMMIT_STATUS_RULE`].
pub const PROVIDER_COMMIT_STATUS_MESSAGE: &str = "spec.commitStatusExpr is only supported for the 'github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops' provider types";

/// Pattern of the Provider `timeout` (no hours).
const PROVIDER_TIMEOUT_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$";

string_enum! {
    /// Severity filter of an Alert.
    #[derive(Default)]
    pub enum EventSeverity {
        /// Forward every event.
        #[default]
        Info = "info",
        /// Forward only error events.
        Error = "error",
    }
}

/// Desired state of an Alert.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "notification.toolkit.fluxcd.io",
    version = "v1beta3",
    kind = "Alert",
    plural = "alerts",
    singular = "alert",
    namespaced,
    derive = "PartialEq",
    doc = "Routes selected Flux events to a Provider.",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-notifications",
    status = "DispatchStatus",
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    /// Provider, in the Alert's namespace, that receives the events.
    pub provider_ref: LocalObjectReference,

    /// `info` forwards all events, `error` only error events.
    #[serde(default)]
    pub event_severity: EventSeverity,

    /// Objects whose events are forwarded.
    pub event_sources: Vec<CrossNamespaceObjectReference>,

    /// Regular expressions; when set, only events whose message matches one of them are forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_list: Vec<String>,

    /// Metadata added to every forwarded event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_metadata: BTreeMap<String, String>,

    /// Regular expressions; events whose message matches one of them are dropped (wins over
    /// `inclusionList`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_list: Vec<String>,

    /// Deprecated (use `eventMetadata`): short text added to events as the `summary` metadata key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 255))]
    pub summary: String,

    /// Stops forwarding events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

string_enum! {
    /// Destinations a Provider can describe.
    pub enum ProviderType {
        /// Slack.
        Slack = "slack",
        /// Discord.
        Discord = "discord",
        /// Microsoft Teams.
        Msteams = "msteams",
        /// Rocket.Chat.
        Rocket = "rocket",
        /// Plain JSON POST of the event.
        Generic = "generic",
        /// JSON POST signed with an HMAC of the token.
        GenericHmac = "generic-hmac",
        /// GitHub commit status.
        Github = "github",
        /// GitLab commit status.
        Gitlab = "gitlab",
        /// Gitea commit status.
        Gitea = "gitea",
        /// Gitea pull request comment.
        GiteaPullRequestComment = "giteapullrequestcomment",
        /// Bitbucket Server / Data Center commit status.
        BitbucketServer = "bitbucketserver",
        /// Bitbucket Cloud commit status.
        Bitbucket = "bitbucket",
        /// Azure DevOps commit status.
        AzureDevops = "azuredevops",
        /// Google Chat.
        GoogleChat = "googlechat",
        /// Google Cloud Pub/Sub.
        GooglePubSub = "googlepubsub",
        /// Webex.
        Webex = "webex",
        /// Sentry.
        Sentry = "sentry",
        /// Azure Event Hub.
        AzureEventHub = "azureeventhub",
        /// Telegram.
        Telegram = "telegram",
        /// Lark.
        Lark = "lark",
        /// Matrix.
        Matrix = "matrix",
        /// Opsgenie.
        Opsgenie = "opsgenie",
        /// Prometheus Alertmanager.
        Alertmanager = "alertmanager",
        /// Grafana annotations.
        Grafana = "grafana",
        /// GitHub repository dispatch.
        GithubDispatch = "githubdispatch",
        /// GitHub pull request comment.
        GithubPullRequestComment = "githubpullrequestcomment",
        /// GitLab merge request comment.
        GitlabMergeRequestComment = "gitlabmergerequestcomment",
        /// `PagerDuty`.
        Pagerduty = "pagerduty",
        /// Datadog.
        Datadog = "datadog",
        /// NATS.
        Nats = "nats",
        /// Zulip.
        Zulip = "zulip",
        /// OpenTelemetry.
        Otel = "otel",
        /// Zoom.
        Zoom = "zoom",
        /// incident.io.
        Incidentio = "incident.io",
    }
}

impl ProviderType {
    /// Whether the type reports Git commit statuses (and so may use `commitStatusExpr`).
    pub fn is_commit_status(self) -> bool {
        matches!(
            self,
            Self::Github
                | Self::Gitlab
                | Self::Gitea
                | Self::BitbucketServer
                | Self::Bitbucket
                | Self::AzureDevops
        )
    }
}

/// Desired state of a Provider.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "notification.toolkit.fluxcd.io",
    version = "v1beta3",
    kind = "Provider",
    plural = "providers",
    singular = "provider",
    namespaced,
    derive = "PartialEq",
    doc = "A destination for the events of Alerts.",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-notifications",
    status = "DispatchStatus",
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(validation = kube::core::Rule::new(PROVIDER_COMMIT_STATUS_RULE).message(PROVIDER_COMMIT_STATUS_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Kind of destination.
    #[serde(rename = "type")]
    pub provider_type: ProviderType,

    /// Deprecated and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,

    /// Channel, room or topic to post to, where the destination has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 2048))]
    pub channel: String,

    /// Name the messages are posted under (a Secret `username` key wins).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 2048))]
    pub username: String,

    /// Endpoint (URL, or project/topic id depending on the type); a Secret `address` key wins.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 2048))]
    pub address: String,

    /// Time limit for sending one event, retries included; 15s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROVIDER_TIMEOUT_PATTERN))]
    pub timeout: Option<String>,

    /// Deprecated (use `proxySecretRef`): HTTP(S) proxy URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = "^(http|https)://.*$"), length(max = 2048))]
    pub proxy: String,

    /// Secret with the proxy `address` and optional `username`/`password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,

    /// Secret with the destination credentials (`token`, `username`, `password`, `address`,
    /// `headers`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,

    /// Service account whose identity authenticates to cloud destinations (workload identity).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,

    /// Secret with TLS material: `ca.crt`, and `tls.crt`/`tls.key` for client authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,

    /// Stops sending events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// CEL expression (over `event`, `alert`, `provider`) computing the commit status id; only for
    /// commit-status types.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_status_expr: String,
}

/// Observed state of an Alert or a Provider (beyond Flux, where both are static objects): whether
/// events reach the destination, written by the dispatcher through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DispatchStatus {
    /// Generation handled by the last reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions, `Ready` first of all: `False` while the configuration is unusable or the last
    /// dispatch failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
    /// When an event was last dispatched (RFC 3339), successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dispatch_time: Option<String>,
    /// Error of the last dispatch; omitted after a successful one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_dispatch_error: String,
}

/// Observed state of an Alert.
pub type AlertStatus = DispatchStatus;

/// Observed state of a Provider.
pub type ProviderStatus = DispatchStatus;
