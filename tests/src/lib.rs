//! Shared helpers for the behavioural tests.
