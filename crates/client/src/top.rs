//! `sonde top`: a terminal view of the local agent, refreshed every second from its /metrics
//! (the same scrape Prometheus makes, so the node pays nothing extra): containers by CPU and
//! memory, and for the selected container its upstreams with connects, bytes/s and packets/s
//! in and out.
//!
//! Keys: ↑/↓ (j/k) select, c/m/o/t/r/n sort by cpu, memory, connects/s, tx/s, rx/s, name
//! (again: reverse), / filter by container id (Enter keeps it, Esc clears), e exact numbers,
//! q quit.

pub mod view;

use std::io::Stdout;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::model::{Snapshot, rate};
use crate::{AgentUrl, Error, exposition};
use view::{SortKey, container_rows, human, upstream_rows};

/// What `sonde top` reads and how often.
#[derive(Debug, Clone)]
pub struct TopConfig {
    /// The agent's metrics endpoint.
    pub url: AgentUrl,
    /// Time between refreshes.
    pub refresh: Duration,
    /// Bound on one scrape.
    pub timeout: Duration,
}

/// A scrape result from the fetching thread.
type Fetched = (Instant, Result<Snapshot, String>);

/// The view's state: the last two snapshots and the user's choices.
#[derive(Debug)]
pub struct App {
    prev: Option<(Instant, Snapshot)>,
    cur: Option<(Instant, Snapshot)>,
    error: Option<String>,
    url: String,
    sort: SortKey,
    reverse: bool,
    selected: usize,
    filter: String,
    editing: bool,
    exact: bool,
    quit: bool,
}

impl App {
    fn new(url: String) -> App {
        App {
            prev: None,
            cur: None,
            error: None,
            url,
            sort: SortKey::Cpu,
            reverse: false,
            selected: 0,
            filter: String::new(),
            editing: false,
            exact: false,
            quit: false,
        }
    }

    fn on_fetch(&mut self, (at, result): Fetched) {
        match result {
            Ok(snap) => {
                self.prev = self.cur.take();
                self.cur = Some((at, snap));
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if self.editing {
            match key.code {
                KeyCode::Enter => self.editing = false,
                KeyCode::Esc => {
                    self.editing = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if self.filter.len() < 256 => self.filter.push(c),
                _ => {}
            }
            self.selected = 0;
            return;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Down | KeyCode::Char('j') => self.selected = self.selected.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::PageDown => self.selected = self.selected.saturating_add(10),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::Char('/') => self.editing = true,
            KeyCode::Char('e') => self.exact = !self.exact,
            KeyCode::Char(c) => {
                if let Some(key) = SortKey::from_key(c) {
                    self.reverse = key == self.sort && !self.reverse;
                    self.sort = key;
                }
            }
            _ => {}
        }
    }

    fn draw(&mut self, f: &mut ratatui::Frame<'_>) {
        let [header, containers, upstreams, footer] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Percentage(55),
            Constraint::Min(5),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let exact = self.exact;
        let empty = Snapshot::default();
        let (cur, seconds) = match (&self.prev, &self.cur) {
            (Some((t0, _)), Some((t1, s))) => (s, t1.duration_since(*t0).as_secs_f64()),
            (None, Some((_, s))) => (s, 0.0),
            _ => (&empty, 0.0),
        };
        let prev = self.prev.as_ref().map(|(_, s)| s);

        // Header: the node and the state of the connection to the agent.
        let n = &cur.node;
        let cpu = prev
            .and_then(|p| rate(p.node.cpu_busy_seconds, n.cpu_busy_seconds, seconds))
            .map(|r| r * 100.0 / n.cores.unwrap_or(1.0).max(1.0));
        let used = n
            .memory_total_bytes
            .zip(n.memory_available_bytes)
            .map(|(t, a)| t - a);
        let node_rate = |f: fn(&crate::model::Node) -> Option<f64>| {
            prev.and_then(|p| rate(f(&p.node), f(n), seconds))
        };
        let status = match &self.error {
            Some(e) => format!("agent {}: {e}", self.url),
            None if self.cur.is_none() => {
                format!("agent {}: waiting for the first scrape", self.url)
            }
            None => format!("agent {}", self.url),
        };
        let head = vec![
            Line::from(format!(
                "node {}  cpu {}%  mem {}/{}  net rx {}/s tx {}/s",
                n.hostname,
                cpu.map_or("-".to_owned(), |c| format!("{c:.1}")),
                human(used, exact),
                human(n.memory_total_bytes, exact),
                human(node_rate(|n| n.net_rx_bytes), exact),
                human(node_rate(|n| n.net_tx_bytes), exact),
            )),
            Line::from(status),
        ];
        f.render_widget(Paragraph::new(head), header);

        // Containers.
        let rows = container_rows(prev, cur, seconds, &self.filter, self.sort, self.reverse);
        self.selected = self.selected.min(rows.len().saturating_sub(1));
        let selected_id = rows.get(self.selected).map(|r| r.id.clone());
        let table_rows = rows.iter().map(|r| {
            Row::new([
                Cell::from(r.id.clone()),
                Cell::from(r.cpu_percent.map_or("-".to_owned(), |c| format!("{c:.1}"))),
                Cell::from(human(r.rss_bytes, exact)),
                Cell::from(human(r.cache_bytes, exact)),
                Cell::from(rate_text(r.connects_rate)),
                Cell::from(human(r.tx_rate, exact)),
                Cell::from(human(r.rx_rate, exact)),
                Cell::from(r.upstreams.to_string()),
            ])
        });
        let title = format!(
            " containers ({}) sort: {}{}{} ",
            rows.len(),
            self.sort.label(),
            if self.reverse { " reversed" } else { "" },
            if self.filter.is_empty() && !self.editing {
                String::new()
            } else {
                format!(
                    "  filter: {}{}",
                    self.filter,
                    if self.editing { "_" } else { "" }
                )
            }
        );
        let table = Table::new(
            table_rows,
            [
                Constraint::Fill(1),
                Constraint::Length(7),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(8),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(5),
            ],
        )
        .header(header_row([
            "CONTAINER",
            "CPU%",
            "RSS",
            "CACHE",
            "CONN/s",
            "TX/s",
            "RX/s",
            "UPS",
        ]))
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
        let mut state =
            TableState::default().with_selected(selected_id.as_ref().map(|_| self.selected));
        f.render_stateful_widget(table, containers, &mut state);

        // Upstreams of the selected container.
        let id = selected_id.unwrap_or_default();
        let ups = upstream_rows(prev, cur, seconds, &id, self.sort, self.reverse);
        let up_rows = ups.iter().map(|u| {
            Row::new([
                Cell::from(u.destination.clone()),
                Cell::from(format!("{}", u.active)),
                Cell::from(rate_text(u.connects_rate)),
                Cell::from(human(u.tx_rate, exact)),
                Cell::from(human(u.rx_rate, exact)),
                Cell::from(rate_text(u.tx_packets_rate)),
                Cell::from(rate_text(u.rx_packets_rate)),
                Cell::from(human(Some(u.tx_bytes), exact)),
                Cell::from(human(Some(u.rx_bytes), exact)),
            ])
        });
        let table = Table::new(
            up_rows,
            [
                Constraint::Fill(1),
                Constraint::Length(7),
                Constraint::Length(8),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(13),
                Constraint::Length(13),
            ],
        )
        .header(header_row([
            "DESTINATION",
            "ACTIVE",
            "CONN/s",
            "TX/s",
            "RX/s",
            "TXPKT/s",
            "RXPKT/s",
            "TX",
            "RX",
        ]))
        .block(Block::bordered().title(format!(" upstreams of {id} ({}) ", ups.len())));
        f.render_widget(table, upstreams);

        f.render_widget(
            Paragraph::new(
                "↑↓ select  c/m/o/t/r/n sort (again: reverse)  / filter  e exact numbers  q quit",
            ),
            footer,
        );
    }
}

fn header_row<const N: usize>(names: [&'static str; N]) -> Row<'static> {
    Row::new(names).style(Style::new().add_modifier(Modifier::BOLD))
}

/// An event rate with one decimal ("-" when unknown).
fn rate_text(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |r| format!("{r:.1}"))
}

/// Restores the terminal however `run` ends (error or panic included).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = disable_raw_mode();
        let _ = crossterm::execute!(std::io::stdout(), LeaveAlternateScreen);
    }
}

/// Runs the view until the user quits.
pub fn run(config: &TopConfig) -> Result<(), Error> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(Error::Terminal(std::io::Error::other(
            "standard output is not a terminal (run sonde top in one; use sonde record for files)",
        )));
    }
    // Scrapes happen on their own thread so a slow agent never freezes the keyboard; the
    // channel holds one result (a newer scrape waits until the view took the last).
    let (tx, rx) = mpsc::sync_channel::<Fetched>(1);
    let fetch = config.clone();
    std::thread::Builder::new()
        .name("sonde-top-fetch".into())
        .spawn(move || fetch_loop(&fetch, &tx))
        .map_err(Error::Terminal)?;

    enable_raw_mode().map_err(Error::Terminal)?;
    let _guard = TerminalGuard;
    crossterm::execute!(std::io::stdout(), EnterAlternateScreen).map_err(Error::Terminal)?;
    let mut terminal: Terminal<CrosstermBackend<Stdout>> =
        Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(Error::Terminal)?;
    let mut app = App::new(config.url.to_url());
    let mut dirty = true;
    while !app.quit {
        while let Ok(fetched) = rx.try_recv() {
            app.on_fetch(fetched);
            dirty = true;
        }
        if dirty {
            terminal.draw(|f| app.draw(f)).map_err(Error::Terminal)?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(100)).map_err(Error::Terminal)? {
            match event::read().map_err(Error::Terminal)? {
                Event::Key(key) => app.on_key(key),
                Event::Resize(..) => {}
                _ => continue,
            }
            dirty = true;
        }
    }
    Ok(())
}

fn fetch_loop(config: &TopConfig, tx: &mpsc::SyncSender<Fetched>) {
    loop {
        let started = Instant::now();
        let result = config
            .url
            .get(config.timeout)
            .map(|body| Snapshot::from_samples(&exposition::parse(&body).samples))
            .map_err(|e| match std::error::Error::source(&e) {
                Some(s) => format!("{e}: {s}"),
                None => e.to_string(),
            });
        // Rates divide by the time between the scrapes' starts.
        if tx.send((started, result)).is_err() {
            return; // The view is gone.
        }
        std::thread::sleep(config.refresh.saturating_sub(started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ratatui::backend::TestBackend;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn screen(app: &mut App) -> String {
        let mut t = Terminal::new(TestBackend::new(140, 30)).unwrap();
        t.draw(|f| app.draw(f)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    fn snap(text: &str) -> Snapshot {
        Snapshot::from_samples(&exposition::parse(text).samples)
    }

    #[test]
    fn keys_sort_filter_and_exact_numbers_show_on_screen() {
        let mut app = App::new("http://127.0.0.1:1/metrics".into());
        let t0 = Instant::now();
        app.on_fetch((t0, Ok(snap("container_resources_cpu_usage_seconds_total{container_id=\"/a\"} 1\ncontainer_resources_cpu_usage_seconds_total{container_id=\"/b\"} 1\ncontainer_net_tcp_bytes_sent_total{container_id=\"/b\",destination=\"10.1.1.1:80\"} 0\n"))));
        app.on_fetch((t0 + Duration::from_secs(2), Ok(snap("container_resources_cpu_usage_seconds_total{container_id=\"/a\"} 2\ncontainer_resources_cpu_usage_seconds_total{container_id=\"/b\"} 1.5\ncontainer_net_tcp_bytes_sent_total{container_id=\"/b\",destination=\"10.1.1.1:80\"} 3000000\n"))));
        let s = screen(&mut app);
        assert!(s.contains("sort: cpu"), "{s}");
        // /a (50%) first and selected: no upstreams.
        assert!(s.contains("upstreams of /a (0)"), "{s}");
        app.on_key(key(KeyCode::Down));
        let s = screen(&mut app);
        assert!(s.contains("upstreams of /b (1)"), "{s}");
        assert!(s.contains("1.4M"), "3 MB in 2 s, human: {s}");
        app.on_key(key(KeyCode::Char('e')));
        let s = screen(&mut app);
        let line = s.lines().find(|l| l.contains("10.1.1.1:80")).unwrap();
        let cols: Vec<&str> = line.split(['│', ' ']).filter(|c| !c.is_empty()).collect();
        assert_eq!(
            cols[..9],
            [
                "10.1.1.1:80",
                "0",
                "0.0",
                "1500000",
                "0",
                "-",
                "-",
                "3000000",
                "0"
            ],
            "{line}"
        );
        // Sort by name reversed: /b first.
        app.on_key(key(KeyCode::Char('n')));
        app.on_key(key(KeyCode::Char('n')));
        let s = screen(&mut app);
        assert!(s.contains("sort: name reversed"), "{s}");
        // Filter to /a.
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Char('a')));
        app.on_key(key(KeyCode::Enter));
        let s = screen(&mut app);
        assert!(
            s.contains("containers (1)") && s.contains("filter: a"),
            "{s}"
        );
        app.on_fetch((t0, Err("refused".into())));
        assert!(screen(&mut app).contains("refused"));
        app.on_key(key(KeyCode::Char('q')));
        assert!(app.quit);
    }
}
