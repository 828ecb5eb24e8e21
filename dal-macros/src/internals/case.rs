//! Name conventions the model applies: `#[serde(rename_all = "...")]` for struct fields, exactly
//! as `serde_derive` applies it (a port of its `internals/case.rs`, field rules only), so that
//! `FieldDef::serde_name` is the key serde really writes; and the default table name, the struct
//! name in snake_case.

/// serde's case conventions. Rust field names are expected in `snake_case`, so `lowercase` and
/// `snake_case` leave them unchanged, as in serde.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum RenameRule {
    /// No `rename_all`.
    #[default]
    None,
    LowerCase,
    UpperCase,
    PascalCase,
    CamelCase,
    SnakeCase,
    ScreamingSnakeCase,
    KebabCase,
    ScreamingKebabCase,
}

/// serde's spellings, in serde's order.
const RULES: &[(&str, RenameRule)] = &[
    ("lowercase", RenameRule::LowerCase),
    ("UPPERCASE", RenameRule::UpperCase),
    ("PascalCase", RenameRule::PascalCase),
    ("camelCase", RenameRule::CamelCase),
    ("snake_case", RenameRule::SnakeCase),
    ("SCREAMING_SNAKE_CASE", RenameRule::ScreamingSnakeCase),
    ("kebab-case", RenameRule::KebabCase),
    ("SCREAMING-KEBAB-CASE", RenameRule::ScreamingKebabCase),
];

impl RenameRule {
    /// The rule spelled `s`, or `None` for a spelling serde does not know (serde reports it).
    pub(crate) fn parse(s: &str) -> Option<RenameRule> {
        RULES.iter().find(|(name, _)| *name == s).map(|(_, r)| *r)
    }

    /// serde's spelling of the rule, for error messages.
    pub(crate) fn name(self) -> &'static str {
        RULES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("none", |(name, _)| name)
    }

    /// The serialized name of the struct field `field` (its name without `r#`).
    pub(crate) fn apply_to_field(self, field: &str) -> String {
        match self {
            RenameRule::None | RenameRule::LowerCase | RenameRule::SnakeCase => field.to_owned(),
            RenameRule::UpperCase | RenameRule::ScreamingSnakeCase => field.to_ascii_uppercase(),
            RenameRule::PascalCase => {
                let mut pascal = String::with_capacity(field.len());
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        pascal.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        pascal.push(ch);
                    }
                }
                pascal
            }
            RenameRule::CamelCase => {
                // serde lowercases the first byte of the PascalCase form (and panics where that
                // is not a char boundary); lowercasing the first char is the same for every name
                // serde accepts.
                let pascal = RenameRule::PascalCase.apply_to_field(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            RenameRule::KebabCase => field.replace('_', "-"),
            RenameRule::ScreamingKebabCase => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

/// The default table name of the struct named `s`: `UserProfile` → `user_profile`,
/// `HTTPRequest` → `http_request`.
pub(crate) fn snake_case(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            if let Some(&prev) = i.checked_sub(1).and_then(|p| chars.get(p)) {
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
                if prev != '_'
                    && (prev.is_lowercase()
                        || prev.is_ascii_digit()
                        || (prev.is_uppercase() && next_lower))
                {
                    out.push('_');
                }
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;
    use super::RenameRule::{self, *};

    #[test]
    fn struct_names_become_snake_case_tables() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("UserProfile"), "user_profile");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("OrderV2Line"), "order_v2_line");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

    /// serde_derive's own `rename_fields` table.
    #[test]
    fn fields_are_renamed_as_serde_does() {
        for &(original, upper, pascal, camel, screaming, kebab, screaming_kebab) in &[
            (
                "outcome", "OUTCOME", "Outcome", "outcome", "OUTCOME", "outcome", "OUTCOME",
            ),
            (
                "very_tasty",
                "VERY_TASTY",
                "VeryTasty",
                "veryTasty",
                "VERY_TASTY",
                "very-tasty",
                "VERY-TASTY",
            ),
            ("a", "A", "A", "a", "A", "a", "A"),
            ("z42", "Z42", "Z42", "z42", "Z42", "z42", "Z42"),
        ] {
            assert_eq!(None.apply_to_field(original), original);
            assert_eq!(UpperCase.apply_to_field(original), upper);
            assert_eq!(PascalCase.apply_to_field(original), pascal);
            assert_eq!(CamelCase.apply_to_field(original), camel);
            assert_eq!(SnakeCase.apply_to_field(original), original);
            assert_eq!(ScreamingSnakeCase.apply_to_field(original), screaming);
            assert_eq!(KebabCase.apply_to_field(original), kebab);
            assert_eq!(ScreamingKebabCase.apply_to_field(original), screaming_kebab);
        }
    }

    #[test]
    fn edge_cases_match_serde() {
        // Leading, doubled and trailing underscores vanish in Pascal/camel case only.
        assert_eq!(PascalCase.apply_to_field("_private__x_"), "PrivateX");
        assert_eq!(CamelCase.apply_to_field("_private__x_"), "privateX");
        assert_eq!(KebabCase.apply_to_field("_a__b"), "-a--b");
        // Existing capitals are kept (serde only touches the first letter of each word).
        assert_eq!(CamelCase.apply_to_field("http_URL"), "httpURL");
        assert_eq!(LowerCase.apply_to_field("MixedCase"), "MixedCase");
        assert_eq!(CamelCase.apply_to_field("__"), "");
    }

    #[test]
    fn spellings_round_trip() {
        for rule in [
            LowerCase,
            UpperCase,
            PascalCase,
            CamelCase,
            SnakeCase,
            ScreamingSnakeCase,
            KebabCase,
            ScreamingKebabCase,
        ] {
            assert_eq!(RenameRule::parse(rule.name()), Some(rule));
        }
        assert_eq!(RenameRule::parse("camelcase"), Option::None);
        assert_eq!(None.name(), "none");
    }
}
