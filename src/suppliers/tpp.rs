//! TPP-like adapter (XML).
