//! The Kluctl engine, the `KluctlDeployment` controller and the `kluctl` CLI.
//!
//! This release ships the command-line surface only; the engine (`engine::{source, project,
//! template, render, kustomize, helm, plan, apply, prune, validate, results}`), the controller and
//! the notification dispatcher arrive in their own modules.

pub mod cli;
pub mod engine;
