//! Container names: docker's rule for what a name may be, and generated names for
//! containers created without one.

use crate::error::{Error, Result};

/// Checks a name (an optional leading `/` is dropped) and returns it.
pub fn validate(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = bare.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !first_ok || !rest_ok {
        return Err(Error::InvalidArgument(format!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
    }
    Ok(bare.to_string())
}

const ADJECTIVES: &[&str] = &[
    "admiring", "amazing", "awesome", "blissful", "bold", "brave", "busy", "charming", "clever", "compassionate",
    "confident", "cool", "dazzling", "determined", "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant",
    "epic", "fervent", "festive", "flamboyant", "focused", "friendly", "frosty", "funny", "gallant", "gifted",
    "goofy", "gracious", "great", "happy", "hopeful", "infallible", "inspiring", "intelligent", "interesting",
    "jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing", "naughty",
    "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pensive", "practical",
    "priceless", "quirky", "quizzical", "relaxed", "reverent", "romantic", "serene", "sharp", "silly",
    "sleepy", "stoic", "strange", "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled",
    "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous",
    "zen",
];

const NOUNS: &[&str] = &[
    "albatross", "alder", "antelope", "aspen", "badger", "beacon", "birch", "bison", "canyon", "cedar",
    "comet", "condor", "coral", "cypress", "delta", "dolphin", "dune", "eagle", "ember", "falcon", "fern",
    "fjord", "gazelle", "geyser", "glacier", "granite", "harbor", "hawk", "heron", "ibex", "island", "jackal",
    "jaguar", "juniper", "kestrel", "koala", "lagoon", "lantern", "larch", "lemur", "lynx", "maple", "marten",
    "meadow", "meteor", "nebula", "newt", "oasis", "ocelot", "orca", "osprey", "otter", "panther", "pebble",
    "pelican", "pine", "plover", "prairie", "puffin", "quail", "quartz", "raven", "reef", "river", "robin",
    "sequoia", "sparrow", "spruce", "summit", "swift", "tapir", "tern", "thistle", "tundra", "valley", "viper",
    "walrus", "willow", "wombat", "wren", "yak", "zebra",
];

/// A random `adjective_noun` name.
pub fn generate() -> String {
    let a = ADJECTIVES[rand::random_range(0..ADJECTIVES.len())];
    let n = NOUNS[rand::random_range(0..NOUNS.len())];
    format!("{a}_{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(validate("/web-1").unwrap(), "web-1");
        assert_eq!(validate("a.b_c").unwrap(), "a.b_c");
        for bad in ["", "a", "-x", "has space", "x/y", "é1"] {
            let e = validate(bad).unwrap_err().to_string();
            assert!(e.contains("Invalid container name"), "{bad}: {e}");
        }
        assert!(validate(&generate()).is_ok());
    }
}
