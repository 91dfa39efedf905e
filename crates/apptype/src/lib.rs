//! sonde-apptype: the `application_type` of `container_application_type`, guessed from a
//! process's command line (`/proc/<pid>/cmdline`) and, failing that, its binary
//! (`/proc/<pid>/exe`).
//!
//! The names and the order of the rules are coroot-node-agent's (`guessApplicationType*`),
//! so a Coroot server's inspections (Postgres, Redis, JVM, ...) light up unchanged. Pure: the
//! caller reads the files; nothing here allocates.

/// How a rule looks at the command line.
enum Rule {
    /// The command (first word of argv[0], a trailing ':' removed) ends with this.
    CmdSuffix(&'static str),
    /// The command contains this.
    CmdContains(&'static str),
    /// The whole command line (all arguments) contains this.
    LineContains(&'static str),
    /// The command ends with the first and the command line contains the second.
    CmdSuffixAndLine(&'static str, &'static str),
}

use Rule::*;

/// First match wins; the order matters (e.g. "pgbouncer" before "postgres", "coroot-ee" after
/// "coroot" exactly as coroot lists them).
const RULES: &[(Rule, &str)] = &[
    (CmdSuffix("coroot"), "coroot-community-edition"),
    (CmdSuffix("coroot-ee"), "coroot-enterprise-edition"),
    (CmdSuffix("coroot-node-agent"), "coroot-node-agent"),
    (CmdSuffix("coroot-cluster-agent"), "coroot-cluster-agent"),
    (CmdSuffix("coroot-operator"), "coroot-operator"),
    (CmdSuffix("memcached"), "memcached"),
    (CmdSuffix("envoy"), "envoy"),
    (LineContains("org.elasticsearch.bootstrap"), "elasticsearch"),
    (LineContains("org.opensearch.bootstrap"), "opensearch"),
    (LineContains("kafka.Kafka"), "kafka"),
    (
        LineContains("io.confluent.support.metrics.SupportedKafka"),
        "kafka",
    ),
    (CmdSuffix("mongod"), "mongodb"),
    (CmdSuffix("mongos"), "mongos"),
    (CmdSuffix("mysqld"), "mysql"),
    (CmdSuffix("mariadbd"), "mysql"),
    (
        LineContains("org.apache.zookeeper.server.quorum.QuorumPeerMain"),
        "zookeeper",
    ),
    (CmdSuffix("redis-server"), "redis"),
    (CmdSuffix("redis-sentinel"), "redis-sentinel"),
    (CmdSuffix("keydb-server"), "keydb"),
    (CmdSuffix("valkey-server"), "valkey"),
    (CmdSuffix("dragonfly"), "dragonfly"),
    (CmdSuffixAndLine("beam.smp", "rabbit"), "rabbitmq"),
    (CmdSuffixAndLine("beam.smp", "couch"), "couchbase"),
    (CmdSuffix("pgbouncer"), "pgbouncer"),
    (CmdSuffix("postgres"), "postgres"),
    (CmdSuffix("haproxy"), "haproxy"),
    (CmdSuffix("nginx"), "nginx"),
    (CmdSuffix("kubelet"), "kubelet"),
    (CmdSuffix("kube-apiserver"), "kube-apiserver"),
    (
        CmdSuffix("kube-controller-manager"),
        "kube-controller-manager",
    ),
    (CmdSuffix("kube-scheduler"), "kube-scheduler"),
    (CmdSuffix("k3s"), "k3s"),
    (CmdSuffix("etcd"), "etcd"),
    (CmdSuffix("dockerd"), "dockerd"),
    (CmdSuffix("consul"), "consul"),
    (
        LineContains("org.apache.cassandra.service.CassandraDaemon"),
        "cassandra",
    ),
    (CmdSuffix("clickhouse-server"), "clickhouse"),
    (CmdSuffix("traefik"), "traefik"),
    (CmdSuffix("asd"), "aerospike"),
    (CmdSuffix("httpd"), "httpd"),
    (CmdSuffix("influxd"), "influxdb"),
    (
        LineContains("org.apache.catalina.startup.Bootstrap"),
        "tomcat",
    ),
    (CmdSuffix("vault"), "vault"),
    (CmdSuffix("proxysql"), "proxysql"),
    (CmdSuffix("cockroach"), "cockroach"),
    (CmdSuffix("prometheus"), "prometheus"),
    (CmdSuffix("ceph-mon"), "ceph"),
    (CmdSuffix("ceph-mgr"), "ceph"),
    (CmdSuffix("ceph-osd"), "ceph"),
    (CmdSuffix("cephcsi"), "ceph"),
    (CmdSuffix("rook"), "rook"),
    (CmdSuffix("nats-server"), "nats"),
    (CmdSuffix("java"), "java"),
    (CmdContains("victoria-metrics"), "victoria-metrics"),
    (CmdContains("vmstorage"), "victoria-metrics"),
    (CmdContains("vminsert"), "victoria-metrics"),
    (CmdContains("vmselect"), "victoria-metrics"),
    (CmdContains("victoria-logs"), "victoria-logs"),
];

/// Every application type this crate can return (for docs and tests).
pub fn known_types() -> impl Iterator<Item = &'static str> {
    RULES
        .iter()
        .map(|(_, t)| *t)
        .chain(["php", "python", "nodejs", "ruby"])
}

/// The type of a process from its raw `/proc/<pid>/cmdline` (NUL-separated arguments).
/// None for an empty command line (kernel threads, zombies) or an unknown program.
pub fn guess_by_cmdline(cmdline: &[u8]) -> Option<&'static str> {
    let argv0 = cmdline.split(|&b| b == 0).next()?;
    // A rewritten process title ("postgres: checkpointer") is one argument with spaces.
    let cmd = argv0
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())?;
    let cmd = cmd.strip_suffix(b":").unwrap_or(cmd);
    for (rule, app) in RULES {
        let hit = match rule {
            CmdSuffix(s) => cmd.ends_with(s.as_bytes()),
            CmdContains(s) => contains(cmd, s.as_bytes()),
            LineContains(s) => contains(cmdline, s.as_bytes()),
            CmdSuffixAndLine(s, l) => {
                cmd.ends_with(s.as_bytes()) && contains(cmdline, l.as_bytes())
            }
        };
        if hit {
            return Some(app);
        }
    }
    interpreter(cmd)
}

/// The type of a process from the target of `/proc/<pid>/exe`: interpreters only, for scripts
/// whose command line names the script rather than the interpreter.
pub fn guess_by_exe(exe: &[u8]) -> Option<&'static str> {
    interpreter(exe)
}

/// `php`, `python3.11`, `ruby2.7`, `node`, `nodejs18` (coroot's `.*<name>\d*\.?\d*$`).
fn interpreter(cmd: &[u8]) -> Option<&'static str> {
    let base = strip_version(cmd);
    [
        ("php", "php"),
        ("python", "python"),
        ("node", "nodejs"),
        ("nodejs", "nodejs"),
        ("ruby", "ruby"),
    ]
    .into_iter()
    .find(|(name, _)| base.ends_with(name.as_bytes()))
    .map(|(_, app)| app)
}

/// Removes a trailing `\d*\.?\d*`.
fn strip_version(s: &[u8]) -> &[u8] {
    let digits = |s: &[u8]| s.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let s = &s[..s.len() - digits(s)];
    let s = s.strip_suffix(b".").unwrap_or(s);
    &s[..s.len() - digits(s)]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut v = args.join("\0").into_bytes();
        v.push(0);
        v
    }

    #[test]
    fn databases_and_servers() {
        for (args, want) in [
            (
                &["/usr/lib/postgresql/15/bin/postgres", "-D", "/data"][..],
                "postgres",
            ),
            (&["postgres: checkpointer "][..], "postgres"),
            (&["postgres: 15/main: walwriter"][..], "postgres"),
            (&["/usr/bin/redis-server 127.0.0.1:6379"][..], "redis"),
            (&["redis-sentinel *:26379 [sentinel]"][..], "redis-sentinel"),
            (
                &["nginx: master process /usr/sbin/nginx -g daemon off;"][..],
                "nginx",
            ),
            (&["nginx: worker process"][..], "nginx"),
            (&["/usr/sbin/mysqld"][..], "mysql"),
            (&["mariadbd"][..], "mysql"),
            (
                &["/usr/bin/pgbouncer", "/etc/pgbouncer.ini"][..],
                "pgbouncer",
            ),
            (&["/usr/bin/mongod", "--config"][..], "mongodb"),
            (
                &[
                    "/usr/bin/java",
                    "-cp",
                    "x",
                    "kafka.Kafka",
                    "server.properties",
                ][..],
                "kafka",
            ),
            (
                &[
                    "/opt/java/bin/java",
                    "-Xmx1g",
                    "org.elasticsearch.bootstrap.Elasticsearch",
                ][..],
                "elasticsearch",
            ),
            (&["/usr/bin/java", "-jar", "app.jar"][..], "java"),
            (
                &[
                    "/usr/lib/erlang/erts/bin/beam.smp",
                    "--",
                    "-root",
                    "/usr/lib/rabbitmq",
                ][..],
                "rabbitmq",
            ),
            (&["/usr/lib/erlang/erts/bin/beam.smp", "--"][..], ""),
            (&["/bin/vmstorage-prod"][..], "victoria-metrics"),
            (&["/usr/bin/python3.11", "app.py"][..], "python"),
            (&["python"][..], "python"),
            (&["/usr/local/bin/node", "server.js"][..], "nodejs"),
            (&["nodejs18", "server.js"][..], "nodejs"),
            (&["php-fpm: pool www"][..], ""),
            (&["php8.2", "artisan"][..], "php"),
            (&["ruby2.7", "app.rb"][..], "ruby"),
            (&["/bin/sh", "-c", "sleep 1"][..], ""),
            (&["coroot-ee"][..], "coroot-enterprise-edition"),
        ] {
            assert_eq!(guess_by_cmdline(&cmd(args)).unwrap_or(""), want, "{args:?}");
        }
    }

    #[test]
    fn empty_and_odd_command_lines() {
        assert_eq!(guess_by_cmdline(b""), None);
        assert_eq!(guess_by_cmdline(b"\0\0"), None);
        assert_eq!(guess_by_cmdline(b"   \0x"), None);
        assert_eq!(guess_by_cmdline(&[0xff, 0xfe, 0]), None);
    }

    #[test]
    fn exe_names_interpreters_only() {
        assert_eq!(guess_by_exe(b"/usr/bin/python3.11"), Some("python"));
        assert_eq!(guess_by_exe(b"/usr/bin/ruby3.1"), Some("ruby"));
        assert_eq!(guess_by_exe(b"/usr/sbin/nginx"), None);
        assert_eq!(strip_version(b"python3.11"), b"python");
        assert_eq!(strip_version(b"3.1"), b"");
    }

    #[test]
    fn knows_coroots_names() {
        let all: Vec<&str> = known_types().collect();
        for t in [
            "postgres",
            "redis",
            "nginx",
            "java",
            "kafka",
            "mysql",
            "mongodb",
            "memcached",
        ] {
            assert!(all.contains(&t), "{t}");
        }
    }
}
