// No surprise breaks: compares the committed spec (openapi/openapi.json)
// with the last released contract (openapi/released.json) and fails on a
// change that breaks a client, unless the API's major version (info.version)
// went up with it.
//
//   node tests/contract/openapi-changes.mjs [released] [current]
//   node tests/contract/openapi-changes.mjs --self-test
//
// The classifying is api-smart-diff's (OpenAPI 3.0 and 3.1 rules: a path or
// response member removed, a request field made required, a type narrowed
// are breaking; additions are not). Only changes under `paths` are judged:
// there api-smart-diff follows each `$ref` and knows whether a schema is read
// in a request or a response (a member added to a response is not breaking;
// made required in a request, it is). A schema in `components` alone has no
// such context and is judged where it is used.
import { readFileSync } from "node:fs";
import { apiCompare } from "api-smart-diff";

const major = (doc) => Number(String(doc.info?.version ?? "0").split(".")[0]);
const where = (path) => path.map((p) => (typeof p === "number" ? `[${p}]` : p)).join(" ");

/** The breaking and other changes from `released` to `current`. */
export function changes(released, current) {
  const { diffs } = apiCompare(released, current);
  const judged = diffs.filter((d) => d.path[0] === "paths");
  return {
    breaking: judged.filter((d) => d.type === "breaking"),
    nonBreaking: judged.filter((d) => d.type === "non-breaking"),
    deprecated: judged.filter((d) => d.type === "deprecated"),
  };
}

/** Whether CI passes, with what it says. */
export function verdict(released, current) {
  const { breaking, nonBreaking, deprecated } = changes(released, current);
  const lines = [
    `released ${released.info.version} -> committed ${current.info.version}: ` +
      `${breaking.length} breaking, ${nonBreaking.length} non-breaking, ${deprecated.length} deprecating change(s) under paths`,
  ];
  for (const d of breaking) lines.push(`  breaking: ${d.action} ${where(d.path)}`);
  const bumped = major(current) > major(released);
  if (breaking.length > 0 && !bumped) {
    lines.push(
      "A client of the released contract would break. Make the change additive, or raise the major " +
        "version (Cargo.toml `version`) and say why in CHANGELOG.md.",
    );
    return { ok: false, lines };
  }
  if (breaking.length > 0) lines.push(`  allowed: the major version went up (${released.info.version} -> ${current.info.version})`);
  return { ok: true, lines };
}

function selfTest(current) {
  const copy = () => JSON.parse(JSON.stringify(current));
  const check = (name, after, expectOk) => {
    const { ok } = verdict(current, after);
    if (ok !== expectOk) throw new Error(`self-test "${name}": expected ${expectOk ? "pass" : "fail"}`);
    console.log(`  self-test: ${name}: ${ok ? "passes" : "fails"}, as it should`);
  };
  check("the same document", copy(), true);
  const removed = copy();
  delete removed.paths["/v1/billing/balance"];
  check("a route removed", removed, false);
  const required = copy();
  required.components.schemas.NewCustomer.required.push("subreseller_id");
  check("a create field made required", required, false);
  const retyped = copy();
  retyped.components.schemas.Account.properties.id = { type: "string" };
  check("an answer's member retyped", retyped, false);
  const bumped = copy();
  delete bumped.paths["/v1/billing/balance"];
  bumped.info.version = `${major(current) + 1}.0.0`;
  check("a route removed with the major version raised", bumped, true);
  const added = copy();
  added.components.schemas.Account.properties.nickname = { type: "string" };
  check("an answer's member added", added, true);
}

const read = (file) => JSON.parse(readFileSync(file, "utf8"));
if (process.argv[2] === "--self-test") {
  selfTest(read("openapi/openapi.json"));
} else {
  const released = read(process.argv[2] ?? "openapi/released.json");
  const current = read(process.argv[3] ?? "openapi/openapi.json");
  const { ok, lines } = verdict(released, current);
  console.log(lines.join("\n"));
  process.exit(ok ? 0 : 1);
}
