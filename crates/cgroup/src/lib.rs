//! sonde-cgroup (being written).
