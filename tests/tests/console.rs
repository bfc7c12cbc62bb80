//! The web console (`runfleet console`) in a real browser: headless
//! Chromium driven through WebDriver (Debian's `chromium` and
//! `chromium-driver`, which `scripts/test` installs when missing) against a
//! real fleet. Every page is visited; a screenshot of each is written to
//! `target/console-screenshots/` (or `RUNFLEET_SCREENSHOTS`).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Stack, http_get, http_request, profile, turn, with_profiles};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use runfleet_producer::{Producer, new_run};
use runfleet_schemas::{CommandCreate, RunCreate, SessionId, TerminalCommandStatus};
use runfleet_tests::{binary, workspace_root};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(60);
/// A value the fleet must redact everywhere, the console included.
const SECRET: &str = "console-secret-7f3a9c";

/// A `runfleet console` process and where it listens.
struct Console {
    _child: tokio::process::Child,
    url: String,
    port: u16,
}

/// Starts `runfleet console --listen 127.0.0.1:0` with `args` and `env`,
/// and reads the URL it prints.
async fn start_console(nats_url: &str, args: &[&str], env: &[(&str, &str)]) -> Console {
    console_on(nats_url, 0, args, env).await
}

/// Starts `runfleet console --listen 127.0.0.1:<port>` with `args` and
/// `env`, and reads the URL it prints (a port just given up by a killed
/// console may take a moment to be free: tried again for a few seconds).
async fn console_on(nats_url: &str, port: u16, args: &[&str], env: &[(&str, &str)]) -> Console {
    let listen = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut child = tokio::process::Command::new(binary("runfleet").unwrap())
            .args(["console", "--listen", &listen])
            .args(args)
            .env("NATS_URL", nats_url)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the console printed no URL")
            .unwrap();
        let Some(line) = line else {
            assert!(
                Instant::now() < deadline,
                "the console exited: {:?}",
                child.wait().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let url = line
            .strip_prefix("runfleet console: ")
            .unwrap_or_else(|| panic!("not the console's URL line: {line}"))
            .to_owned();
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        return Console {
            _child: child,
            url,
            port,
        };
    }
}

/// Headless Chromium behind chromedriver.
struct Browser {
    driver: std::process::Child,
    client: Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn browser() -> Browser {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is not installed (scripts/test installs Debian's chromium and chromium-driver)");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                        "--disable-gpu", "--window-size=1280,1000"]}),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        // WebDriver on loopback: plain HTTP, no TLS stack.
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match connected {
            Ok(client) => return Browser { driver, client },
            Err(err) if Instant::now() < deadline => {
                eprintln!("waiting for chromedriver: {err}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(err) => panic!("no WebDriver session: {err}"),
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("RUNFLEET_SCREENSHOTS").map_or_else(
        || workspace_root().join("target/console-screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Waits until the element at `css` exists and its text satisfies `ok`; returns the text.
async fn text_when(client: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if ok(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never matched; last text: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn run_with(producer: &Producer, run: &RunCreate, bodies: &[Value]) -> Vec<CommandCreate> {
    producer.create_run(run).await.unwrap();
    let mut sent = Vec::new();
    for (seq, body) in (1..).zip(bodies) {
        let command = turn(run, seq, body.clone());
        producer.send_command(&command).await.unwrap();
        sent.push(command);
    }
    for command in &sent {
        producer.wait_for_receipt(command, WAIT).await.unwrap();
    }
    sent
}

fn page_of(console: &Console, run: &RunCreate) -> String {
    format!("{}runs/{}/{}", console.url, run.tenant, run.run_id)
}

#[tokio::test]
async fn the_console_shows_and_steers_the_fleet_in_a_real_browser() {
    let stack = Stack::start().await;
    let (env, _config) = with_profiles(
        &stack.env.clone().with("AGENT_TOKEN", SECRET),
        &[
            "[profiles.echo]\nkind = \"echo\"\n".to_owned(),
            profile("agent", "agent.py", "secret_env = [\"AGENT_TOKEN\"]"),
        ],
    );
    let _workers = stack.workers(&env, 2).await;
    let producer = stack.producer().await;

    // The fleet's data: successes in a session, a failure, a redacted
    // secret, and a command whose run does not exist (a dead letter).
    let mut done = new_run("acme", "web", "echo").unwrap();
    done.session_id = Some(SessionId::new("chat-1").unwrap());
    run_with(
        &producer,
        &done,
        &[json!({"text": "hello"}), json!({"text": "again"})],
    )
    .await;
    let failed = new_run("acme", "batch", "echo").unwrap();
    run_with(&producer, &failed, &[json!({"fail": "backend"})]).await;
    let secret = new_run("acme", "web", "agent").unwrap();
    run_with(
        &producer,
        &secret,
        &[json!({"text": "shh", "secret_env": "AGENT_TOKEN"})],
    )
    .await;
    // Some traffic for the overview's charts: 20 runs of 10 quick turns.
    let mut burst = Vec::new();
    for _ in 0..20 {
        let run = new_run("acme", "load", "echo").unwrap();
        producer.create_run(&run).await.unwrap();
        for seq in 1..=10 {
            let command = turn(&run, seq, json!({"text": "load", "sleep_ms": 5 * seq}));
            producer.send_command(&command).await.unwrap();
            burst.push(command);
        }
    }
    for command in &burst {
        producer.wait_for_receipt(command, WAIT).await.unwrap();
    }
    let orphan_run = new_run("acme", "web", "echo").unwrap();
    let orphan = turn(&orphan_run, 1, json!({"text": "late"}));
    producer.send_command(&orphan).await.unwrap();

    let console = start_console(stack.nats.url(), &[], &[]).await;
    let browser = browser().await;
    let c = &browser.client;

    // Overview: the workers, live.
    c.goto(&console.url).await.unwrap();
    text_when(c, "#workers-alive", |t| t.starts_with("2 alive")).await;
    let workers = text_when(c, "#workers", |t| t.contains("w1") && t.contains("w2")).await;
    assert!(workers.contains("alive"), "{workers}");
    text_when(c, "#commands-by-state", |t| t.contains("completed")).await;

    // Runs: listed, filtered by project.
    c.goto(&format!("{}runs", console.url)).await.unwrap();
    let all = text_when(c, "#runs", |t| t.contains(done.run_id.as_str())).await;
    assert!(all.contains(failed.run_id.as_str()), "{all}");
    shot(c, "runs").await;
    c.goto(&format!("{}runs?project=batch", console.url))
        .await
        .unwrap();
    let batch = text_when(c, "#runs", |t| t.contains(failed.run_id.as_str())).await;
    assert!(!batch.contains(done.run_id.as_str()), "{batch}");

    // A run's page: its receipts; an event published after the page loaded
    // appears without a reload, and markup in it is shown as text.
    c.goto(&page_of(&console, &done)).await.unwrap();
    let commands = text_when(c, "#commands", |t| t.matches("completed").count() == 2).await;
    assert!(commands.contains('w'), "the worker is shown: {commands}");
    text_when(c, "#live-state", |t| t.starts_with("Live")).await;
    let markup = "<script>alert(1)</script>";
    let third = turn(&done, 3, json!({ "text": markup }));
    producer.send_command(&third).await.unwrap();
    text_when(c, "#events", |t| t.contains(markup)).await;
    assert!(c.get_alert_text().await.is_err(), "a script ran");
    let scripts = c.find_all(Locator::Css("#events script")).await.unwrap();
    assert!(scripts.is_empty(), "event text became markup");
    shot(c, "run").await;

    // The console goes away and comes back on the same address: the page
    // reconnects and resumes after the last seq it shows, nothing missed
    // or doubled.
    let port = console.port;
    drop(console);
    let console = console_on(stack.nats.url(), port, &[], &[]).await;
    let fourth = turn(&done, 4, json!({"text": "after the reconnect"}));
    producer.send_command(&fourth).await.unwrap();
    text_when(c, "#events", |t| t.contains("after the reconnect")).await;
    text_when(c, "#live-state", |t| t.starts_with("Live")).await;
    let mut seqs = Vec::new();
    for row in c.find_all(Locator::Css("#events tr")).await.unwrap() {
        seqs.push(
            row.attr("data-seq")
                .await
                .unwrap()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert_eq!(
        seqs,
        (1..=8).collect::<Vec<_>>(),
        "each event once, in seq order"
    );

    c.goto(&page_of(&console, &failed)).await.unwrap();
    text_when(c, "#commands", |t| t.contains("backend-failed")).await;

    // The session's page lists its run.
    c.goto(&format!(
        "{}sessions?tenant=acme&session_id=chat-1",
        console.url
    ))
    .await
    .unwrap();
    text_when(c, "main", |t| t.contains(done.run_id.as_str())).await;
    shot(c, "session").await;

    // Secrets are redacted before they are stored, so never shown.
    c.goto(&page_of(&console, &secret)).await.unwrap();
    text_when(c, "#events", |t| t.contains("terminal_status")).await;
    let source = c.source().await.unwrap();
    assert!(!source.contains(SECRET), "the console shows a secret");

    // A running program: its events arrive live, and cancel from the page stops it.
    let long_run = new_run("acme", "web", "agent").unwrap();
    producer.create_run(&long_run).await.unwrap();
    let long = turn(
        &long_run,
        1,
        json!({"text": "long", "steps": 200, "step_sleep_ms": 100}),
    );
    producer.send_command(&long).await.unwrap();
    stack.wait_until_running(None).await;
    c.goto(&page_of(&console, &long_run)).await.unwrap();
    let shown = c.find_all(Locator::Css("#events tr")).await.unwrap().len();
    text_when(c, "#events", |t| t.contains("progress")).await;
    let deadline = Instant::now() + WAIT;
    while c.find_all(Locator::Css("#events tr")).await.unwrap().len() < shown + 3 {
        assert!(Instant::now() < deadline, "no live events");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(
        c,
        &format!("tr[data-command=\"{}\"] button", long.command_id),
    )
    .await;
    text_when(c, ".notice", |t| t.contains("Cancel requested")).await;
    let receipt = producer.wait_for_receipt(&long, WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Cancelled);
    c.refresh().await.unwrap();
    text_when(c, "#commands", |t| t.contains("cancelled")).await;

    // Dead letters: listed, shown, re-driven after a confirmation; the
    // command then completes (its run exists by now).
    let dead = stack.wait_for_dead_letters(1).await;
    assert_eq!(dead[0].0, "run-not-found", "{dead:?}");
    producer.create_run(&orphan_run).await.unwrap();
    c.goto(&format!("{}dead-letters", console.url))
        .await
        .unwrap();
    text_when(c, "#dead-letters", |t| t.contains("run-not-found")).await;
    click(c, "#dead-letters tbody a").await;
    text_when(c, "#dead-letter-reason", |t| t == "run-not-found").await;
    let payload_text = text_when(c, "#payload", |t| !t.is_empty()).await;
    assert!(
        payload_text.contains(orphan.command_id.as_str()),
        "{payload_text}"
    );
    shot(c, "dead-letter").await;
    click(c, "#redrive").await;
    click(c, "#confirm-redrive").await;
    text_when(c, ".notice", |t| t.starts_with("Re-driven")).await;
    let receipt = producer.wait_for_receipt(&orphan, WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);

    // A phone-sized window reads the same page.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&page_of(&console, &done)).await.unwrap();
    text_when(c, "#commands", |t| t.contains("completed")).await;
    shot(c, "run-phone").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Actions need the page's CSRF token.
    let path = format!("/runs/acme/{}/cancel", long_run.run_id);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, body) = http_request(console.port, "POST", &path, &form, "csrf=forged").await;
    assert_eq!(status, 403, "{body}");

    // Read-only: no action shown, every action refused.
    let read_only = console_read_only(stack.nats.url()).await;
    c.goto(&page_of(&read_only, &long_run)).await.unwrap();
    text_when(c, "header", |t| t.contains("read-only")).await;
    assert!(
        c.find_all(Locator::Css("main button"))
            .await
            .unwrap()
            .is_empty()
    );
    let (status, body) = http_request(read_only.port, "POST", &path, &form, "csrf=").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");

    // An operator token: nothing without it, the login form sets it.
    let token = "a-long-operator-token-1234";
    let guarded = start_console(stack.nats.url(), &[], &[("RUNFLEET_CONSOLE_TOKEN", token)]).await;
    let (status, _) = http_get(guarded.port, "/runs").await;
    assert_eq!(status, 303, "redirected to the login form");
    let bearer = format!("Bearer {token}");
    let (status, _) = http_request(
        guarded.port,
        "GET",
        "/runs",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    c.goto(&guarded.url).await.unwrap();
    c.find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys("wrong")
        .await
        .unwrap();
    click(c, "main button").await;
    text_when(c, ".notice", |t| t.contains("not the operator token")).await;
    c.find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(c, "main button").await;
    text_when(c, "#workers-alive", |t| t.contains("alive")).await;

    // Listening beyond loopback without a token is refused at start.
    let refused = tokio::process::Command::new(binary("runfleet").unwrap())
        .args(["console", "--listen", "0.0.0.0:0"])
        .env("NATS_URL", stack.nats.url())
        .env_remove("RUNFLEET_CONSOLE_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("RUNFLEET_CONSOLE_TOKEN"), "{said}");
    // The overview again, its charts filled by now.
    c.goto(&console.url).await.unwrap();
    text_when(c, "#workers-alive", |t| t.starts_with("2 alive")).await;
    shot(c, "overview").await;
    eprintln!("screenshots in {}", screenshots().display());
    // Ends the session, so chromedriver closes Chromium (killing only the
    // driver would leave the browser running).
    c.clone().close().await.unwrap();
}

async fn console_read_only(nats_url: &str) -> Console {
    start_console(nats_url, &["--read-only"], &[]).await
}
