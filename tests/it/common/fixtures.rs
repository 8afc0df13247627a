//! Fixture scenarios' byte-exact trees and `report.snap` lines, shared by the manifest and the
//! chart fixtures.

use std::path::Path;

/// Every file under `dir` (except `.git`), relative with `/`, sorted, with its bytes.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy();
                out.push((rel.replace('\\', "/"), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The report as `report.snap` lines: updates, skipped references, errors.
pub fn report_lines(report: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let mut out = String::new();
    for u in report["updates"].as_array().into_iter().flatten() {
        let digest = u["digest"]
            .as_str()
            .map(|d| format!(" @{d}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "update {}:{} {} {} {} -> {}{digest}\n",
            s(&u["file"]),
            u["line"],
            s(&u["policy"]),
            s(&u["image"]),
            s(&u["from"]),
            s(&u["to"])
        ));
    }
    for k in report["skipped"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "skip {}:{} {}: {}\n",
            s(&k["file"]),
            k["line"],
            s(&k["image"]),
            s(&k["reason"])
        ));
    }
    for e in report["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!("error {}: {}\n", s(&e["image"]), s(&e["message"])));
    }
    out
}
