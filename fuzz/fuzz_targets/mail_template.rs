//! Mail templates: an operator's override file (the input, as the text part of one action) is
//! loaded, checked and rendered as `Templates::load` does; the built-in templates render any
//! link, address, role and tenant.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use authura_core::mail::{Action, Mail};
use authura_core::types::{Email, Role, TenantId};
use authura_mail::Templates;
use libfuzzer_sys::fuzz_target;

/// This process's own directory of overrides.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("authura-fuzz-mail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
});

static BUILTIN: LazyLock<Templates> = LazyLock::new(Templates::builtin);

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let action = Action::ALL[usize::from(choice % 4)];
    if choice & 0x80 == 0 {
        // An override file.
        let part = ["subject", "txt", "html"][usize::from(choice / 4 % 3)];
        let dir = &*DIR;
        for entry in std::fs::read_dir(dir).unwrap() {
            let _ = std::fs::remove_file(entry.unwrap().path());
        }
        std::fs::write(dir.join(format!("{}.{part}", action.as_str())), text).unwrap();
        if let Ok(templates) = Templates::load(dir) {
            render(&templates, action, "https://app.example.com/verify?token=abc");
        }
    } else {
        // Built-in templates, arbitrary values.
        let mut fields = text.splitn(4, '\u{0}');
        let link = fields.next().unwrap_or("");
        let mail = Mail {
            to: Email::parse(fields.next().unwrap_or(""))
                .unwrap_or_else(|_| Email::parse("ann@example.com").unwrap()),
            action,
            link: link.to_owned(),
            tenant: fields.next().and_then(|t| TenantId::parse(t).ok()),
            role: fields.next().and_then(|r| Role::parse(r).ok()),
            expires_in: Duration::from_secs(u64::from(choice) * 97),
        };
        let _ = BUILTIN.render(&mail);
    }
});

fn render(templates: &Templates, action: Action, link: &str) {
    let mail = Mail {
        to: Email::parse("ann@example.com").unwrap(),
        action,
        link: link.to_owned(),
        tenant: None,
        role: Role::parse("user").ok(),
        expires_in: Duration::from_secs(600),
    };
    let _ = templates.render(&mail);
}
