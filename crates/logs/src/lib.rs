//! sonde-logs (being written).
