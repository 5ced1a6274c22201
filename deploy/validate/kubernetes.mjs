// Validates Kubernetes manifests against the Kubernetes OpenAPI schemas, strictly:
//  1. each document through kubernetes-models' generated JSON-schema validator (types, formats, required);
//  2. each document as a TypeScript object literal typed with the same model's interface, compiled with
//     tsc, so an unknown or misspelt field is an error too (what kubeconform -strict does).
// Usage: node kubernetes.mjs OUT_DIR FILE.yaml...   (exit 1 on the first invalid document)
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { basename, join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const [outDir, ...files] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });

// apiVersion "apps/v1" -> module folder "apps/v1"; the core group "v1" -> "v1".
const modulePath = (apiVersion, kind) => `kubernetes-models/${apiVersion}/${kind}`;

let failures = 0;
let checked = 0;
const typeChecks = [];
for (const file of files) {
  const documents = parseAllDocuments(readFileSync(file, "utf8"));
  for (const [index, document] of documents.entries()) {
    if (document.errors.length > 0) throw new Error(`${file}#${index}: ${document.errors[0].message}`);
    const manifest = document.toJS();
    if (manifest == null) continue;
    const { apiVersion, kind } = manifest;
    if (!apiVersion || !kind) { console.error(`${file}#${index}: no apiVersion/kind`); failures++; continue; }
    if (kind === "Kustomization") continue; // kustomize's own file, not an API object
    const where = `${file}#${index} ${kind} ${manifest.metadata?.name ?? ""}`;
    let model;
    try { model = await import(modulePath(apiVersion, kind)); }
    catch { console.error(`${where}: unknown apiVersion/kind ${apiVersion} ${kind}`); failures++; continue; }
    try { new model[kind](manifest).validate(); checked++; }
    catch (error) { console.error(`${where}: ${error.message}`); failures++; }
    typeChecks.push({ where, apiVersion, kind, manifest });
  }
}

// One .ts file: every manifest as a literal of its model's interface (I<Kind>).
const lines = typeChecks.map(({ apiVersion, kind }, i) =>
  `import type { I${kind} as T${i} } from "${modulePath(apiVersion, kind)}";`);
typeChecks.forEach(({ where, manifest }, i) =>
  lines.push(`// ${where}`, `export const m${i}: T${i} = ${JSON.stringify(manifest, null, 2)};`));
const tsFile = join(outDir, "manifests.ts");
writeFileSync(tsFile, lines.join("\n") + "\n");
try {
  execFileSync(join(here, "node_modules/.bin/tsc"),
    ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
     "--skipLibCheck", "--typeRoots", join(here, "node_modules/@types"), tsFile],
    { stdio: "inherit", cwd: here });
} catch { console.error(`strict field check failed (see ${tsFile})`); failures++; }

console.log(`kubernetes schema: ${checked} documents from ${files.map(f => basename(f)).join(", ")}; ${failures} failures`);
process.exit(failures === 0 ? 0 : 1);
