// Starts the gateway in sandbox mode (simulated upstreams, the
// `sandbox-key` API key) on a free loopback port, as `npm test` needs it.
// The binary is GATEWAY_BIN, else the workspace's target/debug/gateway,
// built first when missing.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

export interface Sandbox {
  baseUrl: string;
  stop(): void;
}

export async function startSandbox(): Promise<Sandbox> {
  let binary = process.env.GATEWAY_BIN ?? resolve(root, "target/debug/gateway");
  if (!existsSync(binary)) {
    const built = spawnSync("cargo", ["build", "--quiet", "--bin", "gateway"], { cwd: root, stdio: "inherit" });
    if (built.status !== 0) throw new Error("could not build the gateway");
    binary = resolve(root, "target/debug/gateway");
  }
  const child: ChildProcess = spawn(binary, ["--listen", "127.0.0.1:0"], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error("the gateway did not start within 60 s")), 60_000);
    child.once("exit", (code) => reject(new Error(`the gateway exited (${code})`)));
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      try {
        const event = JSON.parse(line);
        if (event?.fields?.message === "gateway listening") {
          clearTimeout(timer);
          resolvePort(Number(event.fields.port));
        }
      } catch {
        // not a log line of ours
      }
    });
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    stop: () => child.kill("SIGTERM"),
  };
}
