//! sonde-taskstats (being written).
