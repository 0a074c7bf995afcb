//! Telegram routes: which chats (and forum topics) a notification goes to.
//!
//! A route matches on the source, the project (or app) name, the environment, the
//! branch and the outcome, and sends to one or more destinations. Routes live in D1
//! (`telegram_routes`, managed through `/api/routes/{name}`) and are tried in
//! `position` order, ties by name; the first that matches wins unless it says
//! `continue`. After them come the apps' `telegram_chat_id` shorthands
//! ([`Route::for_app`]) and last `TELEGRAM_CHAT_ID` ([`Route::default_route`]).
//!
//! This module owns the route's shape and validation (errors name the field), the
//! glob matcher, [`resolve`] and the SQL of [`RouteStore`].

use std::fmt;
use std::marker::PhantomData;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::json::{self, FromJson, Invalid, Kind, Names, Path};
use crate::names::AppName;
pub use crate::pace::Pace;
use crate::ports::{Row, Sql, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

/// A route the admin API refuses: a 400 with this text
/// (`From<RouteError> for ApiError` in `answers.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    Syntax(String),
    /// A field is missing, unknown or wrong. `field` is its path
    /// (`destinations[0].chat_id`), empty for the body itself.
    #[error("{}", at_field(.field, .problem))]
    Field { field: String, problem: String },
    /// The name in the URL.
    #[error("route name default is taken by the default route (TELEGRAM_CHAT_ID)")]
    Reserved,
    #[error("route name must be 1 to 64 lower-case letters, digits, dots, underscores and dashes, starting with a letter or digit")]
    Name,
}

fn at_field(field: &str, problem: &str) -> String {
    if field.is_empty() {
        problem.to_owned()
    } else {
        format!("{field}: {problem}")
    }
}

impl RouteError {
    fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        RouteError::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Longest route name.
const MAX_NAME: usize = 64;
/// Longest glob, in characters: far beyond any project, environment or branch
/// pattern, and it bounds the matcher's work.
const MAX_GLOB: usize = 255;
/// Most destinations of one route: each is its own delivery row and send.
const MAX_DESTINATIONS: usize = 10;
/// Highest `position`.
const MAX_POSITION: u32 = 1_000_000;
/// Telegram allows about 30 messages a second over all chats, so no one chat more.
const MAX_PER_SECOND: u32 = 30;
/// A minute at [`MAX_PER_SECOND`].
const MAX_PER_MINUTE: u32 = 60 * MAX_PER_SECOND;
/// A digest of one message is none; past 100 the pace itself is the problem.
const DIGEST_THRESHOLD: (u32, u32) = (2, 100);

// ---- Names ----

/// A stored route's name: `[a-z0-9][a-z0-9._-]{0,63}`, as in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RouteName(String);

impl RouteName {
    pub fn parse(s: &str) -> Result<Self, RouteError> {
        let lower = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let ok = s.len() <= MAX_NAME
            && s.bytes().next().is_some_and(lower)
            && s.bytes()
                .all(|b| lower(b) || b == b'.' || b == b'_' || b == b'-');
        if s == "default" {
            // The name `TELEGRAM_CHAT_ID`'s route goes by in the delivery log.
            return Err(RouteError::Reserved);
        }
        if ok {
            Ok(RouteName(s.to_owned()))
        } else {
            Err(RouteError::Name)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which route a target came from; written as `name`, `app:<app>` or `default`
/// (the `route` column of a delivery row). A stored route's name cannot hold a
/// colon, so it never reads as an app's shorthand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteId {
    /// A route in D1.
    Stored(RouteName),
    /// An app's `telegram_chat_id`.
    App(AppName),
    /// `TELEGRAM_CHAT_ID`.
    Default,
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteId::Stored(name) => f.write_str(name.as_str()),
            RouteId::App(app) => write!(f, "app:{}", app.as_str()),
            RouteId::Default => f.write_str("default"),
        }
    }
}

impl Serialize for RouteId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---- Globs ----

/// Why a pattern is not a glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty")]
    Empty,
    #[error("longer than {MAX_GLOB} characters")]
    TooLong,
    #[error("unclosed [")]
    UnclosedClass,
    #[error("empty class")]
    EmptyClass,
    #[error("reversed range {0}-{1}")]
    ReversedRange(char, char),
    #[error("trailing \\")]
    TrailingEscape,
}

/// One step of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Exactly this character.
    Char(char),
    /// `?`: any one character.
    One,
    /// `*`: any run of characters, none too (runs of `*` are one).
    Star,
    /// `[a-z_]`, `[!x]`: one character in (or, negated, outside) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn takes(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::One => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// A shell-style pattern over whole names: `*`, `?`, classes (`[abc]`, `[a-z]`,
/// `[!x]`) and `\` before a character that is meant literally. Text without them
/// matches exactly. Case-sensitive, character by character. Matching takes at most
/// pattern × text steps (one pass that only ever returns to the last `*`), whatever
/// the pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl Glob {
    pub fn parse(text: &str) -> Result<Glob, GlobError> {
        if text.is_empty() {
            return Err(GlobError::Empty);
        }
        if text.chars().count() > MAX_GLOB {
            return Err(GlobError::TooLong);
        }
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' if tokens.last() == Some(&Token::Star) => continue,
                '*' => Token::Star,
                '?' => Token::One,
                '\\' => Token::Char(chars.next().ok_or(GlobError::TrailingEscape)?),
                '[' => class(&mut chars)?,
                c => Token::Char(c),
            };
            tokens.push(token);
        }
        Ok(Glob {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The glob that matches exactly `text`, written with a `\` before each `*`,
    /// `?`, `[`, `]` and `\`, so that it parses back as the same glob (where that
    /// written form is 1 to 255 characters).
    pub fn exact(text: &str) -> Glob {
        let mut written = String::with_capacity(text.len());
        for c in text.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                written.push('\\');
            }
            written.push(c);
        }
        Glob {
            text: written,
            tokens: text.chars().map(Token::Char).collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let (mut p, mut t) = (0, 0);
        // Where the last `*` seen resumes: the token after it, and the text it has
        // taken up to so far.
        let mut star: Option<(usize, usize)> = None;
        while let Some(&c) = text.get(t) {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Some(token) if token.takes(c) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
            // A mismatch: the last `*` takes one more character, or nothing matches.
            let Some((after, taken)) = star else {
                return false;
            };
            star = Some((after, taken + 1));
            p = after;
            t = taken + 1;
        }
        self.tokens
            .get(p..)
            .is_some_and(|rest| rest.iter().all(|x| *x == Token::Star))
    }
}

/// A class after its `[`, through its `]`.
fn class(chars: &mut std::str::Chars<'_>) -> Result<Token, GlobError> {
    let mut negated = false;
    let mut ranges: Vec<(char, char)> = Vec::new();
    loop {
        let lo = match chars.next().ok_or(GlobError::UnclosedClass)? {
            ']' => break,
            '!' if ranges.is_empty() && !negated => {
                negated = true;
                continue;
            }
            '\\' => chars.next().ok_or(GlobError::UnclosedClass)?,
            c => c,
        };
        // `a-z`, unless the `-` is the last character before `]`.
        let mut ahead = chars.clone();
        let hi = match (ahead.next(), ahead.next()) {
            (Some('-'), Some('\\')) => Some(ahead.next().ok_or(GlobError::UnclosedClass)?),
            (Some('-'), Some(hi)) if hi != ']' => Some(hi),
            _ => None,
        };
        match hi {
            Some(hi) => {
                if hi < lo {
                    return Err(GlobError::ReversedRange(lo, hi));
                }
                *chars = ahead;
                ranges.push((lo, hi));
            }
            None => ranges.push((lo, lo)),
        }
    }
    if ranges.is_empty() {
        return Err(GlobError::EmptyClass);
    }
    Ok(Token::Class { negated, ranges })
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl FromJson for Glob {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let s = json::str_of(v, at, "a string")?;
        Glob::parse(s).map_err(|e| Invalid::at(at, format!("invalid glob: {e}")))
    }
}

// ---- Chats ----

/// The one text of a malformed chat id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a number or @channel name")]
pub struct ChatIdError;

/// A Telegram chat: a chat id (`-1001234567890`, `12345`) or a public channel's
/// `@name` (5 to 32 letters, digits and underscores; kept lower-case, since
/// Telegram's names ignore case, so one chat has one key for pacing and dedupe).
/// Given as a JSON number or string, written as a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ChatId(String);

impl ChatId {
    pub fn parse(s: &str) -> Result<ChatId, ChatIdError> {
        if let Some(name) = s.strip_prefix('@') {
            let ok = (5..=32).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return if ok {
                Ok(ChatId(s.to_ascii_lowercase()))
            } else {
                Err(ChatIdError)
            };
        }
        let digits = s.strip_prefix('-').unwrap_or(s);
        let ok = (1..=16).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(ChatId(s.to_owned()))
        } else {
            Err(ChatIdError)
        }
    }

    /// A chat id taken as configured (`TELEGRAM_CHAT_ID`, an app's
    /// `telegram_chat_id`), which worked before routes checked chat ids.
    pub fn unchecked(s: &str) -> ChatId {
        ChatId(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromJson for ChatId {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let parsed = match v {
            Value::String(s) => ChatId::parse(s),
            Value::Number(n) => n
                .as_i64()
                .ok_or(ChatIdError)
                .and_then(|n| ChatId::parse(&n.to_string())),
            _ => Err(ChatIdError),
        };
        parsed.map_err(|e| Invalid::at(at, e.to_string()))
    }
}

// ---- What a route matches ----

/// Where a notification comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A build hook's `/notify`.
    Notify,
    /// The cron poll of the Cloudflare API.
    Poll,
    /// A deploy job of an app.
    Deploy,
    /// A pull request's preview environment.
    Preview,
    /// A service workflow (`/api/services`).
    Workflow,
}

impl From<crate::notify::Source> for Source {
    fn from(s: crate::notify::Source) -> Self {
        match s {
            crate::notify::Source::Hook => Source::Notify,
            crate::notify::Source::Poll => Source::Poll,
        }
    }
}

/// How what is announced turned out (so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    InProgress,
}

/// Some variants of a unit enum (of at most 32), written as a list of their names:
/// what a `match` list means (order and repeats do not matter). Given as a list or
/// one name; an empty list is refused (leave the field out to match any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Set<T> {
    bits: u32,
    of: PhantomData<T>,
}

impl<T: Names> Set<T> {
    pub fn of(items: &[T]) -> Self {
        Set {
            bits: items.iter().fold(0, |bits, x| bits | bit(x.index())),
            of: PhantomData,
        }
    }

    pub fn contains(&self, x: T) -> bool {
        self.bits & bit(x.index()) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

impl<T> Default for Set<T> {
    fn default() -> Self {
        Set {
            bits: 0,
            of: PhantomData,
        }
    }
}

fn bit(index: usize) -> u32 {
    u32::try_from(index)
        .ok()
        .and_then(|i| 1u32.checked_shl(i))
        .unwrap_or(0)
}

/// The bits of the names `v` lists (or is), out of `names`. Not generic: one copy
/// for every enum.
fn read_bits(v: &Value, at: Path<'_>, names: &[&str]) -> Result<u32, Invalid> {
    match v {
        Value::Array(items) if items.is_empty() => Err(Invalid::at(
            at,
            "must name at least one (leave it out to match any)",
        )),
        Value::Array(items) => {
            let mut bits = 0;
            for (i, item) in items.iter().enumerate() {
                bits |= bit(json::variant(item, Path::Index(&at, i), names)?);
            }
            Ok(bits)
        }
        one => json::variant(one, at, names).map(bit),
    }
}

/// The names of `bits`, in the order of `names`.
fn names_of(bits: u32, names: &'static [&'static str]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if bits & bit(i) != 0 {
            out.push(*name);
        }
    }
    out
}

impl<T: Names> FromJson for Set<T> {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        read_bits(v, at, T::NAMES).map(|bits| Set {
            bits,
            of: PhantomData,
        })
    }
}

impl<T: Names> Serialize for Set<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        names_of(self.bits, T::NAMES).serialize(s)
    }
}

/// What a notification is, as routes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub source: Source,
    /// The project (`/notify`, poll) or app name (deploy, preview, workflow).
    pub project: &'a str,
    pub environment: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub outcome: Outcome,
}

/// A route's conditions; each that is set must hold (a glob against a value the
/// subject does not have does not match). None set matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, crate::json::FromJson)]
#[json(deny_unknown_fields)]
pub struct Match {
    #[serde(default, skip_serializing_if = "Set::is_empty")]
    pub source: Set<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<Glob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Glob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<Glob>,
    #[serde(default, skip_serializing_if = "Set::is_empty")]
    pub outcome: Set<Outcome>,
}

impl Match {
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let glob = |g: &Option<Glob>, value: Option<&str>| match g {
            None => true,
            Some(g) => value.is_some_and(|v| g.matches(v)),
        };
        (self.source.is_empty() || self.source.contains(s.source))
            && (self.outcome.is_empty() || self.outcome.contains(s.outcome))
            && glob(&self.project, Some(s.project))
            && glob(&self.environment, s.environment)
            && glob(&self.branch, s.branch)
    }
}

// ---- Where a route sends ----

/// `topic`'s one value: the project's own forum topic, made on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Auto,
}

/// Where in a chat a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Thread {
    /// The chat itself.
    Chat,
    /// A forum topic (`message_thread_id`).
    Forum(i64),
    /// The project's forum topic (`topic: "auto"`).
    Auto,
}

impl Thread {
    /// Its text in the `thread` columns: `''`, the topic id, or `auto`.
    pub fn key(self) -> String {
        match self {
            Thread::Chat => String::new(),
            Thread::Forum(id) => id.to_string(),
            Thread::Auto => "auto".to_owned(),
        }
    }
}

fn thread_id(v: &Value, at: Path<'_>) -> Result<i64, Invalid> {
    i64::from_json(v, at)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Invalid::at(at, "must be a whole number above 0"))
}

/// One chat (or topic) a route sends to, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, crate::json::FromJson)]
#[json(deny_unknown_fields)]
pub struct Destination {
    pub chat_id: ChatId,
    /// A forum topic; not with `topic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[json(with = "thread_id")]
    pub message_thread_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<Topic>,
    /// Sent without a sound (`disable_notification`).
    #[serde(default)]
    pub silent: bool,
    /// Off unless asked for.
    #[serde(default)]
    pub link_preview: bool,
    /// Telegram HTML with `{{field}}` placeholders (see `crate::template`); checked
    /// when the route is saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl Destination {
    /// A chat itself, silent off, link previews off, the built-in message.
    pub fn chat(chat_id: ChatId) -> Self {
        Destination {
            chat_id,
            message_thread_id: None,
            topic: None,
            silent: false,
            link_preview: false,
            template: None,
        }
    }

    pub fn thread(&self) -> Thread {
        match (self.message_thread_id, self.topic) {
            (Some(id), _) => Thread::Forum(id),
            (None, Some(Topic::Auto)) => Thread::Auto,
            (None, None) => Thread::Chat,
        }
    }
}

/// Checks a route's pace against the bounds Telegram makes sense of.
fn validate_pace(pace: &Pace) -> Result<(), RouteError> {
    let within = |field: &str, n: u32, (lo, hi): (u32, u32)| {
        if (lo..=hi).contains(&n) {
            Ok(())
        } else {
            Err(RouteError::field(
                format!("pace.{field}"),
                format!("must be {lo} to {hi}"),
            ))
        }
    };
    within("per_second", pace.per_second, (1, MAX_PER_SECOND))?;
    within("per_minute", pace.per_minute, (1, MAX_PER_MINUTE))?;
    within("digest_threshold", pace.digest_threshold, DIGEST_THRESHOLD)?;
    if pace.per_minute < pace.per_second {
        return Err(RouteError::field(
            "pace.per_minute",
            format!("must be at least per_second ({})", pace.per_second),
        ));
    }
    Ok(())
}

// ---- Routes ----

fn default_position() -> u32 {
    100
}

/// A route's definition: the body of `PUT /api/routes/{name}`, and what D1 keeps
/// in `definition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, crate::json::FromJson)]
#[json(deny_unknown_fields)]
pub struct RouteSpec {
    /// Routes are tried lowest first (ties by name). Default 100; 0 to 1,000,000.
    #[serde(default = "default_position")]
    pub position: u32,
    #[serde(rename = "match", default)]
    pub conditions: Match,
    /// 1 to 10.
    pub destinations: Vec<Destination>,
    /// When it matches, later matching routes still add their destinations.
    #[serde(rename = "continue", default)]
    pub and_continue: bool,
    #[serde(default)]
    pub pace: Pace,
}

impl RouteSpec {
    /// Parses and validates a route from the admin API's JSON body.
    pub fn parse(body: &[u8]) -> Result<RouteSpec, RouteError> {
        let spec: RouteSpec = json::read_slice(body).map_err(|e| match e {
            json::Error::Syntax(e) => RouteError::Syntax(e.to_string()),
            json::Error::Invalid(e) if e.path.is_empty() && e.kind == Kind::Invalid => {
                RouteError::field("", "body must be a JSON object describing the route")
            }
            json::Error::Invalid(e) => {
                let e = e.into_problem();
                RouteError::Field {
                    field: e.path,
                    problem: e.problem,
                }
            }
        })?;
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), RouteError> {
        if self.position > MAX_POSITION {
            return Err(RouteError::field(
                "position",
                format!("must be 0 to {MAX_POSITION}"),
            ));
        }
        if !(1..=MAX_DESTINATIONS).contains(&self.destinations.len()) {
            return Err(RouteError::field(
                "destinations",
                format!("must list 1 to {MAX_DESTINATIONS} destinations"),
            ));
        }
        for (i, d) in self.destinations.iter().enumerate() {
            if d.message_thread_id.is_some() && d.topic.is_some() {
                return Err(RouteError::field(
                    format!("destinations[{i}].topic"),
                    "not with message_thread_id (one or the other)",
                ));
            }
            if let Some(text) = &d.template {
                crate::template::Template::parse(text).map_err(|e| {
                    RouteError::field(format!("destinations[{i}].template"), e.to_string())
                })?;
            }
        }
        validate_pace(&self.pace)
    }
}

/// A route with its name: what [`resolve`] tries, and what the admin API shows
/// (`{"name": ..., "position": ..., "match": ..., ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: RouteId,
    pub spec: RouteSpec,
}

/// As [`Route::to_json`]. By hand, not `#[serde(flatten)]`: flattening serialises
/// every field a second way (through a map), and the Worker's size is budgeted.
impl Serialize for Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl Route {
    /// The definition's object with `name` added, as the admin API shows it.
    pub fn to_json(&self) -> Value {
        // Cannot fail: every map in a definition has string keys.
        let mut v = serde_json::to_value(&self.spec).unwrap_or_default();
        if let Some(fields) = v.as_object_mut() {
            fields.insert("name".to_owned(), Value::String(self.name.to_string()));
        }
        v
    }

    /// `TELEGRAM_CHAT_ID`: matches everything, tried last.
    pub fn default_route(chat_id: ChatId) -> Route {
        Route::to_chat(RouteId::Default, Match::default(), chat_id)
    }

    /// An app's `telegram_chat_id`: its own deploy jobs, previews and workflows.
    pub fn for_app(app: &AppName, chat_id: ChatId) -> Route {
        let conditions = Match {
            source: Set::of(&[Source::Deploy, Source::Preview, Source::Workflow]),
            project: Some(Glob::exact(app.as_str())),
            ..Match::default()
        };
        Route::to_chat(RouteId::App(app.clone()), conditions, chat_id)
    }

    fn to_chat(name: RouteId, conditions: Match, chat_id: ChatId) -> Route {
        Route {
            name,
            spec: RouteSpec {
                position: default_position(),
                conditions,
                destinations: vec![Destination::chat(chat_id)],
                and_continue: false,
                pace: Pace::TELEGRAM,
            },
        }
    }
}

/// One destination a notification goes to, and the route that sent it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'r> {
    pub route: &'r RouteId,
    pub destination: &'r Destination,
    pub pace: Pace,
}

/// Where a notification goes: the destinations of the first route in `routes` that
/// matches, and of the matching routes after it as long as each says `continue`.
/// A chat and thread appear once (where they first came). Empty: no route.
pub fn resolve<'r>(routes: &'r [Route], subject: &Subject<'_>) -> Vec<Target<'r>> {
    let mut targets: Vec<Target<'r>> = Vec::new();
    for route in routes.iter().filter(|r| r.spec.conditions.matches(subject)) {
        for d in &route.spec.destinations {
            let seen = targets.iter().any(|t| {
                t.destination.chat_id == d.chat_id && t.destination.thread() == d.thread()
            });
            if !seen {
                targets.push(Target {
                    route: &route.name,
                    destination: d,
                    pace: route.spec.pace,
                });
            }
        }
        if !route.spec.and_continue {
            break;
        }
    }
    targets
}

// ---- The store ----

/// The routes in D1.
pub struct RouteStore<S> {
    sql: S,
}

impl<S: Sql> RouteStore<S> {
    pub fn new(sql: S) -> Self {
        RouteStore { sql }
    }

    /// Creates or replaces a route; `true` when it was created.
    pub async fn put(
        &self,
        name: &RouteName,
        spec: &RouteSpec,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // Through a `Value`, the one serialiser the admin answers use too.
        let definition = json::text(&serde_json::to_value(spec).map_err(StoreError::encode)?);
        let existed = !self
            .sql
            .query(
                "SELECT 1 AS x FROM telegram_routes WHERE name = ?1",
                &[name.as_str().into()],
            )
            .await?
            .is_empty();
        self.sql
            .execute(
                "INSERT INTO telegram_routes (name, position, definition, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
                 definition = excluded.definition, updated_at = excluded.updated_at",
                &[
                    name.as_str().into(),
                    spec.position.into(),
                    definition.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(!existed)
    }

    pub async fn get(&self, name: &RouteName) -> Result<Option<Route>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT name, definition FROM telegram_routes WHERE name = ?1",
                &[name.as_str().into()],
            )
            .await?;
        rows.into_iter().next().map(stored).transpose()
    }

    /// Every route, in the order they are tried: by position, then name.
    pub async fn list(&self) -> Result<Vec<Route>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT name, definition FROM telegram_routes ORDER BY position, name",
                &[],
            )
            .await?;
        let mut routes = Vec::with_capacity(rows.len());
        for row in rows {
            routes.push(stored(row)?);
        }
        Ok(routes)
    }

    /// `true` when it existed.
    pub async fn delete(&self, name: &RouteName) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "DELETE FROM telegram_routes WHERE name = ?1",
                &[name.as_str().into()],
            )
            .await?;
        Ok(done.changes > 0)
    }
}

// ---- The admin API ----

/// A call of `/api/routes` or `/api/routes/{name}`, authorized, its name valid and
/// (a PUT's) body read.
pub enum RoutesCall {
    List,
    Get(RouteName),
    Put(RouteName, Vec<u8>),
    Delete(RouteName),
}

/// Why a call of the routes API is refused; a store failure is for the log
/// (`From<RoutesApiError> for ApiError` answers it with a fixed message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutesApiError {
    #[error(transparent)]
    Invalid(#[from] RouteError),
    #[error("not found")]
    NotFound,
    #[error("routes: {0}")]
    Store(#[from] StoreError),
}

/// Answers a call of the routes API: its status and JSON body. One function for
/// every method, so the Worker's handler holds one more await, not four.
pub async fn answer<S: Sql>(
    sql: S,
    call: RoutesCall,
    now: Timestamp,
) -> Result<(u16, Value), RoutesApiError> {
    let store = RouteStore::new(sql);
    let (status, key, value) = match call {
        RoutesCall::List => {
            let routes = store.list().await?;
            let shown: Vec<Value> = routes.iter().map(Route::to_json).collect();
            (200, "routes", Value::Array(shown))
        }
        RoutesCall::Get(name) => {
            let route = store.get(&name).await?.ok_or(RoutesApiError::NotFound)?;
            (200, "route", route.to_json())
        }
        RoutesCall::Put(name, body) => {
            let spec = RouteSpec::parse(&body)?;
            let created = store.put(&name, &spec, now).await?;
            let route = Route {
                name: RouteId::Stored(name),
                spec,
            };
            (if created { 201 } else { 200 }, "route", route.to_json())
        }
        RoutesCall::Delete(name) => {
            if !store.delete(&name).await? {
                return Err(RoutesApiError::NotFound);
            }
            (200, "message", Value::from("Deleted"))
        }
    };
    let mut body = serde_json::Map::new();
    body.insert("success".to_owned(), Value::Bool(true));
    body.insert(key.to_owned(), value);
    Ok((status, Value::Object(body)))
}

fn stored(row: Row) -> Result<Route, StoreError> {
    let name = row.text("name")?;
    let definition = row.text("definition")?;
    let spec =
        json::read(&definition).map_err(|e| StoreError::Row(format!("route {name}: {e}")))?;
    // Validated on the way in.
    Ok(Route {
        name: RouteId::Stored(RouteName(name)),
        spec,
    })
}

#[cfg(test)]
mod tests;
