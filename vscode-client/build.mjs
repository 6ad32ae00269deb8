// Bundles the extension (and, with --tests, the unit tests against a stub of `vscode`) with
// esbuild, and writes the kit JSON Schema the yamlValidation contribution points at.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const sandkit = process.env.SANDKIT ?? resolve(here, "..", ".venv", "bin", "sandkit");
if (!existsSync(sandkit)) {
  console.error(`build: ${sandkit} not found; run scripts/setup first (or set SANDKIT)`);
  process.exit(1);
}
mkdirSync(join(here, "schemas"), { recursive: true });
writeFileSync(join(here, "schemas", "kit.schema.json"), execFileSync(sandkit, ["kit", "schema"]));

const common = { bundle: true, platform: "node", format: "cjs", target: "node18", sourcemap: true, logLevel: "warning" };
await build({ ...common, entryPoints: [join(here, "src", "extension.ts")], outfile: join(here, "out", "extension.js"), external: ["vscode"] });
if (process.argv.includes("--tests")) {
  const tests = readdirSync(join(here, "test")).filter((f) => f.endsWith(".test.ts"));
  await build({
    ...common,
    entryPoints: tests.map((f) => join(here, "test", f)),
    outdir: join(here, "out-test"),
    alias: { vscode: join(here, "test", "vscode-stub.ts") },
  });
}
