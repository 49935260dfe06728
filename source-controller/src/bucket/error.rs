//! Errors of the bucket fetch step (client setup, listing, downloads) and the Flux reason each one
//! reports.

use gitops_api::conditions::reasons;
use std::path::PathBuf;
use std::time::Duration;

/// Why the bucket could not be indexed or downloaded.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The credentials Secret lacks keys or holds unusable values (messages never carry values).
    #[error("invalid '{secret}' secret data: {message}")]
    InvalidSecret {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is wrong.
        message: String,
    },
    /// The endpoint or another field does not make a usable client.
    #[error("failed to create {provider} client for bucket '{bucket}': {message}")]
    Client {
        /// `generic`, `aws` or `azure`.
        provider: &'static str,
        /// The bucket name.
        bucket: String,
        /// What was wrong.
        message: String,
    },
    /// The bucket (container) does not exist.
    #[error("bucket '{bucket}' not found")]
    NotFound {
        /// The bucket name.
        bucket: String,
    },
    /// The server refused the credentials.
    #[error("failed to {action} from bucket '{bucket}': access denied: {message}")]
    Denied {
        /// What was attempted (`list objects`, `get object 'k'`, ...).
        action: String,
        /// The bucket name.
        bucket: String,
        /// The server's answer, scrubbed of secrets.
        message: String,
    },
    /// Any other failed request.
    #[error("failed to {action} from bucket '{bucket}': {message}")]
    Operation {
        /// What was attempted.
        action: String,
        /// The bucket name.
        bucket: String,
        /// The cause, scrubbed of secrets.
        message: String,
    },
    /// A phase ran out of `spec.timeout`.
    #[error("failed to {phase} bucket '{bucket}' within the timeout of {after:?}")]
    Timeout {
        /// `list objects of` or `download objects of`.
        phase: &'static str,
        /// The bucket name.
        bucket: String,
        /// The configured timeout.
        after: Duration,
    },
    /// Writing a downloaded object to the temporary directory failed.
    #[error("failed to write object '{key}' to '{path}'")]
    Write {
        /// The object key.
        key: String,
        /// The local file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl BucketError {
    /// The Flux condition/event reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            BucketError::InvalidSecret { .. } | BucketError::Denied { .. } => reasons::AUTHENTICATION_FAILED,
            // Flux reports local write failures of downloads under the bucket reason too.
            BucketError::Client { .. }
            | BucketError::Write { .. }
            | BucketError::NotFound { .. }
            | BucketError::Operation { .. }
            | BucketError::Timeout { .. } => reasons::BUCKET_OPERATION_FAILED,
        }
    }
}
