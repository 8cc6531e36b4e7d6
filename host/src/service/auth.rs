//! Who is calling: bearer tokens from the config's secret sources, each with a name and a
//! role. Tokens are compared in constant time, every one of them on every call, so neither
//! a token's content nor which token matched shows in the answer's timing.

use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use crate::config::{Role, TokenConfig};

/// A configured caller with its token loaded.
pub(super) struct ApiToken {
    pub name: String,
    pub role: Role,
    secret: SecretString,
}

/// The caller of one API call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Loads every token's secret now: a service that cannot authenticate its callers must
/// not start. Each token is registered with the redactor, so it never appears in output.
pub(super) fn load_tokens(tokens: &[TokenConfig]) -> Result<Vec<ApiToken>, String> {
    let mut loaded = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let secret = token
            .secret
            .load()
            .map_err(|e| format!("server.tokens[{i}] ({}).secret: {e}", token.name))?;
        if secret.expose_secret().len() < 16 {
            return Err(format!(
                "server.tokens[{i}] ({}).secret is shorter than 16 characters; use a long random token (for example `openssl rand -hex 32`)",
                token.name
            ));
        }
        crate::redact::register(
            "server",
            [(
                format!("token-{}", token.name).as_str(),
                secret.expose_secret(),
            )],
        );
        loaded.push(ApiToken {
            name: token.name.clone(),
            role: token.role,
            secret,
        });
    }
    Ok(loaded)
}

/// Why a call is refused before its handler runs.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Denied {
    /// No token, a malformed header, or a token no one holds: 401.
    Unauthenticated(&'static str),
    /// A valid token whose role does not allow the call: 403.
    Forbidden { caller: String, role: Role },
}

/// The caller behind an `Authorization` header value, allowed to make a call that needs
/// `needed`.
pub(super) fn authorize(
    tokens: &[ApiToken],
    header: Option<&str>,
    needed: Role,
) -> Result<Caller, Denied> {
    let header = header.ok_or(Denied::Unauthenticated(
        "no Authorization header; send `Authorization: Bearer TOKEN`",
    ))?;
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(Denied::Unauthenticated(
            "the Authorization header is not `Bearer TOKEN`",
        ))?
        .trim();
    let mut matched: Option<&ApiToken> = None;
    for token in tokens {
        let equal: bool = token
            .secret
            .expose_secret()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into();
        if equal && matched.is_none() {
            matched = Some(token);
        }
    }
    let token = matched.ok_or(Denied::Unauthenticated("the token is not valid"))?;
    if !token.role.allows(needed) {
        return Err(Denied::Forbidden {
            caller: token.name.clone(),
            role: token.role,
        });
    }
    Ok(Caller {
        name: token.name.clone(),
        role: token.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, role: Role, value: &str) -> ApiToken {
        ApiToken {
            name: name.into(),
            role,
            secret: SecretString::from(value.to_owned()),
        }
    }

    #[test]
    fn a_token_is_its_callers_and_its_role_decides() {
        let tokens = [
            token("reader-bot", Role::Reader, "r-0123456789abcdef"),
            token("it-ops", Role::Operator, "o-0123456789abcdef"),
        ];
        let ops = authorize(&tokens, Some("Bearer o-0123456789abcdef"), Role::Approver)
            .expect("operator may approve");
        assert_eq!(ops.name, "it-ops");
        assert_eq!(
            authorize(&tokens, Some("Bearer r-0123456789abcdef"), Role::Approver)
                .expect_err("a reader may not approve"),
            Denied::Forbidden {
                caller: "reader-bot".into(),
                role: Role::Reader
            }
        );
        for bad in [
            None,
            Some("o-0123456789abcdef"),
            Some("Basic abc"),
            Some("Bearer o-0123456789abcde"),
            Some("Bearer o-0123456789abcdef0"),
            Some("Bearer "),
        ] {
            assert!(
                matches!(
                    authorize(&tokens, bad, Role::Reader),
                    Err(Denied::Unauthenticated(_))
                ),
                "{bad:?}"
            );
        }
    }
}
