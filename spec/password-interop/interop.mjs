// The node side of spec/integration/password_interop_spec.lua: reads a JSON array of requests on
// stdin, answers a JSON array on stdout, one answer per request, using bcryptjs (the bcrypt that
// AuthHero 9.6.1 hashes and checks passwords with) and hash-wasm's argon2id (WebAssembly of its
// own, not the Debian libargon2 the C core links).
//   { op: "hash", alg: "bcrypt", password, cost }                      -> "$2b$..."
//   { op: "hash", alg: "argon2id", password, iterations, memory, parallelism } -> "$argon2id$..."
//   { op: "verify", alg: "bcrypt" | "argon2id", password, hash }         -> true | false
// Usage: node interop.mjs DEPS_DIR < requests.json > answers.json
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";

const deps = process.argv[2];
if (!deps) throw new Error("usage: node interop.mjs DEPS_DIR");
const require = createRequire(path.join(path.resolve(deps), "package.json"));
const bcrypt = require("bcryptjs");
const { argon2id, argon2Verify } = require("hash-wasm");

const requests = JSON.parse(readFileSync(0, "utf8"));
const answers = [];
for (const r of requests) {
  if (r.op === "hash" && r.alg === "bcrypt") {
    answers.push(bcrypt.hashSync(r.password, r.cost));
  } else if (r.op === "verify" && r.alg === "bcrypt") {
    answers.push(bcrypt.compareSync(r.password, r.hash));
  } else if (r.op === "hash" && r.alg === "argon2id") {
    answers.push(await argon2id({
      password: r.password, salt: randomBytes(16), iterations: r.iterations,
      memorySize: r.memory, parallelism: r.parallelism, hashLength: 32, outputType: "encoded",
    }));
  } else if (r.op === "verify" && r.alg === "argon2id") {
    answers.push(await argon2Verify({ password: r.password, hash: r.hash }));
  } else {
    throw new Error("unknown request " + JSON.stringify(r));
  }
}
const version = (name) =>
  JSON.parse(readFileSync(path.join(deps, "node_modules", name, "package.json"), "utf8")).version;
process.stdout.write(JSON.stringify({ bcryptjs: version("bcryptjs"), "hash-wasm": version("hash-wasm"), answers }) + "\n");
