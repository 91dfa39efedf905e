//! sonde-runtime (being written).
