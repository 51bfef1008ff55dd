//! Simulators of Microsoft Graph and authentik for tests, benchmarks and the demo.
//!
//! They stand in for the two remote systems that cannot run here, and follow
//! the reference documents: the same JSON shapes, limits and errors.

pub mod authentik;
pub mod graph;
