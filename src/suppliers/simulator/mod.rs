//! Supplier simulators.
