//! Receiver webhooks: `status.webhookPath`, request validation per type, reconcile requests.
