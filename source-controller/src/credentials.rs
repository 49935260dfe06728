//! The credential value types source-controller's git and bucket code share, re-exported from
//! the git layer (`gitops-git`, which owns them because the Kluctl engine needs them too):
//! [`Secret`] (bytes that never print), [`ProxyOptions`] (`spec.proxySecretRef`),
//! [`ClientCertificate`] and the parsing of `ca.crt` and `tls.crt`/`tls.key`, which GitRepository
//! and Bucket read with the same keys.

pub use gitops_git::credentials::{
    ClientCertificate, Credentials, ProxyOptions, Secret, client_identity, parse_ca_bundle,
};
