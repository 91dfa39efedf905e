//! A stand-in for cloud metadata services: a tiny HTTP/1.1 server on 127.0.0.1 (random port)
//! with canned answers per method and path, required request headers, an optional delay before
//! every answer, and a record of every request. Plain std threads, so synchronous tests need
//! no runtime; one request per connection (`Connection: close`), which is all the agent's
//! metadata client (no keep-alive) sends.
//!
//! Tests point the agent at it with `--cloud-metadata-base-url` so that no request ever leaves
//! the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest request head accepted; metadata clients send a few hundred bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string without `?`, empty when none.
    pub query: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The status the server chose for it (sent after the delay, if the client still waits).
    pub status: u16,
}

impl Seen {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A canned answer for one method and path.
#[derive(Debug, Clone)]
pub struct Route {
    method: String,
    path: String,
    required: Vec<(String, String)>,
    refused_status: u16,
    status: u16,
    body: String,
}

impl Route {
    /// `GET path` answered 200 with `body`.
    pub fn get(path: &str, body: &str) -> Route {
        Route::new("GET", path, body)
    }

    /// `PUT path` answered 200 with `body`.
    pub fn put(path: &str, body: &str) -> Route {
        Route::new("PUT", path, body)
    }

    /// The path this route answers.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn new(method: &str, path: &str, body: &str) -> Route {
        Route {
            method: method.to_owned(),
            path: path.to_owned(),
            required: Vec::new(),
            refused_status: 401,
            status: 200,
            body: body.to_owned(),
        }
    }

    /// Answers with `status` instead of 200 (a failing service).
    pub fn status(mut self, status: u16) -> Route {
        self.status = status;
        self
    }

    /// Requests without header `name` equal to `value` are refused (401 unless
    /// [`Route::refuse_with`] says otherwise), as IMDSv2 refuses token-less GETs.
    pub fn require_header(mut self, name: &str, value: &str) -> Route {
        self.required
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The status for requests missing a required header.
    pub fn refuse_with(mut self, status: u16) -> Route {
        self.refused_status = status;
        self
    }
}

#[derive(Debug)]
struct Shared {
    routes: Vec<Route>,
    delay: Duration,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    answered: AtomicUsize,
    shutdown: Mutex<bool>,
    wake: Condvar,
    stopping: AtomicBool,
}

/// The running server; stopped on drop (requests held by the delay are released unanswered).
#[derive(Debug)]
pub struct MockServer {
    /// `http://127.0.0.1:<port>`, for `--cloud-metadata-base-url`.
    pub base: String,
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Serves `routes` at once; anything else is 404.
    pub fn start(routes: Vec<Route>) -> MockServer {
        MockServer::start_with_delay(routes, Duration::ZERO)
    }

    /// Like [`MockServer::start`], holding every request `delay` before answering it (a
    /// metadata service slower than the client's timeout).
    pub fn start_with_delay(routes: Vec<Route>, delay: Duration) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock server");
        let port = listener.local_addr().expect("mock address").port();
        let shared = Arc::new(Shared {
            routes,
            delay,
            seen: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            shutdown: Mutex::new(false),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(stream, &shared));
                }
            })
        };
        MockServer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// How many requests were received (answered or not).
    pub fn count(&self) -> usize {
        lock(&self.shared.seen).len()
    }

    /// Requests received whose answer has not been sent yet (held by the delay).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Answers sent so far.
    pub fn answered(&self) -> usize {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Polls until at least `n` requests arrived; panics after `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) {
        crate::wait_for(&format!("{n} request(s) at the mock"), timeout, || {
            (self.count() >= n).then_some(())
        });
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        *lock(&self.shared.shutdown) = true;
        self.shared.wake.notify_all();
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    content_length: usize,
}

fn read_head(reader: &mut BufReader<TcpStream>) -> Option<Head> {
    let mut total = 0;
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    total += line.len();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut content_length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        total += line.len();
        if total > MAX_HEAD_BYTES {
            return None;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim().to_owned();
        if k == "content-length" {
            content_length = v.parse().ok()?;
        }
        headers.push((k, v));
    }
    Some(Head {
        method,
        target,
        headers,
        content_length,
    })
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Some(head) = read_head(&mut reader) else {
        return;
    };
    if head.content_length > 0 {
        let mut body = vec![0; head.content_length.min(1 << 20)];
        let _ = reader.read_exact(&mut body);
    }
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (head.target.clone(), String::new()),
    };
    let mut seen = Seen {
        method: head.method,
        path,
        query,
        headers: head.headers,
        status: 404,
    };
    let mut body = String::from("not found");
    if let Some(route) = shared
        .routes
        .iter()
        .find(|r| r.method == seen.method && r.path == seen.path)
    {
        let refused = route
            .required
            .iter()
            .any(|(k, v)| seen.header(k) != Some(v.as_str()));
        if refused {
            seen.status = route.refused_status;
            body = "refused".to_owned();
        } else {
            seen.status = route.status;
            body = route.body.clone();
        }
    }
    let status = seen.status;
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    lock(&shared.seen).push(seen);
    if !shared.delay.is_zero() {
        let deadline = Instant::now() + shared.delay;
        let mut stop = lock(&shared.shutdown);
        while !*stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stop = shared
                .wake
                .wait_timeout(stop, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if *stop {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    }
    let mut out = write_half;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = out.flush();
    shared.answered.fetch_add(1, Ordering::SeqCst);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let _ = out.shutdown(std::net::Shutdown::Both);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(port: u16, raw: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn routes_headers_and_records() {
        let mock = MockServer::start(vec![
            Route::put("/token", "t1"),
            Route::get("/data", "hello").require_header("X-Token", "t1"),
            Route::get("/broken", "").status(500),
        ]);
        let r = request(
            mock.port,
            "PUT /token HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(
            r.starts_with("HTTP/1.1 200 ") && r.ends_with("\r\n\r\nt1"),
            "{r}"
        );
        let r = request(mock.port, "GET /data?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 401 "), "{r}");
        let r = request(mock.port, "GET /data HTTP/1.1\r\nx-token: t1\r\n\r\n");
        assert!(r.ends_with("hello"), "{r}");
        assert!(request(mock.port, "GET /broken HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 500 "));
        assert!(request(mock.port, "GET /none HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        let seen = mock.requests();
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[1].query, "x=1");
        assert_eq!(seen[1].header("HOST"), Some("h"));
        let statuses: Vec<u16> = seen.iter().map(|s| s.status).collect();
        assert_eq!(statuses, [200, 401, 200, 500, 404]);
        assert_eq!((mock.answered(), mock.in_flight()), (5, 0));
    }

    #[test]
    fn delay_holds_the_answer_and_drop_releases_it() {
        let mock =
            MockServer::start_with_delay(vec![Route::get("/a", "x")], Duration::from_secs(30));
        let port = mock.port;
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        });
        mock.wait_for_requests(1, Duration::from_secs(10));
        assert_eq!((mock.in_flight(), mock.answered()), (1, 0));
        drop(mock);
        // Released without an answer (after the delay it would have been a 200).
        assert_eq!(client.join().unwrap(), "");
    }
}
