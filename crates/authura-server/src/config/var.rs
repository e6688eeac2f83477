//! The declaration of one configuration variable ([`Var`]) and the `declare!` macro each section
//! uses to declare its variables once; everything else (check-config's listing, `NAME_FILE`,
//! the known names, the refusal of unbuilt features, the documentation tables) is derived from
//! these declarations.

/// One configuration variable, declared once by its section. Readers in
/// `config::reader` take a `&'static Var`, never a name.
#[derive(Debug)]
pub struct Var {
    /// The variable's name, as in the environment (`JWT_SECRET`).
    pub name: &'static str,
    /// The documentation table it is listed in (`<!-- vars:TABLE -->` in docs/configuration.md).
    pub table: &'static str,
    /// What it means, as the documentation table says it (Markdown, one line).
    pub doc: &'static str,
    /// What happens when it is not set.
    pub unset: IfUnset,
    /// When this build reads it.
    pub need: Need,
    /// Redacted wherever the configuration is printed, and `NAME_FILE` may hold it.
    pub secret: bool,
    /// The Go Authura does not have it (marked "(new)" in the documentation).
    pub new: bool,
}

/// What a variable is when it is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnset {
    /// This value, which the reader uses and check-config prints.
    Default(&'static str),
    /// Nothing: the variable is optional. The text says so in the documentation ("unset (off)").
    Nothing(&'static str),
    /// A problem, when what needs the variable is on. The text says when ("required with `CAPTCHA`").
    Required(&'static str),
    /// A value computed from other settings; the text says how ("one per core").
    Computed(&'static str),
}

/// When this build reads a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// On every load.
    Always,
    /// When `AUTH_BACKEND` is one of these.
    Backends(&'static [&'static str]),
    /// When another setting asks for it (the text says which: "a real `MAIL_HOST`").
    When(&'static str),
    /// Never: its feature (named here) is not in this build, and setting it is refused.
    Future(&'static str),
}

impl Var {
    /// An optional variable read on every load, listed in the documentation table `table`.
    /// `declare!` gives it its name.
    pub const fn new(table: &'static str, doc: &'static str) -> Self {
        Var {
            name: "",
            table,
            doc,
            unset: IfUnset::Nothing("unset"),
            need: Need::Always,
            secret: false,
            new: false,
        }
    }

    /// A variable of `feature`, which this build does not have: setting it is refused.
    pub const fn future(name: &'static str, feature: &'static str) -> Self {
        Var {
            name,
            table: "future",
            doc: "",
            unset: IfUnset::Nothing("unset"),
            need: Need::Future(feature),
            secret: false,
            new: false,
        }
    }

    /// Names it (used by `declare!`, which takes the name from the static's).
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Unset means `value`.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.unset = IfUnset::Default(value);
        self
    }

    /// Unset means nothing, described as `text` ("unset (off)").
    pub const fn unset(mut self, text: &'static str) -> Self {
        self.unset = IfUnset::Nothing(text);
        self
    }

    /// Unset is a problem when it is needed; `text` says when ("required with `CAPTCHA`").
    pub const fn required(mut self, text: &'static str) -> Self {
        self.unset = IfUnset::Required(text);
        self
    }

    /// Unset means a value computed at load, described as `text`.
    pub const fn computed(mut self, text: &'static str) -> Self {
        self.unset = IfUnset::Computed(text);
        self
    }

    /// Read only with these backends.
    pub const fn backends(mut self, backends: &'static [&'static str]) -> Self {
        self.need = Need::Backends(backends);
        self
    }

    /// Read only when another setting asks for it (`text` says which).
    pub const fn when(mut self, text: &'static str) -> Self {
        self.need = Need::When(text);
        self
    }

    /// A secret: redacted, and `NAME_FILE` allowed.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Not in the Go Authura.
    pub const fn new_variable(mut self) -> Self {
        self.new = true;
        self
    }

    /// The declared default value (empty when none is declared).
    pub const fn default_value(&self) -> &'static str {
        match self.unset {
            IfUnset::Default(value) => value,
            _ => "",
        }
    }

    /// Whether this build reads it (its feature is built).
    pub fn is_built(&self) -> bool {
        !matches!(self.need, Need::Future(_))
    }
}

/// Declares a section's variables, each once, as `NAME = Var::new(…)…;`: a `pub static NAME`
/// named after itself, and `VARS`, the section's list of them in declaration order.
macro_rules! declare {
    ($($(#[$meta:meta])* $name:ident = $var:expr;)*) => {
        $(
            $(#[$meta])*
            #[doc = concat!("`", stringify!($name), "`.")]
            pub static $name: $crate::config::var::Var = $var.named(stringify!($name));
        )*
        /// This section's variables, in the order of their documentation.
        pub static VARS: &[&$crate::config::var::Var] = &[$(&$name),*];
    };
}
pub(crate) use declare;
