//! `#[derive(FromJson)]` and `#[derive(Names)]` for `edge-core`'s JSON reader
//! (`core/src/json.rs`).
//!
//! Keys come from the `#[serde(...)]` attributes the type already carries for
//! `Serialize` (`rename`, `rename_all`, `tag`, `default`, `transparent`), so one
//! attribute names each key in both directions. `#[json(...)]` takes the same keys
//! (for types that are only read) and the reader's own: `deny_unknown_fields`,
//! `try_from = "String"` (a newtype that validates), and `with = "path"` (a field read
//! by `fn(&Value, Path) -> Result<T, Invalid>`).
//!
//! The generated code is what a hand-written reader would be: one `Obj::new`, one
//! `req`/`opt`/`or_default` per field; an enum's name or tag is looked up in its table of
//! names by one function shared by every enum. The paths it names are
//! `crate::json::…`, so it is meant for `edge-core` itself.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{parse_macro_input, Attribute, Data, DeriveInput, Fields, LitStr, Token};

/// Reads a struct (named fields, or a newtype with `transparent`/`try_from`) or an
/// internally tagged enum (`#[serde(tag = "...")]`) out of a `serde_json::Value`.
#[proc_macro_derive(FromJson, attributes(json, serde))]
pub fn derive_from_json(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    from_json(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A unit-only enum's names (`Names`), its `FromJson` and `Serialize`, and
/// `as_str`/`parse`, from one table (`rename_all`/`rename`).
#[proc_macro_derive(Names, attributes(json, serde))]
pub fn derive_names(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    names(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[derive(Default)]
struct Container {
    rename_all: Option<String>,
    tag: Option<String>,
    transparent: bool,
    try_from: Option<syn::Type>,
    deny_unknown_fields: bool,
}

#[derive(Default)]
struct Field {
    rename: Option<String>,
    default: Option<Option<syn::Path>>,
    with: Option<syn::Path>,
    skip: bool,
}

/// Consumes the value of an attribute this derive does not use.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        let _: proc_macro2::TokenTree = meta.input.parse()?;
    }
    Ok(())
}

fn string(meta: &ParseNestedMeta) -> syn::Result<String> {
    Ok(meta.value()?.parse::<LitStr>()?.value())
}

/// Walks `#[serde(...)]` and `#[json(...)]`; `reader_only` keys are refused in serde's.
fn each_attr(
    attrs: &[Attribute],
    mut f: impl FnMut(&ParseNestedMeta, bool) -> syn::Result<bool>,
) -> syn::Result<()> {
    for attr in attrs {
        let ours = attr.path().is_ident("json");
        if !ours && !attr.path().is_ident("serde") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if f(&meta, ours)? {
                Ok(())
            } else if ours {
                Err(meta.error("unknown #[json] attribute"))
            } else {
                skip_value(&meta)
            }
        })?;
    }
    Ok(())
}

fn container(attrs: &[Attribute]) -> syn::Result<Container> {
    let mut c = Container::default();
    each_attr(attrs, |meta, _| {
        let p = &meta.path;
        if p.is_ident("rename_all") {
            c.rename_all = Some(string(meta)?);
        } else if p.is_ident("tag") {
            c.tag = Some(string(meta)?);
        } else if p.is_ident("transparent") {
            c.transparent = true;
        } else if p.is_ident("try_from") {
            c.try_from = Some(meta.value()?.parse::<LitStr>()?.parse()?);
        } else if p.is_ident("deny_unknown_fields") {
            c.deny_unknown_fields = true;
        } else if p.is_ident("untagged") || p.is_ident("content") || p.is_ident("from") {
            return Err(meta.error("not supported by #[derive(FromJson)]"));
        } else {
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(c)
}

fn field(attrs: &[Attribute]) -> syn::Result<Field> {
    let mut fl = Field::default();
    each_attr(attrs, |meta, _| {
        let p = &meta.path;
        if p.is_ident("rename") {
            fl.rename = Some(string(meta)?);
        } else if p.is_ident("default") {
            fl.default = Some(if meta.input.peek(Token![=]) {
                Some(meta.value()?.parse::<LitStr>()?.parse()?)
            } else {
                None
            });
        } else if p.is_ident("with") {
            fl.with = Some(meta.value()?.parse::<LitStr>()?.parse()?);
        } else if p.is_ident("skip") || p.is_ident("skip_deserializing") {
            fl.skip = true;
        } else if p.is_ident("flatten") {
            return Err(meta.error("#[serde(flatten)] is not supported by #[derive(FromJson)]"));
        } else {
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(fl)
}

/// serde's `rename_all` for a field (`snake_case` ident) or a variant (`PascalCase`).
fn rename(name: &str, rule: Option<&str>, variant: bool, span: Span) -> syn::Result<String> {
    let Some(rule) = rule else {
        return Ok(name.to_owned());
    };
    // Words, lower-cased.
    let words: Vec<String> = if variant {
        let mut words: Vec<String> = Vec::new();
        for ch in name.chars() {
            if ch.is_uppercase() || words.is_empty() {
                words.push(String::new());
            }
            if let Some(w) = words.last_mut() {
                w.extend(ch.to_lowercase());
            }
        }
        words
    } else {
        name.split('_').map(str::to_owned).collect()
    };
    let capital = |w: &String| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    Ok(match rule {
        "snake_case" => words.join("_"),
        "lowercase" => words.concat(),
        "UPPERCASE" => words.concat().to_uppercase(),
        "kebab-case" => words.join("-"),
        "SCREAMING_SNAKE_CASE" => words.join("_").to_uppercase(),
        "PascalCase" => words.iter().map(capital).collect(),
        "camelCase" => words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.clone() } else { capital(w) })
            .collect(),
        other => {
            return Err(syn::Error::new(
                span,
                format!("unsupported rename_all = {other:?}"),
            ))
        }
    })
}

fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// `name: <read>` for each named field, and the keys they use.
fn read_fields(
    fields: &syn::FieldsNamed,
    rule: Option<&str>,
) -> syn::Result<(Vec<Tokens>, Vec<String>)> {
    let mut inits = Vec::new();
    let mut keys = Vec::new();
    for f in &fields.named {
        let Some(ident) = &f.ident else { continue };
        let attrs = field(&f.attrs)?;
        if attrs.skip {
            inits.push(quote!(#ident: ::core::default::Default::default()));
            continue;
        }
        let name = ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name);
        let key = match attrs.rename {
            Some(k) => k,
            None => rename(name, rule, false, ident.span())?,
        };
        let read = match (&attrs.with, &attrs.default) {
            (Some(with), None) if is_option(&f.ty) => quote!(o.opt_with(#key, #with)?),
            (Some(with), None) => quote!(o.req_with(#key, #with)?),
            (Some(with), Some(None)) => quote!(o.opt_with(#key, #with)?.unwrap_or_default()),
            (Some(with), Some(Some(d))) => quote!(o.opt_with(#key, #with)?.unwrap_or_else(#d)),
            (None, Some(None)) => quote!(o.or_default(#key)?),
            (None, Some(Some(d))) => quote!(o.opt(#key)?.unwrap_or_else(#d)),
            (None, None) if is_option(&f.ty) => quote!(o.opt(#key)?),
            (None, None) => quote!(o.req(#key)?),
        };
        inits.push(quote!(#ident: #read));
        keys.push(key);
    }
    Ok((inits, keys))
}

fn from_json(input: &DeriveInput) -> syn::Result<Tokens> {
    let c = container(&input.attrs)?;
    let ty = &input.ident;
    // Every type parameter is read too.
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(crate::json::FromJson));
    }
    let (impl_g, ty_g, where_g) = generics.split_for_impl();
    let body = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => {
                let (inits, keys) = read_fields(named, c.rename_all.as_deref())?;
                let only = c
                    .deny_unknown_fields
                    .then(|| quote!(o.only(&[#(#keys),*])?;));
                quote! {
                    let o = crate::json::Obj::new(v, at)?;
                    #only
                    ::core::result::Result::Ok(#ty { #(#inits),* })
                }
            }
            Fields::Unnamed(one) if one.unnamed.len() == 1 => match &c.try_from {
                Some(from) if quote!(#from).to_string() == "String" => {
                    quote!(crate::json::parsed(v, at))
                }
                Some(from) => quote! {
                    let raw = <#from as crate::json::FromJson>::from_json(v, at)?;
                    <#ty #ty_g as ::core::convert::TryFrom<#from>>::try_from(raw)
                        .map_err(|e| crate::json::Invalid::at(at, e))
                },
                None if c.transparent => quote! {
                    crate::json::FromJson::from_json(v, at).map(#ty)
                },
                None => {
                    return Err(syn::Error::new_spanned(
                        ty,
                        "a newtype needs #[serde(transparent)] or #[json(try_from = \"...\")]",
                    ))
                }
            },
            _ => {
                return Err(syn::Error::new_spanned(
                    ty,
                    "#[derive(FromJson)] reads structs with named fields and newtypes",
                ))
            }
        },
        Data::Enum(e) if c.tag.is_none() => externally_tagged(ty, e, &c)?,
        Data::Enum(e) => {
            let tag = c.tag.as_deref().unwrap_or_default();
            let mut table = Vec::new();
            let mut arms = Vec::new();
            let last = e.variants.len().saturating_sub(1);
            for (i, var) in e.variants.iter().enumerate() {
                let vident = &var.ident;
                let name = variant_name(var, &c)?;
                table.push(quote!(#name));
                let build = match &var.fields {
                    Fields::Named(named) => {
                        let (inits, mut keys) = read_fields(named, None)?;
                        keys.insert(0, tag.to_owned());
                        let only = c
                            .deny_unknown_fields
                            .then(|| quote!(o.only(&[#(#keys),*])?;));
                        quote!({ #only #ty::#vident { #(#inits),* } })
                    }
                    Fields::Unit => {
                        let only = c.deny_unknown_fields.then(|| quote!(o.only(&[#tag])?;));
                        quote!({ #only #ty::#vident })
                    }
                    Fields::Unnamed(_) => {
                        return Err(syn::Error::new_spanned(
                            var,
                            "a tagged enum's variants have named fields or none",
                        ))
                    }
                };
                // The last arm takes what is left, so the match needs no panic.
                let pat = if i == last { quote!(_) } else { quote!(#i) };
                arms.push(quote!(#pat => #build));
            }
            quote! {
                let o = crate::json::Obj::new(v, at)?;
                let tag: usize = o.variant(#tag, &[#(#table),*])?;
                ::core::result::Result::Ok(match tag { #(#arms),* })
            }
        }
        Data::Union(_) => return Err(syn::Error::new_spanned(ty, "unions are not read")),
    };
    Ok(quote! {
        impl #impl_g crate::json::FromJson for #ty #ty_g #where_g {
            fn from_json(
                v: &::serde_json::Value,
                at: crate::json::Path<'_>,
            ) -> ::core::result::Result<Self, crate::json::Invalid> {
                #body
            }
        }
    })
}

/// A variant's name on the wire.
fn variant_name(var: &syn::Variant, c: &Container) -> syn::Result<String> {
    let mut renamed = None;
    each_attr(&var.attrs, |meta, _| {
        if meta.path.is_ident("rename") {
            renamed = Some(string(meta)?);
            Ok(true)
        } else {
            Ok(false)
        }
    })?;
    match renamed {
        Some(n) => Ok(n),
        None => rename(
            &var.ident.to_string(),
            c.rename_all.as_deref(),
            true,
            var.ident.span(),
        ),
    }
}

/// serde's default enum shape, `{"variant": <its fields or its one value>}`.
fn externally_tagged(ty: &syn::Ident, e: &syn::DataEnum, c: &Container) -> syn::Result<Tokens> {
    let mut table = Vec::new();
    let mut arms = Vec::new();
    let last = e.variants.len().saturating_sub(1);
    for (i, var) in e.variants.iter().enumerate() {
        let name = variant_name(var, c)?;
        table.push(quote!(#name));
        let vident = &var.ident;
        let build = match &var.fields {
            Fields::Named(named) => {
                let (inits, keys) = read_fields(named, None)?;
                let only = c
                    .deny_unknown_fields
                    .then(|| quote!(o.only(&[#(#keys),*])?;));
                quote!({
                    let o = crate::json::Obj::new(inner, at)?;
                    #only
                    #ty::#vident { #(#inits),* }
                })
            }
            Fields::Unnamed(one) if one.unnamed.len() == 1 => {
                quote!(#ty::#vident(crate::json::FromJson::from_json(inner, at)?))
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    var,
                    "an externally tagged enum's variants have named fields or one value",
                ))
            }
        };
        let pat = if i == last { quote!(_) } else { quote!(#i) };
        arms.push(quote!(#pat => #build));
    }
    Ok(quote! {
        let (tag, name, inner) = crate::json::external(v, at, &[#(#table),*])?;
        let at = crate::json::Path::Key(&at, name);
        ::core::result::Result::Ok(match tag { #(#arms),* })
    })
}

fn names(input: &DeriveInput) -> syn::Result<Tokens> {
    let c = container(&input.attrs)?;
    let ty = &input.ident;
    let Data::Enum(e) = &input.data else {
        return Err(syn::Error::new_spanned(
            ty,
            "#[derive(Names)] is for unit enums",
        ));
    };
    let mut table = Vec::new();
    let mut to_index = Vec::new();
    let mut from_index = Vec::new();
    let last = e.variants.len().saturating_sub(1);
    for (i, var) in e.variants.iter().enumerate() {
        if !matches!(var.fields, Fields::Unit) {
            return Err(syn::Error::new_spanned(
                var,
                "#[derive(Names)] is for unit enums",
            ));
        }
        let vident = &var.ident;
        table.push(variant_name(var, &c)?);
        to_index.push(quote!(#ty::#vident => #i));
        // The last arm takes what is left, so the match needs no panic.
        let pat = if i == last { quote!(_) } else { quote!(#i) };
        from_index.push(quote!(#pat => #ty::#vident));
    }
    Ok(quote! {
        impl crate::json::Names for #ty {
            const NAMES: &'static [&'static str] = &[#(#table),*];

            fn from_index(index: usize) -> Self {
                match index { #(#from_index),* }
            }

            fn index(self) -> usize {
                match self { #(#to_index),* }
            }
        }

        impl crate::json::FromJson for #ty {
            fn from_json(
                v: &::serde_json::Value,
                at: crate::json::Path<'_>,
            ) -> ::core::result::Result<Self, crate::json::Invalid> {
                let names = <#ty as crate::json::Names>::NAMES;
                crate::json::variant(v, at, names)
                    .map(<#ty as crate::json::Names>::from_index)
            }
        }

        impl ::serde::Serialize for #ty {
            fn serialize<S: ::serde::Serializer>(
                &self,
                s: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl #ty {
            /// Its name in JSON, D1 columns and logs.
            pub fn as_str(self) -> &'static str {
                crate::json::Names::name(self)
            }

            /// The variant named `s`, if any.
            pub fn parse(s: &str) -> ::core::option::Option<Self> {
                <#ty as crate::json::Names>::from_name(s)
            }
        }
    })
}
