//! `#[derive(OneOf)]`: an enum of events as a step's parameter or return type.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

use crate::attr::one_of_args;
use crate::errors::Errors;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let krate = one_of_args(&input.attrs, &mut errors);
    let Data::Enum(data) = &input.data else {
        errors.at(
            &input.ident,
            "#[derive(OneOf)] goes on an enum whose variants each hold one event: `enum Input { Start(StartEvent), Loop(LoopEvent) }`",
        );
        return errors.to_compile_errors();
    };
    if !input.generics.params.is_empty() {
        errors.at(
            &input.generics,
            "#[derive(OneOf)] does not support generic enums",
        );
    }
    let mut variants = Vec::new();
    for variant in &data.variants {
        match &variant.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                variants.push((&variant.ident, &fields.unnamed[0].ty));
            }
            _ => errors.at(
                variant,
                format!(
                    "variant `{}` must hold exactly one event, like `{}(MyEvent)`",
                    variant.ident, variant.ident
                ),
            ),
        }
    }
    if data.variants.is_empty() {
        errors.at(&input.ident, "a OneOf enum needs at least one variant");
    }
    if !errors.is_empty() {
        return errors.to_compile_errors();
    }

    let ident = &input.ident;
    let infos = variants
        .iter()
        .map(|(_, ty)| quote!(#krate::EventInfo::of::<#ty>()));
    let infos2 = infos.clone();
    let from_arms = variants.iter().map(|(v, ty)| {
        quote! {
            if let ::core::option::Option::Some(e) = ev.downcast_ref::<#ty>() {
                return ::core::option::Option::Some(#ident::#v(::core::clone::Clone::clone(e)));
            }
        }
    });
    let into_arms = variants.iter().map(|(v, _)| {
        quote! { #ident::#v(e) => ::std::boxed::Box::new(e), }
    });
    let froms = variants.iter().map(|(v, ty)| {
        quote! {
            impl ::core::convert::From<#ty> for #ident {
                fn from(e: #ty) -> Self {
                    #ident::#v(e)
                }
            }
        }
    });

    let start = super::fold_roles(
        ident.span(),
        quote!(#krate::__private::MergeStart),
        variants
            .iter()
            .map(|(_, ty)| quote!(<#ty as #krate::StepInput>::Start))
            .collect(),
    );
    let stop = super::fold_roles(
        ident.span(),
        quote!(#krate::__private::MergeStop),
        variants
            .iter()
            .map(|(_, ty)| quote!(<#ty as #krate::StepOutput>::Stop))
            .collect(),
    );

    quote! {
        impl #krate::StepInput for #ident {
            const EVENTS: &'static [#krate::EventInfo] = &[#(#infos),*];
            type Start = #start;
            fn from_event(ev: &dyn #krate::AnyEvent) -> ::core::option::Option<Self> {
                #(#from_arms)*
                ::core::option::Option::None
            }
        }

        impl #krate::StepOutput for #ident {
            const EVENTS: &'static [#krate::EventInfo] = &[#(#infos2),*];
            type Stop = #stop;
            fn into_emitted(
                self,
            ) -> ::core::result::Result<#krate::Emitted, #krate::BoxError> {
                ::core::result::Result::Ok(#krate::Emitted::One(match self {
                    #(#into_arms)*
                }))
            }
        }

        impl #krate::OneEvent for #ident {}

        #(#froms)*
    }
}
