//! `#[derive(Event)]`: the `Event` impl, role traits, and registration by name.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use crate::attr::{Role, event_args};
use crate::errors::Errors;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let args = event_args(&input.attrs, &mut errors);
    if let syn::Data::Union(u) = &input.data {
        errors.at(
            u.union_token,
            "an event is a struct or an enum, not a union",
        );
    }
    if !errors.is_empty() {
        return errors.to_compile_errors();
    }

    let krate = &args.krate;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let schema = crate::expand::schema::schema_text(&input, &name.value());
    let kind = match &args.role {
        Role::Plain => quote!(Plain),
        Role::Start => quote!(Start),
        Role::Stop => quote!(Stop),
        Role::InputRequired { .. } => quote!(InputRequired),
        Role::Response => quote!(Response),
        Role::Internal => quote!(Internal),
    };
    let response = match &args.role {
        Role::InputRequired {
            response: Some(resp),
        } => quote!(::core::option::Option::Some(<#resp as #krate::Event>::NAME)),
        _ => quote!(::core::option::Option::None),
    };

    let start_role = match &args.role {
        Role::Start => quote!(Self),
        _ => quote!(#krate::__private::NoStartEvent),
    };
    let stop_role = match &args.role {
        Role::Stop => quote!(Self),
        _ => quote!(#krate::__private::NoStopEvent),
    };
    let role_impl = match &args.role {
        Role::Start => quote! {
            impl #impl_generics #krate::StartType for #ident #ty_generics #where_clause {}
        },
        Role::Stop => quote! {
            impl #impl_generics #krate::StopType for #ident #ty_generics #where_clause {
                type Output = Self;
                fn into_output(self) -> Self {
                    self
                }
            }
        },
        Role::InputRequired {
            response: Some(resp),
        } => quote! {
            impl #impl_generics #krate::InputRequired for #ident #ty_generics #where_clause {
                type Response = #resp;
            }
        },
        _ => TokenStream::new(),
    };

    // Generic types cannot be registered: there is no single type to decode into.
    let registration = if input.generics.params.is_empty() {
        quote! {
            #krate::__private::inventory::submit! {
                #krate::__private::EventRegistration::new::<#ident>()
            }
        }
    } else {
        TokenStream::new()
    };

    quote! {
        impl #impl_generics #krate::Event for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            const KIND: #krate::EventKind = #krate::EventKind::#kind;
            const RESPONSE: ::core::option::Option<&'static str> = #response;
            fn schema() -> #krate::__private::serde_json::Value {
                #[allow(unused_imports)]
                use #krate::__private::{FromFields as _, FromJsonSchema as _};
                fn fields() -> #krate::__private::serde_json::Value {
                    #krate::__private::serde_json::from_str(#schema)
                        .expect("`#[derive(Event)]` writes a valid JSON schema")
                }
                (&&#krate::__private::SchemaProbe::<Self>::new()).event_schema(fields)
            }
        }
        impl #impl_generics #krate::__private::EventRole for #ident #ty_generics #where_clause {
            type Start = #start_role;
            type Stop = #stop_role;
        }
        #role_impl
        #registration
    }
}
