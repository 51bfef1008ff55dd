//! Simulators of Microsoft Graph and authentik for tests, benchmarks and the demo.
