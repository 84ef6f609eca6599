//! EMIS-like adapter (JSON).
