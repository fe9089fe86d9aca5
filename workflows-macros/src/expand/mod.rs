//! Code generation, from the checked models only.

pub(crate) mod event;
pub(crate) mod one_of;
pub(crate) mod schema;
pub(crate) mod workflow;

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

/// `<<A as Merge<B>>::Out as Merge<C>>::Out ...`: folds type-level roles with `merge`, spanned
/// at `span` so that a failed fold is reported on the user's type.
pub(crate) fn fold_roles(span: Span, merge: TokenStream, roles: Vec<TokenStream>) -> TokenStream {
    let mut roles = roles.into_iter();
    let Some(mut acc) = roles.next() else {
        return TokenStream::new();
    };
    for role in roles {
        acc = quote_spanned!(span=> <#acc as #merge<#role>>::Out);
    }
    acc
}
