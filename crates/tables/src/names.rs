//! Table and index names: 3–255 characters of `[a-zA-Z0-9_.-]`, refused with the request
//! validator's message shape DynamoDB uses ("1 validation error detected: Value 'x' at
//! 'tableName' failed to satisfy constraint: …"; verbatim as recalled).

use crate::error::TableError;

/// Checks a table or index name; `member` is the request member's name as AWS reports it
/// (`tableName`, `indexName`).
pub fn check_name(member: &str, name: &str) -> Result<(), TableError> {
    let constraint = if name.len() < 3 {
        "Member must have length greater than or equal to 3".to_string()
    } else if name.len() > 255 {
        "Member must have length less than or equal to 255".to_string()
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+".to_string()
    } else {
        return Ok(());
    };
    Err(TableError::validation(format!(
        "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: \
         {constraint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["abc", "My_Table.v1-2", &"x".repeat(255)] {
            assert!(check_name("tableName", ok).is_ok(), "{ok}");
        }
        let prefix = "1 validation error detected: Value";
        let cases = [
            ("ab", format!("{prefix} 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3")),
            ("a b c", format!("{prefix} 'a b c' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")),
            (&"y".repeat(256), format!("{prefix} '{}' at 'tableName' failed to satisfy constraint: Member must have length less than or equal to 255", "y".repeat(256))),
        ];
        for (name, want) in cases {
            assert_eq!(
                check_name("tableName", name),
                Err(TableError::validation(want))
            );
        }
    }
}
