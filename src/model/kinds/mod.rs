//! One module per resource kind, declared by the table in `src/kinds.rs`: the [`Kind`] and
//! [`Identity`] enums and their dispatch to each kind's [`ResourceKind`] are generated from
//! it. A kind's identity is serialised (state, plans) as `{"kind": "<module>", ...its
//! fields}`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Address, Context, Desired, Live, ModelError, Output, ResourceKind};

macro_rules! model_kinds {
    ($($variant:ident: $module:ident,)*) => {
        $(pub mod $module;)*

        /// The kinds of resource comfyplat owns, in the table's order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind {
            $($variant,)*
        }

        impl Kind {
            /// Every kind, in the table's order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The kind's name in state, plans and JSON: its module's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$variant => stringify!($module),)*
                }
            }

            pub fn noun(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$module::Id as ResourceKind>::NOUN,)*
                }
            }

            /// Fields that can change only one way: the plan marks them irreversible.
            pub fn one_way_fields(self) -> &'static [&'static str] {
                match self {
                    $(Kind::$variant => <$module::Id as ResourceKind>::ONE_WAY,)*
                }
            }

            /// Settings of something adopted: never deleted, only forgotten.
            pub fn is_setting(self) -> bool {
                match self {
                    $(Kind::$variant => <$module::Id as ResourceKind>::SETTING,)*
                }
            }

            /// Whether `--no-wait` may leave a deployment of this kind running.
            pub fn may_run_on(self) -> bool {
                match self {
                    $(Kind::$variant => <$module::Id as ResourceKind>::MAY_RUN_ON,)*
                }
            }

            /// Whether its outputs need a live read.
            pub fn outputs_need_live(self) -> bool {
                match self {
                    $(Kind::$variant => <$module::Id as ResourceKind>::OUTPUTS_NEED_LIVE,)*
                }
            }

            /// Adds this kind's desired resources.
            pub(crate) fn build(self, context: &Context, desired: &mut Desired) -> Result<(), ModelError> {
                match self {
                    $(Kind::$variant => <$module::Id as ResourceKind>::desired(context, desired),)*
                }
            }
        }

        /// What the cloud knows a resource by. A change of identity means replacement.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Identity {
            $($variant($module::Id),)*
        }

        impl Identity {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Identity::$variant(_) => Kind::$variant,)*
                }
            }

            /// Whether the resource may hold user data (and so is protected from deletion).
            pub fn holds_data(&self) -> bool {
                self.data().is_some()
            }

            /// What user data it may hold: `objects`, `images`.
            pub fn data(&self) -> Option<&'static str> {
                match self {
                    $(Identity::$variant(_) => <$module::Id as ResourceKind>::DATA,)*
                }
            }

            /// Whether a change of `path` can only be made by replacing the resource.
            pub fn forces_replacement(&self, path: &str) -> bool {
                match self {
                    $(Identity::$variant(id) => id.forces_replacement(path),)*
                }
            }

            /// What `comfyplat output` shows for it.
            pub fn outputs(&self, address: &Address, live: Option<&Live>) -> Vec<Output> {
                match self {
                    $(Identity::$variant(id) => id.outputs(address, live),)*
                }
            }
        }

        impl fmt::Display for Identity {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Identity::$variant(id) => fmt::Display::fmt(id, f),)*
                }
            }
        }

        $(
            impl From<$module::Id> for Identity {
                fn from(id: $module::Id) -> Identity {
                    Identity::$variant(id)
                }
            }
        )*
    };
}

crate::kinds::for_each_kind!(model_kinds);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_serialised_by_its_module_name() {
        for kind in Kind::ALL {
            assert_eq!(
                serde_json::to_value(kind).expect("serialise"),
                serde_json::json!(kind.name())
            );
        }
    }
}
