//! Text analysis, done in the server for both backends (tantivy and Elasticsearch receive the
//! same pre-analysed terms, so they match the same way): Latin words lower-cased, Chinese runs
//! segmented into words by jieba (search mode for documents: a long word also yields the words
//! inside it), and every Chinese word also as its pinyin, full (`shujuku`) and initials (`sjk`).
//! Matching rules live here too ([`Matcher`]): typos allowed by word length, the last word of a
//! query matched as a prefix, adjacent query words also tried joined (`postgre sql`).

use jieba_rs::Jieba;
use pinyin::ToPinyin;
use std::sync::LazyLock;

/// The dictionary segmenter, loaded once (about 0.2 s).
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Loads the segmenter's dictionary now rather than on the first search.
pub fn warm_up() {
    LazyLock::force(&JIEBA);
}

/// Longest word kept (longer runs are not words people type).
const MAX_WORD_CHARS: usize = 40;

/// One word of a text, with its byte range in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// Chinese (Han) characters, so it also has a pinyin form.
    pub han: bool,
}

fn is_han(c: char) -> bool {
    matches!(c,
        '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2A6DF}')
}

/// Whether `text` holds a Chinese (Han) character.
pub fn has_han(text: &str) -> bool {
    text.chars().any(is_han)
}

/// Splits `text` into runs: `(start, end, han)` for each run of word characters.
fn runs(text: &str) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, bool)> = None;
    for (i, c) in text.char_indices() {
        let kind = if is_han(c) {
            Some(true)
        } else if c.is_alphanumeric() {
            Some(false)
        } else {
            None
        };
        match (current, kind) {
            (Some((_, han)), Some(k)) if han == k => {}
            (Some((start, han)), next) => {
                out.push((start, i, han));
                current = next.map(|k| (i, k));
            }
            (None, next) => current = next.map(|k| (i, k)),
        }
    }
    if let Some((start, han)) = current {
        out.push((start, text.len(), han));
    }
    out
}

fn words(text: &str, search_mode: bool) -> Vec<Word> {
    let mut out = Vec::new();
    for (start, end, han) in runs(text) {
        let run = &text[start..end];
        if !han {
            if run.chars().count() <= MAX_WORD_CHARS {
                out.push(Word { text: run.to_lowercase(), start, end, han: false });
            }
            continue;
        }
        let tokens = if search_mode { JIEBA.cut_for_search(run, true) } else { JIEBA.cut(run, true) };
        for token in tokens {
            if token.word.chars().all(is_han) && !token.word.is_empty() {
                out.push(Word {
                    text: token.word.to_string(),
                    start: start + token.byte_start,
                    end: start + token.byte_end,
                    han: true,
                });
            }
        }
    }
    out
}

/// The words a document's text is indexed under, in order (search mode: `数据库设计` gives
/// `数据`, `据库`, `数据库`, `设计`).
pub fn document_words(text: &str) -> Vec<Word> {
    words(text, true)
}

/// The words of what someone typed (default mode: one reading of each Chinese run).
pub fn query_words(text: &str) -> Vec<String> {
    words(text, false).into_iter().map(|w| w.text).collect()
}

/// A Chinese word as pinyin: full (`shujuku`) and initials (`sjk`). `ü` is written `v`, as on a
/// keyboard. Characters with several readings take their most common one.
pub fn pinyin(word: &str) -> (String, String) {
    let (mut full, mut initials) = (String::new(), String::new());
    for (c, reading) in word.chars().zip(word.to_pinyin()) {
        match reading {
            Some(p) => {
                full.extend(p.plain().chars().map(|c| if c == 'ü' { 'v' } else { c }));
                initials.extend(p.first_letter().chars().map(|c| if c == 'ü' { 'v' } else { c }));
            }
            None => {
                for lower in c.to_lowercase() {
                    full.push(lower);
                    initials.push(lower);
                }
            }
        }
    }
    (full, initials)
}

/// The terms a text field is indexed under: its words, lower-cased.
pub fn terms(text: &str) -> Vec<String> {
    document_words(text).into_iter().map(|w| w.text).collect()
}

/// The pinyin terms of a text field: full and initials of each Chinese word, and of each run of
/// Chinese words as a whole (a name like 王数据 is typed `wangshuju` or `wsj`).
pub fn pinyin_terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |han: &str| {
        let (full, initials) = pinyin(han);
        if !out.contains(&full) {
            out.push(full);
        }
        if initials.chars().count() > 1 && !out.contains(&initials) {
            out.push(initials);
        }
    };
    for word in document_words(text).into_iter().filter(|w| w.han) {
        push(&word.text);
    }
    for (start, end, han) in runs(text) {
        if han && text[start..end].chars().count() <= MAX_WORD_CHARS {
            push(&text[start..end]);
        }
    }
    out
}

/// Typos allowed in a query word, by its length in characters, as Meilisearch does: 1–4 none,
/// 5–8 one, 9 and more two. Chinese words are matched exactly.
pub fn typos(word: &str) -> u8 {
    if has_han(word) {
        return 0;
    }
    match word.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// Edit distance between `a` and `b` (adjacent transpositions count one), or None past `max`.
pub fn distance_within(a: &str, b: &str, max: u8) -> Option<u8> {
    if a.chars().count().abs_diff(b.chars().count()) > usize::from(max) {
        return None;
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let max = usize::from(max);
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    // Damerau (optimal string alignment) over three rows.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = current[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut value = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                value = value.min(before[j - 2] + 1);
            }
            current[j] = value;
            row_min = row_min.min(value);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let d = previous[b.len()];
    (d <= max).then_some(d as u8)
}

/// One word of a query as it must be matched.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryWord {
    pub text: String,
    /// Typos allowed ([`typos`]).
    pub typos: u8,
    /// The last word of the query: also matches terms it begins (as people type).
    pub prefix: bool,
}

impl QueryWord {
    /// Whether an indexed term matches this word.
    pub fn matches(&self, term: &str) -> bool {
        if term == self.text || (self.prefix && term.starts_with(&self.text)) {
            return true;
        }
        if self.typos == 0 {
            return false;
        }
        if distance_within(&self.text, term, self.typos).is_some() {
            return true;
        }
        // A prefix, with the same typos allowed within the typed part.
        self.prefix && {
            let typed = self.text.chars().count();
            let head = term.char_indices().nth(typed).map_or(term, |(end, _)| &term[..end]);
            distance_within(&self.text, head, self.typos).is_some()
        }
    }
}

/// A parsed query: the ways it can be read. Each reading is a list of words a document must
/// all match; the first reading is the words as typed, the others join two adjacent words
/// (`postgre sql` is also read `postgresql`).
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub readings: Vec<Vec<QueryWord>>,
}

/// Most readings with two words joined that a query gets (each one is a whole query).
const MAX_JOINED_READINGS: usize = 3;

/// Longest query, in words (the rest is ignored).
pub const MAX_QUERY_WORDS: usize = 10;

impl Matcher {
    pub fn parse(query: &str) -> Self {
        let mut typed = query_words(query);
        typed.truncate(MAX_QUERY_WORDS);
        if typed.is_empty() {
            return Matcher::default();
        }
        // The last word is a prefix only while it is being typed (no space after it).
        let open_ended = query.chars().last().is_some_and(|c| c.is_alphanumeric());
        let reading = |words: Vec<String>| -> Vec<QueryWord> {
            let n = words.len();
            words
                .into_iter()
                .enumerate()
                .map(|(i, text)| QueryWord { typos: typos(&text), prefix: open_ended && i + 1 == n, text })
                .collect()
        };
        let mut readings = vec![reading(typed.clone())];
        for i in 0..typed.len().saturating_sub(1) {
            if readings.len() > MAX_JOINED_READINGS {
                break;
            }
            if has_han(&typed[i]) || has_han(&typed[i + 1]) {
                continue;
            }
            let mut joined = typed.clone();
            let second = joined.remove(i + 1);
            joined[i].push_str(&second);
            readings.push(reading(joined));
        }
        Matcher { readings }
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// Whether `term` matches some word of some reading.
    pub fn matches(&self, term: &str) -> bool {
        self.readings.iter().flatten().any(|word| word.matches(term))
    }

    /// A short extract of `text` around its first match, matches wrapped in `<mark>`…`</mark>`
    /// and the rest HTML-escaped; None when nothing in it matches.
    pub fn highlight(&self, text: &str, max_chars: usize) -> Option<String> {
        self.highlighter().highlight(text, max_chars)
    }

    /// Highlights many texts for this query (one page of hits): each distinct word of the texts
    /// is matched once.
    pub fn highlighter(&self) -> Highlighter<'_> {
        let latin = self.readings.iter().flatten().any(|w| !has_han(&w.text));
        Highlighter { matcher: self, latin, seen: Default::default() }
    }
}

/// See [`Matcher::highlighter`].
pub struct Highlighter<'a> {
    matcher: &'a Matcher,
    /// Some query word is not Chinese (only those can match a Chinese word's pinyin).
    latin: bool,
    /// Whether each word met so far matches.
    seen: std::cell::RefCell<std::collections::HashMap<String, bool>>,
}

impl Highlighter<'_> {
    /// Whether a word of a text matches (directly or through its pinyin).
    fn word_matches(&self, word: &Word) -> bool {
        if let Some(known) = self.seen.borrow().get(&word.text) {
            return *known;
        }
        let matcher = self.matcher;
        let matches = matcher.matches(&word.text)
            || (word.han && self.latin && {
                let (full, initials) = pinyin(&word.text);
                matcher.matches(&full) || (initials.chars().count() > 1 && matcher.matches(&initials))
            });
        self.seen.borrow_mut().insert(word.text.clone(), matches);
        matches
    }

    /// A short extract of `text` around its first match, matches wrapped in `<mark>`…`</mark>`
    /// and the rest HTML-escaped; None when nothing in it matches.
    pub fn highlight(&self, text: &str, max_chars: usize) -> Option<String> {
        if self.matcher.is_empty() {
            return None;
        }
        let mut found: Vec<(usize, usize)> =
            document_words(text).into_iter().filter(|w| self.word_matches(w)).map(|w| (w.start, w.end)).collect();
        found.sort_unstable();
        // Search-mode words overlap (数据, 数据库): one mark over each overlapping group.
        let mut marked: Vec<(usize, usize)> = Vec::new();
        for (start, end) in found {
            match marked.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => marked.push((start, end)),
            }
        }
        let first = marked.first()?.0;
        // A window of `max_chars` characters starting a little before the first match.
        let lead = 20.min(max_chars / 4);
        let start = text[..first].char_indices().rev().nth(lead.saturating_sub(1)).map(|(i, _)| i).unwrap_or(0);
        let start = if text[..first].chars().count() <= lead { 0 } else { start };
        let end = text[start..].char_indices().nth(max_chars).map(|(i, _)| start + i).unwrap_or(text.len());
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        }
        let mut at = start;
        for (from, to) in marked.into_iter().filter(|(from, _)| *from >= start && *from < end) {
            let to = to.min(end);
            escape_into(&mut out, &text[at..from]);
            out.push_str("<mark>");
            escape_into(&mut out, &text[from..to]);
            out.push_str("</mark>");
            at = to;
        }
        escape_into(&mut out, &text[at..end]);
        if end < text.len() {
            out.push('…');
        }
        Some(out)
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_segmented_and_has_pinyin() {
        assert!(terms("PostgreSQL 数据库设计").contains(&"数据库".to_string()));
        assert!(terms("PostgreSQL 数据库设计").contains(&"postgresql".to_string()));
        assert_eq!(pinyin("数据库"), ("shujuku".to_string(), "sjk".to_string()));
        let py = pinyin_terms("PostgreSQL 数据库设计");
        assert!(py.contains(&"shujuku".to_string()) && py.contains(&"sjk".to_string()), "{py:?}");
    }

    #[test]
    fn typos_by_length_and_prefix_of_the_last_word() {
        let m = Matcher::parse("databse");
        assert!(m.matches("database"));
        assert!(!Matcher::parse("rust").matches("rest"));
        assert!(Matcher::parse("postg").matches("postgresql"));
        assert!(!Matcher::parse("postg ").matches("postgresql"));
        assert!(Matcher::parse("postgre sql").matches("postgresql"));
        assert_eq!(distance_within("abcd", "abdc", 1), Some(1));
        assert_eq!(distance_within("kitten", "sitting", 2), None);
        assert_eq!(distance_within("kitten", "sitting", 3), Some(3));
    }

    #[test]
    fn highlights_mark_matches_and_escape_the_rest() {
        let m = Matcher::parse("shujuku");
        let out = m.highlight("学习 <PostgreSQL> 数据库设计", 100).expect("a match");
        assert!(out.contains("<mark>数据库</mark>"), "{out}");
        assert!(out.contains("&lt;PostgreSQL&gt;"), "{out}");
        assert_eq!(Matcher::parse("zzz").highlight("nothing here", 100), None);
    }
}
