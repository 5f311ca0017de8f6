//! Choices: the enums a command line names (`--preset natural`). One
//! declaration, [`choice!`], gives the enum, the name each value is written
//! by (on the command line and in every record, through serde), its aliases
//! and a line of help from its doc comment. The binary turns a [`Choice`]
//! into a clap value parser; nothing below the binary knows clap.

/// An enum whose values have names.
pub trait Choice: Copy + Eq + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    const ALL: &'static [Self];

    /// The value as it is written.
    fn name(self) -> &'static str;

    /// Other spellings it is read by.
    fn aliases(self) -> &'static [&'static str];

    /// One line for `--help`, from the value's doc comment.
    fn help(self) -> &'static str;

    /// The value named `text` (its name or an alias, in any case), or a
    /// message listing the names.
    fn parse(text: &str) -> Result<Self, String> {
        let wanted = text.trim();
        let named = |choice: &Self| {
            choice.name().eq_ignore_ascii_case(wanted)
                || choice.aliases().iter().any(|alias| alias.eq_ignore_ascii_case(wanted))
        };
        Self::ALL.iter().copied().find(named).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
            format!("'{wanted}' is not one of {}", names.join(", "))
        })
    }
}

/// Declare a [`Choice`]: each variant has doc comments (its help), then
/// `Variant = "name"`, optionally `| "alias"`; `default Variant;` first
/// gives the enum a `Default`. Also derives serde by the names, `Display`
/// and `FromStr`.
#[macro_export]
macro_rules! choice {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(default $default:ident;)?
            $(
                $(#[doc = $doc:literal])+
                $variant:ident = $text:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        $vis enum $name {
            $(
                $(#[doc = $doc])+
                #[serde(rename = $text)]
                $variant,
            )+
        }

        $(
            impl Default for $name {
                fn default() -> Self {
                    Self::$default
                }
            }
        )?

        impl $crate::choice::Choice for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];

            fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($alias),*],)+
                }
            }

            fn help(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!($($doc),+),)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::choice::Choice::name(*self))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                <Self as $crate::choice::Choice>::parse(text)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Choice;

    crate::choice! {
        /// A choice for the tests.
        pub enum Shade {
            default Light;
            /// Light.
            Light = "light",
            /// Dark, also
            /// read as black.
            Dark = "dark" | "black",
        }
    }

    #[test]
    fn names_aliases_help_and_serde_agree() {
        assert_eq!(Shade::ALL, &[Shade::Light, Shade::Dark]);
        assert_eq!("DARK".parse(), Ok(Shade::Dark));
        assert_eq!("black".parse(), Ok(Shade::Dark));
        assert_eq!(Shade::Dark.to_string(), "dark");
        assert_eq!(Shade::Dark.help(), " Dark, also read as black.");
        assert_eq!(serde_json::to_string(&Shade::Dark).unwrap(), "\"dark\"");
        assert_eq!(Shade::default(), Shade::Light);
        let message = "grey".parse::<Shade>().unwrap_err();
        assert!(message.contains("light, dark"), "{message}");
    }
}
