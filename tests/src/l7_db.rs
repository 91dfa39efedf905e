//! Database and queue servers for the issue-16 L7 tests (tests/tests/agent_l7_db.rs), each
//! started inside a test [`Container`] of l7_servers.rs, plus the families of their metrics.
//!
//! Real servers from Debian packages: MariaDB, memcached, RabbitMQ, ZooKeeper, nats-server.
//! Protocols Debian packages no server of (Kafka, MongoDB, Cassandra, Dubbo2, ClickHouse, FoundationDB) are
//! answered by the conversation replay server tests/scripts/l7_replay.py (docs/testing-l7.md).
//! Every server listens on 127.0.0.1 on a port outside the ephemeral range, keeps its data in
//! the container's temp directory, and dies with the container's cgroup.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::l7_expect::Family;
use crate::l7_servers::{
    Container, Server, free_port_outside_ephemeral, script, wait_for_line, wait_for_port,
};

macro_rules! family {
    ($name:ident, $total:literal, $hist:literal) => {
        pub const $name: Family = Family {
            total: $total,
            histogram: $hist,
        };
    };
}

family!(
    MYSQL_OUT,
    "container_mysql_queries_total",
    "container_mysql_queries_duration_seconds_total"
);
family!(
    MYSQL_IN,
    "container_mysql_inbound_queries_total",
    "container_mysql_inbound_queries_duration_seconds_total"
);
family!(
    MEMCACHED_OUT,
    "container_memcached_queries_total",
    "container_memcached_queries_duration_seconds_total"
);
family!(
    MEMCACHED_IN,
    "container_memcached_inbound_queries_total",
    "container_memcached_inbound_queries_duration_seconds_total"
);
family!(
    ZOOKEEPER_OUT,
    "container_zookeeper_requests_total",
    "container_zookeeper_requests_duration_seconds_total"
);
family!(
    ZOOKEEPER_IN,
    "container_zookeeper_inbound_requests_total",
    "container_zookeeper_inbound_requests_duration_seconds_total"
);
family!(
    KAFKA_OUT,
    "container_kafka_requests_total",
    "container_kafka_requests_duration_seconds_total"
);
family!(
    KAFKA_IN,
    "container_kafka_inbound_requests_total",
    "container_kafka_inbound_requests_duration_seconds_total"
);
family!(
    MONGO_OUT,
    "container_mongo_queries_total",
    "container_mongo_queries_duration_seconds_total"
);
family!(
    MONGO_IN,
    "container_mongo_inbound_queries_total",
    "container_mongo_inbound_queries_duration_seconds_total"
);
family!(
    CASSANDRA_OUT,
    "container_cassandra_queries_total",
    "container_cassandra_queries_duration_seconds_total"
);
family!(
    CASSANDRA_IN,
    "container_cassandra_inbound_queries_total",
    "container_cassandra_inbound_queries_duration_seconds_total"
);
family!(
    DUBBO_OUT,
    "container_dubbo_requests_total",
    "container_dubbo_requests_duration_seconds_total"
);
family!(
    DUBBO_IN,
    "container_dubbo_inbound_requests_total",
    "container_dubbo_inbound_requests_duration_seconds_total"
);
family!(
    CLICKHOUSE_OUT,
    "container_clickhouse_queries_total",
    "container_clickhouse_queries_duration_seconds_total"
);
family!(
    CLICKHOUSE_IN,
    "container_clickhouse_inbound_queries_total",
    "container_clickhouse_inbound_queries_duration_seconds_total"
);
family!(
    FOUNDATIONDB_OUT,
    "container_foundationdb_requests_total",
    "container_foundationdb_requests_duration_seconds_total"
);
family!(
    FOUNDATIONDB_IN,
    "container_foundationdb_inbound_requests_total",
    "container_foundationdb_inbound_requests_duration_seconds_total"
);

/// coroot's message counters (no latency, a `method` label: produce / consume).
pub const NATS_MESSAGES: &str = "container_nats_messages_total";
pub const RABBITMQ_MESSAGES: &str = "container_rabbitmq_messages_total";

/// The replayed protocols: (l7_replay.py name, outbound family, inbound family).
pub const REPLAYED: &[(&str, Family, Family)] = &[
    ("kafka", KAFKA_OUT, KAFKA_IN),
    ("mongo", MONGO_OUT, MONGO_IN),
    ("cassandra", CASSANDRA_OUT, CASSANDRA_IN),
    ("dubbo2", DUBBO_OUT, DUBBO_IN),
    ("clickhouse", CLICKHOUSE_OUT, CLICKHOUSE_IN),
    ("foundationdb", FOUNDATIONDB_OUT, FOUNDATIONDB_IN),
];

/// The clients of tests/scripts/l7_db_clients.py: `python3 l7_db_clients.py ARGS...`.
pub fn client_argv(args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "python3".to_owned(),
        script("l7_db_clients.py").to_str().unwrap().to_owned(),
    ];
    v.extend(args.iter().map(|s| (*s).to_owned()));
    v
}

fn chown(user: &str, paths: &[&Path]) {
    let mut cmd = Command::new("chown");
    cmd.arg("-R").arg(format!("{user}:{user}"));
    for p in paths {
        cmd.arg(p);
    }
    crate::tools::run(&mut cmd);
}

/// MariaDB: a fresh data directory (mariadb-install-db, outside the container: no part of
/// what the test measures), then mariadbd in the container with `--skip-grant-tables`, so the
/// raw client logs in as root without a password exchange to get right.
pub fn mariadb(c: &mut Container) -> Server {
    let port = free_port_outside_ephemeral();
    let dir = c.dir.path().join("mariadb");
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    crate::tools::run(
        Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.to_str().unwrap()))
            .arg("--auth-root-authentication-method=normal")
            .stdout(Stdio::null()),
    );
    let (pid, log) = c.spawn(
        &[
            "mariadbd",
            "--no-defaults",
            "--user=root",
            &format!("--datadir={}", data.to_str().unwrap()),
            &format!("--port={port}"),
            "--bind-address=127.0.0.1",
            &format!("--socket={d}/mariadb.sock"),
            &format!("--pid-file={d}/mariadb.pid"),
            "--skip-grant-tables",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
        ],
        "mariadb.log",
    );
    wait_for_port(port, "mariadbd", &log);
    Server {
        port,
        pid,
        log,
        aux: dir,
    }
}

/// memcached on its own port, TCP only.
pub fn memcached(c: &mut Container) -> Server {
    let port = free_port_outside_ephemeral();
    let (pid, log) = c.spawn(
        &[
            "memcached",
            "-u",
            "root",
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "16",
        ],
        "memcached.log",
    );
    wait_for_port(port, "memcached", &log);
    Server {
        port,
        pid,
        log: log.clone(),
        aux: log,
    }
}

/// nats-server on its own port (no monitoring port, no cluster).
pub fn nats(c: &mut Container) -> Server {
    let port = free_port_outside_ephemeral();
    let (pid, log) = c.spawn(
        &["nats-server", "-a", "127.0.0.1", "-p", &port.to_string()],
        "nats.log",
    );
    wait_for_port(port, "nats-server", &log);
    Server {
        port,
        pid,
        log: log.clone(),
        aux: log,
    }
}

/// ZooKeeper standalone (Debian's jars, `ZooKeeperServerMain`), data in the container's
/// directory, the admin server off.
pub fn zookeeper(c: &mut Container) -> Server {
    let port = free_port_outside_ephemeral();
    let dir = c.dir.path().join("zookeeper");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let d = dir.to_str().unwrap();
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={d}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n"
        ),
    )
    .unwrap();
    let (pid, log) = c.spawn(
        &[
            "java",
            "-Xmx128m",
            "-cp",
            "/usr/share/java/*",
            &format!("-Dzookeeper.log.dir={d}"),
            "-Dzookeeper.jmx.log4j.disable=true",
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            cfg.to_str().unwrap(),
        ],
        "zookeeper.log",
    );
    wait_for_port(port, "ZooKeeper", &log);
    Server {
        port,
        pid,
        log,
        aux: dir,
    }
}

/// How long RabbitMQ may take to accept AMQP connections (it takes ~15-20 s here).
pub const RABBITMQ_START: Duration = Duration::from_secs(60);

/// RabbitMQ as the rabbitmq user: its own node name, AMQP port, distribution port and epmd
/// (ERL_EPMD_PORT: never the machine's shared 4369), everything bound to 127.0.0.1, no
/// plugins, state and logs in the container's directory. Err: it did not accept AMQP
/// connections within [`RABBITMQ_START`] (with its log).
pub fn rabbitmq(c: &mut Container) -> Result<Server, String> {
    let port = free_port_outside_ephemeral();
    let (dist, epmd) = loop {
        let (a, b) = (free_port_outside_ephemeral(), free_port_outside_ephemeral());
        if a != b && a != port && b != port {
            break (a, b);
        }
    };
    let dir = c.dir.path().join("rabbitmq");
    for sub in ["home", "mnesia", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("rabbitmq.conf"),
        format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("enabled_plugins"), "").unwrap();
    chown("rabbitmq", &[&dir]);
    let d = dir.to_str().unwrap();
    let env = [
        format!("HOME={d}/home"),
        format!("RABBITMQ_NODENAME=sonde-{}@localhost", std::process::id()),
        format!("RABBITMQ_CONFIG_FILE={d}/rabbitmq.conf"),
        format!("RABBITMQ_ENABLED_PLUGINS_FILE={d}/enabled_plugins"),
        format!("RABBITMQ_MNESIA_BASE={d}/mnesia"),
        format!("RABBITMQ_LOG_BASE={d}/log"),
        "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1".to_owned(),
        format!("RABBITMQ_NODE_PORT={port}"),
        format!("RABBITMQ_DIST_PORT={dist}"),
        format!("ERL_EPMD_PORT={epmd}"),
        "ERL_EPMD_ADDRESS=127.0.0.1".to_owned(),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
            .to_owned(),
    ];
    let mut argv: Vec<&str> = vec!["env"];
    argv.extend(env.iter().map(String::as_str));
    argv.extend([
        "setpriv",
        "--reuid=rabbitmq",
        "--regid=rabbitmq",
        "--init-groups",
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
    ]);
    let (pid, log) = c.spawn(&argv, "rabbitmq.log");
    let deadline = Instant::now() + RABBITMQ_START;
    // Listening is the last step of its boot: a connect that succeeds means AMQP is served.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "RabbitMQ did not accept AMQP connections on 127.0.0.1:{port} within {:?}: {}",
                RABBITMQ_START,
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(Server {
        port,
        pid,
        log,
        aux: dir,
    })
}

/// The replay server of l7_replay.py for `proto` (its log has a "REQ <status>" line per
/// request it answered).
pub fn replay(c: &mut Container, proto: &str) -> Server {
    let port = free_port_outside_ephemeral();
    let (pid, log) = c.spawn(
        &[
            "python3",
            script("l7_replay.py").to_str().unwrap(),
            proto,
            &port.to_string(),
        ],
        &format!("replay-{proto}.log"),
    );
    wait_for_line(&log, "READY", "the replay server");
    Server {
        port,
        pid,
        log: log.clone(),
        aux: log,
    }
}
