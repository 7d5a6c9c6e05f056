//! Parse, don't validate: every value a caller sends in a body is one of
//! these types, each with a private field and one constructor that parses.
//! A handler that holds a `VatNumber` holds a valid VAT number; there is no
//! second place that checks it, and no way to build one that skips the check.
//!
//! Each type documents itself with the exact pattern its parser accepts
//! (`PATTERN`, together with `MAX_CHARS`), and the property tests below
//! hold the two to each other on arbitrary Unicode. Parsers walk `char`s,
//! never byte offsets, so multi-byte text cannot split a character.
//!
//! Bodies deserialize straight into structs of these types through
//! `routes::parse_body`, which names the field at fault in a 422.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type, schema::SchemaType},
};

/// A value parsed from one string of a request.
pub trait Parse: Sized {
    /// The most characters (Unicode scalar values, as JSON Schema counts
    /// them) the raw value may have.
    const MAX_CHARS: usize;
    /// The documented pattern: together with `MAX_CHARS`, exactly what
    /// [`Parse::parse`] accepts.
    const PATTERN: &'static str;
    /// The documented pattern of a value that may also be cleared (`""`, or
    /// blank for free text).
    const CLEARABLE_PATTERN: &'static str;
    /// A valid value, for the OpenAPI document.
    const EXAMPLE: &'static str;
    /// A format of JSON Schema the value also has (`date`, `email`), if any.
    const FORMAT: Option<KnownFormat> = None;
    /// What a valid value looks like, for the caller who sent another.
    const EXPECTED: &'static str;

    /// The value, if `raw` (within `MAX_CHARS`, free of control
    /// characters) has the documented form.
    fn parse_valid(raw: &str) -> Option<Self>;

    /// Whether `raw` means "clear this field" where a field may be cleared.
    fn is_clear(raw: &str) -> bool {
        raw.is_empty()
    }

    /// Parses `raw`, refusing it with a message fit for a caller.
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".to_owned());
        }
        Self::parse_valid(raw).ok_or_else(|| Self::EXPECTED.to_owned())
    }
}

fn string_schema(
    pattern: &str,
    max: usize,
    example: &str,
    format: Option<KnownFormat>,
) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(pattern))
        .max_length(Some(max))
        .format(format.map(SchemaFormat::KnownFormat))
        .examples([example])
}

/// Deserializes a string and parses it, so serde reports the message.
fn deserialize_parsed<'de, T: Parse, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    let raw = String::deserialize(d)?;
    T::parse(&raw).map_err(serde::de::Error::custom)
}

/// A parsed type holding its text: the type, `as_str`, serde and schema.
/// Its `Parse` impl is written beside it.
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        parsed_type!($name);
    };
}

/// Text without control characters: trimmed of surrounding spaces, never blank.
macro_rules! free_text {
    ($(#[$doc:meta])* $name:ident, $max:literal, $example:literal) => {
        text_type!($(#[$doc])* $name);

        impl Parse for $name {
            const MAX_CHARS: usize = $max;
            const PATTERN: &'static str = NON_BLANK_TEXT;
            const CLEARABLE_PATTERN: &'static str = TEXT;
            const EXAMPLE: &'static str = $example;
            const EXPECTED: &'static str = "must not be blank";

            fn parse_valid(raw: &str) -> Option<Self> {
                let text = raw.trim_matches(' ');
                (!text.is_empty()).then(|| Self(text.to_owned()))
            }

            fn is_clear(raw: &str) -> bool {
                raw.trim_matches(' ').is_empty()
            }
        }
    };
}

/// Schema and serde for a [`Parse`] type.
macro_rules! parsed_type {
    ($name:ident) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_parsed(d)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.as_str())
            }
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string_schema(Self::PATTERN, Self::MAX_CHARS, Self::EXAMPLE, Self::FORMAT).into()
            }
        }

        impl ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.as_str())
            }
        }
    };
}

/// 1 to `max` characters: an ASCII letter or digit, then letters, digits or
/// any of `also`.
fn ascii_token(raw: &str, max: usize, also: &[char]) -> bool {
    let mut chars = raw.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || also.contains(&c)) && raw.len() <= max
}

/// Any text without control characters (C0, DEL, C1).
const TEXT: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";
/// [`TEXT`] with at least one character that is not a space.
const NON_BLANK_TEXT: &str =
    r"^[^\u0000-\u001f\u007f-\u009f]*[^ \u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

free_text!(
    /// A first or last name.
    PersonName, 100, "Anna"
);
free_text!(
    /// A street address line.
    StreetAddress, 255, "Storgatan 12"
);
free_text!(
    /// A city.
    City, 100, "Lund"
);
free_text!(
    /// A company name.
    CompanyName, 255, "Lindqvist Konsult AB"
);
free_text!(
    /// A state, county or region.
    Region, 100, "Skåne"
);
free_text!(
    /// The kind of account, as the client area names it.
    AccountType, 50, "private"
);
free_text!(
    /// An organisation or personal identity number.
    OrgNumber, 20, "556677-8899"
);
free_text!(
    /// The customer's own reference on invoices.
    Reference, 100, "PO-4711"
);

text_type!(
    /// The caller's own id for a customer (also a subreseller's id): a letter or
    /// digit, then up to 63 letters, digits, `.`, `_` or `-`.
    CustomerId
);

impl Parse for CustomerId {
    const MAX_CHARS: usize = 64;
    const PATTERN: &'static str = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
    const CLEARABLE_PATTERN: &'static str = r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$";
    const EXAMPLE: &'static str = "CUST-2001";
    const EXPECTED: &'static str = "must be 1 to 64 letters, digits, dots, hyphens or underscores, starting with a letter or digit";

    fn parse_valid(raw: &str) -> Option<Self> {
        ascii_token(raw, 64, &['.', '_', '-']).then(|| Self(raw.to_owned()))
    }
}

text_type!(
    /// A postal code: a letter or digit, then up to 19 letters, digits, spaces or hyphens.
    Zipcode
);

impl Parse for Zipcode {
    const MAX_CHARS: usize = 20;
    const PATTERN: &'static str = r"^[A-Za-z0-9][A-Za-z0-9 -]{0,19}$";
    const CLEARABLE_PATTERN: &'static str = r"^(?:[A-Za-z0-9][A-Za-z0-9 -]{0,19})?$";
    const EXAMPLE: &'static str = "222 20";
    const EXPECTED: &'static str =
        "must be 1 to 20 letters, digits, spaces or hyphens, starting with a letter or digit";

    fn parse_valid(raw: &str) -> Option<Self> {
        ascii_token(raw, 20, &[' ', '-']).then(|| Self(raw.to_owned()))
    }
}

text_type!(
    /// A phone number with its country prefix: `+`, then 7 to 15 digits, with at
    /// most two of ` .()-` between two digits (`+46.701234567`, `+46 70 123 45 67`).
    Phone
);

impl Parse for Phone {
    const MAX_CHARS: usize = 30;
    const PATTERN: &'static str = r"^\+[0-9](?:[ .()-]{0,2}[0-9]){6,14}$";
    const CLEARABLE_PATTERN: &'static str = r"^(?:\+[0-9](?:[ .()-]{0,2}[0-9]){6,14})?$";
    const EXAMPLE: &'static str = "+46.701234567";
    const EXPECTED: &'static str =
        "must be a phone number with its country prefix, e.g. +46.701234567 (7 to 15 digits)";

    fn parse_valid(raw: &str) -> Option<Self> {
        let mut chars = raw.chars();
        if chars.next() != Some('+') || !chars.next().is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        let (mut digits, mut separators) = (1_u32, 0_u32);
        for c in chars {
            if c.is_ascii_digit() {
                digits = digits.saturating_add(1);
                separators = 0;
            } else if matches!(c, ' ' | '.' | '(' | ')' | '-') && separators < 2 {
                separators = separators.saturating_add(1);
            } else {
                return None;
            }
        }
        (separators == 0 && (7..=15).contains(&digits)).then(|| Self(raw.to_owned()))
    }
}

text_type!(
    /// An EU VAT number: a two-letter country prefix, then 2 to 13 capital
    /// letters, digits or `+*.` (`SE556677889901`).
    VatNumber
);

impl Parse for VatNumber {
    const MAX_CHARS: usize = 15;
    const PATTERN: &'static str = r"^[A-Z]{2}[0-9A-Z+*.]{2,13}$";
    const CLEARABLE_PATTERN: &'static str = r"^(?:[A-Z]{2}[0-9A-Z+*.]{2,13})?$";
    const EXAMPLE: &'static str = "SE556677889901";
    const EXPECTED: &'static str = "must be an EU VAT number: a country prefix and 2 to 13 letters or digits, e.g. SE556677889901";

    fn parse_valid(raw: &str) -> Option<Self> {
        let mut chars = raw.chars();
        let prefix = chars
            .by_ref()
            .take(2)
            .filter(char::is_ascii_uppercase)
            .count();
        let mut rest = 0_usize;
        for c in chars {
            if !(c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '+' | '*' | '.')) {
                return None;
            }
            rest = rest.saturating_add(1);
        }
        (prefix == 2 && (2..=13).contains(&rest)).then(|| Self(raw.to_owned()))
    }
}

text_type!(
    /// An ISO 3166-1 alpha-2 country code, upper case (`SE`).
    CountryCode
);

/// ISO 3166-1 alpha-2 codes.
pub const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

impl Parse for CountryCode {
    const MAX_CHARS: usize = 2;
    /// The schema attribute needs a literal; a test holds it to [`ISO_3166_ALPHA2`].
    const PATTERN: &'static str = "^(?:AD|AE|AF|AG|AI|AL|AM|AO|AQ|AR|AS|AT|AU|AW|AX|AZ|BA|BB|BD|BE|BF|BG|BH|BI|BJ|BL|BM|BN|BO|BQ|BR|BS|BT|BV|BW|BY|BZ|CA|CC|CD|CF|CG|CH|CI|CK|CL|CM|CN|CO|CR|CU|CV|CW|CX|CY|CZ|DE|DJ|DK|DM|DO|DZ|EC|EE|EG|EH|ER|ES|ET|FI|FJ|FK|FM|FO|FR|GA|GB|GD|GE|GF|GG|GH|GI|GL|GM|GN|GP|GQ|GR|GS|GT|GU|GW|GY|HK|HM|HN|HR|HT|HU|ID|IE|IL|IM|IN|IO|IQ|IR|IS|IT|JE|JM|JO|JP|KE|KG|KH|KI|KM|KN|KP|KR|KW|KY|KZ|LA|LB|LC|LI|LK|LR|LS|LT|LU|LV|LY|MA|MC|MD|ME|MF|MG|MH|MK|ML|MM|MN|MO|MP|MQ|MR|MS|MT|MU|MV|MW|MX|MY|MZ|NA|NC|NE|NF|NG|NI|NL|NO|NP|NR|NU|NZ|OM|PA|PE|PF|PG|PH|PK|PL|PM|PN|PR|PS|PT|PW|PY|QA|RE|RO|RS|RU|RW|SA|SB|SC|SD|SE|SG|SH|SI|SJ|SK|SL|SM|SN|SO|SR|SS|ST|SV|SX|SY|SZ|TC|TD|TF|TG|TH|TJ|TK|TL|TM|TN|TO|TR|TT|TV|TW|TZ|UA|UG|UM|US|UY|UZ|VA|VC|VE|VG|VI|VN|VU|WF|WS|YE|YT|ZA|ZM|ZW)$";
    const CLEARABLE_PATTERN: &'static str = Self::PATTERN;
    const EXAMPLE: &'static str = "SE";
    const EXPECTED: &'static str =
        "must be an ISO 3166-1 alpha-2 country code in upper case, e.g. SE";

    fn parse_valid(raw: &str) -> Option<Self> {
        let known = raw.len() == 2
            && raw.chars().all(|c| c.is_ascii_uppercase())
            && ISO_3166_ALPHA2.split(' ').any(|code| code == raw);
        known.then(|| Self(raw.to_owned()))
    }
}

text_type!(
    /// An email address: 1 to 64 characters that are not `@`, white space or
    /// control characters, `@`, then a domain of at least two dot-separated
    /// labels of 1 to 63 ASCII letters, digits or hyphens.
    Email
);

impl Parse for Email {
    const MAX_CHARS: usize = 254;
    const PATTERN: &'static str = concat!(
        r"^[^@\u0000-\u001f\u007f-\u009f",
        r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff",
        r"]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+$"
    );
    const CLEARABLE_PATTERN: &'static str = Self::PATTERN;
    const EXAMPLE: &'static str = "steve@example.com";
    const EXPECTED: &'static str = "must be an email address such as name@example.com";

    fn parse_valid(raw: &str) -> Option<Self> {
        let (local, domain) = raw.split_once('@')?;
        let local_ok = (1..=64).contains(&local.chars().count())
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\u{feff}');
        let mut labels = domain.split('.');
        let first = labels.next().is_some_and(dns_label);
        let mut more = 0_u32;
        for label in labels {
            if !dns_label(label) {
                return None;
            }
            more = more.saturating_add(1);
        }
        (local_ok && first && more >= 1).then(|| Self(raw.to_owned()))
    }
}

fn dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len()) && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

text_type!(
    /// A registrable domain name: dot-separated labels of 1 to 63 ASCII letters,
    /// digits and hyphens (not at either end of a label), at most 253 in all,
    /// ending in an alphabetic top-level domain or a punycode one (`xn--…`).
    /// Internationalized names are sent in punycode. Kept lower-cased.
    DomainName
);

impl Parse for DomainName {
    const MAX_CHARS: usize = 253;
    const PATTERN: &'static str = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|[Xx][Nn]--[A-Za-z0-9](?:[A-Za-z0-9-]{0,57}[A-Za-z0-9])?)$";
    const CLEARABLE_PATTERN: &'static str = Self::PATTERN;
    const EXAMPLE: &'static str = "lindqvist-konsult.se";
    const EXPECTED: &'static str = "must be a domain name such as example.se: labels of letters, digits and inner hyphens, and a top-level domain (internationalized names in punycode, xn--…)";

    fn parse_valid(raw: &str) -> Option<Self> {
        let name = raw.to_ascii_lowercase();
        let mut labels: Vec<&str> = name.split('.').collect();
        let tld = labels.pop()?;
        let label_ok = |label: &str| {
            let bytes = label.as_bytes();
            (1..=63).contains(&bytes.len())
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        };
        let tld_ok = match tld.strip_prefix("xn--") {
            Some(punycode) => punycode.len() <= 59 && label_ok(punycode),
            None => (2..=63).contains(&tld.len()) && tld.bytes().all(|b| b.is_ascii_alphabetic()),
        };
        (!labels.is_empty() && labels.iter().all(|l| label_ok(l)) && tld_ok).then_some(Self(name))
    }
}

/// A real calendar date written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingDate(NaiveDate);

impl BillingDate {
    pub fn as_str(&self) -> String {
        self.0.format("%Y-%m-%d").to_string()
    }
}

impl Parse for BillingDate {
    const MAX_CHARS: usize = 10;
    const PATTERN: &'static str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
    const CLEARABLE_PATTERN: &'static str = Self::PATTERN;
    const EXAMPLE: &'static str = "2026-12-01";
    const FORMAT: Option<KnownFormat> = Some(KnownFormat::Date);
    const EXPECTED: &'static str = "must be a real date as YYYY-MM-DD";

    fn parse_valid(raw: &str) -> Option<Self> {
        let shape_ok = raw.len() == 10
            && raw.char_indices().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !shape_ok {
            return None;
        }
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().map(Self)
    }
}

parsed_type!(BillingDate);

/// The fields of the account that the gateway can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountField {
    FirstName,
    LastName,
    CompanyName,
    Address,
    Address2,
    City,
    State,
    Zipcode,
    Country,
    Phone,
    MobilePhone,
    AccountType,
    EuVatNumber,
    OrgNumber,
    Reference,
}

/// A field of a change request: left out (no change), cleared (`""` or
/// `null`; blank for free text) or set to a parsed value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<'de, T: Parse> Deserialize<'de> for Change<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Self::Clear),
            Some(raw) if T::is_clear(&raw) && raw.chars().count() <= T::MAX_CHARS => {
                Ok(Self::Clear)
            }
            Some(raw) => T::parse(&raw)
                .map(Self::Set)
                .map_err(serde::de::Error::custom),
        }
    }
}

// utoipa asks generic types for their schema through `ComposeSchema`.
impl<T: Parse> utoipa::__dev::ComposeSchema for Change<T> {
    fn compose(_generics: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        string_schema(T::CLEARABLE_PATTERN, T::MAX_CHARS, T::EXAMPLE, T::FORMAT)
            .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
            .into()
    }
}

impl<T: Parse> ToSchema for Change<T> {}

/// What [`Present`] and [`Optional`] share: a field that may be left out
/// (`Default` is absent), its accessors, and serializing what was sent. They
/// differ only in how `null` deserializes and is documented.
macro_rules! optional_field {
    ($name:ident) => {
        impl<T> Default for $name<T> {
            fn default() -> Self {
                Self(None)
            }
        }

        impl<T> $name<T> {
            pub fn get(&self) -> Option<&T> {
                self.0.as_ref()
            }

            pub fn is_sent(&self) -> bool {
                self.0.is_some()
            }

            pub fn is_absent(&self) -> bool {
                self.0.is_none()
            }
        }

        impl<T: Serialize> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }
    };
}

/// A field that may be left out but, when sent, must hold a value: `null` is
/// refused with a message saying so. Use with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present<T>(Option<T>);

optional_field!(Present);

impl<'de, T: Parse> Deserialize<'de> for Present<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Err(serde::de::Error::custom(
                "must not be null: leave the field out instead",
            )),
            Some(raw) => T::parse(&raw)
                .map(|v| Self(Some(v)))
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<T: Parse> utoipa::__dev::ComposeSchema for Present<T> {
    fn compose(_generics: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        string_schema(T::PATTERN, T::MAX_CHARS, T::EXAMPLE, T::FORMAT).into()
    }
}

impl<T: Parse> ToSchema for Present<T> {}

/// An optional field of a create: left out or `null`, it is absent (what
/// TypeScript forms and most JSON encoders send for an empty optional
/// field); a string must parse. Documented as a string or `null`. Use with
/// `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Optional<T>(Option<T>);

optional_field!(Optional);

impl<'de, T: Parse> Deserialize<'de> for Optional<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Self(None)),
            Some(raw) => T::parse(&raw)
                .map(|v| Self(Some(v)))
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<T: Parse> utoipa::__dev::ComposeSchema for Optional<T> {
    fn compose(_generics: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        // `anyOf` rather than `type: [string, null]`: the type list sends
        // Schemathesis's coverage phase into an internal error.
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(string_schema(
                T::PATTERN,
                T::MAX_CHARS,
                T::EXAMPLE,
                T::FORMAT,
            ))
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
            .into()
    }
}

impl<T: Parse> ToSchema for Optional<T> {}

/// Hints for fields a caller may send by mistake: a field the body does not
/// take, but that deserves more than "unknown field".
pub trait BodyHints {
    /// A message for the unknown field `name`, if it deserves one.
    fn unknown_field(_name: &str) -> Option<&'static str> {
        None
    }

    /// Rules across fields, checked on the members as sent so their errors
    /// come with every other field's: `(field, what is wrong)` pairs.
    fn across_fields(
        _members: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;

    /// Strings to throw at a parser: arbitrary Unicode, with multi-byte,
    /// combining and control characters at every position, 0 to 10,000 chars.
    fn nasty() -> impl Strategy<Value = String> {
        let char = prop_oneof![
            4 => any::<char>(),
            2 => prop::char::range('\u{0300}', '\u{036f}'), // combining marks
            2 => prop::char::range('\u{0000}', '\u{009f}'), // ASCII, C0, DEL, C1
            1 => prop::sample::select(vec!['º', '²', 'é', '€', '𝄞', '\u{feff}', '\u{200b}', 'İ']),
        ];
        prop_oneof![
            3 => prop::collection::vec(char.clone(), 0..40),
            1 => prop::collection::vec(char, 0..10_000),
        ]
        .prop_map(|chars| chars.into_iter().collect())
    }

    /// Strings close to valid: a valid example with one character changed,
    /// inserted or removed somewhere, so the property also covers the edges.
    fn near(example: &'static str) -> impl Strategy<Value = String> {
        (any::<char>(), 0..=example.chars().count(), 0..3_u8).prop_map(move |(c, at, how)| {
            let mut chars: Vec<char> = example.chars().collect();
            match how {
                0 => chars.insert(at, c),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ if at < chars.len() => {
                    if let Some(slot) = chars.get_mut(at) {
                        *slot = c;
                    }
                }
                _ => chars.push(c),
            }
            chars.into_iter().collect()
        })
    }

    fn documented<T: Parse>(raw: &str) -> bool {
        let pattern = Regex::new(T::PATTERN).unwrap();
        raw.chars().count() <= T::MAX_CHARS && pattern.is_match(raw)
    }

    fn agrees<T: Parse>(raw: &str) -> Result<(), TestCaseError> {
        let parsed = T::parse(raw);
        let extra_rule_refused =
            std::any::type_name::<T>().ends_with("BillingDate") && documented::<T>(raw);
        if extra_rule_refused {
            // The pattern says YYYY-MM-DD; `format: date` adds "a real date".
            prop_assert_eq!(
                parsed.is_ok(),
                NaiveDate::parse_from_str(raw, "%Y-%m-%d").is_ok(),
                "{:?}",
                raw
            );
        } else {
            prop_assert_eq!(
                parsed.is_ok(),
                documented::<T>(raw),
                "{:?}: {:?}",
                raw,
                parsed.err()
            );
        }
        Ok(())
    }

    macro_rules! property {
        ($($name:ident: $ty:ty),* $(,)?) => {$(
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]
                #[test]
                fn $name(raw in prop_oneof![nasty(), near(<$ty>::EXAMPLE)]) {
                    agrees::<$ty>(&raw)?;
                }
            }
        )*};
    }

    /// A `Change<T>` takes exactly what `CLEARABLE_PATTERN` documents.
    fn clearable_agrees<T: Parse>(raw: &str) -> Result<(), TestCaseError> {
        let pattern = Regex::new(T::CLEARABLE_PATTERN).unwrap();
        let documented = raw.chars().count() <= T::MAX_CHARS && pattern.is_match(raw);
        let parsed = serde_json::from_value::<Change<T>>(serde_json::Value::String(raw.into()));
        prop_assert_eq!(parsed.is_ok(), documented, "{:?}", raw);
        Ok(())
    }

    macro_rules! clearable_property {
        ($($name:ident: $ty:ty),* $(,)?) => {$(
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]
                #[test]
                fn $name(raw in prop_oneof![nasty(), near(<$ty>::EXAMPLE), Just(String::new()), Just("  ".to_owned())]) {
                    clearable_agrees::<$ty>(&raw)?;
                }
            }
        )*};
    }

    clearable_property!(
        a_clearable_company_name_accepts_exactly_its_pattern: CompanyName,
        a_clearable_phone_accepts_exactly_its_pattern: Phone,
        a_clearable_vat_number_accepts_exactly_its_pattern: VatNumber,
        a_clearable_reference_accepts_exactly_its_pattern: Reference,
    );

    property!(
        person_name_accepts_exactly_its_pattern: PersonName,
        street_address_accepts_exactly_its_pattern: StreetAddress,
        customer_id_accepts_exactly_its_pattern: CustomerId,
        zipcode_accepts_exactly_its_pattern: Zipcode,
        phone_accepts_exactly_its_pattern: Phone,
        vat_number_accepts_exactly_its_pattern: VatNumber,
        country_code_accepts_exactly_its_pattern: CountryCode,
        email_accepts_exactly_its_pattern: Email,
        billing_date_accepts_exactly_its_pattern: BillingDate,
        org_number_accepts_exactly_its_pattern: OrgNumber,
        domain_name_accepts_exactly_its_pattern: DomainName,
    );

    #[test]
    fn the_vat_number_that_crashed_a_worker_is_refused() {
        // `value[..2]` once sliced inside the two-byte `º`.
        assert!(VatNumber::parse("tº²R").is_err());
        assert!(VatNumber::parse("SE556677889901").is_ok());
        assert!(VatNumber::parse("ºE12").is_err());
    }

    #[test]
    fn free_text_is_trimmed_and_never_blank() {
        assert_eq!(PersonName::parse(" Anna ").unwrap().as_str(), "Anna");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("a\u{0}b").is_err());
        assert!(PersonName::parse(&"é".repeat(100)).is_ok());
        assert!(PersonName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn known_values_parse_and_near_misses_do_not() {
        assert!(Phone::parse("+46 (0)70-111 22 33").is_ok());
        assert!(Phone::parse("0701234567").is_err());
        assert!(CountryCode::parse("SE").is_ok());
        assert!(CountryCode::parse("XX").is_err());
        assert!(Email::parse("steve@example.com").is_ok());
        assert!(Email::parse("steve@localhost").is_err());
        assert!(BillingDate::parse("2026-02-29").is_err());
        assert!(BillingDate::parse("2028-02-29").is_ok());
        assert!(CustomerId::parse("CUST-1").is_ok());
        assert!(CustomerId::parse("-CUST").is_err());
    }

    #[test]
    fn the_documented_country_pattern_is_the_checked_list() {
        let expected = format!(
            "^(?:{})$",
            ISO_3166_ALPHA2.split(' ').collect::<Vec<_>>().join("|")
        );
        assert_eq!(CountryCode::PATTERN, expected);
    }

    #[test]
    fn every_pattern_compiles_and_the_clearable_one_also_takes_empty() {
        for (pattern, clearable) in [
            (PersonName::PATTERN, PersonName::CLEARABLE_PATTERN),
            (Phone::PATTERN, Phone::CLEARABLE_PATTERN),
            (VatNumber::PATTERN, VatNumber::CLEARABLE_PATTERN),
            (Zipcode::PATTERN, Zipcode::CLEARABLE_PATTERN),
            (CustomerId::PATTERN, CustomerId::CLEARABLE_PATTERN),
        ] {
            assert!(!Regex::new(pattern).unwrap().is_match(""));
            assert!(Regex::new(clearable).unwrap().is_match(""));
        }
    }
}
