//! The text search (`q`): each word must appear in a customer's
//! lower-cased name and email, as written or inside a longer word (see
//! [`Registry::search_customers`]): the newest customers read and matched,
//! then, for a word as dense there as to fill the page soon, the customers
//! below them, else a trigram index (`migrations/*/0002_customer_search.sql`).

use sqlx::{AssertSqlSafe, Row, any::AnyRow};

use super::{Arg, Registry, Where};
use crate::registry::Backend;

/// How many of the newest customers the text search reads first
/// ([`Registry::search_customers`]), unless a test says fewer.
pub(in crate::registry) const SEARCH_WINDOW: i64 = 2000;

/// The clause that `word` appears in `customers.search`, read row by row
/// (PostgreSQL's `pg_trgm` GIN index serves it too).
fn contains(w: &mut Where, word: &str) -> String {
    let p = w.arg(Arg::Text(contains_pattern(word)));
    format!("customers.search LIKE {p} ESCAPE '\\'")
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

/// A word's three-character pieces (trigrams), in order, as the index
/// splits the lower-cased text; none for a word under three characters.
fn trigrams(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.to_lowercase().chars().collect();
    chars
        .windows(3)
        .map(|piece| piece.iter().collect())
        .collect()
}

/// The pieces are counted in this many runs of [`RUN`] consecutive
/// customers, spread over the whole registry: the index finds a piece in
/// every customer that has it, old ones too (the newest alone misjudged
/// pieces common in older customers), and a run is one range of the
/// primary key where as many single rows would be as many lookups
/// (0.25 ms against 0.9 on PostgreSQL). 200 customers tell a piece most
/// customers have from a rare one.
const RUNS: i64 = 10;

/// How many consecutive customers each of the [`RUNS`] holds.
const RUN: i64 = 20;

/// When the window's matches were too few for the page, the search reads
/// on below it if, as dense as there, they would fill the page within
/// this many windows more (it reads twice what that density says, up to
/// this bound).
const WALK: i64 = 4;

/// At most this many pieces are counted in the sample (a longer search
/// asks the index for the pieces counted, and checks every word anyway).
const SAMPLED: usize = 32;

/// Up to two of `pieces` for the index: those the fewest sampled customers
/// have (`count`), the first of equals first. Two rare pieces narrow as
/// well as the whole word, and an index reads a common piece's entry for
/// every customer that has it (every seeded customer has `fir`, `irs`,
/// `rst`: asking `"first4242"` costs 2.7 ms of SQLite, its two rarest
/// pieces 0.4).
fn rarest(pieces: &[String], count: impl Fn(&str) -> i64) -> Vec<&str> {
    let mut ranked: Vec<(i64, usize)> = (pieces.iter().enumerate())
        .map(|(i, piece)| (count(piece), i))
        .collect();
    ranked.sort_unstable();
    (ranked.iter().take(2))
        .filter_map(|&(_, i)| pieces.get(i).map(String::as_str))
        .collect()
}

/// The pieces of `word` the backend's index holds: every trigram for
/// FTS5; for `pg_trgm`, only those of three ASCII letters or digits (it
/// keeps trigrams of each run of letters and digits, and a piece with
/// another character would ask it for nothing, a scan of every entry).
fn indexed_pieces(backend: Backend, word: &str) -> Vec<String> {
    let mut pieces = trigrams(word);
    if backend == Backend::Postgres {
        pieces.retain(|piece| piece.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    pieces
}

/// The function that says where a text is in another (1 for the first
/// character, 0 if nowhere), which no index serves: `text` is found as
/// written, with no wildcard to escape.
fn find_function(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "instr",
        Backend::Postgres => "strpos",
    }
}

/// FTS5's query for `pieces`: each a quoted phrase (so `"`, `*`, `OR`,
/// `NEAR(…)` are plain text), all of them required.
fn fts_query(pieces: &[&str]) -> String {
    (pieces.iter())
        .map(|piece| format!("\"{}\"", piece.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

impl Registry {
    /// The text search. First the newest
    /// [`SEARCH_WINDOW`] (2,000) customers the other filters let through,
    /// each read and matched: a word that many customers have fills the
    /// page there, which no index could do faster. The first step's page,
    /// when full, is exactly the search's: anything it did not read is
    /// older than all it read. When it is not full and the filters let
    /// more customers through than it read, it reads on below them if its
    /// matches were dense enough to fill the page within [`WALK`] windows
    /// more; when not, or when that does not fill it, the trigram index
    /// (`migrations/*/0002_…`) is asked:
    /// each word's two rarest pieces ([`rarest`]), counted in customers
    /// spread over the registry ([`Registry::window_sample`]), every word
    /// then checked as written:
    /// - SQLite: FTS5 walks its matches newest first and stops at the page;
    /// - PostgreSQL: `pg_trgm`'s GIN index finds every customer with those
    ///   pieces, and the page is sorted from them. Its planner is not left
    ///   to choose between that and walking the table newest first (it
    ///   misjudged a word in 1% of customers that way: 6.1 ms against 2.8);
    ///   the whole word's `LIKE` is not asked either, as pg_trgm would read
    ///   every piece of it, the common ones too (`last42` 2.1 ms against
    ///   1.2, `first4242` 1.2 against 0.2, in a warm `psql`).
    ///
    /// A rare word (a name) never scans every customer.
    pub(super) async fn search_customers(
        &self,
        w: Where,
        after: Option<i64>,
        words: &[&str],
        limit: u32,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut recent = w.clone();
        if let Some(after) = after {
            let p = recent.arg(Arg::Int(after));
            recent.push(format!("row_id < {p}"));
        }
        let window = self.search_window;
        let page = i64::from(limit).saturating_add(1);
        let mut rows = (self.walk(&recent, words, window, page)).await?;
        if rows.len() > limit as usize {
            return Ok(rows);
        }
        let pieces: Vec<Vec<String>> = (words.iter())
            .map(|word| indexed_pieces(self.backend, word))
            .collect();
        let mut sampled: Vec<&str> = pieces.iter().flatten().map(String::as_str).collect();
        sampled.sort_unstable();
        sampled.dedup();
        sampled.truncate(SAMPLED);
        let (oldest, counts) = self.window_sample(&recent, &sampled).await?;
        let Some(oldest) = oldest else {
            return Ok(rows);
        };
        // Matches as dense as the window's fill the page a little further
        // down (`last42`, in 1% of customers, after 2,600 more: 0.9 ms
        // against 1.8 through PostgreSQL's index, which finds all 1,100
        // and sorts them; on SQLite 1.8 ms p50 through the gateway against
        // 2.7 through FTS5); when the walk's bound is reached first, the
        // index is asked after all.
        let found = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let needed = page.saturating_sub(found);
        let expected = (needed.saturating_mul(window)).checked_div(found);
        let bound = window.saturating_mul(WALK);
        if let Some(expected) = expected.filter(|&read| read <= bound) {
            let mut below = recent.clone();
            let p = below.arg(Arg::Int(oldest));
            below.push(format!("row_id < {p}"));
            let walk = expected.saturating_mul(2).min(bound);
            let more = (self.walk(&below, words, walk, needed)).await?;
            if more.len() >= usize::try_from(needed).unwrap_or(usize::MAX) {
                rows.extend(more);
                return Ok(rows);
            }
        }
        let count = |piece: &str| {
            (sampled.binary_search(&piece).ok())
                .and_then(|i| counts.get(i).copied())
                .unwrap_or(i64::MAX)
        };
        // Every word is checked as written; the index only narrows.
        let mut w = w;
        let mut asked = Vec::new();
        for (word, pieces) in words.iter().zip(&pieces) {
            let rare = rarest(pieces, count);
            let clause = match self.backend {
                // PostgreSQL would fold a `LIKE` on the whole word into
                // the index's scan (every piece of it, the common ones
                // too): the word is checked with `strpos`, which no index
                // serves, when its rare pieces are asked for.
                Backend::Postgres if !rare.is_empty() => {
                    let p = w.arg(Arg::Text(word.to_lowercase()));
                    format!("{}(customers.search, {p}) > 0", find_function(self.backend))
                }
                _ => contains(&mut w, word),
            };
            w.push(clause);
            asked.extend(rare);
        }
        if asked.is_empty() {
            // Only words under three characters (or, on PostgreSQL, with
            // no three letters or digits in a row): pg_trgm's index
            // answers the words' `LIKE` itself; FTS5 has nothing to ask.
            return (self.newest_customers(w, "customers", "row_id", after, limit)).await;
        }
        match self.backend {
            Backend::Sqlite => {
                let p = w.arg(Arg::Text(fts_query(&asked)));
                w.push(format!("customers_search MATCH {p}"));
                let from =
                    "customers_search JOIN customers ON customers.row_id = customers_search.rowid";
                // Ordered by the index's own rowid, so FTS5 walks newest
                // first and the walk stops at the page (by the customers'
                // `row_id`, SQLite would sort every match).
                (self.newest_customers(w, from, "customers_search.rowid", after, limit)).await
            }
            Backend::Postgres => {
                for piece in asked {
                    let clause = contains(&mut w, piece);
                    w.push(clause);
                }
                if let Some(after) = after {
                    let p = w.arg(Arg::Int(after));
                    w.push(format!("row_id < {p}"));
                }
                // `row_id + 0`: the matches are found through the index
                // and the page sorted from them. Ordered by `row_id`
                // itself, the planner may walk every customer newest first
                // instead, which for a rare word reads the whole table.
                let n = w.arg(Arg::Int(i64::from(limit).saturating_add(1)));
                let inner = format!(
                    "row_id IN (SELECT row_id FROM customers {} ORDER BY row_id + 0 DESC LIMIT {n})",
                    w.sql()
                );
                w.clauses = vec![inner];
                (self.newest_customers(w, "customers", "row_id", None, limit)).await
            }
        }
    }

    /// Up to `page` customers whose text holds every word, newest first,
    /// among the newest `window` the filters pass: their row ids and text
    /// read (copying each of its rows whole cost as much as matching
    /// them), then the matches' rows.
    async fn walk(
        &self,
        filters: &Where,
        words: &[&str],
        window: i64,
        page: i64,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut matched = filters.clone();
        let window = matched.arg(Arg::Int(window));
        let n = matched.arg(Arg::Int(page));
        let likes = (words.iter())
            .map(|word| contains(&mut matched, word))
            .collect::<Vec<_>>()
            .join(" AND ");
        let inner = format!(
            "row_id IN (SELECT row_id FROM (SELECT row_id, search FROM customers {} \
             ORDER BY row_id DESC LIMIT {window}) AS customers WHERE {likes} \
             ORDER BY row_id DESC LIMIT {n})",
            filters.sql()
        );
        matched.clauses = vec![inner];
        let limit = u32::try_from(page.saturating_sub(1)).unwrap_or(u32::MAX);
        (self.newest_customers(matched, "customers", "row_id", None, limit)).await
    }

    /// The oldest `row_id` of the first step's window when it was full
    /// (the newest [`SEARCH_WINDOW`] customers the filters pass; when not,
    /// the first step read every customer the filters pass, and its answer
    /// is the search's), and in how many of [`RUNS`] × [`RUN`] customers
    /// each of `pieces` appears: how common each piece is. The runs start
    /// at the golden ratio's multiples modulo the largest `row_id`: spread
    /// evenly whatever the count, and never in step with the ids (every
    /// 10,000th would start each run at `…0001`).
    async fn window_sample(
        &self,
        filters: &Where,
        pieces: &[&str],
    ) -> Result<(Option<i64>, Vec<i64>), sqlx::Error> {
        let mut w = filters.clone();
        // The gateway's own numbers are written into the text and each
        // piece is found with a function, not a `LIKE … ESCAPE`: PostgreSQL
        // then plans the statement once. A bound `LIMIT` and a per-row
        // `like_escape($n)` made its generic plan look dearer than a
        // custom one, planned anew on every search (0.3 ms).
        let window = self.search_window;
        let find = find_function(self.backend);
        let n = "(SELECT COUNT(*) FROM window_rows) AS n, \
                 (SELECT MIN(row_id) FROM window_rows) AS oldest"
            .to_owned();
        let window_rows = format!(
            "window_rows AS MATERIALIZED (SELECT row_id FROM customers {} \
             ORDER BY row_id DESC LIMIT {window})",
            filters.sql()
        );
        let sql = if pieces.is_empty() {
            format!("WITH {window_rows} SELECT {n}")
        } else {
            let mut columns = vec![n];
            for (i, piece) in pieces.iter().enumerate() {
                let p = w.arg(Arg::Text((*piece).to_owned()));
                columns.push(format!(
                    "SUM(CASE WHEN {find}(customers.search, {p}) > 0 THEN 1 ELSE 0 END) AS t{i}"
                ));
            }
            // An aggregate: one row, even when no customer is sampled.
            format!(
                "WITH RECURSIVE {window_rows}, \
                 k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {RUNS}), \
                 top(m, s) AS (SELECT MAX(row_id), MAX(row_id) * 618034 / 1000000 FROM customers), \
                 runs(a) AS (SELECT 1 + (k.i * top.s) % top.m FROM k, top) \
                 SELECT {} FROM runs JOIN customers \
                 ON customers.row_id >= runs.a AND customers.row_id < runs.a + {RUN}",
                columns.join(", ")
            )
        };
        let row = (w.bind(sqlx::query(AssertSqlSafe(sql))))
            .fetch_one(&self.pool)
            .await?;
        let counts = (0..pieces.len())
            .map(|i| {
                Ok(row
                    .try_get::<Option<i64>, _>(format!("t{i}").as_str())?
                    .unwrap_or(0))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let full = row.try_get::<i64, _>("n")? >= self.search_window;
        let oldest = row.try_get::<Option<i64>, _>("oldest")?;
        Ok((oldest.filter(|_| full), counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::CustomerFilter;

    #[test]
    fn the_index_is_asked_for_a_word_s_two_rarest_pieces() {
        let pieces = trigrams("First4242");
        assert_eq!(pieces, ["fir", "irs", "rst", "st4", "t42", "424", "242"]);
        let sample = |piece: &str| match piece {
            "fir" | "irs" | "rst" => 1999,
            "st4" => 222,
            "t42" => 22,
            _ => 2,
        };
        assert_eq!(rarest(&pieces, sample), ["424", "242"]);
        assert_eq!(rarest(&trigrams("añb"), sample), ["añb"]);
        assert!(rarest(&trigrams("ab"), sample).is_empty());
        assert_eq!(fts_query(&["a\"b", "NEAR"]), "\"a\"\"b\" AND \"NEAR\"");
    }

    #[test]
    fn wildcards_in_a_search_are_literal() {
        assert_eq!(contains_pattern("50%_A\\"), "%50\\%\\_a\\\\%");
    }

    /// A registry on a new SQLite file with `people` created in order
    /// (first name, last name, email), the last the newest, whose search
    /// reads the newest `window` before it asks the index.
    fn registry_of(
        runtime: &tokio::runtime::Runtime,
        dir: &tempfile::TempDir,
        people: &[(&str, &str, &str)],
        window: i64,
    ) -> Registry {
        use crate::registry::{Intent, Operation, Outcome};
        let settings = crate::configuration::RegistrySettings {
            url: format!("sqlite://{}/registry.sqlite3", dir.path().display()).into(),
            ..Default::default()
        };
        let registry = {
            let _in = runtime.enter();
            Registry {
                search_window: window,
                ..Registry::new(&settings).unwrap()
            }
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

    /// The first page of `q`, `limit` at a time.
    fn search(
        runtime: &tokio::runtime::Runtime,
        registry: &Registry,
        q: &str,
        limit: u32,
    ) -> Vec<String> {
        pages(runtime, registry, q, limit, 1)
    }

    /// Every page of `q`, `limit` at a time, following the cursors.
    fn every_page(
        runtime: &tokio::runtime::Runtime,
        registry: &Registry,
        q: &str,
        limit: u32,
    ) -> Vec<String> {
        pages(runtime, registry, q, limit, usize::MAX)
    }

    /// Up to `most` pages of `q`, following the cursors.
    fn pages(
        runtime: &tokio::runtime::Runtime,
        registry: &Registry,
        q: &str,
        limit: u32,
        most: usize,
    ) -> Vec<String> {
        let mut filter = CustomerFilter {
            q: Some(q.to_owned()),
            limit,
            ..Default::default()
        };
        let mut found = Vec::new();
        for _ in 0..most {
            let page = runtime.block_on(registry.customers(&filter)).unwrap();
            found.extend(
                page.items
                    .into_iter()
                    .map(|c| c.customer_id.unwrap_or_default()),
            );
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => break,
            }
        }
        found
    }

    /// With a window of 2 the first step reads the newest two and the
    /// index answers the rest; with 1,000 the first step reads everyone.
    #[test]
    fn the_text_search_finds_every_word_as_a_substring_through_either_step() {
        for window in [2, 1000] {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let registry = registry_of(&runtime, &dir, &PEOPLE, window);
            finds_every_word(&runtime, &registry);
        }
    }

    fn finds_every_word(runtime: &tokio::runtime::Runtime, registry: &Registry) {
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
            assert_eq!(search(runtime, registry, q, 50), want, "q={q}");
            // A page of one: the first step fills it when two match.
            let first: Vec<String> = want.iter().take(1).cloned().collect();
            assert_eq!(search(runtime, registry, q, 1), first, "q={q}, limit=1");
            assert_eq!(
                every_page(runtime, registry, q, 1),
                want,
                "q={q}, by cursor"
            );
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
                let registry = registry.get_or_init(|| registry_of(runtime, dir, &PEOPLE, 2));
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

        /// Any word's pieces are three characters each, one per position.
        #[test]
        fn any_word_splits_into_its_pieces(word in "\\PC{0,12}") {
            let pieces = trigrams(&word);
            let chars = word.to_lowercase().chars().count();
            proptest::prop_assert_eq!(pieces.len(), chars.saturating_sub(2));
            proptest::prop_assert!(pieces.iter().all(|p| p.chars().count() == 3));
            proptest::prop_assert!(rarest(&pieces, |p| p.len() as i64).len() <= 2);
        }
    }
}
