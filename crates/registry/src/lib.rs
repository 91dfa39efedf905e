//! sonde-registry (being written).
