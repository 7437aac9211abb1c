//! The expression lexer: splits an expression into tokens with their byte spans, so syntax
//! errors can quote the offending token and the text around it as DynamoDB does.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word: an attribute name, a keyword (`AND`, `SET`, …) or a function name.
    Ident,
    /// `#name`: an expression attribute name.
    Name,
    /// `:value`: an expression attribute value.
    Value,
    /// Decimal digits (list indexes).
    Int,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Plus,
    Minus,
    /// A character no token starts with; the parser reports it as a syntax error.
    Invalid,
    Eof,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The tokens of `src`, ending with one `Eof` token.
pub(crate) fn lex(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 2 + 2);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let run = |from: usize| from + b[from..].iter().take_while(|&&c| is_word(c)).count();
        let (tok, end) = match c {
            b'#' | b':' if b.get(i + 1).is_some_and(|&c| is_word(c)) => {
                (if c == b'#' { Tok::Name } else { Tok::Value }, run(i + 1))
            }
            b'0'..=b'9' => (
                Tok::Int,
                i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count(),
            ),
            c if c.is_ascii_alphabetic() || c == b'_' => (Tok::Ident, run(i)),
            b'<' if b.get(i + 1) == Some(&b'>') => (Tok::Ne, i + 2),
            b'<' if b.get(i + 1) == Some(&b'=') => (Tok::Le, i + 2),
            b'>' if b.get(i + 1) == Some(&b'=') => (Tok::Ge, i + 2),
            b'<' => (Tok::Lt, i + 1),
            b'>' => (Tok::Gt, i + 1),
            b'=' => (Tok::Eq, i + 1),
            b'(' => (Tok::LParen, i + 1),
            b')' => (Tok::RParen, i + 1),
            b'[' => (Tok::LBracket, i + 1),
            b']' => (Tok::RBracket, i + 1),
            b',' => (Tok::Comma, i + 1),
            b'.' => (Tok::Dot, i + 1),
            b'+' => (Tok::Plus, i + 1),
            b'-' => (Tok::Minus, i + 1),
            _ => {
                let len = src[i..].chars().next().map_or(1, char::len_utf8);
                (Tok::Invalid, i + len)
            }
        };
        out.push(Token { tok, start, end });
        i = end;
    }
    out.push(Token {
        tok: Tok::Eof,
        start: b.len(),
        end: b.len(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let src = "#a.b[12] <> :v AND size(x)>=:y_1 @";
        let toks: Vec<(Tok, &str)> = lex(src)
            .iter()
            .map(|t| (t.tok, &src[t.start..t.end]))
            .collect();
        assert_eq!(
            toks,
            vec![
                (Tok::Name, "#a"),
                (Tok::Dot, "."),
                (Tok::Ident, "b"),
                (Tok::LBracket, "["),
                (Tok::Int, "12"),
                (Tok::RBracket, "]"),
                (Tok::Ne, "<>"),
                (Tok::Value, ":v"),
                (Tok::Ident, "AND"),
                (Tok::Ident, "size"),
                (Tok::LParen, "("),
                (Tok::Ident, "x"),
                (Tok::RParen, ")"),
                (Tok::Ge, ">="),
                (Tok::Value, ":y_1"),
                (Tok::Invalid, "@"),
                (Tok::Eof, ""),
            ]
        );
    }
}
