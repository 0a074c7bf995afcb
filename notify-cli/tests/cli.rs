//! The built binary against a small HTTP server on loopback: what a build sees.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "cli-test-token-42";

/// A request the server received.
#[derive(Debug)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Answers each connection with the next scripted (status, body); `None` means
/// accept and never answer. Sends every request it read to the channel.
fn server(script: Vec<Option<(u16, &'static str)>>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for answer in script {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let received = read_request(&stream);
            let _ = tx.send(received);
            match answer {
                Some((status, body)) => respond(stream, status, body),
                None => {
                    thread::sleep(Duration::from_secs(30));
                    drop(stream);
                }
            }
        }
    });
    (url, rx)
}

fn read_request(stream: &TcpStream) -> Received {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    reader.read_line(&mut request_line).expect("request line");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("body");
    Received {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body: String::from_utf8(body).expect("utf-8 body"),
    }
}

fn respond(mut stream: TcpStream, status: u16, body: &str) {
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// A scratch project directory with a wrangler.toml and no git.
fn project(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "notify-deploy-test-{}-{}",
        std::process::id(),
        name
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("wrangler.toml"),
        format!("name = \"{name}\"\nmain = \"src/index.js\"\n"),
    )
    .expect("write wrangler.toml");
    dir
}

fn run(dir: &PathBuf, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notify-deploy"));
    cmd.current_dir(dir).env_clear().args(args);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    // Keep git from finding an enclosing repository.
    cmd.env("GIT_CEILING_DIRECTORIES", std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn announces_with_the_wrangler_toml_name() {
    let (url, rx) = server(vec![Some((
        202,
        r#"{"success":true,"message":"Notification queued"}"#,
    ))]);
    let dir = project("cli-app");
    let out = run(
        &dir,
        &[
            ("NOTIFY_URL", &url),
            ("NOTIFY_TOKEN", TOKEN),
            ("WORKERS_CI", "1"),
            ("WORKERS_CI_BUILD_UUID", "b-77"),
        ],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        "notify-deploy: announced worker cli-app b-77\n"
    );
    let req = rx.recv_timeout(Duration::from_secs(5)).expect("a request");
    assert_eq!(req.request_line, "POST /notify HTTP/1.1");
    assert!(req
        .headers
        .contains(&("authorization".into(), format!("Bearer {TOKEN}"))));
    assert!(req
        .headers
        .contains(&("content-type".into(), "application/json".into())));
    let body: serde_json::Value = serde_json::from_str(&req.body).expect("JSON");
    assert_eq!(body["deployment"]["projectName"], "cli-app");
    assert_eq!(body["deployment"]["type"], "worker");
    assert_eq!(body["deployment"]["deploymentId"], "b-77");
    assert_eq!(body["deployment"]["isCI"], true);
}

#[test]
fn an_overlong_branch_is_cut_and_sent_not_refused() {
    let (url, rx) = server(vec![Some((
        202,
        r#"{"success":true,"message":"Notification queued"}"#,
    ))]);
    let branch = format!("feature/{}", "é".repeat(300));
    let out = run(
        &project("long-branch-app"),
        &[
            ("NOTIFY_URL", &url),
            ("NOTIFY_TOKEN", TOKEN),
            ("WORKERS_CI", "1"),
            ("WORKERS_CI_BUILD_UUID", "b-78"),
            ("WORKERS_CI_BRANCH", &branch),
        ],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        "notify-deploy: announced worker long-branch-app b-78\n"
    );
    let req = rx.recv_timeout(Duration::from_secs(5)).expect("a request");
    let body: serde_json::Value = serde_json::from_str(&req.body).expect("JSON");
    let sent = body["deployment"]["branch"].as_str().expect("branch");
    assert_eq!(sent.chars().count(), 255);
    assert!(
        sent.starts_with("feature/éé") && sent.ends_with("é…"),
        "{sent}"
    );
}

#[test]
fn already_processed_is_success() {
    let (url, _rx) = server(vec![Some((
        200,
        r#"{"success":true,"message":"Already processed"}"#,
    ))]);
    let out = run(
        &project("dup-app"),
        &[("NOTIFY_URL", &url), ("NOTIFY_TOKEN", TOKEN)],
        &["--deployment-id", "d1"],
    );
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        "notify-deploy: worker dup-app d1 was already announced\n"
    );
}

#[test]
fn retries_a_server_error() {
    let (url, rx) = server(vec![
        Some((
            503,
            r#"{"success":false,"error":"temporarily unavailable, try again"}"#,
        )),
        Some((202, r#"{"success":true,"message":"Notification queued"}"#)),
    ]);
    let out = run(
        &project("retry-app"),
        &[("NOTIFY_URL", &url), ("NOTIFY_TOKEN", TOKEN)],
        &["--deployment-id", "r1", "--strict"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rx.try_iter().count(), 2);
}

#[test]
fn a_rejected_token_is_one_line_and_exit_0() {
    let (url, _rx) = server(vec![Some((
        401,
        r#"{"success":false,"error":"invalid token"}"#,
    ))]);
    let out = run(
        &project("denied-app"),
        &[("NOTIFY_URL", &url), ("NOTIFY_TOKEN", "wrong-secret")],
        &["--deployment-id", "x"],
    );
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("notify-deploy: could not announce worker denied-app x: the Worker answered 401: invalid token"));
    assert!(!err.contains("wrong-secret"));
}

#[test]
fn unreachable_exits_0_and_strict_fails() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [("NOTIFY_URL", url.as_str()), ("NOTIFY_TOKEN", TOKEN)];
    let out = run(&project("down-app"), &env, &["--timeout", "2"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("could not reach 127.0.0.1"), "{err}");
    assert!(!err.contains(TOKEN));
    let strict = run(&project("down-app"), &env, &["--timeout", "2", "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn gives_up_within_the_timeout() {
    let (url, _rx) = server(vec![None, None, None]);
    let started = Instant::now();
    let out = run(
        &project("slow-app"),
        &[("NOTIFY_URL", &url), ("NOTIFY_TOKEN", TOKEN)],
        &["--timeout", "1"],
    );
    let took = started.elapsed();
    assert!(out.status.success());
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        stderr(&out).contains("no answer within"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dry_run_prints_the_payload_and_sends_nothing() {
    let out = run(
        &project("dry-app"),
        &[
            ("CF_PAGES", "1"),
            ("CF_PAGES_BRANCH", "main"),
            ("CF_PAGES_COMMIT_SHA", "abcdef1234"),
            ("NOTIFY_TOKEN", TOKEN),
        ],
        &["--dry-run", "--deployment-id", "p-1"],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(json["deployment"]["type"], "pages");
    assert_eq!(json["deployment"]["projectName"], "dry-app");
    assert_eq!(json["deployment"]["environment"], "production");
    assert_eq!(json["deployment"]["commitHash"], "abcdef1234");
    assert!(!stdout.contains(TOKEN) && !stderr(&out).contains(TOKEN));
}

#[test]
fn missing_configuration_is_reported_not_fatal() {
    let dir = project("unset-app");
    let out = run(&dir, &[], &["--deployment-id", "x"]);
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        "notify-deploy: not sent: NOTIFY_URL is not set (or pass --notify-url) (the build goes on; --strict fails it)\n"
    );
    let bad = run(&dir, &[], &["--type", "lambda", "--strict"]);
    assert_eq!(bad.status.code(), Some(2));
    let help = run(&dir, &[], &["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--dry-run"));
    std::fs::remove_file(dir.join("wrangler.toml")).expect("rm");
    let nameless = run(
        &dir,
        &[
            ("NOTIFY_URL", "http://127.0.0.1:9"),
            ("NOTIFY_TOKEN", TOKEN),
        ],
        &["--deployment-id", "x"],
    );
    assert!(stderr(&nameless).contains("deployment.projectName is required (pass --project"));
}
