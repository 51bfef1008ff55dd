//! The Microsoft Graph simulator.
