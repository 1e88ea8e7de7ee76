//! The GLSL ES 1.00 preprocessor (§3.4): comments, directives, conditional
//! compilation and macro expansion, producing preprocessing tokens with line numbers.
//!
//! Expansion uses "painted" tokens: a macro name met while that macro is being
//! expanded is marked and never expanded again, so `#define A A A` terminates.
//! Exponential chains are cut off by a global token budget and a depth limit.

use std::collections::HashMap;

use crate::diag::Diags;

/// Kind of a preprocessing token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PKind {
    /// Identifier or keyword.
    Ident,
    /// A pp-number (validated by the lexer).
    Number,
    /// Operator or punctuator.
    Punct,
}

/// A preprocessing token.
#[derive(Clone, Debug)]
pub struct PTok {
    /// Kind.
    pub kind: PKind,
    /// Spelling.
    pub text: String,
    /// Line (after `#line` adjustments).
    pub line: u32,
    /// Never expand again (macro was disabled when this token was seen).
    painted: bool,
    /// Whitespace or a comment precedes the token (tells `#define F(x)` from `#define F (x)`).
    space: bool,
}

#[derive(Clone, Debug)]
struct Macro {
    params: Option<Vec<String>>,
    body: Vec<PTok>,
}

/// Total tokens macro expansion may produce; far above what a 1 MiB source needs.
const EXPANSION_BUDGET: usize = 4_000_000;
/// Nested expansion depth.
const MAX_EXPANSION_DEPTH: usize = 256;
/// Macros definable.
const MAX_MACROS: usize = 65_536;

const PUNCTS: [&str; 22] = [
    "<<=", ">>=", "++", "--", "<=", ">=", "==", "!=", "&&", "||", "^^", "+=", "-=", "*=", "/=",
    "%=", "&=", "|=", "^=", "<<", ">>", "##",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Splits the source into lines of tokens, removing comments. Returns (physical line, tokens).
fn tokenize(src: &str, diags: &mut Diags) -> Vec<(u32, Vec<PTok>)> {
    let b = src.as_bytes();
    let mut lines = Vec::new();
    let mut cur = Vec::new();
    let mut line = 1u32;
    let mut cur_line = 1u32;
    let mut i = 0;
    let mut last_end = usize::MAX;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let before = cur.len();
        if c == b'\n' {
            lines.push((cur_line, std::mem::take(&mut cur)));
            line += 1;
            cur_line = line;
            i += 1;
        } else if c == b' ' || c == b'\t' || c == b'\r' || c == 0x0b || c == 0x0c {
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            // A block comment acts as one space; newlines inside still count.
            i += 2;
            let mut closed = false;
            while i < b.len() {
                if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    i += 2;
                    closed = true;
                    break;
                }
                if b[i] == b'\n' {
                    line += 1;
                }
                i += 1;
            }
            if !closed {
                diags.error(line, "", "unterminated comment");
            }
        } else if is_ident_start(c) {
            let s = i;
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            cur.push(PTok {
                kind: PKind::Ident,
                text: src[s..i].to_string(),
                line,
                painted: false,
                space: true,
            });
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let s = i;
            i += 1;
            while i < b.len() {
                let d = b[i];
                let exponent_sign = (d == b'+' || d == b'-')
                    && matches!(b[i - 1], b'e' | b'E')
                    && !is_hex(&b[s..i]);
                if exponent_sign || is_ident_char(d) || d == b'.' {
                    i += 1;
                } else {
                    break;
                }
            }
            cur.push(PTok {
                kind: PKind::Number,
                text: src[s..i].to_string(),
                line,
                painted: false,
                space: true,
            });
        } else {
            let rest = &src[i..];
            let p = PUNCTS.iter().find(|p| rest.starts_with(**p));
            let len = match p {
                Some(p) => p.len(),
                None if b"()[]{}.,;:?+-*/%<>=!~&|^#".contains(&c) => 1,
                None => {
                    let ch = rest.chars().next().unwrap_or('?');
                    diags.error(line, &ch.to_string(), "invalid character");
                    i += ch.len_utf8();
                    continue;
                }
            };
            cur.push(PTok {
                kind: PKind::Punct,
                text: src[i..i + len].to_string(),
                line,
                painted: false,
                space: true,
            });
            i += len;
        }
        if cur.len() > before {
            if let Some(t) = cur.last_mut() {
                t.space = start != last_end;
            }
            last_end = i;
        }
    }
    lines.push((cur_line, cur));
    lines
}

fn is_hex(s: &[u8]) -> bool {
    s.len() > 1 && s[0] == b'0' && (s[1] == b'x' || s[1] == b'X')
}

struct Cond {
    /// Emitting tokens now.
    active: bool,
    /// Some branch of this group was taken.
    taken: bool,
    /// The enclosing group is active.
    parent: bool,
    seen_else: bool,
}

/// The preprocessor state.
struct Pp<'d> {
    diags: &'d mut Diags,
    macros: HashMap<String, Macro>,
    budget: usize,
    /// Set once the budget or depth limit fired, to report it once.
    exhausted: bool,
    /// Offset added to physical line numbers by `#line`.
    line_delta: i64,
}

/// Runs the preprocessor. `fragment` defines `GL_FRAGMENT_PRECISION_HIGH`.
pub fn preprocess(src: &str, fragment: bool, diags: &mut Diags) -> Vec<PTok> {
    let lines = tokenize(src, diags);
    let mut pp = Pp {
        diags,
        macros: HashMap::new(),
        budget: EXPANSION_BUDGET,
        exhausted: false,
        line_delta: 0,
    };
    let one = |n: &str| Macro {
        params: None,
        body: vec![PTok {
            kind: PKind::Number,
            text: n.to_string(),
            line: 0,
            painted: false,
            space: true,
        }],
    };
    pp.macros.insert("GL_ES".into(), one("1"));
    pp.macros.insert("__VERSION__".into(), one("100"));
    if fragment {
        pp.macros
            .insert("GL_FRAGMENT_PRECISION_HIGH".into(), one("1"));
    }
    let mut out = Vec::new();
    let mut pending: Vec<PTok> = Vec::new();
    let mut conds: Vec<Cond> = Vec::new();
    let mut seen_token = false;
    for (phys, toks) in lines {
        let line = (phys as i64 + pp.line_delta).clamp(0, u32::MAX as i64) as u32;
        let mut toks = toks;
        for t in &mut toks {
            t.line = (t.line as i64 + pp.line_delta).clamp(0, u32::MAX as i64) as u32;
        }
        let active = conds.last().is_none_or(|c| c.active);
        if toks.first().is_some_and(|t| t.text == "#") {
            // Directives end any pending text so macro definitions apply in order.
            let expanded = pp.expand_all(std::mem::take(&mut pending));
            out.extend(expanded);
            let name = toks.get(1).map(|t| t.text.clone()).unwrap_or_default();
            let args = if toks.len() > 2 { &toks[2..] } else { &[][..] };
            match name.as_str() {
                "if" | "ifdef" | "ifndef" => {
                    let v = if !active {
                        false
                    } else if name == "if" {
                        pp.eval_if(args, line)
                    } else {
                        match args {
                            [t] if t.kind == PKind::Ident => {
                                pp.macros.contains_key(&t.text) == (name == "ifdef")
                            }
                            _ => {
                                pp.diags.error(line, &name, "expected a macro name");
                                false
                            }
                        }
                    };
                    conds.push(Cond {
                        active: active && v,
                        taken: v,
                        parent: active,
                        seen_else: false,
                    });
                }
                "elif" => match conds.last_mut() {
                    None => pp.diags.error(line, "#elif", "#elif without #if"),
                    Some(c) if c.seen_else => pp.diags.error(line, "#elif", "#elif after #else"),
                    Some(c) => {
                        if c.parent && !c.taken {
                            // Only evaluated when it can matter, as C does.
                            let parent = c.parent;
                            let v = pp.eval_if(args, line);
                            let c = conds.last_mut().expect("checked above");
                            c.active = parent && v;
                            c.taken = v;
                        } else {
                            c.active = false;
                        }
                    }
                },
                "else" => match conds.last_mut() {
                    None => pp.diags.error(line, "#else", "#else without #if"),
                    Some(c) if c.seen_else => pp.diags.error(line, "#else", "#else after #else"),
                    Some(c) => {
                        c.seen_else = true;
                        c.active = c.parent && !c.taken;
                        c.taken = true;
                    }
                },
                "endif" => {
                    if conds.pop().is_none() {
                        pp.diags.error(line, "#endif", "#endif without #if");
                    }
                }
                _ if !active => {}
                "" => {}
                "define" => pp.define(args, line),
                "undef" => match args.first() {
                    Some(t) if t.kind == PKind::Ident => {
                        if t.text.starts_with("GL_")
                            || t.text == "__LINE__"
                            || t.text == "__FILE__"
                            || t.text == "__VERSION__"
                        {
                            pp.diags
                                .error(line, &t.text, "predefined names can't be undefined");
                        } else {
                            pp.macros.remove(&t.text);
                        }
                    }
                    _ => pp.diags.error(line, "#undef", "expected a macro name"),
                },
                "error" => {
                    let msg: Vec<&str> = args.iter().map(|t| t.text.as_str()).collect();
                    pp.diags.error(line, "#error", msg.join(" "));
                }
                "pragma" => {}
                "version" => {
                    if seen_token {
                        pp.diags.error(
                            line,
                            "#version",
                            "#version must occur before any other statement in the program",
                        );
                    } else if args.len() != 1 || args[0].text != "100" {
                        let t = args.first().map(|t| t.text.as_str()).unwrap_or("");
                        pp.diags.error(line, t, "version number not supported");
                    }
                }
                "extension" => pp.extension(args, line),
                "line" => {
                    let expanded = pp.expand_all(args.to_vec());
                    let nums: Vec<Option<i64>> =
                        expanded.iter().map(|t| parse_pp_int(&t.text)).collect();
                    match nums.as_slice() {
                        [Some(n)] | [Some(n), Some(_)] => {
                            // The line after the directive gets number `n`.
                            pp.line_delta = *n - phys as i64 - 1;
                            if let [_, Some(s)] = nums.as_slice() {
                                pp.diags.source = (*s).clamp(0, u32::MAX as i64) as u32;
                            }
                        }
                        _ => pp.diags.error(line, "#line", "invalid #line directive"),
                    }
                }
                other => pp.diags.error(line, other, "invalid directive"),
            }
            seen_token = true;
            continue;
        }
        if !toks.is_empty() {
            seen_token = true;
        }
        if active {
            pending.extend(toks);
        }
    }
    let expanded = pp.expand_all(pending);
    out.extend(expanded);
    if !conds.is_empty() {
        let last = out.last().map(|t| t.line).unwrap_or(1);
        pp.diags.error(last, "", "missing #endif");
    }
    out
}

/// Parses a preprocessor integer (decimal, octal, hex).
fn parse_pp_int(s: &str) -> Option<i64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        i64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

impl Pp<'_> {
    fn define(&mut self, args: &[PTok], line: u32) {
        let Some(name) = args.first().filter(|t| t.kind == PKind::Ident) else {
            self.diags.error(line, "#define", "expected a macro name");
            return;
        };
        if name.text.starts_with("GL_") {
            self.diags.error(
                line,
                &name.text,
                "names beginning with \"GL_\" can't be defined",
            );
            return;
        }
        if name.text.contains("__") {
            self.diags
                .warning(line, &name.text, "names containing \"__\" are reserved");
        }
        let mut rest = &args[1..];
        let mut params = None;
        // A '(' right after the name (same physical column is lost; any '(' that is the
        // next token on the line is taken as a parameter list, which matches common use).
        if rest.first().is_some_and(|t| t.text == "(") && adjacent(name, &rest[0]) {
            let mut ps = Vec::new();
            let mut i = 1;
            let mut ok = false;
            while i < rest.len() {
                let t = &rest[i];
                if t.text == ")" && (ps.is_empty() || rest[i - 1].text != ",") {
                    ok = true;
                    i += 1;
                    break;
                }
                if t.kind == PKind::Ident && (i == 1 || rest[i - 1].text == ",") {
                    if ps.contains(&t.text) {
                        self.diags.error(line, &t.text, "duplicate macro parameter");
                        return;
                    }
                    ps.push(t.text.clone());
                } else if t.text != "," || i == 1 {
                    break;
                }
                i += 1;
            }
            if !ok {
                self.diags
                    .error(line, &name.text, "bad macro parameter list");
                return;
            }
            params = Some(ps);
            rest = &rest[i..];
        }
        let m = Macro {
            params,
            body: rest.to_vec(),
        };
        if let Some(old) = self.macros.get(&name.text) {
            if old.params != m.params || !same_tokens(&old.body, &m.body) {
                self.diags.error(line, &name.text, "macro redefined");
            }
            return;
        }
        if self.macros.len() >= MAX_MACROS {
            self.diags.error(line, &name.text, "too many macros");
            return;
        }
        self.macros.insert(name.text.clone(), m);
    }

    fn extension(&mut self, args: &[PTok], line: u32) {
        match args {
            [name, colon, behaviour] if colon.text == ":" => {
                let b = behaviour.text.as_str();
                if !matches!(b, "require" | "enable" | "warn" | "disable") {
                    self.diags.error(line, b, "unknown extension behaviour");
                } else if name.text == "all" {
                    if b == "require" || b == "enable" {
                        self.diags
                            .error(line, b, "behaviour not allowed with 'all'");
                    }
                } else if b == "require" {
                    self.diags
                        .error(line, &name.text, "extension not supported");
                } else if b != "disable" {
                    self.diags
                        .warning(line, &name.text, "extension not supported");
                }
            }
            _ => self
                .diags
                .error(line, "#extension", "invalid #extension directive"),
        }
    }

    fn spend(&mut self, n: usize, line: u32) -> bool {
        if self.budget < n {
            if !self.exhausted {
                self.exhausted = true;
                self.diags.error(line, "", "macro expansion too large");
            }
            self.budget = 0;
            return false;
        }
        self.budget -= n;
        true
    }

    fn expand_all(&mut self, toks: Vec<PTok>) -> Vec<PTok> {
        if toks.is_empty() {
            return toks;
        }
        let mut disabled = Vec::new();
        self.expand(toks, &mut disabled, 0)
    }

    /// Expands `toks` with `disabled` macros not expanded.
    fn expand(&mut self, toks: Vec<PTok>, disabled: &mut Vec<String>, depth: usize) -> Vec<PTok> {
        let mut out = Vec::with_capacity(toks.len());
        if depth > MAX_EXPANSION_DEPTH {
            if !self.exhausted {
                self.exhausted = true;
                let line = toks.first().map(|t| t.line).unwrap_or(0);
                self.diags
                    .error(line, "", "macro expansion nested too deeply");
            }
            return out;
        }
        let mut i = 0;
        while i < toks.len() {
            if self.exhausted {
                return out;
            }
            let t = &toks[i];
            i += 1;
            if t.kind != PKind::Ident || t.painted {
                out.push(t.clone());
                continue;
            }
            if t.text == "__LINE__" {
                out.push(PTok {
                    kind: PKind::Number,
                    text: t.line.to_string(),
                    line: t.line,
                    painted: false,
                    space: true,
                });
                continue;
            }
            if t.text == "__FILE__" {
                out.push(PTok {
                    kind: PKind::Number,
                    text: self.diags.source.to_string(),
                    line: t.line,
                    painted: false,
                    space: true,
                });
                continue;
            }
            if disabled.contains(&t.text) {
                let mut p = t.clone();
                p.painted = true;
                out.push(p);
                continue;
            }
            let Some(m) = self.macros.get(&t.text) else {
                out.push(t.clone());
                continue;
            };
            let line = t.line;
            let name = t.text.clone();
            let body = m.body.clone();
            let params = m.params.clone();
            let repl = match params {
                None => body,
                Some(params) => {
                    if toks.get(i).is_none_or(|n| n.text != "(") {
                        out.push(t.clone());
                        continue;
                    }
                    // Collect the arguments up to the matching ')'.
                    let mut args: Vec<Vec<PTok>> = vec![Vec::new()];
                    let mut level = 0usize;
                    let mut j = i + 1;
                    let mut closed = false;
                    while j < toks.len() {
                        let a = &toks[j];
                        j += 1;
                        match a.text.as_str() {
                            "(" => level += 1,
                            ")" if level == 0 => {
                                closed = true;
                                break;
                            }
                            ")" => level -= 1,
                            "," if level == 0 => {
                                args.push(Vec::new());
                                continue;
                            }
                            _ => {}
                        }
                        args.last_mut().expect("never empty").push(a.clone());
                    }
                    if !closed {
                        self.diags
                            .error(line, &name, "unterminated macro invocation");
                        return out;
                    }
                    i = j;
                    if params.is_empty() && args.len() == 1 && args[0].is_empty() {
                        args.clear();
                    }
                    if args.len() != params.len() {
                        self.diags
                            .error(line, &name, "wrong number of macro arguments");
                        continue;
                    }
                    let expanded: Vec<Vec<PTok>> = args
                        .into_iter()
                        .map(|a| self.expand(a, disabled, depth + 1))
                        .collect();
                    let mut r = Vec::new();
                    for b in &body {
                        match params
                            .iter()
                            .position(|p| *p == b.text && b.kind == PKind::Ident)
                        {
                            Some(k) => {
                                if !self.spend(expanded[k].len(), line) {
                                    return out;
                                }
                                r.extend(expanded[k].iter().cloned());
                            }
                            None => r.push(b.clone()),
                        }
                    }
                    r
                }
            };
            if !self.spend(repl.len(), line) {
                return out;
            }
            let repl: Vec<PTok> = repl
                .into_iter()
                .map(|mut r| {
                    r.line = line;
                    r
                })
                .collect();
            disabled.push(name);
            let e = self.expand(repl, disabled, depth + 1);
            disabled.pop();
            out.extend(e);
        }
        out
    }

    fn eval_if(&mut self, args: &[PTok], line: u32) -> bool {
        // `defined` is resolved before expansion (C semantics).
        let mut pre = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let t = &args[i];
            if t.text == "defined" {
                let (name, skip) = match (args.get(i + 1), args.get(i + 2), args.get(i + 3)) {
                    (Some(p), Some(n), Some(c)) if p.text == "(" && c.text == ")" => (Some(n), 4),
                    (Some(n), _, _) if n.kind == PKind::Ident => (Some(n), 2),
                    _ => (None, 1),
                };
                let Some(name) = name else {
                    self.diags.error(line, "defined", "expected a macro name");
                    return false;
                };
                let v = self.macros.contains_key(&name.text)
                    || name.text == "__LINE__"
                    || name.text == "__FILE__";
                pre.push(PTok {
                    kind: PKind::Number,
                    text: if v { "1" } else { "0" }.into(),
                    line,
                    painted: false,
                    space: true,
                });
                i += skip;
            } else {
                pre.push(t.clone());
                i += 1;
            }
        }
        let toks = self.expand_all(pre);
        if toks.is_empty() {
            self.diags.error(line, "#if", "expected an expression");
            return false;
        }
        let mut e = IfEval {
            toks: &toks,
            pos: 0,
            err: None,
            depth: 0,
            skipping: 0,
        };
        let v = e.expr(0);
        if e.err.is_none() && e.pos < toks.len() {
            e.err = Some((toks[e.pos].text.clone(), "unexpected token in #if".into()));
        }
        if let Some((tok, msg)) = e.err {
            self.diags.error(line, &tok, msg);
            return false;
        }
        v != 0
    }
}

fn adjacent(_name: &PTok, paren: &PTok) -> bool {
    !paren.space
}

fn same_tokens(a: &[PTok], b: &[PTok]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.text == y.text)
}

/// Precedence-climbing evaluator of `#if` expressions over i64.
struct IfEval<'a> {
    toks: &'a [PTok],
    pos: usize,
    err: Option<(String, String)>,
    depth: usize,
    /// Inside an operand that `||`/`&&` short-circuits: division by zero is no error.
    skipping: usize,
}

impl IfEval<'_> {
    fn fail(&mut self, tok: &str, msg: &str) -> i64 {
        if self.err.is_none() {
            self.err = Some((tok.to_string(), msg.to_string()));
        }
        0
    }

    fn binop(t: &str) -> Option<u8> {
        Some(match t {
            "||" => 1,
            "&&" => 2,
            "|" => 3,
            "^" => 4,
            "&" => 5,
            "==" | "!=" => 6,
            "<" | ">" | "<=" | ">=" => 7,
            "<<" | ">>" => 8,
            "+" | "-" => 9,
            "*" | "/" | "%" => 10,
            _ => return None,
        })
    }

    fn expr(&mut self, min: u8) -> i64 {
        let mut lhs = self.unary();
        while self.err.is_none() {
            let Some(op) = self.toks.get(self.pos).map(|t| t.text.as_str()) else {
                break;
            };
            let Some(p) = Self::binop(op) else { break };
            if p <= min {
                break;
            }
            self.pos += 1;
            let short = (op == "||" && lhs != 0) || (op == "&&" && lhs == 0);
            self.skipping += short as usize;
            let rhs = self.expr(p);
            self.skipping -= short as usize;
            lhs = match op {
                "||" => ((lhs != 0) || (rhs != 0)) as i64,
                "&&" => ((lhs != 0) && (rhs != 0)) as i64,
                "|" => lhs | rhs,
                "^" => lhs ^ rhs,
                "&" => lhs & rhs,
                "==" => (lhs == rhs) as i64,
                "!=" => (lhs != rhs) as i64,
                "<" => (lhs < rhs) as i64,
                ">" => (lhs > rhs) as i64,
                "<=" => (lhs <= rhs) as i64,
                ">=" => (lhs >= rhs) as i64,
                "<<" => lhs.wrapping_shl(rhs as u32),
                ">>" => lhs.wrapping_shr(rhs as u32),
                "+" => lhs.wrapping_add(rhs),
                "-" => lhs.wrapping_sub(rhs),
                "*" => lhs.wrapping_mul(rhs),
                "/" | "%" if rhs == 0 && self.skipping > 0 => 0,
                "/" | "%" if rhs == 0 => {
                    self.fail(op, "division by zero in preprocessor expression")
                }
                "/" => lhs.wrapping_div(rhs),
                _ => lhs.wrapping_rem(rhs),
            };
        }
        lhs
    }

    fn unary(&mut self) -> i64 {
        self.depth += 1;
        if self.depth > 256 {
            return self.fail("(", "expression nested too deeply");
        }
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> i64 {
        let Some(t) = self.toks.get(self.pos) else {
            return self.fail("", "unexpected end of #if expression");
        };
        self.pos += 1;
        match (t.kind, t.text.as_str()) {
            (PKind::Punct, "+") => self.unary(),
            (PKind::Punct, "-") => self.unary().wrapping_neg(),
            (PKind::Punct, "!") => (self.unary() == 0) as i64,
            (PKind::Punct, "~") => !self.unary(),
            (PKind::Punct, "(") => {
                let v = self.expr(0);
                if self.toks.get(self.pos).is_some_and(|t| t.text == ")") {
                    self.pos += 1;
                } else {
                    return self.fail(&t.text, "missing ')' in #if expression");
                }
                v
            }
            (PKind::Number, s) => match parse_pp_int(s) {
                Some(v) => v,
                None => self.fail(s, "invalid integer in #if expression"),
            },
            (PKind::Ident, s) => {
                let s = s.to_string();
                self.fail(&s, "undefined identifier in #if expression")
            }
            (_, s) => {
                let s = s.to_string();
                self.fail(&s, "unexpected token in #if expression")
            }
        }
    }
}
