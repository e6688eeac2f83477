//! The mail templates: a subject, a text and an HTML part per action, built in and overridable
//! file by file from a directory (`MAIL_TEMPLATES_DIR`), checked when loaded.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use authura_core::mail::{Action, Mail, MailError};
use tera::{Context, Tera};

use crate::error::{Error, chain};

/// The compiled templates for every action. Cheap to share behind an `Arc`; rendering is `&self`.
pub struct Templates {
    tera: Tera,
    /// Template name (`invite.html`) → where it came from, for error messages.
    origins: HashMap<String, String>,
}

/// One rendered mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// One line, whitespace collapsed.
    pub subject: String,
    /// The `text/plain` part.
    pub text: String,
    /// The `text/html` part (variables HTML-escaped).
    pub html: String,
}

impl Templates {
    /// The templates shipped in the crate (`templates/<action>.subject|.txt|.html`).
    ///
    /// # Panics
    /// Never in practice: the built-in templates are checked by this crate's tests.
    pub fn builtin() -> Templates {
        let sources = all_names().map(|(action, part, name)| Source {
            origin: format!("built-in {name}"),
            name,
            text: builtin_text(action, part).to_owned(),
        });
        match Templates::compile(sources) {
            Ok(templates) => templates,
            Err(e) => unreachable!("the built-in mail templates are tested: {e}"),
        }
    }

    /// The built-in templates, each overridden by the file of the same name in `dir` when there
    /// is one (`verify-email.subject`, `invite.html`, …). Every template is parsed and rendered
    /// with sample values, so a broken one fails here, not when a mail is due.
    ///
    /// # Errors
    /// When `dir` is not a readable directory, or a file there cannot be read, does not parse or
    /// does not render (the message names the file), or a subject is not one line, or a text or
    /// HTML part leaves out the link.
    pub fn load(dir: &Path) -> Result<Templates, MailError> {
        let dir_error = |reason: String| Error::TemplateDir {
            dir: dir.display().to_string(),
            reason,
        };
        let entries = fs::read_dir(dir).map_err(|e| dir_error(e.to_string()))?;
        let known: Vec<String> = all_names().map(|(_, _, name)| name).collect();
        for entry in entries {
            let name = entry.map_err(|e| dir_error(e.to_string()))?.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') && !known.iter().any(|k| *k == name) {
                tracing::warn!(
                    file = %dir.join(&*name).display(),
                    "ignoring a file in the mail templates directory: the names used are \
                     <action>.subject, <action>.txt and <action>.html"
                );
            }
        }

        let mut sources = Vec::new();
        for (action, part, name) in all_names() {
            let path = dir.join(&name);
            let source = match fs::read_to_string(&path) {
                Ok(text) => Source {
                    name,
                    origin: path.display().to_string(),
                    text,
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => Source {
                    origin: format!("built-in {name}"),
                    name,
                    text: builtin_text(action, part).to_owned(),
                },
                Err(e) => {
                    return Err(Error::Template {
                        file: path.display().to_string(),
                        reason: e.to_string(),
                    }
                    .into());
                }
            };
            sources.push(source);
        }
        let templates = Templates::compile(sources)?;
        templates.check()?;
        Ok(templates)
    }

    /// Renders the subject, text and HTML of one mail.
    ///
    /// # Errors
    /// When a template fails at render time (an override using a filter on a missing value, say);
    /// the message names the template file.
    pub fn render(&self, mail: &Mail) -> Result<Rendered, MailError> {
        let vars = Vars {
            link: &mail.link,
            email: mail.to.as_str(),
            action: mail.action,
            tenant_id: mail.tenant.as_ref().map(|t| t.as_str()),
            expires_in: human_duration(mail.expires_in),
            role: mail.role.as_ref().map(|r| r.as_str()),
        };
        Ok(self.render_vars(&vars)?)
    }

    fn render_vars(&self, vars: &Vars<'_>) -> Result<Rendered, Error> {
        let context = vars.context();
        let action = vars.action.as_str();
        let subject = self.render_one(&format!("{action}.{SUBJECT}"), &context)?;
        Ok(Rendered {
            // Values are single-line already; this keeps an override from breaking the header.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: self.render_one(&format!("{action}.{TEXT}"), &context)?,
            html: self.render_one(&format!("{action}.{HTML}"), &context)?,
        })
    }

    fn render_one(&self, name: &str, context: &Context) -> Result<String, Error> {
        self.tera
            .render(name, context)
            .map_err(|e| self.template_error(name, chain(&e)))
    }

    fn template_error(&self, name: &str, reason: String) -> Error {
        let file = self
            .origins
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        Error::Template { file, reason }
    }

    /// Parses every template; errors name the file.
    fn compile(sources: impl IntoIterator<Item = Source>) -> Result<Templates, Error> {
        let mut tera = Tera::default();
        // Only HTML is escaped: the subject and the text part are not markup.
        tera.autoescape_on(vec![".html"]);
        let mut origins = HashMap::new();
        for source in sources {
            tera.add_raw_template(&source.name, &source.text)
                .map_err(|e| Error::Template {
                    file: source.origin.clone(),
                    reason: chain(&e),
                })?;
            origins.insert(source.name, source.origin);
        }
        Ok(Templates { tera, origins })
    }

    /// Renders every template with sample values, with and without the optional ones.
    fn check(&self) -> Result<(), Error> {
        for action in Action::ALL {
            for optional in [true, false] {
                let vars = Vars {
                    link: "https://auth.example.com/form?action=sample&token=a.b-c_d",
                    email: "user@example.com",
                    action,
                    tenant_id: optional.then_some("sample-tenant"),
                    expires_in: "1 hour".to_owned(),
                    role: optional.then_some("user"),
                };
                let context = vars.context();
                let name = |part: &str| format!("{}.{part}", action.as_str());

                let subject = self.render_one(&name(SUBJECT), &context)?;
                if subject.trim().contains(['\n', '\r']) {
                    return Err(self.template_error(&name(SUBJECT), "must be one line".into()));
                }
                if subject.trim().is_empty() {
                    return Err(self.template_error(&name(SUBJECT), "renders empty".into()));
                }
                let escaped = tera::escape_html(vars.link);
                for (part, link) in [(TEXT, vars.link), (HTML, escaped.as_str())] {
                    let body = self.render_one(&name(part), &context)?;
                    if !body.contains(link) && !body.contains(vars.link) {
                        return Err(self.template_error(
                            &name(part),
                            "does not contain the link ({{ link }})".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut origins: Vec<&String> = self.origins.values().collect();
        origins.sort();
        f.debug_struct("Templates")
            .field("origins", &origins)
            .finish()
    }
}

const SUBJECT: &str = "subject";
const TEXT: &str = "txt";
const HTML: &str = "html";

/// A template's name, where it came from and its text.
struct Source {
    name: String,
    origin: String,
    text: String,
}

/// The variables a template sees.
struct Vars<'a> {
    link: &'a str,
    email: &'a str,
    action: Action,
    tenant_id: Option<&'a str>,
    expires_in: String,
    role: Option<&'a str>,
}

impl Vars<'_> {
    fn context(&self) -> Context {
        let mut context = Context::new();
        context.insert("link", self.link);
        context.insert("email", self.email);
        context.insert("action", self.action.as_str());
        // Absent values are empty strings, so `{% if role %}` and `{{ role | upper }}` both work.
        context.insert("tenant_id", self.tenant_id.unwrap_or(""));
        context.insert("expires_in", &self.expires_in);
        context.insert("role", self.role.unwrap_or(""));
        context
    }
}

/// Every (action, part, template name).
fn all_names() -> impl Iterator<Item = (Action, &'static str, String)> {
    Action::ALL.into_iter().flat_map(|action| {
        [SUBJECT, TEXT, HTML]
            .into_iter()
            .map(move |part| (action, part, format!("{}.{part}", action.as_str())))
    })
}

fn builtin_text(action: Action, part: &str) -> &'static str {
    match (action, part) {
        (Action::VerifyEmail, SUBJECT) => include_str!("../templates/verify-email.subject"),
        (Action::VerifyEmail, TEXT) => include_str!("../templates/verify-email.txt"),
        (Action::VerifyEmail, _) => include_str!("../templates/verify-email.html"),
        (Action::ResetPassword, SUBJECT) => include_str!("../templates/reset-password.subject"),
        (Action::ResetPassword, TEXT) => include_str!("../templates/reset-password.txt"),
        (Action::ResetPassword, _) => include_str!("../templates/reset-password.html"),
        (Action::ChangeEmail, SUBJECT) => include_str!("../templates/change-email.subject"),
        (Action::ChangeEmail, TEXT) => include_str!("../templates/change-email.txt"),
        (Action::ChangeEmail, _) => include_str!("../templates/change-email.html"),
        (Action::Invite, SUBJECT) => include_str!("../templates/invite.subject"),
        (Action::Invite, TEXT) => include_str!("../templates/invite.txt"),
        (Action::Invite, _) => include_str!("../templates/invite.html"),
        (Action::AccountLocked, SUBJECT) => include_str!("../templates/account-locked.subject"),
        (Action::AccountLocked, TEXT) => include_str!("../templates/account-locked.txt"),
        (Action::AccountLocked, _) => include_str!("../templates/account-locked.html"),
    }
}

/// A duration as a phrase: "1 hour", "30 minutes", "1 hour and 30 minutes", "30 days".
pub(crate) fn human_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return "less than a second".to_owned();
    }
    let units = [
        (total / 86_400, "day"),
        (total % 86_400 / 3_600, "hour"),
        (total % 3_600 / 60, "minute"),
        (total % 60, "second"),
    ];
    let parts: Vec<String> = units
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    match parts.as_slice() {
        [] => "less than a second".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use authura_core::{Email, Role, TenantId};

    use super::*;

    fn mail(action: Action, to: &str) -> Mail {
        Mail {
            to: Email::parse(to).unwrap(),
            action,
            link: format!(
                "https://auth.example.com/form?action={}&token=t0k.en",
                action.as_str()
            ),
            tenant: Some(TenantId::parse("acme").unwrap()),
            role: Some(Role::parse("editor").unwrap()),
            expires_in: Duration::from_secs(3600),
        }
    }

    /// Renders `mail` and checks what every rendered mail must satisfy.
    fn check_rendered(templates: &Templates, mail: &Mail) -> Rendered {
        let r = templates.render(mail).unwrap();
        assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{r:?}");
        assert!(
            r.text.contains(&mail.link),
            "text lacks the link: {}",
            r.text
        );
        // `&` in the link is escaped in HTML, as it must be in an attribute.
        let escaped = tera::escape_html(&mail.link);
        assert!(
            r.html.contains(&format!("href=\"{escaped}\"")),
            "html lacks the link: {}",
            r.html
        );
        assert!(r.text.contains(mail.to.as_str()), "{}", r.text);
        assert!(
            r.text.contains("1 hour") && r.html.contains("1 hour"),
            "{r:?}"
        );
        r
    }

    #[test]
    fn every_builtin_template_renders() {
        let templates = Templates::builtin();
        let subjects: Vec<String> = Action::ALL
            .into_iter()
            .map(|a| check_rendered(&templates, &mail(a, "alice@example.com")).subject)
            .collect();
        assert_eq!(
            subjects,
            [
                "Verify your email address",
                "Reset your password",
                "Confirm your new email address",
                "You're invited to acme",
                "Your account has been locked",
            ]
        );
        let invite = templates
            .render(&mail(Action::Invite, "a@example.com"))
            .unwrap();
        assert!(
            invite.text.contains("with the role editor"),
            "{}",
            invite.text
        );
        assert!(
            invite.html.contains("<strong>editor</strong>"),
            "{}",
            invite.html
        );
        // And without the optional values.
        let mut bare = mail(Action::Invite, "a@example.com");
        bare.tenant = None;
        bare.role = None;
        let r = check_rendered(&templates, &bare);
        assert_eq!(r.subject, "You're invited");
        assert!(!r.text.contains("role"), "{}", r.text);
    }

    #[test]
    fn builtins_pass_the_load_checks() {
        Templates::builtin().check().unwrap();
    }

    #[test]
    fn html_escapes_values_but_text_does_not() {
        let templates = Templates::builtin();
        // `Email` refuses `<`, but `&` and `'` are valid in an address; a tenant may hold anything.
        let mut m = mail(Action::Invite, "o'hara&co@example.com");
        m.tenant = Some(TenantId::parse("<b>acme</b>").unwrap());
        let r = check_rendered(&templates, &m);
        assert!(
            r.html.contains("o&#x27;hara&amp;co@example.com"),
            "{}",
            r.html
        );
        assert!(
            r.html.contains("&lt;b&gt;acme&lt;&#x2F;b&gt;"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<b>acme"), "{}", r.html);
        assert!(
            r.text.contains("o'hara&co@example.com at <b>acme</b>"),
            "{}",
            r.text
        );
        assert_eq!(r.subject, "You're invited to <b>acme</b>");

        let vars = Vars {
            link: "https://x.example/?a=1&b=2",
            email: "a&b<c@example.com",
            action: Action::VerifyEmail,
            tenant_id: None,
            expires_in: "1 hour".to_owned(),
            role: None,
        };
        let r = templates.render_vars(&vars).unwrap();
        assert!(r.html.contains("a&amp;b&lt;c@example.com"), "{}", r.html);
        assert!(!r.html.contains("a&b<c"), "{}", r.html);
        assert!(r.text.contains("a&b<c@example.com"), "{}", r.text);
    }

    #[test]
    fn a_directory_overrides_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("verify-email.subject"),
            "Hi {{ email }} ({{ action }}, {{ tenant_id }}, {{ role }})\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("invite.html"),
            "<p>{{ email }}: <a href=\"{{ link }}\">go</a></p>",
        )
        .unwrap();
        let templates = Templates::load(dir.path()).unwrap();

        let r = check_rendered(&templates, &mail(Action::VerifyEmail, "bob@example.com"));
        assert_eq!(r.subject, "Hi bob@example.com (verify-email, acme, editor)");
        assert_eq!(
            r.text,
            Templates::builtin()
                .render(&mail(Action::VerifyEmail, "bob@example.com"))
                .unwrap()
                .text
        );

        let m = mail(Action::Invite, "x&y@example.com");
        let r = templates.render(&m).unwrap();
        let link = tera::escape_html(&m.link);
        assert_eq!(
            r.html,
            format!("<p>x&amp;y@example.com: <a href=\"{link}\">go</a></p>")
        );
        assert_eq!(r.subject, "You're invited to acme");
    }

    /// Loads `files` as overrides and expects an error mentioning every string in `expected`.
    fn check_load_error(files: &[(&str, &str)], expected: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        let err = Templates::load(dir.path()).unwrap_err().to_string();
        for e in expected {
            let e = e.replace("{dir}", &dir.path().display().to_string());
            assert!(err.contains(&e), "error {err:?} lacks {e:?}");
        }
        assert!(!err.ends_with('.'), "{err:?}");
    }

    #[test]
    fn broken_overrides_fail_with_the_file_name() {
        // Does not parse.
        check_load_error(
            &[("reset-password.html", "<p>{{ link </p>")],
            &["{dir}/reset-password.html"],
        );
        check_load_error(
            &[("invite.txt", "{% if role %}{{ link }}")],
            &["{dir}/invite.txt"],
        );
        // Parses but does not render.
        check_load_error(
            &[("change-email.txt", "{{ link }} {{ no_such_variable }}")],
            &["{dir}/change-email.txt", "no_such_variable"],
        );
        check_load_error(
            &[("invite.txt", "{{ link }} {{ email | no_such_filter }}")],
            &["{dir}/invite.txt"],
        );
        // Renders, but not into a usable mail.
        check_load_error(
            &[("verify-email.subject", "Two\nlines")],
            &["{dir}/verify-email.subject", "one line"],
        );
        check_load_error(
            &[("verify-email.subject", "{# nothing #}")],
            &["{dir}/verify-email.subject", "empty"],
        );
        check_load_error(
            &[("verify-email.txt", "no link here")],
            &["{dir}/verify-email.txt", "link"],
        );
        // Not UTF-8.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("invite.html"), [0xff, 0xfe, 0x00]).unwrap();
        let err = Templates::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}/invite.html", dir.path().display())),
            "{err}"
        );
        // No such directory.
        let err = Templates::load(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mail templates directory") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn durations_read_as_phrases() {
        for (secs, phrase) in [
            (0, "less than a second"),
            (1, "1 second"),
            (90, "1 minute and 30 seconds"),
            (1800, "30 minutes"),
            (3600, "1 hour"),
            (5400, "1 hour and 30 minutes"),
            (2 * 86_400 + 3600 + 60, "2 days, 1 hour and 1 minute"),
            (720 * 3600, "30 days"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), phrase);
        }
    }
}
