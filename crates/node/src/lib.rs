//! sonde-node (being written).
