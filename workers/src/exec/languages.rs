//! PLACEHOLDER until the Docker backend lands (replaced at merge).
pub struct Language {
    pub id: &'static str,
    pub name: &'static str,
    pub runner: &'static str,
}
pub const ALL: &[Language] = &[Language { id: "python", name: "Python", runner: "python" }];
pub fn find(id: &str) -> Option<&'static Language> {
    ALL.iter().find(|language| language.id == id)
}
