//! The language table: every language a run may ask for, and the runner image that runs it.

use crate::exec::ExecArgs;

/// One language of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language {
    /// What a run names (`RunSpec::language`), and the launcher's argument.
    pub id: &'static str,
    /// What the languages list shows.
    pub name: &'static str,
    /// The runner image's name between the prefix and the tag (C and C++ share `gcc`).
    pub runner: &'static str,
}

/// Every language, in the order the languages list shows them.
pub const LANGUAGES: [Language; 10] = [
    Language { id: "python", name: "Python", runner: "python" },
    Language { id: "javascript", name: "JavaScript (Node.js)", runner: "node" },
    Language { id: "c", name: "C", runner: "gcc" },
    Language { id: "cpp", name: "C++", runner: "gcc" },
    Language { id: "java", name: "Java", runner: "java" },
    Language { id: "go", name: "Go", runner: "go" },
    Language { id: "rust", name: "Rust", runner: "rust" },
    Language { id: "ruby", name: "Ruby", runner: "ruby" },
    Language { id: "php", name: "PHP", runner: "php" },
    Language { id: "csharp", name: "C#", runner: "mono" },
];

impl Language {
    /// The language with this id, compared exactly: `Python` or ` python` is no language.
    pub fn find(id: &str) -> Option<&'static Language> {
        LANGUAGES.iter().find(|language| language.id == id)
    }

    /// Its place in [`LANGUAGES`], for per-language state kept in arrays.
    pub fn index(&self) -> usize {
        LANGUAGES.iter().position(|language| language.id == self.id).unwrap_or_default()
    }

    /// The runner image, `{prefix}{runner}:{tag}`.
    pub fn image(&self, args: &ExecArgs) -> String {
        format!("{}{}:{}", args.image_prefix, self.runner, args.image_tag)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        exec: ExecArgs,
    }

    #[test]
    fn find_is_exact() {
        assert_eq!(Language::find("python").map(|l| l.runner), Some("python"));
        assert_eq!(Language::find("cpp").map(|l| l.runner), Some("gcc"));
        assert_eq!(Language::find("csharp").map(|l| l.name), Some("C#"));
        for id in ["Python", " python", "python ", "py", "", "c++", "PYTHON"] {
            assert_eq!(Language::find(id), None, "{id:?}");
        }
    }

    #[test]
    fn index_is_the_place_in_the_table() {
        for (at, language) in LANGUAGES.iter().enumerate() {
            assert_eq!(language.index(), at);
        }
    }

    #[test]
    fn image_is_prefix_runner_tag() {
        let flags = Flags::parse_from(["test", "--exec-image-prefix", "reg/cc-", "--exec-image-tag", "7"]);
        assert_eq!(LANGUAGES[1].image(&flags.exec), "reg/cc-node:7");
        let defaults = Flags::parse_from(["test"]);
        assert_eq!(LANGUAGES[0].image(&defaults.exec), "codecrafter-runner-python:1");
    }
}
