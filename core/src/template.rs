//! STUB (drop at merge): the template helper writes the real module.

use std::fmt::{self, Display};

pub struct Template;

#[derive(Debug)]
pub struct TemplateError(pub String);

impl Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Template {
    pub fn parse(_: &str) -> Result<Template, TemplateError> {
        Ok(Template)
    }
}
