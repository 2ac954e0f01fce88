//! The embedded cluster.
pub mod controllers;
pub mod errors;
mod interim;
pub mod mesh;
pub mod resources;
pub mod store;
pub(crate) use interim::{patch, proto, schema, selector};
pub use store::Store;
