//! Portcullis guest SDK (being written).
