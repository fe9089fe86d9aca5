//! Procedural macros of the `workflows` crate. Use them through `workflows`, which re-exports
//! them and documents them: `#[workflow]`, `#[step]`, `#[derive(Event)]`, `#[derive(OneOf)]`.
//!
//! Each macro parses its input into a model (`ast`, `attr`), checks the model (`check`), then
//! generates code from the model only (`expand`). Errors are collected (`errors`) and reported
//! together; on error the user's item is kept so that nothing else cascades.

mod ast;
mod attr;
mod check;
mod errors;
mod expand;

use proc_macro::TokenStream;

/// Turns an inherent `impl` block into a workflow; see the `workflows` crate.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::workflow::expand(args.into(), input.into()).into()
}

/// Marks a method of a `#[workflow]` impl block as a step; see the `workflows` crate.
#[proc_macro_attribute]
pub fn step(_args: TokenStream, input: TokenStream) -> TokenStream {
    let mut out: proc_macro2::TokenStream = input.into();
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "#[step] only works on a method inside an `impl` block marked #[workflow]; add #[workflow] to the impl block",
    );
    out.extend(error.to_compile_error());
    out.into()
}

/// Implements `Event` for a struct or enum; see the `workflows` crate.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    expand::event::expand(input.into()).into()
}

/// Lets an enum of events be a step's parameter or return type; see the `workflows` crate.
#[proc_macro_derive(OneOf, attributes(one_of))]
pub fn derive_one_of(input: TokenStream) -> TokenStream {
    expand::one_of::expand(input.into()).into()
}
