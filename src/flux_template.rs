//! The Go `text/template` subset Flux's `ImageUpdateAutomation.spec.git.commit.messageTemplate`
//! is written in: text, `{{ pipeline }}` with `|` chains, `$var := …`, `range` (with `$k, $v :=`
//! over maps and lists), `if`/`else if`/`else`, `with`, `end`, comments, `{{-`/`-}}` trimming,
//! the Go built-in functions and the common Sprig string functions. The data is Flux's:
//! `.AutomationObject`, `.Changed.Changes`, `.Changed.FileChanges`, `.Changed.Objects` (and the
//! older `.Updated`, which is refused by name). Anything else — an unknown function or field —
//! is an error naming the template's line, so a message is never silently wrong.

use std::fmt::Write as _;

/// A value templates see.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (a missing map key); prints `<no value>` as Go does.
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    /// A map, keys sorted as Go's `range` visits them.
    Map(Vec<(Value, Value)>),
    /// A struct: its fields, and how `{{ . }}` prints it.
    Struct {
        fields: Vec<(&'static str, Value)>,
        shown: String,
    },
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Struct { .. } => true,
        }
    }

    fn show(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Str(s) => s.clone(),
            Value::List(l) => format!(
                "[{}]",
                l.iter().map(Value::show).collect::<Vec<_>>().join(" ")
            ),
            Value::Map(m) => format!(
                "map[{}]",
                m.iter()
                    .map(|(k, v)| format!("{}:{}", k.show(), v.show()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Value::Struct { shown, .. } => shown.clone(),
        }
    }
}

/// A template error, at a line of the template (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

type Res<T> = Result<T, TemplateError>;

fn err<T>(line: usize, message: impl Into<String>) -> Res<T> {
    Err(TemplateError {
        line,
        message: message.into(),
    })
}

#[derive(Debug, Clone)]
enum Operand {
    /// `.A.B` (empty for `.`).
    Dot(Vec<String>),
    /// `$x.A.B` (`$` alone is the root).
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Paren(Pipeline, Vec<String>),
}

type Command = Vec<Operand>;

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Vec<String>,
    commands: Vec<Command>,
    line: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

/// The Go built-ins and Sprig functions this engine has.
const FUNCTIONS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "upper",
    "lower",
    "title",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trimAll",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "default",
    "join",
    "trunc",
    "repeat",
    "nospace",
    "toString",
    "list",
    "first",
    "last",
];

// ---- lexing actions ----

struct Raw {
    text: String,
    line: usize,
}

/// Split `src` into text and action pieces, applying `{{-`/`-}}` trimming.
fn pieces(src: &str) -> Res<Vec<Result<String, Raw>>> {
    let mut out: Vec<Result<String, Raw>> = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let after = &rest[open + 2..];
        let trim_before = after.starts_with("- ") || after.starts_with("-\n") || after == "-";
        if trim_before {
            text = text.trim_end().to_string();
        }
        line += rest[..open].matches('\n').count();
        out.push(Ok(text));
        let Some(close) = after.find("}}") else {
            return err(line, "unclosed action: {{ without }}");
        };
        let mut inner = &after[..close];
        if trim_before {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        out.push(Err(Raw {
            text: inner.trim().to_string(),
            line,
        }));
        line += after[..close].matches('\n').count();
        rest = &after[close + 2..];
    }
    let mut text = rest.to_string();
    if trim_next {
        text = text.trim_start().to_string();
    }
    out.push(Ok(text));
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(i64),
    Pipe,
    Open,
    Close(Vec<String>),
    Decl,
    Comma,
}

fn fields(s: &str) -> Vec<String> {
    s.split('.')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

fn lex(src: &str, line: usize) -> Res<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || matches!(chars[*i], '_' | '.')) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                i += 1;
                let w = if i < chars.len() && chars[i] == '.' {
                    word(&mut i)
                } else {
                    String::new()
                };
                out.push(Tok::Close(fields(&w)));
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Decl);
                i += 2
            }
            '=' => {
                return err(line, "assignment with = is not supported; declare with :=");
            }
            '.' => out.push(Tok::Dot(fields(&word(&mut i)))),
            '$' => {
                i += 1;
                let w = word(&mut i);
                let (name, rest) = w.split_once('.').unwrap_or((&w, ""));
                out.push(Tok::Var(name.to_string(), fields(rest)));
            }
            '"' | '`' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return err(line, "unterminated string");
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c == '\\' && quote == '"' {
                        let e = chars.get(i).copied().unwrap_or('\\');
                        i += 1;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    } else {
                        s.push(c);
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                match s.parse() {
                    Ok(n) => out.push(Tok::Num(n)),
                    Err(_) => return err(line, format!("bad number {s:?}")),
                }
            }
            c if c.is_alphabetic() || c == '_' => out.push(Tok::Ident(word(&mut i))),
            other => return err(line, format!("unexpected character {other:?} in action")),
        }
    }
    Ok(out)
}

fn parse_pipeline(toks: &[Tok], line: usize) -> Res<Pipeline> {
    let mut decl = Vec::new();
    let mut toks = toks;
    if let Some(at) = toks.iter().position(|t| *t == Tok::Decl) {
        for t in &toks[..at] {
            match t {
                Tok::Var(v, f) if f.is_empty() => decl.push(v.clone()),
                Tok::Comma => {}
                _ => return err(line, "only variables can be declared before :="),
            }
        }
        toks = &toks[at + 1..];
    }
    let mut commands = Vec::new();
    let mut cmd = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => {
                if cmd.is_empty() {
                    return err(line, "missing command before |");
                }
                commands.push(std::mem::take(&mut cmd));
            }
            Tok::Open => {
                let mut depth = 1;
                let start = i + 1;
                let mut j = start;
                while j < toks.len() {
                    match toks[j] {
                        Tok::Open => depth += 1,
                        Tok::Close(_) => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let Some(Tok::Close(after)) = toks.get(j) else {
                    return err(line, "unclosed (");
                };
                cmd.push(Operand::Paren(
                    parse_pipeline(&toks[start..j], line)?,
                    after.clone(),
                ));
                i = j;
            }
            Tok::Close(_) => return err(line, "unexpected )"),
            Tok::Dot(f) => cmd.push(Operand::Dot(f.clone())),
            Tok::Var(v, f) => cmd.push(Operand::Var(v.clone(), f.clone())),
            Tok::Str(s) => cmd.push(Operand::Lit(Value::Str(s.clone()))),
            Tok::Num(n) => cmd.push(Operand::Lit(Value::Int(*n))),
            Tok::Ident(w) => match w.as_str() {
                "true" => cmd.push(Operand::Lit(Value::Bool(true))),
                "false" => cmd.push(Operand::Lit(Value::Bool(false))),
                "nil" => cmd.push(Operand::Lit(Value::Nil)),
                f if FUNCTIONS.contains(&f) => cmd.push(Operand::Func(f.to_string())),
                f => {
                    return err(
                        line,
                        format!(
                            "function {f:?} is not defined (Go template built-ins and the \
                             Sprig string functions are: {})",
                            FUNCTIONS.join(", ")
                        ),
                    )
                }
            },
            Tok::Decl | Tok::Comma => return err(line, "unexpected := or ,"),
        }
        i += 1;
    }
    if cmd.is_empty() {
        return err(line, "missing value in action");
    }
    commands.push(cmd);
    Ok(Pipeline {
        decl,
        commands,
        line,
    })
}

impl Template {
    /// Parse `src`; an error names the line (1-based, within the template).
    pub fn parse(src: &str) -> Res<Template> {
        let pieces = pieces(src)?;
        let mut stack: Vec<(String, Option<Pipeline>, Vec<Node>, usize)> =
            vec![("top".into(), None, Vec::new(), 0)];
        // Open blocks: kind, branches so far for `if` (as nested in `stack`).
        let mut branches: Vec<Vec<(Pipeline, Vec<Node>)>> = vec![Vec::new()];
        let mut elses: Vec<bool> = vec![false];
        for piece in pieces {
            let raw = match piece {
                Ok(text) => {
                    if !text.is_empty() {
                        stack.last_mut().expect("top").2.push(Node::Text(text));
                    }
                    continue;
                }
                Err(raw) => raw,
            };
            let line = raw.line;
            let text = raw.text;
            if text.starts_with("/*") {
                if !text.ends_with("*/") {
                    return err(line, "unclosed comment");
                }
                continue;
            }
            let toks = lex(&text, line)?;
            let keyword = match toks.first() {
                Some(Tok::Ident(w)) => w.as_str(),
                _ => "",
            };
            match keyword {
                "if" | "range" | "with" => {
                    let p = parse_pipeline(&toks[1..], line)?;
                    stack.push((keyword.to_string(), Some(p), Vec::new(), line));
                    branches.push(Vec::new());
                    elses.push(false);
                }
                "else" => {
                    let Some((kind, cond, body, _)) = stack.last_mut() else {
                        unreachable!()
                    };
                    if kind == "top" || elses.last() == Some(&true) {
                        return err(line, "unexpected {{else}}");
                    }
                    let body = std::mem::take(body);
                    let is_if = matches!(toks.get(1), Some(Tok::Ident(w)) if w == "if");
                    if is_if && kind != "if" {
                        return err(line, "{{else if}} only follows {{if}}");
                    }
                    if kind == "if" {
                        let c = cond.take().expect("if has a condition");
                        branches.last_mut().expect("branch list").push((c, body));
                        if is_if {
                            *cond = Some(parse_pipeline(&toks[2..], line)?);
                        } else {
                            *elses.last_mut().expect("else flag") = true;
                        }
                    } else {
                        branches
                            .last_mut()
                            .expect("branch list")
                            .push((cond.clone().expect("condition"), body));
                        *elses.last_mut().expect("else flag") = true;
                    }
                }
                "end" => {
                    if stack.len() == 1 {
                        return err(line, "unexpected {{end}}");
                    }
                    let (kind, cond, body, _) = stack.pop().expect("open block");
                    let mut br = branches.pop().expect("branches");
                    let had_else = elses.pop().expect("else flag");
                    let node = match kind.as_str() {
                        "if" => {
                            let (branches_done, else_body) = match cond {
                                Some(c) => {
                                    br.push((c, body));
                                    (br, Vec::new())
                                }
                                None => (br, body),
                            };
                            Node::If(branches_done, else_body)
                        }
                        _ => {
                            let (p, main, other) = if had_else {
                                let (p, main) = br.pop().expect("main branch");
                                (p, main, body)
                            } else {
                                (cond.expect("condition"), body, Vec::new())
                            };
                            if kind == "range" {
                                Node::Range(p, main, other)
                            } else {
                                Node::With(p, main, other)
                            }
                        }
                    };
                    stack.last_mut().expect("parent").2.push(node);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return err(line, format!("{{{{{keyword}}}}} is not supported"))
                }
                _ => {
                    let p = parse_pipeline(&toks, line)?;
                    stack.last_mut().expect("top").2.push(Node::Action(p));
                }
            }
        }
        if stack.len() > 1 {
            let (kind, _, _, line) = &stack[stack.len() - 1];
            return err(*line, format!("{{{{{kind}}}}} without {{{{end}}}}"));
        }
        Ok(Template {
            nodes: stack.pop().expect("top").2,
        })
    }

    /// Render with `data` as `.`.
    pub fn render(&self, data: &Value) -> Res<String> {
        let mut out = String::new();
        let mut vars = vec![("".to_string(), data.clone())];
        exec(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

fn exec(nodes: &[Node], dot: &Value, vars: &mut Vec<(String, Value)>, out: &mut String) -> Res<()> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval(p, dot, vars)?;
                if p.decl.is_empty() {
                    out.push_str(&v.show());
                } else {
                    vars.push((p.decl[0].clone(), v));
                }
            }
            Node::If(branches, other) => {
                let depth = vars.len();
                let mut done = false;
                for (cond, body) in branches {
                    if eval(cond, dot, vars)?.truthy() {
                        exec(body, dot, vars, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    exec(other, dot, vars, out)?;
                }
                vars.truncate(depth);
            }
            Node::With(p, body, other) => {
                let depth = vars.len();
                let v = eval(p, dot, vars)?;
                if v.truthy() {
                    exec(body, &v, vars, out)?;
                } else {
                    exec(other, dot, vars, out)?;
                }
                vars.truncate(depth);
            }
            Node::Range(p, body, other) => {
                let depth = vars.len();
                let v = eval(
                    &Pipeline {
                        decl: Vec::new(),
                        ..p.clone()
                    },
                    dot,
                    vars,
                )?;
                let items: Vec<(Value, Value)> = match v {
                    Value::List(l) => l
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Int(i as i64), v))
                        .collect(),
                    Value::Map(m) => m,
                    Value::Nil => Vec::new(),
                    other => {
                        return err(p.line, format!("range can't iterate over {}", other.show()))
                    }
                };
                if items.is_empty() {
                    exec(other, dot, vars, out)?;
                }
                for (k, v) in items {
                    let inner = vars.len();
                    match p.decl.as_slice() {
                        [] => {}
                        [one] => vars.push((one.clone(), v.clone())),
                        [key, value] => {
                            vars.push((key.clone(), k));
                            vars.push((value.clone(), v.clone()));
                        }
                        _ => return err(p.line, "range declares at most two variables"),
                    }
                    exec(body, &v, vars, out)?;
                    vars.truncate(inner);
                }
                vars.truncate(depth);
            }
        }
    }
    Ok(())
}

fn field(v: &Value, name: &str, line: usize) -> Res<Value> {
    match v {
        Value::Struct { fields, .. } => match fields.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => err(
                line,
                format!(
                    "can't evaluate field {name}: it has {}",
                    fields
                        .iter()
                        .map(|(n, _)| format!(".{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        },
        Value::Map(m) => Ok(m
            .iter()
            .find(|(k, _)| k.show() == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Nil)),
        Value::Nil => err(line, format!("nil pointer evaluating .{name}")),
        other => err(
            line,
            format!("can't evaluate field {name} in {:?}", other.show()),
        ),
    }
}

fn chain(mut v: Value, names: &[String], line: usize) -> Res<Value> {
    for n in names {
        v = field(&v, n, line)?;
    }
    Ok(v)
}

fn eval(p: &Pipeline, dot: &Value, vars: &[(String, Value)]) -> Res<Value> {
    let mut prev: Option<Value> = None;
    for cmd in &p.commands {
        let mut args: Vec<Value> = Vec::new();
        let head = &cmd[0];
        for op in &cmd[1..] {
            args.push(operand(op, dot, vars, p.line)?);
        }
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match head {
            Operand::Func(f) => call(f, &args, p.line)?,
            other => {
                if !args.is_empty() {
                    return err(p.line, "only a function takes arguments");
                }
                operand(other, dot, vars, p.line)?
            }
        });
    }
    Ok(prev.unwrap_or(Value::Nil))
}

fn operand(op: &Operand, dot: &Value, vars: &[(String, Value)], line: usize) -> Res<Value> {
    match op {
        Operand::Dot(f) => chain(dot.clone(), f, line),
        Operand::Var(name, f) => {
            let Some((_, v)) = vars.iter().rev().find(|(n, _)| n == name) else {
                return err(line, format!("undefined variable ${name}"));
            };
            chain(v.clone(), f, line)
        }
        Operand::Lit(v) => Ok(v.clone()),
        Operand::Func(f) => call(f, &[], line),
        Operand::Paren(p, f) => chain(eval(p, dot, vars)?, f, line),
    }
}

fn printf(format: &str, args: &[Value], line: usize) -> Res<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'v' | 'd' | 'q')) => {
                let Some(a) = args.next() else {
                    let _ = write!(out, "%!{verb}(MISSING)");
                    continue;
                };
                if verb == 'q' {
                    let _ = write!(out, "{:?}", a.show());
                } else {
                    out.push_str(&a.show());
                }
            }
            other => {
                return err(
                    line,
                    format!(
                        "printf verb %{} is not supported (use %s, %v, %d, %q)",
                        other.unwrap_or(' ')
                    ),
                )
            }
        }
    }
    Ok(out)
}

fn call(f: &str, args: &[Value], line: usize) -> Res<Value> {
    let s = |i: usize| args.get(i).map(Value::show).unwrap_or_default();
    let want = |n: usize| -> Res<()> {
        if args.len() == n {
            Ok(())
        } else {
            err(
                line,
                format!("wrong number of args for {f}: want {n} got {}", args.len()),
            )
        }
    };
    let cmp = |a: &Value, b: &Value| -> std::cmp::Ordering {
        match (a, b) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            _ => a.show().cmp(&b.show()),
        }
    };
    Ok(match f {
        "print" => {
            // Go's print adds spaces between operands when neither is a string.
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
                    out.push(' ');
                }
                out.push_str(&a.show());
            }
            Value::Str(out)
        }
        "println" => Value::Str(args.iter().map(Value::show).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            if args.is_empty() {
                return err(line, "printf needs a format");
            }
            Value::Str(printf(&s(0), &args[1..], line)?)
        }
        "len" => {
            want(1)?;
            Value::Int(match &args[0] {
                Value::Str(x) => x.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => return err(line, format!("len of {}", other.show())),
            } as i64)
        }
        "index" => {
            let mut v = args.first().cloned().unwrap_or(Value::Nil);
            for k in &args[1.min(args.len())..] {
                v = match (&v, k) {
                    (Value::List(l), Value::Int(i)) => {
                        l.get(*i as usize).cloned().ok_or_else(|| TemplateError {
                            line,
                            message: format!("index {i} out of range"),
                        })?
                    }
                    (Value::Map(m), k) => m
                        .iter()
                        .find(|(mk, _)| mk.show() == k.show())
                        .map(|(_, v)| v.clone())
                        .unwrap_or(Value::Nil),
                    _ => return err(line, format!("can't index {}", v.show())),
                };
            }
            v
        }
        "not" => {
            want(1)?;
            Value::Bool(!args[0].truthy())
        }
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil),
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil),
        "eq" => Value::Bool(args.len() > 1 && args[1..].iter().any(|b| cmp(&args[0], b).is_eq())),
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = cmp(&args[0], &args[1]);
            Value::Bool(match f {
                "ne" => o.is_ne(),
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "upper" => Value::Str(s(0).to_uppercase()),
        "lower" => Value::Str(s(0).to_lowercase()),
        "title" => Value::Str(
            s(0).split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                })
                .collect::<Vec<String>>()
                .join(" "),
        ),
        "trim" => Value::Str(s(0).trim().to_string()),
        "nospace" => Value::Str(s(0).chars().filter(|c| !c.is_whitespace()).collect()),
        "toString" => Value::Str(s(0)),
        // Sprig's argument order: the piped value comes last.
        "trimPrefix" => {
            want(2)?;
            Value::Str(s(1).strip_prefix(&s(0)).map_or(s(1), str::to_string))
        }
        "trimSuffix" => {
            want(2)?;
            Value::Str(s(1).strip_suffix(&s(0)).map_or(s(1), str::to_string))
        }
        "trimAll" => {
            want(2)?;
            let cut = s(0);
            Value::Str(s(1).trim_matches(|c| cut.contains(c)).to_string())
        }
        "replace" => {
            want(3)?;
            Value::Str(s(2).replace(&s(0), &s(1)))
        }
        "contains" => {
            want(2)?;
            Value::Bool(s(1).contains(&s(0)))
        }
        "hasPrefix" => {
            want(2)?;
            Value::Bool(s(1).starts_with(&s(0)))
        }
        "hasSuffix" => {
            want(2)?;
            Value::Bool(s(1).ends_with(&s(0)))
        }
        "quote" => Value::Str(
            args.iter()
                .map(|a| format!("{:?}", a.show()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::Str(
            args.iter()
                .map(|a| format!("'{}'", a.show()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "default" => {
            want(2)?;
            if args[1].truthy() {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "join" => {
            want(2)?;
            match &args[1] {
                Value::List(l) => {
                    Value::Str(l.iter().map(Value::show).collect::<Vec<_>>().join(&s(0)))
                }
                other => Value::Str(other.show()),
            }
        }
        "trunc" => {
            want(2)?;
            let Value::Int(n) = args[0] else {
                return err(line, "trunc needs a number first");
            };
            let text = s(1);
            let n = usize::try_from(n).unwrap_or(0);
            Value::Str(text.chars().take(n).collect())
        }
        "repeat" => {
            want(2)?;
            let Value::Int(n) = args[0] else {
                return err(line, "repeat needs a number first");
            };
            Value::Str(s(1).repeat(usize::try_from(n).unwrap_or(0).min(10_000)))
        }
        "list" => Value::List(args.to_vec()),
        "first" | "last" => {
            want(1)?;
            match &args[0] {
                Value::List(l) => {
                    let item = if f == "first" { l.first() } else { l.last() };
                    item.cloned().unwrap_or(Value::Nil)
                }
                other => return err(line, format!("{f} of {}", other.show())),
            }
        }
        other => return err(line, format!("function {other:?} is not defined")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(old: &str, new: &str) -> Value {
        Value::Struct {
            fields: vec![
                ("OldValue", Value::Str(old.into())),
                ("NewValue", Value::Str(new.into())),
                ("Setter", Value::Str("flux-system:podinfo".into())),
            ],
            shown: format!("{{{old} {new} flux-system:podinfo}}"),
        }
    }

    fn data() -> Value {
        let object = Value::Struct {
            fields: vec![
                ("Kind", Value::Str("Deployment".into())),
                ("Name", Value::Str("podinfo".into())),
                ("Namespace", Value::Str("default".into())),
            ],
            shown: "Deployment/default/podinfo".into(),
        };
        let changes = Value::List(vec![change("5.0.0", "5.0.3")]);
        Value::Struct {
            fields: vec![
                ("AutomationObject", Value::Str("flux-system/podinfo".into())),
                (
                    "Changed",
                    Value::Struct {
                        fields: vec![
                            ("Changes", changes.clone()),
                            (
                                "FileChanges",
                                Value::Map(vec![(
                                    Value::Str("apps/podinfo.yaml".into()),
                                    Value::Map(vec![(object.clone(), changes.clone())]),
                                )]),
                            ),
                            ("Objects", Value::Map(vec![(object, changes)])),
                        ],
                        shown: String::new(),
                    },
                ),
            ],
            shown: String::new(),
        }
    }

    fn render(t: &str) -> Res<String> {
        Template::parse(t)?.render(&data())
    }

    #[test]
    fn renders_the_flux_docs_template() {
        let t = "Automated image update

Automation name: {{ .AutomationObject }}

Files:
{{ range $filename, $_ := .Changed.FileChanges -}}
- {{ $filename }}
{{ end -}}

Objects:
{{ range $resource, $changes := .Changed.Objects -}}
- {{ $resource.Kind }} {{ $resource.Name }}
  Changes:
{{- range $_, $change := $changes }}
    - {{ $change.OldValue }} -> {{ $change.NewValue }}
{{ end -}}
{{ end -}}
";
        assert_eq!(
            render(t).unwrap(),
            "Automated image update

Automation name: flux-system/podinfo

Files:
- apps/podinfo.yaml
Objects:
- Deployment podinfo
  Changes:
    - 5.0.0 -> 5.0.3
",
            "-}} trims every blank after it, as Go does"
        );
    }

    #[test]
    fn functions_conditions_and_pipes() {
        assert_eq!(
            render("{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}")
                .unwrap(),
            "5.0.0 -> 5.0.3\n"
        );
        assert_eq!(
            render("{{ if gt (len .Changed.Changes) 1 }}many{{ else if eq (len .Changed.Changes) 1 }}one{{ else }}none{{ end }}").unwrap(),
            "one"
        );
        assert_eq!(
            render("{{ .AutomationObject | upper | printf \"[%s]\" }}").unwrap(),
            "[FLUX-SYSTEM/PODINFO]"
        );
        assert_eq!(
            render("{{ $n := len .Changed.Changes }}{{ $n }} {{ \"x\" | quote }}{{/* c */}}")
                .unwrap(),
            "1 \"x\""
        );
        assert_eq!(
            render("{{ with .Changed.Changes }}{{ (index . 0).NewValue }}{{ end }}").unwrap(),
            "5.0.3"
        );
        assert_eq!(
            render("{{ .AutomationObject | trimPrefix \"flux-system/\" }}").unwrap(),
            "podinfo"
        );
    }

    #[test]
    fn unknown_functions_fields_and_bad_syntax_name_the_line() {
        let e = render("line one\n{{ frobnicate . }}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("\"frobnicate\""), "{e:?}");
        let e = render("a\nb\n{{ .Updated.Images }}").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.message.contains("Updated") && e.message.contains(".Changed"),
            "{e:?}"
        );
        let e = render("{{ range .Changed.Changes }}\n{{ .Bogus }}{{ end }}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("Bogus") && e.message.contains(".OldValue"),
            "{e:?}"
        );
        assert_eq!(
            render("{{ if . }}x").unwrap_err().message,
            "{{if}} without {{end}}"
        );
        assert!(render("{{ end }}").is_err());
        assert!(render("{{ .X ").is_err());
        assert!(render("{{ template \"x\" }}").is_err());
    }
}
