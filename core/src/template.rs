//! Message templates: Telegram HTML with `{{field}}` placeholders and sections
//! (`{{#field}}…{{/field}}` shown when the field has a value, `{{^field}}…{{/field}}`
//! when it has none). [`Template::parse`] checks a template when it is saved (fields,
//! the tags and entities Telegram accepts, the longest output it could make);
//! [`Template::render`] escapes every value and cuts the result to Telegram's 4096.
//! The built-in notification is the template [`DEFAULT_NOTIFICATION`].

use std::sync::OnceLock;

use crate::html::{escape_html, utf16_len, Rendered, MAX_LINK_CHARS, MAX_MESSAGE_CHARS};
use crate::json::Names;
use crate::notify::{Deployment, Source};

/// The built-in notification, [`render`]'s message, in the template language.
/// It is not held to the saved templates' 4096 budget (it relies on the cut, as the
/// message always has), and shows its values uncapped.
pub const DEFAULT_NOTIFICATION: &str = "<b>{{title}}</b>\n\
\n<b>Project:</b> {{project}}\
\n<b>Environment:</b> {{environment_emoji}} {{environment}}\
\n<b>Deployment ID:</b> <code>{{deployment_id}}</code>\
{{#author}}\n<b>Author:</b> {{author}}{{/author}}\
{{#branch}}\n<b>Branch:</b> {{branch}}{{/branch}}\
{{#commit_short}}\n<b>Commit:</b> <code>{{commit_short}}</code>\
{{#commit_subject}} - {{commit_subject}}{{/commit_subject}}{{/commit_short}}\
{{^commit_short}}{{#commit_subject}}\n<b>Commit:</b> {{commit_subject}}{{/commit_subject}}{{/commit_short}}\
{{#url}}\n<b>URL:</b> <a href=\"{{url}}\">{{url}}</a>{{/url}}\
\n<b>Time:</b> {{time}}\
{{#via}}\n\n<i>{{via}}</i>{{/via}}";

/// What a commit subject shows at most in a saved template (a commit message may
/// be 10,000 characters; its first line is a subject, not a body).
pub const MAX_COMMIT_SUBJECT: usize = 256;

/// A value a template can show, by the name it has in `{{…}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The project or app name.
    Project,
    /// The environment (`production`, `preview`, …).
    Environment,
    /// The environment's emoji (🚀 production, 👀 preview, 🧪 staging, 🛠 development, 🔹 else).
    EnvironmentEmoji,
    /// `worker` or `pages`.
    Kind,
    /// The built-in header line, e.g. "⚡ New Worker Deployment".
    Title,
    DeploymentId,
    Branch,
    /// The full commit hash.
    Commit,
    /// Its first 7 characters.
    CommitShort,
    /// The commit message's first non-empty line.
    CommitSubject,
    Author,
    /// The deployment's URL.
    Url,
    /// `deployed` for notifications.
    Status,
    /// A deploy job's page; none for notifications.
    JobUrl,
    /// When it was deployed: `Jan 15, 2025, 10:30 AM UTC`.
    Time,
    /// `hook` or `poll`.
    Source,
    /// `via poll` for deployments the cron poll found; none for hook ones.
    Via,
}

const FIELDS: usize = <Field as Names>::NAMES.len();

impl Field {
    /// The longest value a saved template shows (cut with "…" past it), in characters:
    /// the bounds `/notify` validates, and what the other values can be.
    pub const fn max_chars(self) -> usize {
        use crate::notify::{
            COMMIT_HASH_LEN, MAX_AUTHOR, MAX_BRANCH, MAX_DEPLOYMENT_ID, MAX_ENVIRONMENT,
            MAX_PROJECT_NAME, MAX_TIMESTAMP, MAX_URL,
        };
        match self {
            Field::Project => MAX_PROJECT_NAME,
            Field::Environment => MAX_ENVIRONMENT,
            Field::EnvironmentEmoji => 2,
            Field::Kind => 6,
            // "🔹 New Worker " + the environment + " Deployment", with room for a
            // first letter that upper-cases to more than one.
            Field::Title => MAX_ENVIRONMENT + 32,
            Field::DeploymentId => MAX_DEPLOYMENT_ID,
            Field::Branch => MAX_BRANCH,
            Field::Commit => *COMMIT_HASH_LEN.end(),
            Field::CommitShort => 7,
            Field::CommitSubject => MAX_COMMIT_SUBJECT,
            Field::Author => MAX_AUTHOR,
            Field::Url | Field::JobUrl => MAX_URL,
            Field::Status => 32,
            Field::Time => MAX_TIMESTAMP,
            Field::Source => 4,
            Field::Via => 8,
        }
    }

    /// The header and footer lines: cut only when nothing else is left to cut (the
    /// built-in message never cuts them).
    fn cut_last(self) -> bool {
        matches!(self, Field::Title | Field::Via)
    }

    /// Every field, in declaration order.
    pub fn all() -> impl Iterator<Item = Field> {
        (0..FIELDS).map(Field::from_index)
    }
}

/// The values a template is rendered with: an optional string per field (an empty
/// one counts as none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values([Option<String>; FIELDS]);

impl Values {
    pub fn get(&self, field: Field) -> Option<&str> {
        self.0
            .get(field.index())
            .and_then(Option::as_deref)
            .filter(|v| !v.is_empty())
    }

    pub fn set(&mut self, field: Field, value: Option<String>) {
        if let Some(slot) = self.0.get_mut(field.index()) {
            *slot = value;
        }
    }

    /// `self` with `field` set to `value`.
    pub fn with(mut self, field: Field, value: impl Into<String>) -> Self {
        self.set(field, Some(value.into()));
        self
    }

    /// A notification's values: status `deployed`, no job URL.
    pub fn from_deployment(d: &Deployment) -> Values {
        use crate::html::{env_emoji, header};
        let env = &d.environment;
        let mut v = Values::default()
            .with(Field::Project, d.project_name.as_str())
            .with(Field::Environment, env.as_str())
            .with(Field::EnvironmentEmoji, env_emoji(env))
            .with(Field::Kind, d.kind.as_str())
            .with(
                Field::Title,
                header(
                    d.kind,
                    &crate::text::cut(env, crate::notify::MAX_ENVIRONMENT),
                ),
            )
            .with(Field::DeploymentId, d.deployment_id.as_str())
            .with(Field::Status, "deployed")
            .with(Field::Time, d.timestamp.to_human())
            .with(Field::Source, d.source.as_str());
        v.set(Field::Branch, d.branch.clone());
        v.set(Field::Author, d.author.clone());
        v.set(Field::Url, d.url.clone());
        if let Some(h) = &d.commit_hash {
            v.set(Field::Commit, Some(h.as_str().to_owned()));
            v.set(Field::CommitShort, Some(h.short().to_owned()));
        }
        let subject = d
            .commit_message
            .as_deref()
            .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()));
        v.set(Field::CommitSubject, subject.map(str::to_owned));
        if d.source == Source::Poll {
            v.set(Field::Via, Some("via poll".to_owned()));
        }
        v
    }
}

/// Why a template is refused (a 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is longer than {MAX_MESSAGE_CHARS} characters")]
    TooLong,
    #[error("unknown field {{{{{0}}}}}")]
    UnknownField(String),
    #[error("unclosed placeholder: {{{{ without }}}}")]
    UnclosedPlaceholder,
    #[error("placeholders are only allowed in text and in <a href>")]
    PlaceholderInTag,
    #[error("tag <{0}> is not allowed by Telegram")]
    TagNotAllowed(String),
    #[error("attribute {attr} is not allowed on <{tag}>")]
    AttributeNotAllowed { tag: String, attr: String },
    #[error("tag <{tag}> needs {needs}")]
    MissingAttribute { tag: String, needs: &'static str },
    #[error("class=\"language-…\" is only allowed on <code> inside <pre>")]
    LanguageOutsidePre,
    #[error("tag <{tag}> is not allowed inside <{parent}>")]
    NotAllowedInside { tag: String, parent: String },
    #[error("malformed tag <{0}>")]
    MalformedTag(String),
    #[error("unclosed tag <{0}>")]
    UnclosedTag(String),
    #[error("unclosed section {{{{#{0}}}}}")]
    UnclosedSection(String),
    #[error("{{{{/{0}}}}} closes nothing that is open")]
    UnmatchedSection(String),
    #[error("</{0}> closes nothing that is open")]
    UnmatchedTag(String),
    #[error("entity &{0}; is not supported by Telegram")]
    UnsupportedEntity(String),
    #[error("a bare {0} must be written {1}")]
    Bare(char, &'static str),
    #[error("could exceed {MAX_MESSAGE_CHARS} characters: at most {0}")]
    CouldExceed(usize),
}

type Result<T> = std::result::Result<T, TemplateError>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// Literal text as written, and as a reader sees it.
    Text {
        html: String,
        plain: String,
    },
    Value(Field),
    /// A tag other than a link, as written, around its content.
    Tag {
        open: String,
        close: String,
        body: Vec<Node>,
    },
    Link {
        href: Vec<Href>,
        body: Vec<Node>,
    },
    /// `unit`: a section without tags that holds a value is cut as one piece (its
    /// words with its values), numbered.
    Section {
        field: Field,
        inverted: bool,
        body: Vec<Node>,
        unit: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Href {
    Text { html: String, plain: String },
    Value(Field),
}

/// A parsed, checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
    units: usize,
    /// Held to the budget: shows each value cut to its field's maximum.
    capped: bool,
}

impl Template {
    /// Parses and checks a template to be saved.
    pub fn parse(text: &str) -> Result<Template> {
        if text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(TemplateError::TooLong);
        }
        let mut t = Parser::run(text)?;
        let at_most = budget(&t.nodes);
        if at_most > MAX_MESSAGE_CHARS {
            return Err(TemplateError::CouldExceed(at_most));
        }
        t.capped = true;
        Ok(t)
    }

    /// [`DEFAULT_NOTIFICATION`], parsed once.
    pub fn default_notification() -> &'static Template {
        static DEFAULT: OnceLock<Template> = OnceLock::new();
        // It parses (tested); were it ever not to, an empty template is no panic.
        DEFAULT.get_or_init(|| {
            Parser::run(DEFAULT_NOTIFICATION).unwrap_or(Template {
                nodes: Vec::new(),
                units: 0,
                capped: false,
            })
        })
    }

    /// The message for these values: every value HTML-escaped; if the HTML passes
    /// 4096 UTF-16 units, the longest value is cut with "…" until it fits (a link
    /// whose href passes 1024 characters, or that is to be cut, shows as its text).
    pub fn render(&self, values: &Values) -> Rendered {
        let mut st = State {
            values: Default::default(),
            units: vec![None; self.units],
            unlinked: [false; FIELDS],
        };
        for f in Field::all() {
            let v = values.get(f).map(|v| match self.capped {
                true => crate::text::cut(v, f.max_chars()),
                false => v.to_owned(),
            });
            st.values[f.index()] = v;
        }
        loop {
            let out = self.emit(&st);
            if utf16_len(&out.html) <= MAX_MESSAGE_CHARS {
                return Rendered {
                    html: out.html,
                    plain: out.plain,
                };
            }
            let pick = |last: bool| {
                out.units
                    .iter()
                    .filter(|u| !u.text.is_empty() && u.text != "…" && u.cut_last() == last)
                    .max_by_key(|u| u.text.chars().count() * u.count)
            };
            let Some(unit) = pick(false).or_else(|| pick(true)) else {
                return Rendered {
                    html: out.html,
                    plain: out.plain,
                };
            };
            // An href cannot be cut: its link becomes text first, and a cut value
            // never links (not even once it is short enough).
            if let Target::Field(f) = unit.target {
                let linked = out.linked[f.index()];
                st.unlinked[f.index()] = true;
                if linked {
                    continue;
                }
            }
            // Keep as much as still fits (escaping makes a character worth up to
            // six, so search rather than count).
            let original: Vec<char> = unit.text.chars().collect();
            let cut =
                |n: usize| -> String { original.iter().take(n).chain(['…'].iter()).collect() };
            let (mut lo, mut hi) = (0, original.len().saturating_sub(1));
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                st.set(unit.target, cut(mid));
                if utf16_len(&self.emit(&st).html) <= MAX_MESSAGE_CHARS {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            st.set(unit.target, cut(lo));
        }
    }

    fn emit(&self, st: &State) -> Out {
        let mut out = Out {
            html: String::new(),
            plain: String::new(),
            units: Vec::new(),
            linked: [false; FIELDS],
        };
        emit(&self.nodes, st, &mut out, false);
        out
    }
}

/// The longest HTML a template can make from values within their maxima, in UTF-16
/// units (a value in an href counts at most 1024: a longer link is shown as text).
fn budget(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Text { html, .. } => utf16_len(html),
            Node::Value(f) => f.max_chars(),
            Node::Tag { open, close, body } => utf16_len(open) + utf16_len(close) + budget(body),
            Node::Link { href, body } => {
                let href: usize = href
                    .iter()
                    .map(|h| match h {
                        Href::Text { html, .. } => utf16_len(html),
                        Href::Value(f) => f.max_chars().min(MAX_LINK_CHARS),
                    })
                    .sum();
                "<a href=\"\"></a>".len() + href + budget(body)
            }
            Node::Section { body, .. } => budget(body),
        })
        .sum()
}

/// A rendering in progress: the values (some cut), the cut sections, the fields
/// whose links show as text.
struct State {
    values: [Option<String>; FIELDS],
    units: Vec<Option<String>>,
    unlinked: [bool; FIELDS],
}

impl State {
    fn value(&self, f: Field) -> Option<&str> {
        self.values[f.index()].as_deref().filter(|v| !v.is_empty())
    }

    fn set(&mut self, target: Target, text: String) {
        match target {
            Target::Field(f) => self.values[f.index()] = Some(text),
            Target::Section(i) => {
                if let Some(slot) = self.units.get_mut(i) {
                    *slot = Some(text);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Field(Field),
    Section(usize),
}

/// Something that can be cut, as shown: its text and how often it is shown.
struct Unit {
    target: Target,
    text: String,
    count: usize,
}

impl Unit {
    fn cut_last(&self) -> bool {
        matches!(self.target, Target::Field(f) if f.cut_last())
    }
}

struct Out {
    html: String,
    plain: String,
    /// In the order they first show.
    units: Vec<Unit>,
    /// Fields shown in a link's href.
    linked: [bool; FIELDS],
}

impl Out {
    fn value(&mut self, f: Field, v: &str, counted: bool) {
        self.html.push_str(&escape_html(v));
        self.plain.push_str(v);
        if counted {
            self.count(f, v);
        }
    }

    fn count(&mut self, f: Field, v: &str) {
        match self.units.iter_mut().find(|u| u.target == Target::Field(f)) {
            Some(u) => u.count += 1,
            None => self.units.push(Unit {
                target: Target::Field(f),
                text: v.to_owned(),
                count: 1,
            }),
        }
    }
}

fn emit(nodes: &[Node], st: &State, out: &mut Out, in_unit: bool) {
    for node in nodes {
        match node {
            Node::Text { html, plain } => {
                out.html.push_str(html);
                out.plain.push_str(plain);
            }
            Node::Value(f) => {
                if let Some(v) = st.value(*f) {
                    out.value(*f, v, !in_unit);
                }
            }
            Node::Tag { open, close, body } => {
                out.html.push_str(open);
                emit(body, st, out, in_unit);
                out.html.push_str(close);
            }
            Node::Link { href, body } => {
                let mut shown = 0;
                let mut unlinked = false;
                for h in href {
                    match h {
                        Href::Text { plain, .. } => shown += plain.chars().count(),
                        Href::Value(f) => {
                            shown += st.value(*f).map_or(0, |v| v.chars().count());
                            unlinked |= st.unlinked[f.index()];
                        }
                    }
                }
                if unlinked || shown > MAX_LINK_CHARS {
                    emit(body, st, out, in_unit);
                    continue;
                }
                out.html.push_str("<a href=\"");
                for h in href {
                    match h {
                        Href::Text { html, .. } => out.html.push_str(html),
                        Href::Value(f) => {
                            if let Some(v) = st.value(*f) {
                                out.html.push_str(&escape_html(v));
                                out.linked[f.index()] = true;
                                if !in_unit {
                                    out.count(*f, v);
                                }
                            }
                        }
                    }
                }
                out.html.push_str("\">");
                emit(body, st, out, in_unit);
                out.html.push_str("</a>");
            }
            Node::Section {
                field,
                inverted,
                body,
                unit,
            } => {
                if st.value(*field).is_some() == *inverted {
                    continue;
                }
                match unit.filter(|_| !in_unit) {
                    Some(i) => {
                        let text = match st.units.get(i).cloned().flatten() {
                            Some(cut) => cut,
                            None => {
                                let mut inner = Out {
                                    html: String::new(),
                                    plain: String::new(),
                                    units: Vec::new(),
                                    linked: [false; FIELDS],
                                };
                                emit(body, st, &mut inner, true);
                                out.html.push_str(&inner.html);
                                out.plain.push_str(&inner.plain);
                                out.units.push(Unit {
                                    target: Target::Section(i),
                                    text: inner.plain,
                                    count: 1,
                                });
                                continue;
                            }
                        };
                        out.html.push_str(&escape_html(&text));
                        out.plain.push_str(&text);
                        out.units.push(Unit {
                            target: Target::Section(i),
                            text,
                            count: 1,
                        });
                    }
                    None => emit(body, st, out, in_unit),
                }
            }
        }
    }
}

/// The tags Telegram's HTML mode knows.
const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "tg-emoji",
    "code",
    "pre",
    "blockquote",
];

/// Entities that cannot contain one another (but `<code>` right inside `<pre>`).
const EXCLUSIVE: &[&str] = &["a", "code", "pre", "tg-emoji"];

/// Entities that hold only text (but `<code>` right inside `<pre>`).
const TEXT_ONLY: &[&str] = &["code", "pre", "tg-emoji"];

enum Open {
    Section {
        name: String,
        field: Field,
        inverted: bool,
    },
    Tag {
        name: String,
        open: String,
    },
    Link {
        href: Vec<Href>,
    },
}

struct Frame {
    open: Open,
    nodes: Vec<Node>,
}

impl Frame {
    fn tag(&self) -> Option<&str> {
        match &self.open {
            Open::Tag { name, .. } => Some(name),
            Open::Link { .. } => Some("a"),
            Open::Section { .. } => None,
        }
    }
}

struct Parser {
    root: Vec<Node>,
    /// What is open, innermost last.
    stack: Vec<Frame>,
    units: usize,
}

impl Parser {
    fn run(text: &str) -> Result<Template> {
        let mut p = Parser {
            root: Vec::new(),
            stack: Vec::new(),
            units: 0,
        };
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("{{") {
                let (inside, after) = after
                    .split_once("}}")
                    .ok_or(TemplateError::UnclosedPlaceholder)?;
                p.placeholder(inside.trim())?;
                rest = after;
            } else if let Some(after) = rest.strip_prefix('<') {
                rest = p.tag(after)?;
            } else if let Some(after) = rest.strip_prefix('&') {
                let (html, plain, after) = entity(after)?;
                p.text(&html, plain.encode_utf8(&mut [0; 4]));
                rest = after;
            } else {
                let mut chars = rest.chars();
                chars.next();
                let mut buf = [0; 4];
                let s = c.encode_utf8(&mut buf);
                p.text(s, s);
                rest = chars.as_str();
            }
        }
        match p.stack.last() {
            Some(frame) => Err(unclosed(frame)),
            None => Ok(Template {
                nodes: p.root,
                units: p.units,
                capped: false,
            }),
        }
    }

    fn nodes(&mut self) -> &mut Vec<Node> {
        match self.stack.last_mut() {
            Some(frame) => &mut frame.nodes,
            None => &mut self.root,
        }
    }

    fn text(&mut self, html: &str, plain: &str) {
        match self.nodes().last_mut() {
            Some(Node::Text { html: h, plain: p }) => {
                h.push_str(html);
                p.push_str(plain);
            }
            _ => self.nodes().push(Node::Text {
                html: html.to_owned(),
                plain: plain.to_owned(),
            }),
        }
    }

    fn placeholder(&mut self, inside: &str) -> Result<()> {
        let mut chars = inside.chars();
        let sigil = chars.next().filter(|c| matches!(c, '#' | '^' | '/'));
        let name = match sigil {
            Some(_) => chars.as_str().trim(),
            None => inside,
        };
        let field = Field::parse(name).ok_or_else(|| TemplateError::UnknownField(name.into()))?;
        match sigil {
            None => self.nodes().push(Node::Value(field)),
            Some('/') => {
                let frame = self
                    .stack
                    .pop()
                    .ok_or_else(|| TemplateError::UnmatchedSection(name.into()))?;
                match frame.open {
                    Open::Section {
                        field: open,
                        inverted,
                        ..
                    } if open == field => {
                        let unit =
                            (text_only(&frame.nodes) && has_value(&frame.nodes)).then(|| {
                                self.units += 1;
                                self.units - 1
                            });
                        self.nodes().push(Node::Section {
                            field,
                            inverted,
                            body: frame.nodes,
                            unit,
                        });
                    }
                    _ => return Err(unclosed(&frame)),
                }
            }
            Some(s) => self.stack.push(Frame {
                open: Open::Section {
                    name: name.into(),
                    field,
                    inverted: s == '^',
                },
                nodes: Vec::new(),
            }),
        }
        Ok(())
    }

    /// A tag after its `<`; returns the rest after its `>`.
    fn tag<'a>(&mut self, after: &'a str) -> Result<&'a str> {
        let (closing, rest) = match after.strip_prefix('/') {
            Some(r) => (true, r),
            None => (false, after),
        };
        let (written, mut rest) = split_while(rest, |c| c.is_ascii_alphanumeric() || c == '-');
        let name = written.to_ascii_lowercase();
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(TemplateError::Bare('<', "&lt;"));
        }
        if !TAGS.contains(&name.as_str()) {
            return Err(TemplateError::TagNotAllowed(name));
        }
        if closing {
            let rest = rest
                .trim_start()
                .strip_prefix('>')
                .ok_or_else(|| TemplateError::MalformedTag(name.clone()))?;
            let frame = match self.stack.pop() {
                None => return Err(TemplateError::UnmatchedTag(name)),
                Some(f) if f.tag() == Some(name.as_str()) => f,
                Some(f) => return Err(unclosed(&f)),
            };
            let node = match frame.open {
                Open::Link { href } => Node::Link {
                    href,
                    body: frame.nodes,
                },
                Open::Tag { open, .. } => Node::Tag {
                    open,
                    close: format!("</{written}>"),
                    body: frame.nodes,
                },
                Open::Section { name, .. } => return Err(TemplateError::UnclosedSection(name)),
            };
            self.nodes().push(node);
            return Ok(rest);
        }
        let mut attrs: Vec<(String, Option<String>)> = Vec::new();
        let mut href = None;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('>') {
                rest = r;
                break;
            }
            if rest.starts_with("{{") {
                return Err(TemplateError::PlaceholderInTag);
            }
            let (attr, r) =
                split_while(rest, |c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if attr.is_empty() {
                return Err(TemplateError::MalformedTag(name));
            }
            let attr = attr.to_ascii_lowercase();
            rest = r.trim_start();
            let mut value = None;
            if let Some(r) = rest.strip_prefix('=') {
                let (v, r) = r
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|r| r.split_once('"'))
                    .ok_or_else(|| TemplateError::MalformedTag(name.clone()))?;
                rest = r;
                if name == "a" && attr == "href" {
                    href = Some(href_parts(v)?);
                } else if v.contains("{{") {
                    return Err(TemplateError::PlaceholderInTag);
                } else {
                    value = Some(decoded(v)?);
                }
            }
            if attrs.iter().any(|(a, _)| *a == attr) {
                return Err(TemplateError::AttributeNotAllowed { tag: name, attr });
            }
            attrs.push((attr, value));
        }
        self.check_open(&name, &attrs)?;
        let open = match href {
            Some(href) => Open::Link { href },
            None => Open::Tag {
                // As written: the text from `<` to `>`.
                open: format!("<{}", after.strip_suffix(rest).unwrap_or_default()),
                name,
            },
        };
        self.stack.push(Frame {
            open,
            nodes: Vec::new(),
        });
        Ok(rest)
    }

    /// Telegram's rules for a tag's attributes and where it may stand.
    fn check_open(&self, name: &str, attrs: &[(String, Option<String>)]) -> Result<()> {
        let parent = self.stack.iter().rev().find_map(Frame::tag);
        for ancestor in self.stack.iter().rev().filter_map(Frame::tag) {
            let code_in_pre = name == "code" && parent == Some("pre") && ancestor == "pre";
            let refused = (TEXT_ONLY.contains(&ancestor)
                || (EXCLUSIVE.contains(&name) && EXCLUSIVE.contains(&ancestor))
                || (name == "blockquote" && ancestor == "blockquote"))
                && !code_in_pre;
            if refused {
                return Err(TemplateError::NotAllowedInside {
                    tag: name.into(),
                    parent: ancestor.into(),
                });
            }
        }
        for (attr, value) in attrs {
            let v = value.as_deref();
            let allowed = match (name, attr.as_str()) {
                ("a", "href") => true,
                ("span", "class") => v == Some("tg-spoiler"),
                ("tg-emoji", "emoji-id") => v.is_some(),
                ("blockquote", "expandable") => v.is_none(),
                ("code", "class") if v.is_some_and(|v| v.starts_with("language-")) => {
                    if parent != Some("pre") {
                        return Err(TemplateError::LanguageOutsidePre);
                    }
                    true
                }
                _ => false,
            };
            if !allowed {
                return Err(TemplateError::AttributeNotAllowed {
                    tag: name.into(),
                    attr: attr.clone(),
                });
            }
        }
        let needs = match name {
            "a" => Some(("href", "href")),
            "span" => Some(("class", "class=\"tg-spoiler\"")),
            "tg-emoji" => Some(("emoji-id", "emoji-id")),
            _ => None,
        };
        match needs {
            Some((attr, needs)) if !attrs.iter().any(|(a, _)| a == attr) => {
                Err(TemplateError::MissingAttribute {
                    tag: name.into(),
                    needs,
                })
            }
            _ => Ok(()),
        }
    }
}

/// `s` split before its first character that `keep` refuses.
fn split_while(s: &str, keep: impl Fn(char) -> bool) -> (&str, &str) {
    let rest = s.trim_start_matches(keep);
    (s.strip_suffix(rest).unwrap_or_default(), rest)
}

fn unclosed(frame: &Frame) -> TemplateError {
    match &frame.open {
        Open::Section { name, .. } => TemplateError::UnclosedSection(name.clone()),
        Open::Tag { name, .. } => TemplateError::UnclosedTag(name.clone()),
        Open::Link { .. } => TemplateError::UnclosedTag("a".into()),
    }
}

fn text_only(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text { .. } | Node::Value(_) => true,
        Node::Section { body, .. } => text_only(body),
        Node::Tag { .. } | Node::Link { .. } => false,
    })
}

fn has_value(nodes: &[Node]) -> bool {
    nodes.iter().any(|n| match n {
        Node::Value(_) => true,
        Node::Section { body, .. } => has_value(body),
        _ => false,
    })
}

/// An href's text and placeholders.
fn href_parts(mut rest: &str) -> Result<Vec<Href>> {
    fn push(parts: &mut Vec<Href>, html: &str, plain: &str) {
        match parts.last_mut() {
            Some(Href::Text { html: h, plain: p }) => {
                h.push_str(html);
                p.push_str(plain);
            }
            _ => parts.push(Href::Text {
                html: html.into(),
                plain: plain.into(),
            }),
        }
    }
    let mut parts = Vec::new();
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("{{") {
            let (inside, after) = after
                .split_once("}}")
                .ok_or(TemplateError::UnclosedPlaceholder)?;
            let name = inside.trim();
            if name.starts_with(['#', '^', '/']) {
                return Err(TemplateError::PlaceholderInTag);
            }
            let field =
                Field::parse(name).ok_or_else(|| TemplateError::UnknownField(name.into()))?;
            parts.push(Href::Value(field));
            rest = after;
        } else if let Some(after) = rest.strip_prefix('&') {
            let (html, plain, after) = entity(after)?;
            push(&mut parts, &html, plain.encode_utf8(&mut [0; 4]));
            rest = after;
        } else if c == '<' {
            return Err(TemplateError::Bare('<', "&lt;"));
        } else {
            let mut chars = rest.chars();
            chars.next();
            let mut buf = [0; 4];
            let s = c.encode_utf8(&mut buf);
            push(&mut parts, s, s);
            rest = chars.as_str();
        }
    }
    Ok(parts)
}

/// An attribute value as a reader sees it.
fn decoded(mut rest: &str) -> Result<String> {
    let mut out = String::new();
    while let Some(c) = rest.chars().next() {
        let mut chars = rest.chars();
        chars.next();
        rest = chars.as_str();
        match c {
            '&' => {
                let (_, plain, after) = entity(rest)?;
                out.push(plain);
                rest = after;
            }
            '<' => return Err(TemplateError::Bare('<', "&lt;")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// An entity after its `&`: as written, the character it stands for, the rest.
fn entity(rest: &str) -> Result<(String, char, &str)> {
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '#')
        .take(12)
        .collect();
    let Some(after) = rest
        .strip_prefix(name.as_str())
        .and_then(|r| r.strip_prefix(';'))
    else {
        return Err(TemplateError::Bare('&', "&amp;"));
    };
    let numeric = |s: &str, radix| u32::from_str_radix(s, radix).ok().and_then(char::from_u32);
    let c = match name.as_str() {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        n => match n.strip_prefix('#') {
            Some(n) => match n.strip_prefix(['x', 'X']) {
                Some(hex) => numeric(hex, 16),
                None => numeric(n, 10),
            },
            None => None,
        },
    };
    match c.filter(|c| *c != '\0') {
        Some(c) => Ok((format!("&{name};"), c, after)),
        None => Err(TemplateError::UnsupportedEntity(name)),
    }
}

/// Formats a deployment in the reference layout:
///
/// ```text
/// ⚡ New Worker Deployment
///
/// Project: api-service
/// Environment: 🚀 production
/// Deployment ID: build-abc123
/// Author: dev@example.com
/// Branch: feature/add-auth
/// Commit: abc123d - Add JWT authentication
/// Time: Jan 15, 2025, 10:30 AM UTC
/// ```
///
/// Only the commit message's first line is shown. If the result would pass
/// Telegram's 4096-character limit, the longest field is cut with an ellipsis until
/// it fits. This is the template [`DEFAULT_NOTIFICATION`].
pub fn render(d: &Deployment) -> Rendered {
    Template::default_notification().render(&Values::from_deployment(d))
}

#[cfg(test)]
mod tests;
