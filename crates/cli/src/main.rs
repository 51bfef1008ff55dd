//! The entra-sync binary.
fn main() {}
