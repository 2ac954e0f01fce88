//! `kubectl ramp`: the kubectl plugin for ramp rollouts.
//!
//! The crate is split so that everything a user sees can be tested without a
//! cluster: [`render`] (the `list` table and the `status` tree), [`actions`]
//! (the guarded patches and the refusals), [`convert`] (OpenKruise manifests)
//! and [`cli`] (arguments) are pure; [`cluster`] and [`watch`] do the IO, and
//! [`run`] ties a command to them.

pub mod actions;
pub mod cli;
pub mod cluster;
pub mod complete;
pub mod convert;
pub mod dashboard;
pub mod error;
pub mod model;
pub mod render;
pub mod run;
pub mod watch;

pub use error::{Error, Result};
