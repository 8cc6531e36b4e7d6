//! Simulators (being written).
