//! ARNs, `arn:aws:lambda:<region>:<namespace>:function:<name>[:<qualifier>]` (the namespace plays
//! the account), and the forms Lambda accepts for `FunctionName`: a name, `name:qualifier`, a
//! full ARN or a partial one (`<namespace>:function:<name>`).

use crate::AwsError;

/// A function named by a request, in the caller's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    pub qualifier: Option<String>,
}

/// Where ARNs point: the server's region and the caller's namespace.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub namespace: &'a str,
}

impl Scope<'_> {
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.namespace
        )
    }

    pub fn qualified_arn(&self, name: &str, qualifier: &str) -> String {
        format!("{}:{qualifier}", self.function_arn(name))
    }

    /// Parses `FunctionName` (and an optional `Qualifier` parameter, which must agree with one
    /// in the name).
    pub fn parse(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionRef, AwsError> {
        let invalid = |why: &str| {
            AwsError::InvalidParameterValue(format!(
                "invalid function name '{function_name}': {why}"
            ))
        };
        let parts: Vec<&str> = function_name.split(':').collect();
        let (account, name, from_name) = match parts[..] {
            [name] => (None, name, None),
            [name, q] => (None, name, Some(q)),
            [account, "function", name] => (Some(account), name, None),
            [account, "function", name, q] => (Some(account), name, Some(q)),
            ["arn", "aws", "lambda", region, account, "function", name, ..] => {
                if region != self.region {
                    return Err(invalid(&format!(
                        "the ARN's region '{region}' is not this server's region '{}'",
                        self.region
                    )));
                }
                match parts[7..] {
                    [] => (Some(account), name, None),
                    [q] => (Some(account), name, Some(q)),
                    _ => return Err(invalid("too many ':' parts")),
                }
            }
            _ => return Err(invalid("use a name, name:qualifier or an ARN")),
        };
        if account.is_some_and(|a| a != self.namespace) {
            return Err(AwsError::ResourceNotFound(format!(
                "Function not found: {function_name}"
            )));
        }
        let qualifier = match (from_name, qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(AwsError::InvalidParameterValue(format!(
                    "The derived qualifier from the function name ('{a}') does not match the specified qualifier ('{b}')."
                )))
            }
            (Some(q), _) | (None, Some(q)) => Some(q.to_string()),
            (None, None) => None,
        };
        if qualifier.as_deref() == Some("") {
            return Err(invalid("empty qualifier"));
        }
        Ok(FunctionRef {
            name: name.to_string(),
            qualifier,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope<'static> = Scope {
        region: "us-east-1",
        namespace: "default",
    };

    fn parsed(s: &str, q: Option<&str>) -> (String, Option<String>) {
        let r = SCOPE.parse(s, q).unwrap();
        (r.name, r.qualifier)
    }

    #[test]
    fn every_form_of_function_name_parses() {
        assert_eq!(parsed("f", None), ("f".into(), None));
        assert_eq!(parsed("f:live", None), ("f".into(), Some("live".into())));
        assert_eq!(parsed("f", Some("3")), ("f".into(), Some("3".into())));
        assert_eq!(parsed("default:function:f", None), ("f".into(), None));
        assert_eq!(
            parsed("arn:aws:lambda:us-east-1:default:function:f:2", None),
            ("f".into(), Some("2".into()))
        );
        assert_eq!(
            SCOPE.function_arn("f"),
            "arn:aws:lambda:us-east-1:default:function:f"
        );
        assert_eq!(
            SCOPE.qualified_arn("f", "2"),
            "arn:aws:lambda:us-east-1:default:function:f:2"
        );
    }

    #[test]
    fn other_accounts_regions_and_disagreeing_qualifiers_are_refused() {
        assert!(matches!(
            SCOPE.parse("arn:aws:lambda:us-east-1:other:function:f", None),
            Err(AwsError::ResourceNotFound(_))
        ));
        assert!(matches!(
            SCOPE.parse("arn:aws:lambda:eu-west-1:default:function:f", None),
            Err(AwsError::InvalidParameterValue(_))
        ));
        assert!(matches!(
            SCOPE.parse("f:1", Some("2")),
            Err(AwsError::InvalidParameterValue(_))
        ));
        assert!(SCOPE.parse("a:b:c:d:e", None).is_err());
    }
}
