//! guest build (being written).
