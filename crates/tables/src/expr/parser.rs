//! The recursive-descent parser for all five expression kinds. Precedence, highest first, as
//! AWS documents it: comparators, IN, BETWEEN, functions, parentheses, NOT, AND, OR.
//! Expression attribute names and values are substituted while parsing, and checks that
//! need no item (operand types of literal values, arity, path overlaps) are made here, so
//! evaluation only meets the errors that depend on the item.

use super::condition::{Comparator, Node, Operand};
use super::lexer::{lex, Tok, Token};
use super::update::{SetValue, UpdateOperand};
use super::{
    brief, check_overlaps, is_reserved, Condition, ExpressionKind, Expressions, Path, PathElement,
    Projection, Update, MAX_EXPRESSION_LENGTH, MAX_IN_OPERANDS, MAX_OPERATORS, MAX_PATH_DEPTH,
};
use crate::error::TableError;
use crate::value::{AttributeType, AttributeValue};

/// An operand before it is known where it is used.
enum Raw {
    Path(Path),
    Value(AttributeValue),
    Call { name: String, args: Vec<Raw> },
}

/// The deepest nesting of parentheses accepted.
const MAX_PARENTHESES: usize = 100;

const CONDITION_FUNCTIONS: [&str; 5] = [
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
];
const FUNCTIONS: [&str; 8] = [
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
    "size",
    "if_not_exists",
    "list_append",
];

pub(crate) struct Parser<'a> {
    ctx: &'a mut Expressions,
    kind: ExpressionKind,
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    operators: usize,
    /// Open parentheses around the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(
        ctx: &'a mut Expressions,
        kind: ExpressionKind,
        src: &'a str,
    ) -> Result<Parser<'a>, TableError> {
        if src.len() > MAX_EXPRESSION_LENGTH {
            // Approximated wording; the 4 KB limit is AWS's.
            return Err(TableError::validation(format!(
                "Invalid {kind}: Expression size has exceeded the maximum allowed size; \
                 expression size: {}",
                src.len()
            )));
        }
        if src.trim().is_empty() {
            // AWS's message, verbatim as recalled (with its trailing semicolon).
            return Err(TableError::validation(format!(
                "Invalid {kind}: The expression can not be empty;"
            )));
        }
        Ok(Parser {
            ctx,
            kind,
            src,
            toks: lex(src),
            pos: 0,
            operators: 0,
            depth: 0,
        })
    }

    /// `Invalid <Kind>: <detail>`.
    fn err(&self, detail: impl std::fmt::Display) -> TableError {
        TableError::validation(format!("Invalid {}: {detail}", self.kind))
    }

    /// AWS's syntax error: the offending token and the text from the token before it to the
    /// token after it (the shape of AWS's `near`, reconstructed from its messages).
    fn syntax(&self) -> TableError {
        let t = self.toks[self.pos];
        let token = if t.tok == Tok::Eof {
            "<EOF>"
        } else {
            &self.src[t.start..t.end]
        };
        let from = if self.pos > 0 {
            self.toks[self.pos - 1].start
        } else {
            t.start
        };
        let to = match self.toks.get(self.pos + 1) {
            Some(n) if n.tok != Tok::Eof => n.end,
            _ if t.tok == Tok::Eof && self.pos > 0 => self.toks[self.pos - 1].end,
            _ => t.end,
        };
        self.err(format_args!(
            "Syntax error; token: \"{token}\", near: \"{}\"",
            &self.src[from..to]
        ))
    }

    fn peek(&self) -> Tok {
        self.toks[self.pos].tok
    }

    fn text(&self) -> &'a str {
        let t = self.toks[self.pos];
        &self.src[t.start..t.end]
    }

    fn advance(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), TableError> {
        if self.peek() != tok {
            return Err(self.syntax());
        }
        self.advance();
        Ok(())
    }

    /// `one (',' one)*`.
    fn comma_separated<T>(
        &mut self,
        mut one: impl FnMut(&mut Self) -> Result<T, TableError>,
    ) -> Result<Vec<T>, TableError> {
        let mut out = vec![one(self)?];
        while self.peek() == Tok::Comma {
            self.advance();
            out.push(one(self)?);
        }
        Ok(out)
    }

    /// Counts an operator or function against DynamoDB's limit of 300 per expression.
    fn count_operator(&mut self) -> Result<(), TableError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            // Approximated wording; the limit is AWS's.
            return Err(self.err(format_args!(
                "The expression contains too many operators; operator count: {}",
                self.operators
            )));
        }
        Ok(())
    }

    fn at_keyword(&self, kw: &str) -> bool {
        self.peek() == Tok::Ident && self.text().eq_ignore_ascii_case(kw)
    }

    fn expect_end(&self) -> Result<(), TableError> {
        if self.peek() == Tok::Eof {
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    // ---- paths and operands ----

    fn path_name(&mut self) -> Result<String, TableError> {
        let text = self.text();
        let name = match self.peek() {
            Tok::Ident if is_reserved(text) => {
                // AWS's message, verbatim as recalled.
                return Err(self.err(format_args!(
                    "Attribute name is a reserved keyword; reserved keyword: {text}"
                )));
            }
            Tok::Ident => text.to_string(),
            Tok::Name => self.ctx.name(text).ok_or_else(|| {
                self.err(format_args!(
                    "An expression attribute name used in the document path is not defined; \
                     attribute name: {text}"
                ))
            })?,
            _ => return Err(self.syntax()),
        };
        self.advance();
        Ok(name)
    }

    fn path(&mut self) -> Result<Path, TableError> {
        let mut els = vec![PathElement::Attr(self.path_name()?)];
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.advance();
                    els.push(PathElement::Attr(self.path_name()?));
                }
                Tok::LBracket => {
                    self.advance();
                    if self.peek() != Tok::Int {
                        return Err(self.syntax());
                    }
                    let index = self.text().parse::<u32>().map_err(|_| self.syntax())?;
                    self.advance();
                    self.expect(Tok::RBracket)?;
                    els.push(PathElement::Index(index as usize));
                }
                _ => break,
            }
            if els.len() > MAX_PATH_DEPTH {
                // Approximated wording; the limit of 32 levels is AWS's.
                return Err(self.err(format_args!(
                    "The document path has too many nesting levels; nesting levels: {}",
                    els.len()
                )));
            }
        }
        Ok(Path(els))
    }

    fn raw(&mut self) -> Result<Raw, TableError> {
        match self.peek() {
            Tok::Ident if self.toks[self.pos + 1].tok == Tok::LParen => {
                let name = self.text().to_string();
                if !FUNCTIONS.contains(&name.as_str()) {
                    return Err(self.err(format_args!("Invalid function name; function: {name}")));
                }
                self.advance();
                self.advance();
                self.count_operator()?;
                let args = if self.peek() == Tok::RParen {
                    Vec::new()
                } else {
                    self.comma_separated(Self::raw)?
                };
                self.expect(Tok::RParen)?;
                Ok(Raw::Call { name, args })
            }
            Tok::Ident | Tok::Name => self.path().map(Raw::Path),
            Tok::Value => {
                let key = self.text();
                let v = self.ctx.value(key).ok_or_else(|| {
                    self.err(format_args!(
                        "An expression attribute value used in expression is not defined; \
                         attribute value: {key}"
                    ))
                })?;
                self.advance();
                Ok(Raw::Value(v))
            }
            _ => Err(self.syntax()),
        }
    }

    fn arity(&self, name: &str, args: &[Raw], n: usize) -> Result<(), TableError> {
        if args.len() == n {
            return Ok(());
        }
        Err(self.err(format_args!(
            "Incorrect number of operands for operator or function; operator or function: \
             {name}, number of operands: {}",
            args.len()
        )))
    }

    fn operand_type(&self, op: &str, v: &AttributeValue) -> TableError {
        self.err(format_args!(
            "Incorrect operand type for operator or function; operator or function: {op}, \
             operand type: {}",
            v.attribute_type().code()
        ))
    }

    fn not_allowed(&self, name: &str) -> TableError {
        self.err(format_args!(
            "The function is not allowed to be used this way in an expression; function: {name}"
        ))
    }

    fn needs_path(&self, name: &str, arg: Raw) -> Result<Path, TableError> {
        match arg {
            Raw::Path(p) => Ok(p),
            _ => Err(self.err(format_args!(
                "Operator or function requires a document path; operator or function: {name}"
            ))),
        }
    }

    // ---- conditions ----

    pub(crate) fn condition_expression(mut self) -> Result<Condition, TableError> {
        let node = self.or()?;
        self.expect_end()?;
        Ok(Condition(node))
    }

    fn or(&mut self) -> Result<Node, TableError> {
        let mut left = self.and()?;
        while self.at_keyword("OR") {
            self.count_operator()?;
            self.advance();
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, TableError> {
        let mut left = self.not()?;
        while self.at_keyword("AND") {
            self.count_operator()?;
            self.advance();
            left = Node::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, TableError> {
        if self.at_keyword("NOT") {
            self.count_operator()?;
            self.advance();
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        if self.peek() == Tok::LParen {
            self.depth += 1;
            if self.depth > MAX_PARENTHESES {
                // Approximated wording; bounds the parser's recursion.
                return Err(self.err(format_args!(
                    "The expression has too many nested parentheses; nesting levels: {}",
                    self.depth
                )));
            }
            self.advance();
            let node = self.or()?;
            self.expect(Tok::RParen)?;
            self.depth -= 1;
            return Ok(node);
        }
        self.comparison()
    }

    fn cond_operand(&self, raw: Raw) -> Result<Operand, TableError> {
        match raw {
            Raw::Path(p) => Ok(Operand::Path(p)),
            Raw::Value(v) => Ok(Operand::Value(v)),
            Raw::Call { name, mut args } if name == "size" => {
                self.arity(&name, &args, 1)?;
                Ok(Operand::Size(self.needs_path(&name, args.remove(0))?))
            }
            Raw::Call { name, .. } => Err(self.not_allowed(&name)),
        }
    }

    /// Refuses a literal that cannot be ordered (only S, N and B can).
    fn orderable(&self, op: &str, o: &Operand) -> Result<(), TableError> {
        match o {
            Operand::Value(v)
                if !matches!(
                    v.attribute_type(),
                    AttributeType::S | AttributeType::N | AttributeType::B
                ) =>
            {
                Err(self.operand_type(op, v))
            }
            _ => Ok(()),
        }
    }

    fn comparison(&mut self) -> Result<Node, TableError> {
        let raw = self.raw()?;
        if let Raw::Call { name, args } = raw {
            if CONDITION_FUNCTIONS.contains(&name.as_str()) {
                return self.function(name, args);
            }
            return self.comparison_rest(self.cond_operand(Raw::Call { name, args })?);
        }
        let left = self.cond_operand(raw)?;
        self.comparison_rest(left)
    }

    fn comparison_rest(&mut self, left: Operand) -> Result<Node, TableError> {
        let op = match self.peek() {
            Tok::Eq => Some(Comparator::Eq),
            Tok::Ne => Some(Comparator::Ne),
            Tok::Lt => Some(Comparator::Lt),
            Tok::Le => Some(Comparator::Le),
            Tok::Gt => Some(Comparator::Gt),
            Tok::Ge => Some(Comparator::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.count_operator()?;
            self.advance();
            let raw = self.raw()?;
            let right = self.cond_operand(raw)?;
            if !matches!(op, Comparator::Eq | Comparator::Ne) {
                self.orderable(op.symbol(), &left)?;
                self.orderable(op.symbol(), &right)?;
            }
            return Ok(Node::Compare(left, op, right));
        }
        if self.at_keyword("BETWEEN") {
            self.count_operator()?;
            self.advance();
            let raw = self.raw()?;
            let lo = self.cond_operand(raw)?;
            if !self.at_keyword("AND") {
                return Err(self.syntax());
            }
            self.advance();
            let raw = self.raw()?;
            let hi = self.cond_operand(raw)?;
            for o in [&left, &lo, &hi] {
                self.orderable("BETWEEN", o)?;
            }
            if let (Operand::Value(a), Operand::Value(b)) = (&lo, &hi) {
                let bounds = format!(
                    "lower bound operand: AttributeValue: {}, upper bound operand: AttributeValue: {}",
                    brief(a),
                    brief(b)
                );
                match super::condition::compare(a, b) {
                    None => {
                        return Err(self.err(format_args!(
                            "The BETWEEN operator requires same data type for lower and upper \
                             bounds; {bounds}"
                        )))
                    }
                    Some(std::cmp::Ordering::Greater) => {
                        return Err(self.err(format_args!(
                            "The BETWEEN operator requires upper bound to be greater than or \
                             equal to lower bound; {bounds}"
                        )))
                    }
                    _ => {}
                }
            }
            return Ok(Node::Between(left, lo, hi));
        }
        if self.at_keyword("IN") {
            self.count_operator()?;
            self.advance();
            self.expect(Tok::LParen)?;
            let list = self.comma_separated(|p| {
                let raw = p.raw()?;
                p.cond_operand(raw)
            })?;
            self.expect(Tok::RParen)?;
            if list.len() > MAX_IN_OPERANDS {
                // Approximated wording; the limit of 100 is AWS's.
                return Err(self.err(format_args!(
                    "The IN operator is provided with too many operands; number of operands: {}",
                    list.len()
                )));
            }
            return Ok(Node::In(left, list));
        }
        Err(self.syntax())
    }

    fn function(&mut self, name: String, mut args: Vec<Raw>) -> Result<Node, TableError> {
        let n = name.as_str();
        match n {
            "attribute_exists" | "attribute_not_exists" => {
                self.arity(n, &args, 1)?;
                let p = self.needs_path(n, args.remove(0))?;
                Ok(if n == "attribute_exists" {
                    Node::Exists(p)
                } else {
                    Node::NotExists(p)
                })
            }
            "attribute_type" => {
                self.arity(n, &args, 2)?;
                let t = args.pop().expect("two args");
                let p = self.needs_path(n, args.remove(0))?;
                match t {
                    Raw::Value(AttributeValue::S(code)) => match AttributeType::from_code(&code) {
                        Some(t) => Ok(Node::Type(p, t)),
                        // AWS's message, verbatim as recalled.
                        None => Err(self.err(format_args!(
                            "Invalid attribute type name found; type: {code}, valid types: {{{}}}",
                            AttributeType::ALL.map(AttributeType::code).join(",")
                        ))),
                    },
                    Raw::Value(v) => Err(self.operand_type(n, &v)),
                    other => {
                        // A path or a function as the type: AWS requires a value (approximated).
                        self.cond_operand(other)?;
                        Err(self.err(format_args!(
                            "Incorrect operand type for operator or function; operator or \
                             function: {n}, operand type: path"
                        )))
                    }
                }
            }
            "begins_with" | "contains" => {
                self.arity(n, &args, 2)?;
                let b = args.pop().expect("two args");
                let a = self.cond_operand(args.remove(0))?;
                let b = self.cond_operand(b)?;
                if n == "begins_with" {
                    for o in [&a, &b] {
                        if let Operand::Value(v) = o {
                            if !matches!(v.attribute_type(), AttributeType::S | AttributeType::B) {
                                return Err(self.operand_type(n, v));
                            }
                        }
                    }
                    Ok(Node::BeginsWith(a, b))
                } else {
                    Ok(Node::Contains(a, b))
                }
            }
            _ => Err(self.not_allowed(n)),
        }
    }

    // ---- updates ----

    pub(crate) fn update_expression(mut self) -> Result<Update, TableError> {
        let mut update = Update {
            set: vec![],
            remove: vec![],
            add: vec![],
            delete: vec![],
        };
        let mut seen = [false; 4];
        while self.peek() != Tok::Eof {
            let clause = ["SET", "REMOVE", "ADD", "DELETE"]
                .iter()
                .position(|kw| self.at_keyword(kw))
                .ok_or_else(|| self.syntax())?;
            if std::mem::replace(&mut seen[clause], true) {
                // AWS's message, verbatim as recalled (with its trailing semicolon).
                return Err(self.err(format_args!(
                    "The \"{}\" section can only be used once in an update expression;",
                    ["SET", "REMOVE", "ADD", "DELETE"][clause]
                )));
            }
            self.advance();
            self.comma_separated(|p| {
                p.count_operator()?;
                match clause {
                    0 => {
                        let path = p.path()?;
                        p.expect(Tok::Eq)?;
                        let value = p.set_value()?;
                        update.set.push((path, value));
                    }
                    1 => update.remove.push(p.path()?),
                    _ => {
                        let path = p.path()?;
                        if p.peek() != Tok::Value {
                            return Err(p.syntax());
                        }
                        let Raw::Value(v) = p.raw()? else {
                            unreachable!("a value token")
                        };
                        let (op, ok) = if clause == 2 {
                            (
                                "ADD",
                                v.attribute_type() == AttributeType::N
                                    || v.attribute_type().is_set(),
                            )
                        } else {
                            ("DELETE", v.attribute_type().is_set())
                        };
                        if !ok {
                            // AWS's message, verbatim as recalled (ADD/DELETE name long types).
                            return Err(p.err(format_args!(
                                "Incorrect operand type for operator or function; operator: \
                                 {op}, operand type: {}",
                                v.attribute_type().long_name()
                            )));
                        }
                        if clause == 2 {
                            update.add.push((path, v));
                        } else {
                            update.delete.push((path, v));
                        }
                    }
                }
                Ok(())
            })?;
        }
        let paths: Vec<&Path> = update.paths().collect();
        check_overlaps(self.kind, &paths)?;
        Ok(update)
    }

    fn set_value(&mut self) -> Result<SetValue, TableError> {
        let raw = self.raw()?;
        let a = self.update_operand(raw)?;
        let plus = match self.peek() {
            Tok::Plus => true,
            Tok::Minus => false,
            _ => return Ok(SetValue::Operand(a)),
        };
        self.count_operator()?;
        self.advance();
        let raw = self.raw()?;
        let b = self.update_operand(raw)?;
        for o in [&a, &b] {
            if let UpdateOperand::Value(v) = o {
                if v.attribute_type() != AttributeType::N {
                    return Err(self.operand_type(if plus { "+" } else { "-" }, v));
                }
            }
        }
        Ok(if plus {
            SetValue::Plus(a, b)
        } else {
            SetValue::Minus(a, b)
        })
    }

    fn update_operand(&self, raw: Raw) -> Result<UpdateOperand, TableError> {
        match raw {
            Raw::Path(p) => Ok(UpdateOperand::Path(p)),
            Raw::Value(v) => Ok(UpdateOperand::Value(v)),
            Raw::Call { name, mut args } => match name.as_str() {
                "if_not_exists" => {
                    self.arity(&name, &args, 2)?;
                    let default = self.update_operand(args.pop().expect("two args"))?;
                    let path = self.needs_path(&name, args.remove(0))?;
                    Ok(UpdateOperand::IfNotExists(path, Box::new(default)))
                }
                "list_append" => {
                    self.arity(&name, &args, 2)?;
                    let b = self.update_operand(args.pop().expect("two args"))?;
                    let a = self.update_operand(args.remove(0))?;
                    for o in [&a, &b] {
                        if let UpdateOperand::Value(v) = o {
                            if v.attribute_type() != AttributeType::L {
                                return Err(self.operand_type(&name, v));
                            }
                        }
                    }
                    Ok(UpdateOperand::ListAppend(Box::new(a), Box::new(b)))
                }
                _ => Err(self.not_allowed(&name)),
            },
        }
    }

    // ---- projections ----

    pub(crate) fn projection_expression(mut self) -> Result<Projection, TableError> {
        let paths = self.comma_separated(Self::path)?;
        self.expect_end()?;
        check_overlaps(self.kind, &paths.iter().collect::<Vec<_>>())?;
        Ok(Projection::from_paths(paths))
    }
}
