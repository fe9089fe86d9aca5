//! `#[workflow]`: the `Workflow` impl with the step table, dispatch and retry policies.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ItemImpl;
use syn::spanned::Spanned;

use crate::ast::{StepModel, parse_steps};
use crate::attr::{WorkflowArgs, workflow_args};
use crate::check::{Ends, check};

use crate::errors::Errors;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let mut out = input;
            out.extend(
                syn::Error::new(
                    e.span(),
                    "#[workflow] goes on an `impl` block: `#[workflow] impl MyWorkflow { ... }`",
                )
                .to_compile_error(),
            );
            return out;
        }
    };
    let mut errors = Errors::default();
    let args = workflow_args(args, &mut errors);
    let steps = parse_steps(&mut item, &mut errors);
    let ends = check(&item, &args, &steps, &mut errors);
    match ends {
        Some(ends) if errors.is_empty() => {
            let generated = workflow_impl(&item, &args, &steps, &ends, false);
            quote! { #item #generated }
        }
        Some(ends) => {
            // Keep the user's methods and the workflow's type, so that only the mistakes are
            // reported, not every use of the workflow.
            let generated = workflow_impl(&item, &args, &steps, &ends, true);
            let compile_errors = errors.to_compile_errors();
            quote! { #item #generated #compile_errors }
        }
        None => {
            let compile_errors = errors.to_compile_errors();
            quote! { #item #compile_errors }
        }
    }
}

/// The `Workflow` impl. With `broken`, the signature mistakes are being reported: the impl
/// keeps the workflow's types and step table but calls no step and checks no graph.
fn workflow_impl(
    item: &ItemImpl,
    args: &crate::attr::WorkflowArgs,
    steps: &[StepModel],
    ends: &Ends,
    broken: bool,
) -> TokenStream {
    let krate = &args.krate;
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let name = match &**self_ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        other => quote!(#other).to_string(),
    };
    let state = match &args.state {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let self_span = self_ty.span();
    let start = match &ends.start {
        Some(ty) => quote!(#ty),
        // While mistakes are reported, a guess that adds no error of its own.
        None if broken => quote!(#krate::StartEvent),
        None => super::fold_roles(
            self_span,
            quote!(#krate::__private::MergeStart),
            steps
                .iter()
                .flat_map(|s| {
                    if s.set.is_empty() {
                        std::slice::from_ref(&s.event)
                    } else {
                        &s.set[..]
                    }
                })
                .map(|ty| quote_spanned!(self_span=> <#ty as #krate::StepInput>::Start))
                .collect(),
        ),
    };
    let stop = match &ends.stop {
        Some(ty) => quote!(#ty),
        None => super::fold_roles(
            self_span,
            quote!(#krate::__private::MergeStop),
            steps
                .iter()
                .map(|s| {
                    let ty = &s.output;
                    quote_spanned!(self_span=> <#ty as #krate::StepOutput>::Stop)
                })
                .collect(),
        ),
    };
    let start_item = quote_spanned!(self_span=> type Start = #start;);
    let stop_item = quote_spanned!(self_span=> type Stop = #stop;);

    let infos = steps.iter().map(|step| {
        let name = &step.name;
        let workers = step.num_workers;
        let event = &step.event;
        let output = &step.output;
        let sends = &step.sends;
        let children = step
            .children
            .iter()
            .map(|ty| quote_spanned!(ty.span()=> #krate::ChildInfo::of::<#ty>()));
        let fires = match &step.take {
            _ if !step.set.is_empty() => quote!(#krate::__private::Fires::PerSet),
            Some(n) => quote! {
                #krate::__private::Fires::with_take(<#event as #krate::StepInput>::FIRES, #n)
            },
            None => quote!(<#event as #krate::StepInput>::FIRES),
        };
        let catches = step.catch.iter().flatten();
        let max_recoveries = match &step.max_recoveries {
            Some(n) => quote!(#n),
            None => quote!(1),
        };
        let accepts = if step.set.is_empty() {
            quote!(<#event as #krate::StepInput>::EVENTS)
        } else {
            // Each parameter of a step taking several is one event type, in order.
            let infos = step
                .set
                .iter()
                .map(|ty| quote_spanned!(ty.span()=> #krate::EventInfo::of::<#ty>()));
            quote!(&[#(#infos),*])
        };
        quote! {
            #krate::StepInfo {
                name: #name,
                num_workers: #workers,
                accepts: #accepts,
                emits: <#output as #krate::StepOutput>::EVENTS,
                sends: &[#(#krate::EventInfo::of::<#sends>()),*],
                children: &[#(#children),*],
                fires: #fires,
                fans_out: <#output as #krate::StepOutput>::FANS_OUT,
                catches: &[#(#catches),*],
                max_recoveries: #max_recoveries,
            }
        }
    });

    let arms = steps
        .iter()
        .enumerate()
        .filter(|_| !broken)
        .map(|(index, step)| invoke_arm(krate, index, step));
    let retry_arms = steps
        .iter()
        .enumerate()
        .filter(|_| !broken)
        .filter_map(|(index, step)| {
            let policy = step.retry.as_ref()?;
            Some(quote_spanned! {policy.span()=>
                #index => ::core::option::Option::Some(#krate::RetryPolicy::from(#policy)),
            })
        });

    let GraphChecks {
        items: graph_checks,
        use_in_invoke,
    } = if broken {
        GraphChecks::default()
    } else {
        graph_checks(item, args, steps)
    };

    quote! {
        #graph_checks

        impl #impl_generics #krate::Workflow for #self_ty #where_clause {
            type State = #state;
            #start_item
            #stop_item
            const NAME: &'static str = #name;
            const STEPS: &'static [#krate::StepInfo] = &[#(#infos),*];

            fn __invoke(
                self: &#krate::__private::std::sync::Arc<Self>,
                step: usize,
                ctx: #krate::Context<Self::State>,
                input: &[::std::boxed::Box<dyn #krate::AnyEvent>],
            ) -> ::core::option::Option<#krate::__private::StepFuture> {
                #use_in_invoke
                match step {
                    #(#arms)*
                    _ => ::core::option::Option::None,
                }
            }

            fn __retry_policy(step: usize) -> ::core::option::Option<#krate::RetryPolicy> {
                match step {
                    #(#retry_arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}

/// The dispatch arm of one step: downcast the event, call the method, convert its output.
fn invoke_arm(krate: &syn::Path, index: usize, step: &StepModel) -> TokenStream {
    let method = &step.method;
    let event = &step.event;
    let output = &step.output;
    // `Self::method(&*this, ..)`, not `this.method(..)`: a step named like a method of
    // `Arc` (`clone`, `as_ref`, ...) must still call the step.
    let call = match &step.ctx {
        Some(ctx_ty) => quote_spanned! {ctx_ty.span()=> Self::#method(&*this, &ctx, ev).await },
        None => quote! {{ let _ = &ctx; Self::#method(&*this, ev).await }},
    };
    let boxed = quote_spanned! {method.span()=>
        #krate::__private::box_step(async move {
            let out: #output = #call;
            <#output as #krate::StepOutput>::into_emitted(out)
        })
    };
    if !step.set.is_empty() {
        return set_arm(krate, index, step, output);
    }
    quote! {
        #index => {
            let ev = <#event as #krate::StepInput>::from_events(input)?;
            let this = #krate::__private::std::sync::Arc::clone(self);
            ::core::option::Option::Some(#boxed)
        }
    }
}

/// The dispatch arm of a step taking several events: one per parameter, in order.
fn set_arm(krate: &syn::Path, index: usize, step: &StepModel, output: &syn::Type) -> TokenStream {
    let method = &step.method;
    let names: Vec<syn::Ident> = (0..step.set.len())
        .map(|i| quote::format_ident!("__ev{}", i))
        .collect();
    let types = &step.set;
    let args = quote!(#(#names),*);
    let call = match &step.ctx {
        Some(ctx_ty) => quote_spanned! {ctx_ty.span()=> Self::#method(&*this, &ctx, #args).await },
        None => quote! {{ let _ = &ctx; Self::#method(&*this, #args).await }},
    };
    quote! {
        #index => {
            let [#(#names),*] = input else {
                return ::core::option::Option::None;
            };
            #(let #names = <#types as #krate::StepInput>::from_event(&**#names)?;)*
            let this = #krate::__private::std::sync::Arc::clone(self);
            ::core::option::Option::Some(#krate::__private::box_step(async move {
                let out: #output = #call;
                <#output as #krate::StepOutput>::into_emitted(out)
            }))
        }
    }
}

/// Compile-time graph rules: for each step and direction, a constant that panics (at compile
/// time) with its message on the step's own tokens. A non-generic workflow gets free-standing
/// constants, evaluated by `cargo check`; a generic one gets one associated constant that
/// `__invoke` refers to, evaluated for each instantiation when it is compiled.
fn graph_checks(item: &ItemImpl, args: &WorkflowArgs, steps: &[StepModel]) -> GraphChecks {
    if args.unchecked {
        return GraphChecks::default();
    }
    let krate = &args.krate;
    let self_ty = &item.self_ty;
    let generic = !item.generics.params.is_empty();
    let workflow_steps = if generic {
        quote!(<Self as #krate::Workflow>::STEPS)
    } else {
        quote!(<#self_ty as #krate::Workflow>::STEPS)
    };
    let mut bodies = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let check = |call: TokenStream, span: proc_macro2::Span| {
            quote_spanned! {span=>
                {
                    let message = #krate::__private::#call;
                    if !message.is_empty() {
                        ::core::panic!("{}", message.as_str());
                    }
                }
            }
        };
        bodies.push(check(
            quote!(check_outputs(#workflow_steps, #index, false)),
            step.output.span(),
        ));
        if let Some(first) = step.sends.first() {
            bodies.push(check(
                quote!(check_outputs(#workflow_steps, #index, true)),
                first.span(),
            ));
        }
        bodies.push(check(
            quote!(check_inputs(#workflow_steps, #index)),
            step.event.span(),
        ));
        if !step.set.is_empty() {
            bodies.push(check(
                quote!(check_set(#workflow_steps, #index)),
                step.set.get(1).unwrap_or(&step.event).span(),
            ));
        }
        if let Some(span) = step
            .catch
            .as_ref()
            .and_then(|c| c.first())
            .map(|i| i.span())
            .or_else(|| step.max_recoveries.as_ref().map(|n| n.span()))
        {
            bodies.push(check(
                quote!(check_failure_step(#workflow_steps, #index)),
                span,
            ));
        }
        if let Some(take) = &step.take {
            bodies.push(check(
                quote!(check_take(#workflow_steps, #index)),
                take.span(),
            ));
        }
    }
    if !generic {
        return GraphChecks {
            items: bodies
                .iter()
                .map(|body| quote!(const _: () = #body;))
                .collect(),
            use_in_invoke: TokenStream::new(),
        };
    }
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    GraphChecks {
        items: quote! {
            impl #impl_generics #self_ty #where_clause {
                #[doc(hidden)]
                const __WORKFLOWS_GRAPH_CHECKS: () = { #(#bodies)* };
            }
        },
        use_in_invoke: quote!(let () = Self::__WORKFLOWS_GRAPH_CHECKS;),
    }
}

#[derive(Default)]
struct GraphChecks {
    /// Items next to the `Workflow` impl.
    items: TokenStream,
    /// A statement in `__invoke` that makes a generic workflow's checks run.
    use_in_invoke: TokenStream,
}
