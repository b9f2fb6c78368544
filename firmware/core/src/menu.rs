//! The serial console's menu, as text in and text out.
//!
//! Owns what the console shows once a node is set up (DESIGN §12, issue
//! 7): the status line on top (hostname, role, addresses, alerts), the
//! numbered items, parsing a choice (a number or the item's command name,
//! so every item is also a command), the ISU list screen with its adopt and
//! reject commands, and paging for an 80x24 dumb terminal. Reading the terminal, asking the supervisor and
//! running a shell or reboot are the driver's job (`opie console`).

use std::fmt::Write as _;

use thiserror::Error;

use crate::adoption::{Function, Standing};
use crate::config::{Config, LanAddr, Role};
use crate::status::StatusReport;

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub rows: u16,
    pub cols: u16,
}

impl TermSize {
    /// The size a serial terminal reports; a 0x0 (or absurdly small)
    /// report means it does not know, and Opie assumes 80x24.
    pub fn reported(rows: u16, cols: u16) -> Self {
        TermSize { rows: if rows < 10 { 24 } else { rows }, cols: if cols < 40 { 80 } else { cols } }
    }
}

impl Default for TermSize {
    fn default() -> Self {
        TermSize { rows: 24, cols: 80 }
    }
}

/// One menu item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Status,
    Isus,
    Network,
    Password,
    Reboot,
    Shell,
}

/// The items in menu order; item `n` is `ITEMS[n - 1]`.
pub const ITEMS: [Item; 6] = [Item::Status, Item::Isus, Item::Network, Item::Password, Item::Reboot, Item::Shell];

impl Item {
    pub fn label(self) -> &'static str {
        match self {
            Item::Status => "Show status",
            Item::Isus => "Show ISUs",
            Item::Network => "Network settings",
            Item::Password => "Reset admin password",
            Item::Reboot => "Reboot",
            Item::Shell => "Shell",
        }
    }

    /// The word that chooses this item without its number.
    pub fn command(self) -> &'static str {
        match self {
            Item::Status => "status",
            Item::Isus => "isus",
            Item::Network => "network",
            Item::Password => "password",
            Item::Reboot => "reboot",
            Item::Shell => "shell",
        }
    }
}

/// A choice the menu does not know.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MenuError {
    /// Not a menu item.
    #[error("{0:?} is not a menu choice: type a number from 1 to 6 or a name such as status")]
    NotAChoice(String),
    /// Not an ISU command.
    #[error("{0:?} is not understood: type adopt SERIAL member, adopt SERIAL spare or reject SERIAL")]
    NotAnIsuAction(String),
}

/// What the admin does with a pending ISU on the ISU screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsuAction {
    Adopt { serial: String, function: Function },
    Reject { serial: String },
}

/// Parses `adopt SERIAL member|spare` or `reject SERIAL` (the serial may
/// also be the key fingerprint); an empty line is `None` (back to the menu).
pub fn parse_isu_action(line: &str) -> Result<Option<IsuAction>, MenuError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (lower.as_slice(), words.as_slice()) {
        ([], _) => Ok(None),
        (["adopt", _, "member"], [_, serial, _]) => {
            Ok(Some(IsuAction::Adopt { serial: serial.to_string(), function: Function::Member }))
        }
        (["adopt", _, "spare"], [_, serial, _]) => {
            Ok(Some(IsuAction::Adopt { serial: serial.to_string(), function: Function::Spare }))
        }
        (["reject", _], [_, serial]) => Ok(Some(IsuAction::Reject { serial: serial.to_string() })),
        _ => Err(MenuError::NotAnIsuAction(line.trim().to_string())),
    }
}

/// Parses a typed choice; an empty line is `None` (draw the menu again).
pub fn parse_choice(line: &str) -> Result<Option<Item>, MenuError> {
    let choice = line.trim().to_ascii_lowercase();
    if choice.is_empty() {
        return Ok(None);
    }
    let by_number = choice.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| ITEMS.get(i));
    let by_name = ITEMS.iter().find(|item| item.command() == choice);
    by_number.or(by_name).copied().map(Some).ok_or(MenuError::NotAChoice(line.trim().to_string()))
}

/// The LAN part of a head's config in a few words.
pub fn lan_words(config: &Config) -> Option<String> {
    let head = config.head.as_ref()?;
    Some(match head.lan {
        LanAddr::Dhcp => "LAN dhcp".to_string(),
        LanAddr::Static { addr, .. } => format!("LAN {addr}"),
    })
}

/// The line on top of every menu: host, role, addresses, alerts; cut to
/// `cols - 1` so it never wraps. `lan` is from [`lan_words`].
pub fn status_line(report: &StatusReport, lan: Option<&str>, cols: u16) -> String {
    let mut parts = vec![report.hostname.clone(), report.role.to_string()];
    parts.extend(lan.map(str::to_string));
    let storage = report.storage_addr.map_or_else(|| "leased".to_string(), |a| a.to_string());
    parts.push(format!("storage {storage}"));
    parts.push(match report.alerts.len() {
        0 => "no alerts".to_string(),
        1 => "1 ALERT".to_string(),
        n => format!("{n} ALERTS"),
    });
    cut(&format!("Opie | {}", parts.join(" | ")), cols)
}

/// The whole menu screen.
pub fn menu_screen(report: Result<&StatusReport, &str>, lan: Option<&str>, size: TermSize) -> String {
    let mut out = String::new();
    match report {
        Ok(r) => {
            let _ = writeln!(out, "{}", status_line(r, lan, size.cols));
            // The head's RAID group and the ISU's export, in words.
            for (what, state) in [("Storage", &r.storage), ("Export", &r.export)] {
                if let Some(state) = state {
                    let _ = writeln!(out, "{}", cut(&format!("{what}: {state}"), size.cols));
                }
            }
            if let Some(newest) = r.alerts.last() {
                let _ = writeln!(out, "{}", cut(&format!("ALERT: {newest}"), size.cols));
            }
        }
        Err(e) => {
            let _ = writeln!(out, "{}", cut(&format!("Opie | supervisor not answering: {e}"), size.cols));
        }
    }
    let _ = writeln!(out, "{}", "-".repeat(usize::from(size.cols) - 1));
    for (n, item) in ITEMS.iter().enumerate() {
        let _ = writeln!(out, "  {}) {}", n + 1, item.label());
    }
    let _ = write!(out, "Choice (number or name): ");
    out
}

/// The ISU list: what the status report holds, or plainly why it is empty.
pub fn isus_screen(report: &StatusReport) -> String {
    let mut out = String::new();
    if report.role != Role::Head {
        let _ = writeln!(out, "This node is {}: ISUs are listed on the heads.", report.role);
        if let Some(link) = &report.head_link {
            let _ = writeln!(out, "Head link: {link}");
        }
        return out;
    }
    if report.isus.is_empty() {
        let _ = writeln!(out, "No ISUs known yet: none has said hello to this head.");
        let _ = writeln!(out, "A new ISU appears here as pending once it reaches the control channel.");
        return out;
    }
    let pending = report.isus.iter().filter(|i| i.standing == Standing::Pending).count();
    let _ = writeln!(out, "{} ISU(s), {pending} pending adoption:", report.isus.len());
    for isu in &report.isus {
        let standing = match isu.standing {
            Standing::Pending => "pending".to_string(),
            Standing::Adopted(f) => format!("adopted ({})", f.as_str()),
            Standing::Rejected => "rejected".to_string(),
        };
        let link = if isu.connected { "connected" } else { "not connected" };
        let _ = writeln!(out, "{}", cut(&format!("  {} key {} {standing}, {link}", isu.serial, isu.fingerprint), 80));
        if let Some(reported) = &isu.reported {
            let _ = writeln!(out, "{}", cut(&format!("    {reported}"), 80));
        }
    }
    out
}

/// Whether the ISU screen offers adopt and reject: on a head with ISUs
/// pending.
pub fn has_pending(report: &StatusReport) -> bool {
    report.role == Role::Head && report.isus.iter().any(|i| i.standing == Standing::Pending)
}

/// Splits `text` into pages that leave one row for a "more" prompt.
pub fn pages(text: &str, size: TermSize) -> Vec<String> {
    let per_page = usize::from(size.rows).saturating_sub(1).max(1);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return vec![String::new()];
    }
    lines.chunks(per_page).map(|chunk| chunk.iter().map(|l| format!("{}\n", cut(l, size.cols))).collect()).collect()
}

/// `text` cut to fit in `cols - 1` columns (the last column makes some
/// terminals wrap), in plain ASCII.
fn cut(text: &str, cols: u16) -> String {
    text.chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' })
        .take(usize::from(cols) - 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adoption::Function;
    use crate::status::{ConfigOrigin, IsuStatus};

    fn report(role: Role) -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            role,
            hostname: "head-1".into(),
            config_origin: ConfigOrigin::Stored,
            config_generation: 2,
            storage_iface: "eth0".into(),
            storage_addr: Some("10.77.0.1/24".parse().expect("cidr")),
            state_dir: "/var/lib/opie".into(),
            key_fingerprint: "0a1b-2c3d-4e5f-6a7b-8c9d".into(),
            uptime_secs: 5,
            ..StatusReport::default()
        }
    }

    #[test]
    fn choices_by_number_and_by_name() {
        assert_eq!(parse_choice(""), Ok(None));
        assert_eq!(parse_choice("  "), Ok(None));
        for (n, item) in ITEMS.iter().enumerate() {
            assert_eq!(parse_choice(&(n + 1).to_string()), Ok(Some(*item)));
            assert_eq!(parse_choice(&item.command().to_uppercase()), Ok(Some(*item)));
        }
        for bad in ["0", "7", "-1", "stat", "99999999999999999999", "1 2"] {
            assert_eq!(parse_choice(bad), Err(MenuError::NotAChoice(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn unknown_terminal_size_means_80x24() {
        assert_eq!(TermSize::reported(0, 0), TermSize { rows: 24, cols: 80 });
        assert_eq!(TermSize::reported(50, 132), TermSize { rows: 50, cols: 132 });
        assert_eq!(TermSize::reported(24, 0), TermSize { rows: 24, cols: 80 });
    }

    #[test]
    fn status_line_has_role_addresses_and_alerts() {
        let mut r = report(Role::Head);
        let mut config = Config::new(Role::Head, "head-1");
        assert_eq!(lan_words(&config).as_deref(), Some("LAN dhcp"));
        config.head.as_mut().expect("head").lan =
            LanAddr::Static { addr: "192.168.1.10/24".parse().expect("cidr"), gateway: None };
        let lan = lan_words(&config);
        assert_eq!(
            status_line(&r, lan.as_deref(), 80),
            "Opie | head-1 | head | LAN 192.168.1.10/24 | storage 10.77.0.1/24 | no alerts"
        );
        r.alerts = vec!["disk gone".into(), "x".repeat(200)];
        let line = status_line(&r, lan.as_deref(), 80);
        assert!(line.ends_with("| 2 ALERTS"), "{line}");
        r.storage = Some("group g1: 3 of 3 members, clean".into());
        let screen = menu_screen(Ok(&r), lan.as_deref(), TermSize::default());
        assert_eq!(screen.lines().nth(1), Some("Storage: group g1: 3 of 3 members, clean"), "{screen}");
        assert!(screen.lines().nth(2).expect("alert line").starts_with("ALERT: xxx"), "{screen}");
        assert!(screen.lines().all(|l| l.len() < 80), "{screen}");
        assert!(screen.lines().count() <= 23);
        assert!(screen.contains("  6) Shell\n") && screen.ends_with("Choice (number or name): "), "{screen}");
        let mut isu = report(Role::Isu);
        isu.storage_addr = None;
        assert!(status_line(&isu, None, 80).contains("| isu | storage leased |"));
        let down = menu_screen(Err("cannot reach the supervisor"), None, TermSize::reported(0, 0));
        assert!(down.starts_with("Opie | supervisor not answering: cannot reach"), "{down}");
    }

    #[test]
    fn isu_screen_says_plainly_when_there_are_none() {
        let text = isus_screen(&report(Role::Head));
        assert!(text.starts_with("No ISUs known yet"), "{text}");
        let mut isu = report(Role::Isu);
        isu.head_link = Some("not connected yet".into());
        let text = isus_screen(&isu);
        assert!(text.contains("ISUs are listed on the heads") && text.contains("Head link: not connected yet"));
    }

    #[test]
    fn isu_screen_lists_pending_and_adopted() {
        let mut r = report(Role::Head);
        r.isus = vec![
            IsuStatus {
                serial: "ISU-1".into(),
                fingerprint: "aaaa-bbbb".into(),
                standing: Standing::Pending,
                connected: false,
                reported: None,
            },
            IsuStatus {
                serial: "ISU-2".into(),
                fingerprint: "cccc-dddd".into(),
                standing: Standing::Adopted(Function::Spare),
                connected: true,
                reported: Some("normal".into()),
            },
        ];
        let text = isus_screen(&r);
        assert!(text.contains("2 ISU(s), 1 pending adoption:"), "{text}");
        assert!(text.contains("  ISU-1 key aaaa-bbbb pending, not connected\n"), "{text}");
        assert!(text.contains("  ISU-2 key cccc-dddd adopted (spare), connected\n    normal\n"), "{text}");
        assert!(has_pending(&r));
        r.isus.remove(0);
        assert!(!has_pending(&r));
    }

    #[test]
    fn isu_actions() {
        assert_eq!(parse_isu_action("  "), Ok(None));
        assert_eq!(
            parse_isu_action("adopt ISU-1 member"),
            Ok(Some(IsuAction::Adopt { serial: "ISU-1".into(), function: Function::Member }))
        );
        assert_eq!(
            parse_isu_action("ADOPT aaaa-bbbb Spare"),
            Ok(Some(IsuAction::Adopt { serial: "aaaa-bbbb".into(), function: Function::Spare }))
        );
        assert_eq!(parse_isu_action("reject ISU-2"), Ok(Some(IsuAction::Reject { serial: "ISU-2".into() })));
        for bad in ["adopt", "adopt ISU-1", "adopt ISU-1 parity", "reject", "reject a b", "yes"] {
            assert_eq!(parse_isu_action(bad), Err(MenuError::NotAnIsuAction(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn long_text_is_paged_to_the_screen() {
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let p = pages(&text, TermSize::default());
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].lines().count(), 23);
        assert!(p[2].ends_with("line 49\n"));
        assert_eq!(pages("", TermSize::default()), vec![String::new()]);
        let wide = pages(&"w".repeat(300), TermSize::default());
        assert_eq!(wide[0], format!("{}\n", "w".repeat(79)));
    }
}
