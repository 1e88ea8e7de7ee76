//! Lexer (pp-tokens to GLSL tokens) and recursive-descent parser for GLSL ES 1.00
//! (grammar of §9). A syntax error stops parsing: the log gets that one error, as
//! drivers report. Nesting (blocks, parentheses, expression depth) is limited to
//! [`MAX_DEPTH`] so hostile sources cannot overflow the stack here or in later passes.

use std::collections::HashSet;

use crate::ast::*;
use crate::diag::Diags;
use crate::pp::{PKind, PTok};

/// Deepest nesting of blocks, parentheses and expression trees accepted.
pub const MAX_DEPTH: u32 = 256;

#[derive(Clone, Debug, PartialEq)]
enum T {
    Ident,
    Keyword,
    Int(i32),
    Float(f32),
    Punct,
    Eof,
}

#[derive(Clone, Debug)]
struct Tok {
    t: T,
    text: String,
    line: u32,
}

const KEYWORDS: &[&str] = &[
    "attribute",
    "const",
    "uniform",
    "varying",
    "break",
    "continue",
    "do",
    "for",
    "while",
    "if",
    "else",
    "in",
    "out",
    "inout",
    "float",
    "int",
    "void",
    "bool",
    "true",
    "false",
    "lowp",
    "mediump",
    "highp",
    "precision",
    "invariant",
    "discard",
    "return",
    "mat2",
    "mat3",
    "mat4",
    "vec2",
    "vec3",
    "vec4",
    "ivec2",
    "ivec3",
    "ivec4",
    "bvec2",
    "bvec3",
    "bvec4",
    "sampler2D",
    "samplerCube",
    "struct",
];

const RESERVED: &[&str] = &[
    "asm",
    "class",
    "union",
    "enum",
    "typedef",
    "template",
    "this",
    "packed",
    "goto",
    "switch",
    "default",
    "inline",
    "noinline",
    "volatile",
    "public",
    "static",
    "extern",
    "external",
    "interface",
    "flat",
    "long",
    "short",
    "double",
    "half",
    "fixed",
    "unsigned",
    "superp",
    "input",
    "output",
    "hvec2",
    "hvec3",
    "hvec4",
    "dvec2",
    "dvec3",
    "dvec4",
    "fvec2",
    "fvec3",
    "fvec4",
    "sampler1D",
    "sampler3D",
    "sampler1DShadow",
    "sampler2DShadow",
    "sampler2DRect",
    "sampler3DRect",
    "sampler2DRectShadow",
    "sizeof",
    "cast",
    "namespace",
    "using",
    "case",
];

fn lex(toks: Vec<PTok>, diags: &mut Diags) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len() + 1);
    for p in toks {
        let t = match p.kind {
            PKind::Ident if KEYWORDS.contains(&p.text.as_str()) => T::Keyword,
            PKind::Ident => {
                if RESERVED.contains(&p.text.as_str()) {
                    diags.error(p.line, &p.text, "reserved keyword");
                }
                T::Ident
            }
            PKind::Punct => {
                if matches!(
                    p.text.as_str(),
                    "%" | "%="
                        | "<<"
                        | ">>"
                        | "<<="
                        | ">>="
                        | "&"
                        | "|"
                        | "^"
                        | "&="
                        | "|="
                        | "^="
                        | "~"
                ) {
                    diags.error(p.line, &p.text, "reserved operator");
                }
                if p.text == "#" || p.text == "##" {
                    diags.error(p.line, &p.text, "unexpected preprocessor token");
                }
                T::Punct
            }
            PKind::Number => lex_number(&p.text, p.line, diags),
        };
        out.push(Tok {
            t,
            text: p.text,
            line: p.line,
        });
    }
    let line = out.last().map(|t| t.line).unwrap_or(1);
    out.push(Tok {
        t: T::Eof,
        text: String::new(),
        line,
    });
    out
}

fn lex_number(s: &str, line: u32, diags: &mut Diags) -> T {
    let is_float = !s.starts_with("0x") && !s.starts_with("0X") && s.contains(['.', 'e', 'E']);
    if is_float {
        let valid = s
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
        match s.parse::<f32>() {
            Ok(v) if valid => T::Float(v),
            _ => {
                diags.error(line, s, "invalid floating-point constant");
                T::Float(0.0)
            }
        }
    } else {
        let parsed = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).ok()
        } else if s.len() > 1 && s.starts_with('0') {
            u64::from_str_radix(&s[1..], 8).ok()
        } else {
            s.parse::<u64>().ok()
        };
        match parsed {
            Some(v) if v <= u32::MAX as u64 => T::Int(v as u32 as i32),
            Some(_) => {
                diags.error(line, s, "integer constant overflow");
                T::Int(0)
            }
            None => {
                diags.error(line, s, "invalid integer constant");
                T::Int(0)
            }
        }
    }
}

/// Parses the translation unit. `None` after a syntax error (already logged).
pub fn parse(toks: Vec<PTok>, diags: &mut Diags) -> Option<Vec<External>> {
    let toks = lex(toks, diags);
    let mut p = Parser {
        toks,
        pos: 0,
        diags,
        structs: HashSet::new(),
        depth: 0,
    };
    let mut out = Vec::new();
    while p.peek().t != T::Eof {
        match p.external() {
            Ok(e) => out.push(e),
            Err(()) => return None,
        }
    }
    Some(out)
}

type R<T> = Result<T, ()>;

struct Parser<'d> {
    toks: Vec<Tok>,
    pos: usize,
    diags: &'d mut Diags,
    /// Struct type names seen (types and variables share one namespace in practice).
    structs: HashSet<String>,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is(&self, s: &str) -> bool {
        let t = self.peek();
        matches!(t.t, T::Punct | T::Keyword) && t.text == s
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.is(s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn syntax_error<X>(&mut self) -> R<X> {
        let t = self.peek().clone();
        let text = if t.t == T::Eof { "" } else { t.text.as_str() };
        self.diags.error(t.line, text, "syntax error");
        Err(())
    }

    fn expect(&mut self, s: &str) -> R<()> {
        if self.eat(s) {
            Ok(())
        } else {
            let t = self.peek().clone();
            let text = if t.t == T::Eof { "" } else { t.text.as_str() };
            self.diags
                .error(t.line, text, format!("syntax error, expected '{s}'"));
            Err(())
        }
    }

    fn ident(&mut self) -> R<(String, u32)> {
        let t = self.peek().clone();
        if t.t == T::Ident {
            self.pos += 1;
            Ok((t.text, t.line))
        } else {
            self.syntax_error()
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let t = self.peek().clone();
            self.diags
                .error(t.line, &t.text, "nesting too deep (limit 256)");
            return Err(());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn precision_kw(&mut self) -> Option<Precision> {
        let p = match self.peek().text.as_str() {
            "lowp" => Precision::Low,
            "mediump" => Precision::Medium,
            "highp" => Precision::High,
            _ => return None,
        };
        if self.peek().t != T::Keyword {
            return None;
        }
        self.pos += 1;
        Some(p)
    }

    /// At a type specifier start (after qualifiers)?
    fn at_type(&self, n: usize) -> bool {
        let t = self.peek_at(n);
        match t.t {
            T::Keyword => {
                Basic::from_keyword(&t.text).is_some()
                    || matches!(t.text.as_str(), "struct" | "lowp" | "mediump" | "highp")
            }
            T::Ident => self.structs.contains(&t.text),
            _ => false,
        }
    }

    fn type_spec(&mut self) -> R<TypeSpec> {
        let precision = self.precision_kw();
        let t = self.peek().clone();
        let base = if t.t == T::Keyword && t.text == "struct" {
            self.pos += 1;
            TypeBase::Struct(Box::new(self.struct_body(t.line)?))
        } else if let (T::Keyword, Some(b)) = (&t.t, Basic::from_keyword(&t.text)) {
            self.pos += 1;
            TypeBase::Basic(b)
        } else if t.t == T::Ident && self.structs.contains(&t.text) {
            self.pos += 1;
            TypeBase::Named(t.text)
        } else {
            return self.syntax_error();
        };
        Ok(TypeSpec {
            base,
            precision,
            line: t.line,
        })
    }

    fn struct_body(&mut self, line: u32) -> R<StructDef> {
        let name = if self.peek().t == T::Ident {
            Some(self.ident()?.0)
        } else {
            None
        };
        self.expect("{")?;
        self.enter()?;
        let mut fields = Vec::new();
        while !self.eat("}") {
            let ty = self.type_spec()?;
            loop {
                let (n, l) = self.ident()?;
                let array = if self.eat("[") {
                    let e = self.expr()?;
                    self.expect("]")?;
                    Some(e)
                } else {
                    None
                };
                fields.push((ty.clone(), n, array, l));
                if !self.eat(",") {
                    break;
                }
            }
            self.expect(";")?;
        }
        self.leave();
        if let Some(n) = &name {
            self.structs.insert(n.clone());
        }
        Ok(StructDef { name, fields, line })
    }

    fn external(&mut self) -> R<External> {
        if self.eat(";") {
            return Ok(External::Stmt(Stmt::Empty));
        }
        // Function definition or prototype: [precision] type name '('
        let save = self.pos;
        if self.at_type(0) && !self.is("struct") {
            let ty = self.type_spec()?;
            if self.peek().t == T::Ident && self.peek_at(1).text == "(" {
                return self.function(ty).map(External::Function);
            }
        }
        self.pos = save;
        self.declaration_stmt(true).map(External::Stmt)
    }

    fn function(&mut self, ret: TypeSpec) -> R<Function> {
        let (name, line) = self.ident()?;
        self.expect("(")?;
        let mut params = Vec::new();
        if self.is("void") && self.peek_at(1).text == ")" {
            self.pos += 1;
        }
        if !self.is(")") {
            loop {
                let is_const = self.eat("const");
                let qual = if self.eat("in") {
                    ParamQual::In
                } else if self.eat("out") {
                    ParamQual::Out
                } else if self.eat("inout") {
                    ParamQual::InOut
                } else {
                    ParamQual::In
                };
                let ty = self.type_spec()?;
                let name = if self.peek().t == T::Ident {
                    Some(self.ident()?.0)
                } else {
                    None
                };
                let array = if self.eat("[") {
                    let e = self.expr()?;
                    self.expect("]")?;
                    Some(e)
                } else {
                    None
                };
                params.push(Param {
                    qual,
                    is_const,
                    ty,
                    name,
                    array,
                });
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect(")")?;
        let body = if self.eat(";") {
            None
        } else {
            if !self.is("{") {
                return self.syntax_error();
            }
            self.pos += 1;
            Some(self.block_items()?)
        };
        Ok(Function {
            ret,
            name,
            params,
            body,
            line,
        })
    }

    /// Items up to and including the closing '}'.
    fn block_items(&mut self) -> R<Vec<Stmt>> {
        self.enter()?;
        let mut v = Vec::new();
        while !self.eat("}") {
            if self.peek().t == T::Eof {
                return self.syntax_error();
            }
            v.push(self.statement()?);
        }
        self.leave();
        Ok(v)
    }

    /// Declarations, precision and invariant statements (global or local).
    fn declaration_stmt(&mut self, global: bool) -> R<Stmt> {
        let line = self.peek().line;
        if self.is("precision") {
            self.pos += 1;
            let Some(p) = self.precision_kw() else {
                return self.syntax_error();
            };
            let t = self.peek().clone();
            let Some(b) = Basic::from_keyword(&t.text).filter(|_| t.t == T::Keyword) else {
                return self.syntax_error();
            };
            self.pos += 1;
            self.expect(";")?;
            return Ok(Stmt::Precision(p, b, line));
        }
        let mut invariant = false;
        if self.is("invariant") {
            self.pos += 1;
            if self.peek().t == T::Ident {
                let mut names = vec![self.ident()?.0];
                while self.eat(",") {
                    names.push(self.ident()?.0);
                }
                self.expect(";")?;
                return Ok(Stmt::Invariant(names, line));
            }
            invariant = true;
        }
        let storage = if self.eat("const") {
            Storage::Const
        } else if self.eat("attribute") {
            Storage::Attribute
        } else if self.eat("uniform") {
            Storage::Uniform
        } else if self.eat("varying") {
            Storage::Varying
        } else {
            Storage::None
        };
        if invariant && storage != Storage::Varying {
            self.diags
                .error(line, "invariant", "only varyings can be invariant");
        }
        if !global
            && matches!(
                storage,
                Storage::Attribute | Storage::Uniform | Storage::Varying
            )
        {
            self.diags.error(
                line,
                &self.toks[self.pos - 1].text.clone(),
                "only allowed at global scope",
            );
        }
        if !self.at_type(0) {
            return self.syntax_error();
        }
        let ty = self.type_spec()?;
        let mut vars = Vec::new();
        if !self.is(";") {
            loop {
                let (name, l) = self.ident()?;
                let array = if self.eat("[") {
                    if self.is("]") {
                        self.diags.error(l, &name, "array size must be specified");
                        return Err(());
                    }
                    let e = self.expr()?;
                    self.expect("]")?;
                    Some(e)
                } else {
                    None
                };
                let init = if self.eat("=") {
                    Some(self.assignment()?)
                } else {
                    None
                };
                vars.push(Declarator {
                    name,
                    array,
                    init,
                    line: l,
                });
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect(";")?;
        Ok(Stmt::Decl(Decl {
            storage,
            invariant,
            ty,
            vars,
            line,
        }))
    }

    fn at_declaration(&self) -> bool {
        let t = self.peek();
        if t.t == T::Keyword
            && matches!(
                t.text.as_str(),
                "const"
                    | "precision"
                    | "invariant"
                    | "attribute"
                    | "uniform"
                    | "varying"
                    | "struct"
                    | "lowp"
                    | "mediump"
                    | "highp"
            )
        {
            return true;
        }
        // `vec4 v` / `S s` declare; `vec4(...)` / `S(...)` construct.
        self.at_type(0) && self.peek_at(1).text != "(" && self.peek_at(1).text != "."
    }

    fn statement(&mut self) -> R<Stmt> {
        self.enter()?;
        let s = self.statement_inner();
        self.leave();
        s
    }

    fn statement_inner(&mut self) -> R<Stmt> {
        let t = self.peek().clone();
        let line = t.line;
        if t.t == T::Punct && t.text == "{" {
            self.pos += 1;
            return Ok(Stmt::Block(self.block_items()?));
        }
        if t.t == T::Punct && t.text == ";" {
            self.pos += 1;
            return Ok(Stmt::Empty);
        }
        if t.t == T::Keyword {
            match t.text.as_str() {
                "if" => {
                    self.pos += 1;
                    self.expect("(")?;
                    let c = self.expr()?;
                    self.expect(")")?;
                    let a = self.statement()?;
                    let b = if self.eat("else") {
                        Some(Box::new(self.statement()?))
                    } else {
                        None
                    };
                    return Ok(Stmt::If(c, Box::new(a), b));
                }
                "for" => {
                    self.pos += 1;
                    self.expect("(")?;
                    let init = if self.eat(";") {
                        None
                    } else if self.at_declaration() {
                        Some(Box::new(self.declaration_stmt(false)?))
                    } else {
                        let e = self.expr()?;
                        self.expect(";")?;
                        Some(Box::new(Stmt::Expr(e)))
                    };
                    let cond = if self.is(";") {
                        None
                    } else {
                        Some(self.expr()?)
                    };
                    self.expect(";")?;
                    let step = if self.is(")") {
                        None
                    } else {
                        Some(self.expr()?)
                    };
                    self.expect(")")?;
                    let body = Box::new(self.statement()?);
                    return Ok(Stmt::For {
                        init,
                        cond,
                        step,
                        body,
                        line,
                    });
                }
                "while" => {
                    self.pos += 1;
                    self.expect("(")?;
                    let c = self.expr()?;
                    self.expect(")")?;
                    let body = self.statement()?;
                    return Ok(Stmt::While(c, Box::new(body)));
                }
                "do" => {
                    self.pos += 1;
                    let body = self.statement()?;
                    self.expect("while")?;
                    self.expect("(")?;
                    let c = self.expr()?;
                    self.expect(")")?;
                    self.expect(";")?;
                    return Ok(Stmt::DoWhile(Box::new(body), c));
                }
                "break" => {
                    self.pos += 1;
                    self.expect(";")?;
                    return Ok(Stmt::Break(line));
                }
                "continue" => {
                    self.pos += 1;
                    self.expect(";")?;
                    return Ok(Stmt::Continue(line));
                }
                "discard" => {
                    self.pos += 1;
                    self.expect(";")?;
                    return Ok(Stmt::Discard(line));
                }
                "return" => {
                    self.pos += 1;
                    let e = if self.is(";") {
                        None
                    } else {
                        Some(self.expr()?)
                    };
                    self.expect(";")?;
                    return Ok(Stmt::Return(e, line));
                }
                _ => {}
            }
        }
        if self.at_declaration() {
            return self.declaration_stmt(false);
        }
        let e = self.expr()?;
        self.expect(";")?;
        Ok(Stmt::Expr(e))
    }

    /// Full expression including the comma operator.
    fn expr(&mut self) -> R<Expr> {
        let mut e = self.assignment()?;
        while self.is(",") {
            let line = self.next().line;
            let r = self.assignment()?;
            e = self.bin(BinOp::Comma, e, r, line)?;
        }
        Ok(e)
    }

    /// Builds a binary node, counting tree depth against the limit.
    fn bin(&mut self, op: BinOp, a: Expr, b: Expr, line: u32) -> R<Expr> {
        self.mk(ExprKind::Binary(op, Box::new(a), Box::new(b)), line)
    }

    /// Makes a node, rejecting trees taller than [`MAX_DEPTH`] (later passes recurse on them).
    fn mk(&mut self, kind: ExprKind, line: u32) -> R<Expr> {
        let depth = 1 + kind.children().iter().map(|c| c.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            self.diags
                .error(line, "", "expression nesting too deep (limit 256)");
            return Err(());
        }
        Ok(Expr { kind, line, depth })
    }

    fn assignment(&mut self) -> R<Expr> {
        self.enter()?;
        let r = self.assignment_inner();
        self.leave();
        r
    }

    fn assignment_inner(&mut self) -> R<Expr> {
        let lhs = self.ternary()?;
        let op = match self.peek().text.as_str() {
            "=" => None,
            "+=" => Some(BinOp::Add),
            "-=" => Some(BinOp::Sub),
            "*=" => Some(BinOp::Mul),
            "/=" => Some(BinOp::Div),
            _ => return Ok(lhs),
        };
        if self.peek().t != T::Punct {
            return Ok(lhs);
        }
        let line = self.next().line;
        let rhs = self.assignment()?;
        self.mk(ExprKind::Assign(op, Box::new(lhs), Box::new(rhs)), line)
    }

    fn ternary(&mut self) -> R<Expr> {
        let c = self.binary(0)?;
        if !self.is("?") {
            return Ok(c);
        }
        let line = self.next().line;
        self.enter()?;
        let a = self.expr()?;
        self.expect(":")?;
        let b = self.assignment()?;
        self.leave();
        self.mk(
            ExprKind::Ternary(Box::new(c), Box::new(a), Box::new(b)),
            line,
        )
    }

    fn bin_prec(&self) -> Option<(BinOp, u8)> {
        let t = self.peek();
        if t.t != T::Punct {
            return None;
        }
        Some(match t.text.as_str() {
            "||" => (BinOp::Or, 1),
            "^^" => (BinOp::Xor, 2),
            "&&" => (BinOp::And, 3),
            "==" => (BinOp::Eq, 4),
            "!=" => (BinOp::Ne, 4),
            "<" => (BinOp::Lt, 5),
            ">" => (BinOp::Gt, 5),
            "<=" => (BinOp::Le, 5),
            ">=" => (BinOp::Ge, 5),
            "+" => (BinOp::Add, 6),
            "-" => (BinOp::Sub, 6),
            "*" => (BinOp::Mul, 7),
            "/" => (BinOp::Div, 7),
            _ => return None,
        })
    }

    /// Precedence climbing; left-associative chains are built iteratively, and each
    /// level of the resulting tree is counted by `enter` through `chain`.
    fn binary(&mut self, min: u8) -> R<Expr> {
        let mut lhs = self.unary()?;
        let mut chain = 0u32;
        while let Some((op, p)) = self.bin_prec() {
            if p <= min {
                break;
            }
            let line = self.next().line;
            let rhs = self.binary(p)?;
            // A long chain `a+a+a+...` is a deep left spine; count it as nesting.
            chain += 1;
            if self.depth + chain > MAX_DEPTH {
                self.diags
                    .error(line, "", "expression nesting too deep (limit 256)");
                return Err(());
            }
            lhs = self.bin(op, lhs, rhs, line)?;
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> R<Expr> {
        self.enter()?;
        let r = self.unary_inner();
        self.leave();
        r
    }

    fn unary_inner(&mut self) -> R<Expr> {
        let t = self.peek().clone();
        if t.t == T::Punct {
            let op = match t.text.as_str() {
                "-" => Some(UnOp::Neg),
                "+" => Some(UnOp::Plus),
                "!" => Some(UnOp::Not),
                "++" => Some(UnOp::PreInc),
                "--" => Some(UnOp::PreDec),
                "~" => {
                    self.pos += 1;
                    return Err(());
                }
                _ => None,
            };
            if let Some(op) = op {
                self.pos += 1;
                let e = self.unary()?;
                return self.mk(ExprKind::Unary(op, Box::new(e)), t.line);
            }
        }
        self.postfix()
    }

    fn postfix(&mut self) -> R<Expr> {
        let mut e = self.primary()?;
        let mut chain = 0;
        loop {
            let t = self.peek().clone();
            if t.t != T::Punct {
                break;
            }
            chain += 1;
            if self.depth + chain > MAX_DEPTH {
                self.diags
                    .error(t.line, &t.text, "expression nesting too deep (limit 256)");
                return Err(());
            }
            match t.text.as_str() {
                "[" => {
                    self.pos += 1;
                    self.enter()?;
                    let i = self.expr()?;
                    self.leave();
                    self.expect("]")?;
                    e = self.mk(ExprKind::Index(Box::new(e), Box::new(i)), t.line)?;
                }
                "." => {
                    self.pos += 1;
                    let (f, _) = self.ident()?;
                    e = self.mk(ExprKind::Field(Box::new(e), f), t.line)?;
                }
                "++" | "--" => {
                    self.pos += 1;
                    let op = if t.text == "++" {
                        UnOp::PostInc
                    } else {
                        UnOp::PostDec
                    };
                    e = self.mk(ExprKind::Unary(op, Box::new(e)), t.line)?;
                }
                _ => break,
            }
        }
        Ok(e)
    }

    fn args(&mut self) -> R<Vec<Expr>> {
        self.expect("(")?;
        self.enter()?;
        let mut args = Vec::new();
        if self.is("void") && self.peek_at(1).text == ")" {
            self.pos += 1;
        }
        if !self.is(")") {
            loop {
                args.push(self.assignment()?);
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect(")")?;
        self.leave();
        Ok(args)
    }

    fn primary(&mut self) -> R<Expr> {
        let t = self.peek().clone();
        let line = t.line;
        let kind = match &t.t {
            T::Int(v) => {
                self.pos += 1;
                ExprKind::Int(*v)
            }
            T::Float(v) => {
                self.pos += 1;
                ExprKind::Float(*v)
            }
            T::Keyword if t.text == "true" || t.text == "false" => {
                self.pos += 1;
                ExprKind::Bool(t.text == "true")
            }
            T::Keyword => {
                let Some(b) = Basic::from_keyword(&t.text) else {
                    return self.syntax_error();
                };
                self.pos += 1;
                if !self.is("(") {
                    return self.syntax_error();
                }
                ExprKind::Construct(b, self.args()?)
            }
            T::Ident => {
                self.pos += 1;
                if self.is("(") {
                    ExprKind::Call(t.text.clone(), self.args()?)
                } else {
                    ExprKind::Ident(t.text.clone())
                }
            }
            T::Punct if t.text == "(" => {
                self.pos += 1;
                self.enter()?;
                let e = self.expr()?;
                self.leave();
                self.expect(")")?;
                return Ok(e);
            }
            _ => return self.syntax_error(),
        };
        self.mk(kind, line)
    }
}
