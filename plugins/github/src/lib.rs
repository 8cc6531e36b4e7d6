//! GitHub connector (being written).
