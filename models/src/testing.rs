//! What the workspace's tests share beyond fixtures: checks whose failure shows what was
//! checked. Not used by the suite itself.

/// Asserts that `text` contains every one of `needles`, showing the text when one is missing.
#[track_caller]
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}
