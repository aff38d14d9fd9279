//! Command-line parsing with docker's grammar (spf13/pflag): `--flag value`,
//! `--flag=value`, `-abc`, `-fvalue`, `--bool=false`, flags mixed with arguments, `--`;
//! with pflag's error messages and cobra's usage and help text.

use crate::error::{Error, Result};

/// The program name used in messages.
pub const BIN: &str = "berth";

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    String,
    /// Repeatable string.
    List,
    /// Repeatable `name=value` filter.
    Filter,
    Int,
    /// A value of a named type (`bytes`, `duration`, ...), checked by the flag's check.
    Value(&'static str),
}

/// Checks one value of a flag, returning it normalized (`-e A` becomes `A=value`) or
/// the reason it is not acceptable, in pflag's wording.
pub type Check = fn(&str) -> Result<String, String>;

/// One flag of a command.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub help: &'static str,
    /// Validation applied to every value as it is parsed.
    pub check: Option<Check>,
    /// Left out of `--help` (docker's deprecated spellings such as `--net`).
    pub hidden: bool,
    /// Values are stored under this flag's name instead (`--net` feeds `--network`).
    pub store_as: Option<&'static str>,
}

impl Flag {
    pub const fn new(
        long: &'static str,
        short: Option<char>,
        kind: Kind,
        help: &'static str,
    ) -> Flag {
        Flag {
            long,
            short,
            kind,
            help,
            check: None,
            hidden: false,
            store_as: None,
        }
    }

    /// A flag taking a value of the named type, checked by `check`.
    pub const fn typed(
        long: &'static str,
        short: Option<char>,
        type_name: &'static str,
        help: &'static str,
        check: Check,
    ) -> Flag {
        let mut flag = Flag::new(long, short, Kind::Value(type_name), help);
        flag.check = Some(check);
        flag
    }

    /// The same flag with every value checked by `check`.
    pub const fn checked(mut self, check: Check) -> Flag {
        self.check = Some(check);
        self
    }

    /// The same flag, left out of `--help`.
    pub const fn hidden(mut self) -> Flag {
        self.hidden = true;
        self
    }

    /// The same flag, storing its values under `name`.
    pub const fn store_as(mut self, name: &'static str) -> Flag {
        self.store_as = Some(name);
        self
    }

    fn key(&self) -> &'static str {
        match self.store_as {
            Some(name) => name,
            None => self.long,
        }
    }

    /// pflag's name for the flag in messages: "-f, --filter" or "--limit".
    fn display_name(&self) -> String {
        match self.short {
            Some(s) => format!("-{s}, --{}", self.long),
            None => format!("--{}", self.long),
        }
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Bool => "",
            Kind::String => "string",
            Kind::List => "list",
            Kind::Filter => "filter",
            Kind::Int => "int",
            Kind::Value(name) => name,
        }
    }
}

/// How many positional arguments a command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    None,
    Exact(usize),
    Min(usize),
    Max(usize),
    /// Between the two counts, inclusive.
    Range(usize, usize),
    Any,
}

/// A command's interface: its path ("image ls"), usage, flags and arguments.
#[derive(Debug, Clone)]
pub struct Command {
    pub path: String,
    pub usage: &'static str,
    pub short: &'static str,
    pub aliases: Vec<String>,
    pub flags: &'static [Flag],
    pub args: Args,
    /// Whether flags may follow arguments (`tag` stops at the first argument).
    pub interspersed: bool,
}

impl Command {
    /// "berth images".
    pub fn command_path(&self) -> String {
        if self.path.is_empty() {
            BIN.to_string()
        } else {
            format!("{BIN} {}", self.path)
        }
    }

    /// "berth images [OPTIONS] [REPOSITORY[:TAG]]".
    pub fn use_line(&self) -> String {
        if self.usage.is_empty() {
            self.command_path()
        } else {
            format!("{} {}", self.command_path(), self.usage)
        }
    }

    fn find_long(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.long == name)
    }

    fn find_short(&self, c: char) -> Option<&Flag> {
        self.flags.iter().find(|f| f.short == Some(c))
    }

    /// cobra's flag error: the message, the usage line and a pointer to `--help`; exit 125.
    fn flag_error(&self, message: &str) -> Error {
        Error::Flags(format!(
            "{message}\n\nUsage:  {}\n\nRun '{} --help' for more information",
            self.use_line(),
            self.command_path()
        ))
    }

    /// Checks the number of positional arguments, with docker's messages.
    pub fn check_args(&self, args: &[String]) -> Result<()> {
        let path = self.command_path();
        let use_line = self.use_line();
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        let message = match self.args {
            Args::None if !args.is_empty() => format!(
                "{BIN}: '{path}' accepts no arguments\n\nUsage:  {use_line}\n\nRun '{path} --help' for more information"
            ),
            Args::Exact(n) if args.len() != n => format!(
                "{BIN}: '{path}' requires {n} {}\n\nUsage:  {use_line}\n\nRun '{path} --help' for more information",
                plural(n)
            ),
            Args::Min(n) if args.len() < n => format!(
                "{BIN}: '{path}' requires at least {n} {}\n\nUsage:  {use_line}\n\nSee '{path} --help' for more information",
                plural(n)
            ),
            Args::Max(n) if args.len() > n => format!(
                "{BIN}: '{path}' requires at most {n} {}\n\nUsage:  {use_line}\n\nRun '{path} --help' for more information",
                plural(n)
            ),
            Args::Range(min, max) if args.len() < min || args.len() > max => format!(
                "{BIN}: '{path}' requires at least {min} and at most {max} {}\n\nUsage:  {use_line}\n\nRun '{path} --help' for more information",
                plural(max)
            ),
            _ => return Ok(()),
        };
        Err(Error::Usage(message))
    }

    /// The `--help` text, laid out as cobra does.
    pub fn help(&self) -> String {
        let mut out = format!("\nUsage:  {}\n\n{}\n", self.use_line(), self.short);
        if !self.aliases.is_empty() {
            out.push_str(&format!("\nAliases:\n  {}\n", self.aliases.join(", ")));
        }
        // (long name, flag column, description), sorted by long name as pflag does.
        let mut lines: Vec<(&str, String, &str)> = self
            .flags
            .iter()
            .filter(|f| !f.hidden && f.long != "help")
            .map(|f| {
                let mut name = match f.short {
                    Some(s) => format!("  -{s}, --{}", f.long),
                    None => format!("      --{}", f.long),
                };
                if !f.type_name().is_empty() {
                    name.push(' ');
                    name.push_str(f.type_name());
                }
                (f.long, name, f.help)
            })
            .collect();
        if self.find_short('h').is_some() {
            lines.push(("help", "      --help".to_string(), "Print usage"));
        } else {
            lines.push(("help", "  -h, --help".to_string(), "Print usage"));
        }
        lines.sort_by(|a, b| a.0.cmp(b.0));
        let width = lines.iter().map(|(_, n, _)| n.len()).max().unwrap_or(0);
        out.push_str("\nOptions:\n");
        for (_, name, help) in lines {
            out.push_str(&format!("{name:width$}   {help}\n"));
        }
        out
    }
}

/// Parsed flags and arguments.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub args: Vec<String>,
    values: Vec<(&'static str, String)>,
}

impl Parsed {
    fn last(&self, long: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == long)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the flag was given.
    pub fn changed(&self, long: &str) -> bool {
        self.values.iter().any(|(k, _)| *k == long)
    }

    /// How many different flags were given (cobra's `NFlag`).
    pub fn count(&self) -> usize {
        let mut keys: Vec<&str> = self.values.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    }

    /// A boolean flag's value (false when absent).
    pub fn bool(&self, long: &str) -> bool {
        self.last(long).is_some_and(|v| parse_bool(v) == Some(true))
    }

    /// A boolean flag's value with a default for when it is absent.
    pub fn bool_or(&self, long: &str, default: bool) -> bool {
        match self.last(long) {
            Some(v) => parse_bool(v) == Some(true),
            None => default,
        }
    }

    /// A string flag's last value ("" when absent).
    pub fn string(&self, long: &str) -> String {
        self.last(long).unwrap_or("").to_string()
    }

    /// All values of a repeatable flag.
    pub fn list(&self, long: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(k, _)| *k == long)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// An integer flag's value (0 when absent; validated while parsing).
    pub fn int(&self, long: &str) -> i64 {
        self.last(long).and_then(parse_int).unwrap_or(0)
    }
}

/// The result of parsing a command line.
#[derive(Debug)]
pub enum Outcome {
    Run(Parsed),
    Help,
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` for the decimal, hex, octal and binary forms.
fn parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        i64::from_str_radix(bin, 2).ok()?
    } else if let Some(oct) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        i64::from_str_radix(oct, 8).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -value } else { value })
}

fn check_value(cmd: &Command, flag: &Flag, value: &str) -> Result<String> {
    let invalid = |detail: String| {
        cmd.flag_error(&format!(
            "invalid argument \"{value}\" for \"{}\" flag: {detail}",
            flag.display_name()
        ))
    };
    match flag.kind {
        Kind::Bool if parse_bool(value).is_none() => Err(invalid(format!(
            "strconv.ParseBool: parsing \"{value}\": invalid syntax"
        ))),
        Kind::Int if parse_int(value).is_none() => Err(invalid(format!(
            "strconv.ParseInt: parsing \"{value}\": invalid syntax"
        ))),
        Kind::Filter if !value.is_empty() && !value.contains('=') => Err(invalid(
            "bad format of filter (expected name=value)".to_string(),
        )),
        _ => match flag.check {
            Some(check) => check(value).map_err(invalid),
            None => Ok(value.to_string()),
        },
    }
}

/// Parses `argv` (the words after the command name) against `cmd`.
pub fn parse(cmd: &Command, argv: &[String]) -> Result<Outcome> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            parsed.args.extend(argv[i..].iter().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            parsed.args.push(arg.clone());
            if !cmd.interspersed {
                parsed.args.extend(argv[i..].iter().cloned());
                break;
            }
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if name == "help" {
                return Ok(Outcome::Help);
            }
            let Some(flag) = cmd.find_long(name) else {
                return Err(cmd.flag_error(&format!("unknown flag: --{name}")));
            };
            let value = match (flag.kind, inline) {
                (_, Some(v)) => v,
                (Kind::Bool, None) => "true".to_string(),
                (_, None) => match argv.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        return Err(cmd.flag_error(&format!("flag needs an argument: --{name}")))
                    }
                },
            };
            let value = check_value(cmd, flag, &value)?;
            parsed.values.push((flag.key(), value));
            continue;
        }
        // A group of shorthand flags: "-aq", "-fvalue", "-f value", "-f=value".
        let shorts = &arg[1..];
        for (pos, c) in shorts.char_indices() {
            if c == 'h' && cmd.find_short('h').is_none() {
                return Ok(Outcome::Help);
            }
            let Some(flag) = cmd.find_short(c) else {
                return Err(cmd.flag_error(&format!("unknown shorthand flag: '{c}' in -{shorts}")));
            };
            let rest = &shorts[pos + c.len_utf8()..];
            if flag.kind == Kind::Bool {
                if let Some(v) = rest.strip_prefix('=') {
                    let v = check_value(cmd, flag, v)?;
                    parsed.values.push((flag.key(), v));
                    break;
                }
                parsed.values.push((flag.key(), "true".to_string()));
                continue;
            }
            let value = if let Some(v) = rest.strip_prefix('=') {
                v.to_string()
            } else if !rest.is_empty() {
                rest.to_string()
            } else if let Some(v) = argv.get(i) {
                i += 1;
                v.clone()
            } else {
                return Err(cmd.flag_error(&format!("flag needs an argument: '{c}' in -{shorts}")));
            };
            let value = check_value(cmd, flag, &value)?;
            parsed.values.push((flag.key(), value));
            break;
        }
    }
    Ok(Outcome::Run(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::new("all", Some('a'), Kind::Bool, "Show all"),
        Flag::new("quiet", Some('q'), Kind::Bool, "Only IDs"),
        Flag::new("filter", Some('f'), Kind::Filter, "Filter output"),
        Flag::new("format", None, Kind::String, "Format output"),
        Flag::new("limit", None, Kind::Int, "Max results"),
    ];

    fn cmd(interspersed: bool) -> Command {
        Command {
            path: "images".into(),
            usage: "[OPTIONS] [REPOSITORY[:TAG]]",
            short: "List images",
            aliases: vec!["berth image ls".into(), "berth images".into()],
            flags: FLAGS,
            args: Args::Max(1),
            interspersed,
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn run(s: &str) -> Parsed {
        match parse(&cmd(true), &words(s)).unwrap() {
            Outcome::Run(p) => p,
            Outcome::Help => panic!("help"),
        }
    }

    fn error(s: &str) -> String {
        parse(&cmd(true), &words(s)).unwrap_err().to_string()
    }

    #[test]
    fn parses_pflag_forms() {
        let p = run("-aq --format {{.ID}} repo -f dangling=true --filter=label=a --limit 0x10");
        assert!(p.bool("all") && p.bool("quiet"));
        assert_eq!(p.string("format"), "{{.ID}}");
        assert_eq!(p.args, vec!["repo"]);
        assert_eq!(p.list("filter"), vec!["dangling=true", "label=a"]);
        assert_eq!(p.int("limit"), 16);
        let p = run("-fdangling=false --all=false -q=true -- -notaflag");
        assert_eq!(p.list("filter"), vec!["dangling=false"]);
        assert!(!p.bool("all") && p.changed("all") && p.bool("quiet"));
        assert_eq!(p.args, vec!["-notaflag"]);
        assert!(!run("").changed("all"));
    }

    #[test]
    fn stops_at_first_argument_when_not_interspersed() {
        let Outcome::Run(p) = parse(&cmd(false), &words("src -a dst")).unwrap() else {
            panic!()
        };
        assert_eq!(p.args, vec!["src", "-a", "dst"]);
    }

    #[test]
    fn pflag_error_messages() {
        let usage = "\n\nUsage:  berth images [OPTIONS] [REPOSITORY[:TAG]]\n\nRun 'berth images --help' for more information";
        assert_eq!(error("--foo"), format!("unknown flag: --foo{usage}"));
        assert_eq!(
            error("-x"),
            format!("unknown shorthand flag: 'x' in -x{usage}")
        );
        assert_eq!(
            error("-ax"),
            format!("unknown shorthand flag: 'x' in -ax{usage}")
        );
        assert_eq!(
            error("-f"),
            format!("flag needs an argument: 'f' in -f{usage}")
        );
        assert_eq!(
            error("--format"),
            format!("flag needs an argument: --format{usage}")
        );
        assert_eq!(
            error("-f foo"),
            format!("invalid argument \"foo\" for \"-f, --filter\" flag: bad format of filter (expected name=value){usage}")
        );
        assert_eq!(
            error("--limit x"),
            format!("invalid argument \"x\" for \"--limit\" flag: strconv.ParseInt: parsing \"x\": invalid syntax{usage}")
        );
        assert_eq!(
            error("--all=maybe"),
            format!("invalid argument \"maybe\" for \"-a, --all\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax{usage}")
        );
        assert_eq!(
            parse(&cmd(true), &words("--foo")).unwrap_err().exit_code(),
            125
        );
    }

    #[test]
    fn argument_counts() {
        let c = cmd(true);
        assert!(c.check_args(&words("a")).is_ok());
        let e = c.check_args(&words("a b")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("berth: 'berth images' requires at most 1 argument\n"));
        assert_eq!(e.exit_code(), 1);
        let exact = Command {
            args: Args::Exact(2),
            path: "tag".into(),
            usage: "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
            ..c.clone()
        };
        assert_eq!(
            exact.check_args(&words("a")).unwrap_err().to_string(),
            "berth: 'berth tag' requires 2 arguments\n\nUsage:  berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\nRun 'berth tag --help' for more information"
        );
    }

    #[test]
    fn help_lists_flags_aligned() {
        assert!(matches!(
            parse(&cmd(true), &words("-h")).unwrap(),
            Outcome::Help
        ));
        assert!(matches!(
            parse(&cmd(true), &words("x --help")).unwrap(),
            Outcome::Help
        ));
        let help = cmd(true).help();
        assert!(
            help.contains("\nUsage:  berth images [OPTIONS] [REPOSITORY[:TAG]]\n\nList images\n")
        );
        assert!(help.contains("  -a, --all             Show all\n"));
        assert!(help.contains("  -f, --filter filter   Filter output\n"));
        assert!(help.contains("      --limit int       Max results\n"));
    }
}
