//! The docs must stay true: every repository path, link, template name and environment
//! variable that README.md and docs/*.md name must exist. Plain file reading, no emulator.
//!
//! What counts as a *code span* below: the text between a pair of backticks on a line outside
//! a fenced block, and every line inside a fenced block (```), whose commands and maps name
//! paths too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The workspace root (tests/ is one level below it, as template.rs finds template.yaml).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every docs/*.md, as (path relative to the root, text), in a stable order.
fn docs() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_owned()];
    let mut pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    names.extend(pages);
    names
        .into_iter()
        .map(|n| {
            let text =
                std::fs::read_to_string(root().join(&n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, text)
        })
        .collect()
}

/// A line of a page: its 1-based number, its text, and whether it is inside a fenced block
/// (fence lines themselves are left out).
struct Line<'a> {
    number: usize,
    text: &'a str,
    fenced: bool,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, text) in text.lines().enumerate() {
        if text.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        out.push(Line {
            number: i + 1,
            text,
            fenced,
        });
    }
    out
}

/// The inline code spans of a line outside fences: (byte offset of the opening backtick,
/// byte offset just after the closing one, the text between). An unpaired backtick opens none.
fn inline_spans(line: &str) -> Vec<(usize, usize, &str)> {
    let ticks: Vec<usize> = line.match_indices('`').map(|(i, _)| i).collect();
    ticks
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1] + 1, &line[pair[0] + 1..pair[1]]))
        .collect()
}

/// Every code span of a page: each fenced line whole, each inline span.
fn code_spans(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for line in lines(text) {
        if line.fenced {
            out.push((line.number, line.text));
        } else {
            out.extend(
                inline_spans(line.text)
                    .into_iter()
                    .map(|(_, _, s)| (line.number, s)),
            );
        }
    }
    out
}

/// The markdown link targets of a page outside fences: `[text](target)`.
fn link_targets(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for line in lines(text).into_iter().filter(|l| !l.fenced) {
        let mut rest = line.text;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after
                .find(|c: char| c == ')' || c.is_whitespace())
                .unwrap_or(after.len());
            out.push((line.number, &after[..end]));
            rest = &after[end..];
        }
    }
    out
}

/// Where a token names something to check, not a placeholder or a pattern.
fn is_placeholder(token: &str) -> bool {
    token.contains(['<', '*', '{', '$']) || token.contains("...")
}

/// Directories a repository path starts with, and the top-level files a token may be.
const PATH_PREFIXES: [&str; 10] = [
    "scripts/",
    "tools/",
    "functions/",
    "shared/",
    "tests/",
    "docs/",
    "events/",
    "schemas/",
    "fuzz/",
    ".ci/",
];
const TOP_LEVEL_FILES: [&str; 7] = [
    "template.yaml",
    "samconfig.toml",
    "Cargo.toml",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "rust-toolchain.toml",
];

/// A word of a code span as a path: surrounding punctuation, an `#anchor`, `:line` suffixes
/// and a trailing `/` removed.
fn as_path(word: &str) -> &str {
    let word = word.trim_start_matches(['(', '[', '"', '\'']);
    let word = word.trim_end_matches([')', ']', '"', '\'', ',', ';', '.', ':']);
    let mut word = word.split('#').next().unwrap_or("");
    // `file.rs:42` or `file.rs:42:7`
    while let Some((head, tail)) = word.rsplit_once(':') {
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            word = head;
        } else {
            break;
        }
    }
    word.trim_end_matches('/')
}

fn looks_like_a_repo_path(path: &str) -> bool {
    PATH_PREFIXES.iter().any(|p| path.starts_with(p)) || TOP_LEVEL_FILES.contains(&path)
}

/// Every repository path README.md and docs/*.md name exists.
///
/// Checked: each whitespace-separated word of a code span that, once cleaned (see
/// [`as_path`]), starts with one of [`PATH_PREFIXES`] or is one of [`TOP_LEVEL_FILES`],
/// resolved from the workspace root; and each relative markdown link target (not `http:` and
/// the like, not a bare `#anchor`), resolved from the page's own directory. Words and targets
/// with `<`, `*`, `{`, `$` or `...` are placeholders and skipped.
#[test]
fn every_path_the_docs_name_exists() {
    let root = root();
    let mut missing = BTreeSet::new();
    for (page, text) in docs() {
        for (line, span) in code_spans(&text) {
            for word in span.split_whitespace() {
                if is_placeholder(word) {
                    continue;
                }
                let path = as_path(word);
                if looks_like_a_repo_path(path) && !root.join(path).exists() {
                    missing.insert(format!("{page}:{line}: `{path}`"));
                }
            }
        }
        let dir = Path::new(&page)
            .parent()
            .unwrap_or(Path::new(""))
            .to_owned();
        for (line, target) in link_targets(&text) {
            if is_external(target) || target.starts_with('#') || is_placeholder(target) {
                continue;
            }
            let path = target.split('#').next().unwrap_or("").trim_end_matches('/');
            if !root.join(&dir).join(path).exists() {
                missing.insert(format!("{page}:{line}: link ({target})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n  {}",
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// `https://...`, `mailto:...`: a scheme of letters before a colon.
fn is_external(target: &str) -> bool {
    target.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic())
    })
}

/// The anchors GitHub gives a page's headings: lowercased, spaces to `-`, every character but
/// letters, digits, `-` and `_` dropped; a repeated heading gets `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut out = BTreeSet::new();
    for line in lines(text).into_iter().filter(|l| !l.fenced) {
        let hashes = line.text.bytes().take_while(|b| *b == b'#').count();
        if hashes == 0 || hashes > 6 || !line.text[hashes..].starts_with(' ') {
            continue;
        }
        let slug: String = line.text[hashes..]
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// Every `#anchor` a link of README.md or docs/*.md points at, on the same page or another
/// markdown page of the repository, is a heading of that page.
#[test]
fn every_anchor_the_docs_link_to_exists() {
    let root = root();
    let mut broken = BTreeSet::new();
    for (page, text) in docs() {
        let dir = Path::new(&page)
            .parent()
            .unwrap_or(Path::new(""))
            .to_owned();
        for (line, target) in link_targets(&text) {
            let Some((file, anchor)) = target.split_once('#') else {
                continue;
            };
            if is_external(target) || is_placeholder(target) {
                continue;
            }
            let linked = if file.is_empty() {
                root.join(&page)
            } else {
                root.join(&dir).join(file)
            };
            if linked.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let Ok(linked_text) = std::fs::read_to_string(&linked) else {
                continue; // a missing page is every_path_the_docs_name_exists's to report
            };
            if !anchors(&linked_text).contains(anchor) {
                broken.insert(format!("{page}:{line}: ({target})"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to headings that do not exist:\n  {}",
        broken.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// The logical ids under template.yaml's `Parameters`, `Outputs` and `Resources`: the keys at
/// two spaces' indent below each of those top-level keys.
fn template_names() -> BTreeSet<String> {
    let t = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let mut section = "";
    let mut names = BTreeSet::new();
    for line in t.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            section = line.split(':').next().unwrap_or("");
            continue;
        }
        if !matches!(section, "Parameters" | "Outputs" | "Resources") {
            continue;
        }
        let Some(key) = line.strip_prefix("  ") else {
            continue;
        };
        if let Some((name, _)) = key.split_once(':') {
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// `CanopyTeamId`, `Api5xxAlarm`: an upper-case ASCII letter, then letters and digits with at
/// least one more upper-case letter (so `Webhooks` or `PUT` are not).
fn is_camel_case(token: &str) -> bool {
    let bytes = token.as_bytes();
    bytes.len() > 1
        && bytes[0].is_ascii_uppercase()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric())
        && bytes[1..]
            .iter()
            .any(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes[1..].iter().any(|b| b.is_ascii_uppercase())
}

const KINDS: [&str; 3] = ["parameter", "output", "alarm"];

/// `parameter`, `Outputs`, `Alarms`: one of [`KINDS`], singular or plural, any case.
fn is_kind_word(word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    let word = word.strip_suffix('s').unwrap_or(&word);
    KINDS.contains(&word)
}

/// Every template parameter, output and alarm README.md and docs/*.md name exists in
/// template.yaml (as a parameter, an output or a resource).
///
/// A backticked CamelCase token (see [`is_camel_case`]) outside fenced blocks is taken as such
/// a name when
/// 1. the word right before it is `parameter(s)`, `output(s)` or `alarm(s)`, separated from it
///    by spaces or a colon only (`output `AlarmTopic``, `Alarm: `Api5xxAlarm``), or the word
///    right after it is, separated by spaces only (`the `ReconnectApiUrl` output`); a
///    parenthesis in between breaks the link (`outputs (`DescribeStacks`)` names an API call);
/// 2. or it ends in `Alarm` (only alarms are named so);
/// 3. or it sits anywhere in a section (a heading and what follows it up to the next heading
///    of the same or a higher level) whose heading says `parameter`, `output` or `alarm`: the
///    configuration's template parameters, the deploy page's outputs, the alarm table.
///
/// Prose elsewhere (API names such as `PutEvents`, types such as `SigningKeys`, business
/// events such as `PullRefreshed`) is left alone.
#[test]
fn every_template_name_the_docs_give_exists() {
    let names = template_names();
    assert!(
        names.contains("CanopyTeamId")
            && names.contains("StateTable")
            && names.contains("WebhookUrl"),
        "the template reader found no parameters, resources or outputs: {names:?}"
    );
    let mut missing = BTreeSet::new();
    for (page, text) in docs() {
        // The headings above the current line: (level, whether it names one of KINDS).
        let mut headings: Vec<(usize, bool)> = Vec::new();
        for line in lines(&text).into_iter().filter(|l| !l.fenced) {
            let hashes = line.text.bytes().take_while(|b| *b == b'#').count();
            if (1..=6).contains(&hashes) && line.text[hashes..].starts_with(' ') {
                let heading = line.text[hashes..].to_ascii_lowercase();
                headings.retain(|(level, _)| *level < hashes);
                headings.push((hashes, KINDS.iter().any(|k| heading.contains(k))));
                continue;
            }
            let in_section = headings.iter().any(|(_, kind)| *kind);
            for (start, end, token) in inline_spans(line.text) {
                if !is_camel_case(token) || names.contains(token) {
                    continue;
                }
                let before = line.text[..start].trim_end_matches([' ', ':']);
                let word_before = before
                    .rsplit(|c: char| !c.is_ascii_alphabetic())
                    .next()
                    .unwrap_or("");
                let word_before = if before.ends_with(|c: char| c.is_ascii_alphabetic()) {
                    word_before
                } else {
                    ""
                };
                let after = line.text[end..].trim_start_matches(' ');
                let word_after = after
                    .split(|c: char| !c.is_ascii_alphabetic())
                    .next()
                    .unwrap_or("");
                if is_kind_word(word_before)
                    || is_kind_word(word_after)
                    || token.ends_with("Alarm")
                    || in_section
                {
                    missing.insert(format!("{page}:{}: `{token}`", line.number));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "parameters, outputs or alarms named in the docs that template.yaml does not have:\n  {}",
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// `TABLE_NAME`: upper-case ASCII letters, digits and underscores, with an underscore.
fn is_upper_snake(token: &str) -> bool {
    token.contains('_')
        && token.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && token
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The text of every `.rs` file below `dir`.
fn rust_sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push((path, text));
            }
        }
    }
}

/// Every environment variable docs/configuration.md documents is read by the functions' code.
///
/// The variables are the UPPER_SNAKE backticked tokens of the first column of the tables in
/// its "Environment variables" section; each must occur, quoted (`"NAME"`), in a `.rs` file
/// under shared/src or functions/*/src. Left out: the rows whose default column says
/// `(Lambda)` for the `AWS_*` variables and `RUST_LOG`, which the Lambda runtime provides and
/// libraries may read instead.
#[test]
fn every_environment_variable_documented_is_read_by_the_code() {
    let root = root();
    let page =
        std::fs::read_to_string(root.join("docs/configuration.md")).expect("docs/configuration.md");
    let mut documented = BTreeSet::new();
    let mut in_section = false;
    for line in lines(&page).into_iter().filter(|l| !l.fenced) {
        if line.text.starts_with('#') {
            in_section = line
                .text
                .trim_start_matches('#')
                .trim()
                .eq_ignore_ascii_case("environment variables");
            continue;
        }
        let row = line.text.trim();
        if !in_section || !row.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let Some(first) = cells.first() else {
            continue;
        };
        let provided_by_lambda = cells.last().is_some_and(|c| *c == "(Lambda)");
        for (_, _, token) in inline_spans(first) {
            if !is_upper_snake(token) {
                continue;
            }
            if provided_by_lambda && (token.starts_with("AWS_") || token == "RUST_LOG") {
                continue;
            }
            documented.insert(token.to_owned());
        }
    }
    assert!(
        documented.contains("TABLE_NAME"),
        "no environment table found in docs/configuration.md: {documented:?}"
    );

    let mut sources = Vec::new();
    rust_sources(&root.join("shared/src"), &mut sources);
    for entry in std::fs::read_dir(root.join("functions"))
        .expect("functions/")
        .flatten()
    {
        rust_sources(&entry.path().join("src"), &mut sources);
    }
    assert!(
        !sources.is_empty(),
        "no sources under shared/src and functions/*/src"
    );
    let unread: Vec<&String> = documented
        .iter()
        .filter(|name| {
            let quoted = format!("\"{name}\"");
            !sources.iter().any(|(_, text)| text.contains(&quoted))
        })
        .collect();
    assert!(
        unread.is_empty(),
        "variables docs/configuration.md documents that no code under shared/src or functions/*/src reads: {unread:?}"
    );
}

#[test]
fn the_docs_readers_find_what_they_look_for() {
    // The readers above, on text whose answers are known.
    assert_eq!(as_path("(scripts/lib.sh),"), "scripts/lib.sh");
    assert_eq!(as_path("shared/src/lib.rs:12:4"), "shared/src/lib.rs");
    assert_eq!(as_path("docs/deploy.md#sources"), "docs/deploy.md");
    assert_eq!(as_path("tools/canopy-ops/"), "tools/canopy-ops");
    assert!(is_placeholder("functions/<name>") && is_placeholder("docs/*.md"));
    assert_eq!(
        inline_spans("a `b` c `d e` `f"),
        vec![(2, 5, "b"), (8, 13, "d e")]
    );
    assert_eq!(
        link_targets("[x](a.md#b) and [y](https://e.x/)"),
        vec![(1, "a.md#b"), (1, "https://e.x/")]
    );
    assert!(is_external("https://e.x/") && !is_external("deploy.md#a:b") && !is_external("a.md"));
    let a = anchors(
        "# Run the pipeline: `scripts/run-local.sh`\n## AWS's limits, enforced\n## X\n## X\n",
    );
    assert!(a.contains("run-the-pipeline-scriptsrun-localsh"), "{a:?}");
    assert!(
        a.contains("awss-limits-enforced") && a.contains("x") && a.contains("x-1"),
        "{a:?}"
    );
    assert!(is_camel_case("Api5xxAlarm") && is_camel_case("CanopyTeamId"));
    assert!(!is_camel_case("Webhooks") && !is_camel_case("PUT") && !is_camel_case("TABLE_NAME"));
    assert!(is_kind_word("Outputs") && is_kind_word("alarm") && !is_kind_word("outbox"));
    assert!(is_upper_snake("RUST_LOG") && !is_upper_snake("CANOPY") && !is_upper_snake("Rust_LOG"));
}
