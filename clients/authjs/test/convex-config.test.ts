/**
 * `authstore convex-config > convex/auth.config.ts` gives a file Convex's
 * types accept, in both forms.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { binaryPath, startServer, type RunningServer } from "./server.js";

const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
// Inside the package, so that `convex/server` resolves from its node_modules.
const WORK = join(PACKAGE, "build-test", "convex-config");
let server: RunningServer;

before(async () => {
  server = await startServer();
  mkdirSync(WORK, { recursive: true });
});
after(async () => {
  await server.stop();
  rmSync(WORK, { recursive: true, force: true });
});

for (const [provider, issuer, expected] of [
  ["oidc", "https://auth.example.com", 'domain: "https://auth.example.com"'],
  ["custom-jwt", "http://127.0.0.1:7878", 'type: "customJwt"'],
] as const) {
  test(`the ${provider} form compiles against convex/server`, () => {
    const file = execFileSync(
      binaryPath(),
      ["convex-config", "--database", server.database, "--issuer", issuer, "--provider", provider],
      {
        encoding: "utf8",
        timeout: 60_000,
        env: { PATH: process.env.PATH ?? "", NODE_ENV: "test", AUTHSTORE_SECRET: server.secret, AUTHSTORE_KEY_ENCRYPTION_KEY: server.kek },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    assert.equal(file.split("export default").length - 1, 1, file);
    assert.ok(file.includes(expected), file);
    const path = join(WORK, `${provider}.auth.config.ts`);
    writeFileSync(path, file);
    execFileSync(
      process.execPath,
      [
        join(PACKAGE, "node_modules", "typescript", "bin", "tsc"),
        "--noEmit", "--strict", "--skipLibCheck",
        "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
        path,
      ],
      { cwd: PACKAGE, encoding: "utf8", timeout: 120_000 },
    );
  });
}
