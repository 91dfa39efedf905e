//! Harness for sonde privileged integration tests.
