//! `notify-deploy`: announces a deployment to edge-notifier from inside a build.
//!
//! It never breaks a build: any failure is one line on stderr and exit code 0,
//! unless `--strict`. It never prints the token.

mod args;
mod collect;
mod send;

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use edge_core::time::Timestamp;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let strict = args::strict_requested(&argv);
    // One line, always; the build goes on unless --strict.
    let fail = |message: String, code: u8| {
        if strict {
            say(&message);
            ExitCode::from(code)
        } else {
            say(&format!("{message} (the build goes on; --strict fails it)"));
            ExitCode::SUCCESS
        }
    };
    let args = match args::parse(&argv) {
        Ok(a) => a,
        Err(e) => return fail(e, 2),
    };
    if args.help {
        print!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("notify-deploy {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }

    let env: HashMap<String, String> = std::env::vars().collect();
    let git = collect::git_info(
        git(&["log", "-1", "--format=%H%n%ae%n%B"]).as_deref(),
        git(&["rev-parse", "--abbrev-ref", "HEAD"]).as_deref(),
    );
    let (config_name, config_is_pages) = collect::config_name(
        std::fs::read_to_string("wrangler.toml").ok().as_deref(),
        std::fs::read_to_string("wrangler.json")
            .or_else(|_| std::fs::read_to_string("wrangler.jsonc"))
            .ok()
            .as_deref(),
    );
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let now = Timestamp::from_millis(i64::try_from(now_ms).unwrap_or(i64::MAX));
    let payload = collect::payload(
        &args,
        &collect::Sources {
            env: &env,
            git: &git,
            config_name,
            config_is_pages,
            now_rfc3339: now.to_rfc3339(),
            now_secs: u64::try_from(now_ms / 1000).unwrap_or(0),
        },
    );
    let project_missing = payload.project_name.is_none();

    // Sanitised, then the Worker's own validation, run here first for a clear local
    // message.
    let (deployment, request) = match collect::request(payload, now) {
        Ok(checked) => checked,
        Err(e) => {
            let hint = if project_missing {
                " (pass --project, or run where wrangler.toml names the project)"
            } else {
                ""
            };
            return fail(format!("not sent: {e}{hint}"), 1);
        }
    };
    if args.dry_run {
        match serde_json::to_string_pretty(&request) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail(format!("cannot serialise the payload: {e}"), 1),
        }
        return ExitCode::SUCCESS;
    }

    let Some(base) = args
        .notify_url
        .clone()
        .or_else(|| env.get("NOTIFY_URL").cloned())
        .filter(|u| !u.trim().is_empty())
    else {
        return fail(
            "not sent: NOTIFY_URL is not set (or pass --notify-url)".into(),
            1,
        );
    };
    let url = match send::notify_url(&base) {
        Ok(u) => u,
        Err(e) => return fail(format!("not sent: {e}"), 1),
    };
    if send::insecure(&url) {
        say("warning: NOTIFY_URL is plain http://, the token is sent unencrypted");
    }
    let Some(token) = args
        .token
        .clone()
        .or_else(|| env.get("NOTIFY_TOKEN").cloned())
        .filter(|t| !t.trim().is_empty())
    else {
        return fail(
            "not sent: NOTIFY_TOKEN is not set (or pass --token)".into(),
            1,
        );
    };
    let body = match serde_json::to_string(&request) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot serialise the payload: {e}"), 1),
    };
    let what = format!(
        "{} {} {}",
        deployment.kind.as_str(),
        deployment.project_name,
        deployment.deployment_id.as_str()
    );
    match send::send(
        &url,
        token.trim(),
        &body,
        args.timeout.unwrap_or(args::DEFAULT_TIMEOUT),
    ) {
        Ok(send::Sent::Queued) => {
            say(&format!("announced {what}"));
            ExitCode::SUCCESS
        }
        Ok(send::Sent::AlreadyProcessed) => {
            say(&format!("{what} was already announced"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("could not announce {what}: {e}"), 1),
    }
}

/// Writes one line to stderr in a single write, so a build log that reads the pipe
/// in chunks (wrangler's does) never splits it.
fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("notify-deploy: {line}\n").as_bytes());
}

/// Runs git in the current directory; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
