//! The layers: merging tables, reading `AUTHSTORE_*` values by the type of
//! the setting's default, and naming the setting a typo meant.

use super::*;

/// Merges `from` into `into`, section tables key by key.
pub(super) fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(more)) => merge(inner, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// `sqlite_durability` is `durability` in `[sqlite]`.
pub(super) fn split_section(key: &str) -> (Option<&'static str>, &str) {
    for section in SECTIONS {
        if let Some(setting) = key
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('_'))
        {
            return (Some(section), setting);
        }
    }
    (None, key)
}

/// The message for a setting that moved into a section.
pub(super) fn moved_setting<'a>(mut keys: impl Iterator<Item = &'a String>) -> Option<String> {
    keys.find_map(|key| {
        MOVED
            .iter()
            .find(|(name, _)| name == key)
            .map(|(name, section)| {
                format!(
                    "{name} moved into the [{section}] section (AUTHSTORE_{}_{})",
                    section.to_ascii_uppercase(),
                    name.to_ascii_uppercase()
                )
            })
    })
}

/// Environment values are text; the type of the setting's default says how
/// to read them. Lists are comma separated. `None`: no such setting.
pub(super) fn env_value(
    defaults: &Table,
    section: Option<&str>,
    key: &str,
    raw: &str,
) -> Result<Option<Value>, String> {
    let table = match section {
        Some(section) => match defaults.get(section) {
            Some(Value::Table(table)) => table,
            _ => return Ok(None),
        },
        None => defaults,
    };
    let dotted = match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_owned(),
    };
    let value = match table.get(key) {
        Some(Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected a whole number, got {raw:?}"))?,
        Some(Value::Float(_)) => raw
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}"))?,
        Some(Value::Boolean(_)) => raw
            .trim()
            .parse::<bool>()
            .map(Value::Boolean)
            .map_err(|_| format!("expected true or false, got {raw:?}"))?,
        Some(Value::Array(_)) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
        Some(Value::Table(_)) => {
            return Err(format!(
                "{key} is a section; set its settings one by one (AUTHSTORE_{}_<SETTING>)",
                key.to_ascii_uppercase()
            ))
        }
        Some(_) => Value::String(raw.to_owned()),
        None if OPTIONAL_TEXT.contains(&dotted.as_str()) => Value::String(raw.to_owned()),
        None => {
            return match moved_setting(std::iter::once(&dotted)) {
                Some(moved) => Err(moved),
                None => Ok(None),
            }
        }
    };
    Ok(Some(value))
}

/// Every setting's name as its environment variable spells it after the
/// prefix (`port`, `sqlite_durability`).
pub(super) fn setting_names(defaults: &Table) -> Vec<String> {
    let mut names = Vec::new();
    for (name, value) in defaults {
        match value {
            Value::Table(section) => {
                names.extend(section.keys().map(|setting| format!("{name}_{setting}")))
            }
            _ => names.push(name.clone()),
        }
    }
    names.extend(OPTIONAL_TEXT.iter().map(|name| name.replace('.', "_")));
    names
}

/// The setting `key` is a likely typo of: at most two edits away.
pub(super) fn nearest_setting(defaults: &Table, key: &str) -> Option<String> {
    setting_names(defaults)
        .into_iter()
        .map(|name| (edit_distance(&name, key), name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance, by characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        let mut next = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = next.last().copied().unwrap_or(usize::MAX);
            let cost = usize::from(ca != *cb);
            next.push((diagonal + cost).min(above + 1).min(left + 1));
            diagonal = above;
        }
        row = next;
    }
    row.last().copied().unwrap_or(0)
}
