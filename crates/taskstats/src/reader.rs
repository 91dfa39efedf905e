//! The per-process read policy: taskstats when there is a socket, the schedstat sum for the
//! CPU delay when taskstats cannot give it.

use std::path::{Path, PathBuf};

use crate::{Error, TaskDelays, TaskstatsClient, schedstat_cpu_delay_ns};

/// Reads one process's delays with the best source available, at most one netlink query per
/// call:
/// - with a [`TaskstatsClient`]: its answer. When delay accounting is off, block I/O delay is 0
///   (the kernel does not measure it) and, on kernels that also zero the CPU delay then, a zero
///   CPU delay is replaced by the schedstat sum (on 6.x taskstats fills it from the scheduler
///   either way, so this read happens only for processes that never waited).
/// - without one (no CONFIG_TASKSTATS, not in the host netns): CPU delay from schedstat,
///   block I/O delay 0.
#[derive(Debug)]
pub struct DelayReader {
    procfs: PathBuf,
    client: Option<TaskstatsClient>,
    delayacct_on: bool,
}

impl DelayReader {
    /// `delayacct_on`: `kernel.task_delayacct` as read by [`crate::delayacct_enabled`]
    /// (`None` from it means on).
    pub fn new(procfs: &Path, client: Option<TaskstatsClient>, delayacct_on: bool) -> Self {
        DelayReader {
            procfs: procfs.to_path_buf(),
            client,
            delayacct_on,
        }
    }

    /// Updates the sysctl state (after `--enable-delay-accounting`, or a periodic re-read).
    pub fn set_delayacct_on(&mut self, on: bool) {
        self.delayacct_on = on;
    }

    /// Whether a taskstats socket is in use.
    pub fn has_taskstats(&self) -> bool {
        self.client.is_some()
    }

    /// Delays of process `pid`; `Ok(None)` when it is gone.
    pub fn read(&mut self, pid: u32) -> Result<Option<TaskDelays>, Error> {
        let Some(client) = self.client.as_mut() else {
            return Ok(
                schedstat_cpu_delay_ns(&self.procfs, pid)?.map(|cpu| TaskDelays {
                    cpu_delay_ns: cpu,
                    blkio_delay_ns: 0,
                    version: 0,
                }),
            );
        };
        let Some(mut delays) = client.query_tgid(pid)? else {
            return Ok(None);
        };
        if !self.delayacct_on && delays.cpu_delay_ns == 0 {
            match schedstat_cpu_delay_ns(&self.procfs, pid)? {
                Some(cpu) => delays.cpu_delay_ns = cpu,
                None => return Ok(None),
            }
        }
        Ok(Some(delays))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn without_taskstats_cpu_comes_from_schedstat() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("9/task/10");
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("schedstat"), "1 750 2\n").unwrap();
        let mut reader = DelayReader::new(dir.path(), None, false);
        assert!(!reader.has_taskstats());
        assert_eq!(
            reader.read(9).unwrap(),
            Some(TaskDelays {
                cpu_delay_ns: 750,
                blkio_delay_ns: 0,
                version: 0
            })
        );
        assert_eq!(reader.read(11).unwrap(), None);
    }
}
