//! sonde-cloud (being written).
