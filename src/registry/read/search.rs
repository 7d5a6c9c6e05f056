//! The text search (`q`): each word must appear in a customer's
//! lower-cased name and email, as written or inside a longer word. Two
//! steps (see [`Registry::search_customers`]): the newest customers read and
//! matched, then a trigram index (`migrations/*/0002_customer_search.sql`).

use sqlx::any::AnyRow;

use super::{Arg, NEWEST_CUSTOMERS, Registry, Where};
use crate::registry::Backend;

/// How many of the newest customers the text search reads before it asks
/// the index ([`Registry::search_customers`]).
const SEARCH_WINDOW: i64 = 2000;

impl Backend {
    /// One search word as a clause the backend's trigram index serves:
    /// SQLite's FTS5 `MATCH` on a quoted phrase (words of three characters
    /// or more: shorter ones have no trigram, and are matched by `LIKE`),
    /// PostgreSQL's `LIKE` (served by `pg_trgm`'s GIN index).
    fn search_clause(self, w: &mut Where, word: &str) -> String {
        if self == Self::Sqlite && word.chars().nth(2).is_some() {
            let phrase = format!("\"{}\"", word.to_lowercase().replace('"', "\"\""));
            let p = w.arg(Arg::Text(phrase));
            return format!(
                "row_id IN (SELECT rowid FROM customers_search WHERE customers_search MATCH {p})"
            );
        }
        contains(w, word)
    }
}

/// The clause that `word` appears in `search`, read row by row.
fn contains(w: &mut Where, word: &str) -> String {
    let p = w.arg(Arg::Text(contains_pattern(word)));
    format!("search LIKE {p} ESCAPE '\\'")
}

/// `%text%` for `LIKE … ESCAPE '\'`, the caller's wildcards taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len().saturating_add(2));
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Registry {
    /// The text search, in two steps. First the newest
    /// [`SEARCH_WINDOW`] customers the other filters let through, each
    /// read and matched: a word that many customers have fills the page
    /// there, which no index could do faster (an index would find every
    /// one of them, to be sorted). When that page is not full, the words
    /// are looked up in the trigram index (`migrations/*/0002_…`) and only
    /// the customers it finds are sorted: a rare word (a name) never scans
    /// every customer. The first step's page, when full, is exactly the
    /// second's: anything it did not read is older than all it read.
    pub(super) async fn search_customers(
        &self,
        w: Where,
        words: &[&str],
        limit: u32,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut recent = w.clone();
        let window = recent.arg(Arg::Int(SEARCH_WINDOW));
        let inner = format!(
            "(SELECT * FROM customers {} {NEWEST_CUSTOMERS} LIMIT {window}) AS recent",
            recent.sql()
        );
        recent.clauses.clear();
        for word in words {
            let clause = contains(&mut recent, word);
            recent.push(clause);
        }
        let rows = self.newest_customers(recent, &inner, limit).await?;
        if rows.len() > limit as usize {
            return Ok(rows);
        }
        let mut w = w;
        for word in words {
            let clause = self.backend.search_clause(&mut w, word);
            w.push(clause);
        }
        self.newest_customers(w, "customers", limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::CustomerFilter;

    #[test]
    fn wildcards_in_a_search_are_literal() {
        assert_eq!(contains_pattern("50%_A\\"), "%50\\%\\_a\\\\%");
    }

    /// A registry on a new SQLite file with `people` created in order
    /// (first name, last name, email), the last the newest.
    fn registry_of(
        runtime: &tokio::runtime::Runtime,
        dir: &tempfile::TempDir,
        people: &[(&str, &str, &str)],
    ) -> Registry {
        use crate::registry::{Intent, Operation, Outcome};
        let settings = crate::configuration::RegistrySettings {
            url: format!("sqlite://{}/registry.sqlite3", dir.path().display()).into(),
            ..Default::default()
        };
        let registry = {
            let _in = runtime.enter();
            Registry::new(&settings).unwrap()
        };
        runtime.block_on(async {
            for (n, (first, last, email)) in (1_i64..).zip(people) {
                let intent = Intent {
                    operation: Operation::Create,
                    principal: "test".to_owned(),
                    request_id: String::new(),
                    idempotency_key: None,
                    customer_ref: Some(format!("C-{n}")),
                    dna_id: None,
                    request: serde_json::json!({"first_name": first, "last_name": last, "email": email}),
                };
                let recorded = registry.intend(intent).await.unwrap();
                let answer = serde_json::json!({"ns_domain": "x"});
                let outcome = Outcome::Succeeded { dna_id: n, answer };
                registry.settle(recorded, outcome, || {}).await;
                // Distinct creation times, so newest first is one order.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        });
        registry
    }

    const PEOPLE: [(&str, &str, &str); 6] = [
        ("Ana", "López", "ana.lopez@example.com"),
        ("Steve", "Harris", "steve@example.com"),
        ("Zoë", "\"Quote\" O'Neil", "z%o_e@example.org"),
        ("Анна", "Иванова", "anna@пример.рф"),
        ("Bo", "Li", "bo@li.cn"),
        ("Lopez", "Harrison", "lh@example.com"),
    ];

    /// The customers `q` should find, newest first: every word a
    /// substring of the lower-cased name and email.
    fn expected(q: &str) -> Vec<String> {
        let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
        (1..=PEOPLE.len())
            .rev()
            .filter(|n| {
                let (first, last, email) = PEOPLE[n - 1];
                let text = format!("{first} {last} {email}").to_lowercase();
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .map(|n| format!("C-{n}"))
            .collect()
    }

    fn search(
        runtime: &tokio::runtime::Runtime,
        registry: &Registry,
        q: &str,
        limit: u32,
    ) -> Vec<String> {
        let filter = CustomerFilter {
            q: Some(q.to_owned()),
            limit,
            ..Default::default()
        };
        let page = runtime.block_on(registry.customers(&filter)).unwrap();
        page.items
            .into_iter()
            .map(|c| c.customer_id.unwrap_or_default())
            .collect()
    }

    #[test]
    fn the_text_search_finds_every_word_as_a_substring_through_either_step() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_of(&runtime, &dir, &PEOPLE);
        for q in [
            "lopez",
            "LÓPEZ",
            "harris",
            "harri lopez",
            "example",
            "o_e",
            "%",
            "\"quote\"",
            "li",
            "bo",
            "пример",
            "иван",
            "@",
            "xyz",
            "\"",
            "o'neil",
            "ana lop",
            "e",
        ] {
            let want = expected(q);
            assert_eq!(search(&runtime, &registry, q, 50), want, "q={q}");
            // A page of one: the first step fills it when two match.
            let first: Vec<String> = want.iter().take(1).cloned().collect();
            assert_eq!(search(&runtime, &registry, q, 1), first, "q={q}, limit=1");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any text searched is a list, never an error, and exactly the
        /// customers whose name or email holds every word.
        #[test]
        fn any_text_searched_finds_what_it_should(q in "\\PC{0,16}") {
            thread_local! {
                static SEARCHED: (tokio::runtime::Runtime, tempfile::TempDir, std::cell::OnceCell<Registry>) =
                    (tokio::runtime::Runtime::new().unwrap(), tempfile::tempdir().unwrap(), std::cell::OnceCell::new());
            }
            SEARCHED.with(|(runtime, dir, registry)| {
                let registry = registry.get_or_init(|| registry_of(runtime, dir, &PEOPLE));
                let found = search(runtime, registry, &q, 50);
                proptest::prop_assert_eq!(found, expected(&q));
                Ok(())
            })?;
        }
    }

    proptest::proptest! {
        /// Any text is a `LIKE` pattern: never a panic.
        #[test]
        fn any_text_is_a_pattern(text in ".*") {
            let _ = contains_pattern(&text);
        }
    }
}
