// Validates Grafana dashboard JSON against Grafana's own dashboard schema (@grafana/schema, the classic
// dashboard model Grafana provisions from files): the dashboard becomes a TypeScript literal typed as
// Dashboard and compiled with tsc, so unknown fields and wrong types are errors. Also checks what the schema
// leaves open: unique panel ids, every panel has a datasource and at least one query.
// Usage: node grafana.mjs OUT_DIR DASHBOARD.json...
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join, dirname, basename } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [outDir, ...files] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });

let failures = 0;
const lines = [`import type { Dashboard } from "@grafana/schema";`];
for (const [i, file] of files.entries()) {
  const dashboard = JSON.parse(readFileSync(file, "utf8"));
  lines.push(`// ${file}`, `export const d${i}: Dashboard = ${JSON.stringify(dashboard, null, 2)};`);
  const ids = new Set();
  for (const panel of dashboard.panels ?? []) {
    if (ids.has(panel.id)) { console.error(`${file}: duplicate panel id ${panel.id}`); failures++; }
    ids.add(panel.id);
    if (panel.type === "row") continue;
    if (!panel.datasource?.uid) { console.error(`${file}: panel "${panel.title}" has no datasource uid`); failures++; }
    if (!(panel.targets?.length > 0)) { console.error(`${file}: panel "${panel.title}" has no query`); failures++; }
  }
}
const tsFile = join(outDir, "dashboards.ts");
writeFileSync(tsFile, lines.join("\n") + "\n");
try {
  execFileSync(join(here, "node_modules/.bin/tsc"),
    ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
     "--skipLibCheck", tsFile], { stdio: "inherit", cwd: here });
} catch { console.error(`dashboard schema check failed (see ${tsFile})`); failures++; }
console.log(`grafana schema: ${files.map(f => basename(f)).join(", ")}; ${failures} failures`);
process.exit(failures === 0 ? 0 : 1);
