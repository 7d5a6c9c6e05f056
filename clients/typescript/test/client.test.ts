// The client against a real sandbox gateway, and its retries against a
// scripted fetch (the sandbox has no way to ask for a 429 on demand).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { createGatewayClient, GatewayProblem, must, retryAfterMs, select, SignedOut } from "../src/index.js";
import { startSandbox, type Sandbox } from "./sandbox.js";

let sandbox: Sandbox;
before(async () => {
  sandbox = await startSandbox();
});
after(() => sandbox?.stop());

/** A fetch that records what it sends. */
function recording() {
  const sent: Request[] = [];
  const send = async (request: Request) => {
    sent.push(request.clone());
    return fetch(request);
  };
  return { sent, send };
}

describe("against the sandbox gateway", () => {
  it("reads the account with the API key, typed", async () => {
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "sandbox-key" });
    const account = await must(client.GET("/v1/account"));
    assert.equal(typeof account.city, "string");
    assert.match(account.country ?? "", /^[A-Z]{2}$/);
  });

  it("sends fields as one comma-separated value and gets only those", async () => {
    const { sent, send } = recording();
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "sandbox-key", fetch: send });
    const page = await select(client, "/v1/billing/invoices", ["id", "status"], { params: { query: { per_page: 2 } } });
    assert.match(sent[0]!.url, /fields=id%2Cstatus|fields=id,status/);
    assert.ok(page.items.length > 0);
    for (const item of page.items) {
      assert.deepEqual(Object.keys(item).sort(), ["id", "status"]);
    }
    assert.equal(page.per_page, 2);
  });

  it("selects fields with select(), typed as what comes back", async () => {
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "sandbox-key" });
    const page = await select(client, "/v1/billing/invoices", ["id", "total.amount"], {
      params: { query: { per_page: 2 } },
    });
    assert.equal(page.per_page, 2);
    assert.ok(page.items.length > 0);
    for (const item of page.items) {
      assert.deepEqual(Object.keys(item).sort(), ["id", "total"]);
      assert.equal(typeof item.id, "number");
      assert.equal(typeof item.total?.amount, "string");
    }
    const ticket = await select(client, "/v1/support/tickets/{number}", ["subject", "replies.author"], {
      params: { path: { number: 437928 } },
    });
    assert.deepEqual(Object.keys(ticket).sort(), ["replies", "subject"]);
    assert.equal(typeof ticket.subject, "string");
    await assert.rejects(
      // An unknown name does not compile; sent anyway, the gateway names it.
      select(client, "/v1/account", ["city", "nope" as "city"]),
      (problem: unknown) => problem instanceof GatewayProblem && problem.status === 400,
    );
  });

  it("turns a 422 into a GatewayProblem naming every bad field", async () => {
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "sandbox-key" });
    const result = client.POST("/v1/customers", {
      body: {
        start_billing_date: "2026-02-30",
        customer_id: "TS-1",
        email: "not an email",
        first_name: " ",
        last_name: "Harris",
        address: "126 Mendoza Avenue",
        zipcode: "!!",
        billing_address: null,
      },
    });
    await assert.rejects(must(result), (error: unknown) => {
      assert.ok(error instanceof GatewayProblem);
      assert.equal(error.status, 422);
      assert.equal(error.type, "urn:gateway:problem:validation");
      assert.ok(error.requestId);
      assert.deepEqual(Object.keys(error.fieldMessages()).sort(), [
        "email",
        "first_name",
        "start_billing_date",
        "zipcode",
      ]);
      return true;
    });
  });

  it("gives a create an Idempotency-Key, and the same key on a second send replays the first", async () => {
    const { sent, send } = recording();
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "sandbox-key", fetch: send });
    const body = {
      start_billing_date: "2026-12-01",
      customer_id: `TS-${Date.now()}`,
      email: "steve@example.com",
      first_name: "Steve",
      last_name: "Harris",
      address: "126 Mendoza Avenue",
      zipcode: "33134",
    };
    const created = await must(client.POST("/v1/customers", { body }));
    const key = sent[0]!.headers.get("Idempotency-Key");
    assert.match(key ?? "", /^[0-9a-f-]{36}$/);
    const again = await must(client.POST("/v1/customers", { body, params: { header: { "Idempotency-Key": key! } } }));
    assert.equal(again.id, created.id, "one customer, however often it is sent");
    assert.equal(sent[1]!.headers.get("Idempotency-Key"), key);
  });

  it("revalidates a GET with its ETag and answers the 304 from what it kept", async () => {
    const { sent, send } = recording();
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "sandbox-key", fetch: send });
    const first = await client.GET("/v1/billing/invoices");
    const second = await client.GET("/v1/billing/invoices");
    assert.equal(sent.length, 2);
    assert.ok(sent[1]!.headers.get("If-None-Match"));
    assert.equal(second.response.status, 200);
    assert.equal(second.response.headers.get("X-Revalidated"), "true");
    assert.deepEqual(second.data, first.data);
  });

  it("reports a wrong key as a 401 problem", async () => {
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "wrong" });
    await assert.rejects(must(client.GET("/v1/account")), (error: unknown) => {
      assert.ok(error instanceof GatewayProblem);
      assert.equal(error.status, 401);
      assert.equal(error.type, "urn:gateway:problem:unauthenticated");
      return true;
    });
  });
});

describe("retries", () => {
  const problem = (status: number, retryAfter?: string) =>
    new Response(JSON.stringify({ type: "urn:gateway:problem:rate-limited", title: "Too many", status }), {
      status,
      headers: { "content-type": "application/problem+json", ...(retryAfter ? { "retry-after": retryAfter } : {}) },
    });

  function scripted(answers: Response[]) {
    const sent: Request[] = [];
    const send = async (request: Request) => {
      sent.push(request);
      const answer = answers.shift();
      if (!answer) throw new Error("more requests than scripted");
      return answer;
    };
    return { sent, send };
  }

  it("retries a 429 after its Retry-After with the same Idempotency-Key and body", async () => {
    const { sent, send } = scripted([
      problem(429, "0"),
      problem(503, "0"),
      new Response(JSON.stringify({ id: 7, ns_domain: "x", status: "pending", customer_id: "C" }), {
        status: 201,
        headers: { "content-type": "application/json" },
      }),
    ]);
    const client = createGatewayClient({ baseUrl: "http://gateway.test", apiKey: "k", fetch: send });
    const created = await must(
      client.POST("/v1/customers", {
        body: {
          start_billing_date: "2026-12-01",
          customer_id: "C",
          email: "a@example.com",
          first_name: "A",
          last_name: "B",
          address: "C",
          zipcode: "12345",
        },
      }),
    );
    assert.equal(created.id, 7);
    assert.equal(sent.length, 3);
    const keys = new Set(sent.map((r) => r.headers.get("Idempotency-Key")));
    assert.equal(keys.size, 1);
    for (const request of sent) {
      assert.equal((await request.json()).customer_id, "C");
    }
  });

  it("gives up after the retries, or at once on a wait too long or not given", async () => {
    for (const [answers, expectedSends] of [
      [[problem(429, "0"), problem(429, "0"), problem(429, "0")], 3],
      [[problem(503, "3600")], 1],
      [[problem(503)], 1],
    ] as const) {
      const { sent, send } = scripted([...answers]);
      const client = createGatewayClient({ baseUrl: "http://gateway.test", apiKey: "k", fetch: send });
      await assert.rejects(must(client.GET("/v1/account")), (error: unknown) => {
        assert.ok(error instanceof GatewayProblem);
        return true;
      });
      assert.equal(sent.length, expectedSends);
    }
  });

  it("reads Retry-After as seconds or a date", () => {
    assert.equal(retryAfterMs("2"), 2000);
    assert.equal(retryAfterMs(null), undefined);
    assert.equal(retryAfterMs("soon"), undefined);
    const inAMinute = new Date(Date.now() + 60_000).toUTCString();
    assert.ok((retryAfterMs(inAMinute) ?? 0) > 50_000);
  });
});

/** Logs `who` in at the sandbox's simulated identity provider, as a browser
 * would (following the redirects by hand): the session cookie (`name=value`). */
async function logIn(baseUrl: string, who: string): Promise<string> {
  const manual = { redirect: "manual" as const };
  const login = await fetch(`${baseUrl}/auth/login?return_to=/app`, manual);
  assert.equal(login.status, 302);
  const chosen = await fetch(`${login.headers.get("location")}&login=${who}`, manual);
  const callback = await fetch(chosen.headers.get("location")!, manual);
  assert.equal(callback.headers.get("location"), "/app");
  return callback.headers.get("set-cookie")!.split(";")[0]!;
}

describe("with a person's session (cookie mode)", () => {
  it("sends the cookie, X-CSRF on unsafe methods only, and a 401 is SignedOut", async () => {
    const cookie = await logIn(sandbox.baseUrl, "bob");
    const sent: Request[] = [];
    // Node has no cookie jar: the browser's part, sending the cookie, by hand.
    const send = async (request: Request) => {
      sent.push(request.clone());
      const withCookie = new Request(request);
      withCookie.headers.set("cookie", cookie);
      return fetch(withCookie);
    };
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, session: true, fetch: send });
    const account = await must(client.GET("/v1/account"));
    assert.equal(typeof account.city, "string");
    await must(client.PATCH("/v1/account", { body: { city: "Lund" } }));
    assert.equal(sent[0]!.headers.get("x-csrf"), null, "a read needs no X-CSRF");
    assert.equal(sent[0]!.headers.get("authorization"), null, "no key in cookie mode");
    assert.equal(sent[0]!.credentials, "include");
    assert.equal(sent[1]!.headers.get("x-csrf"), "1");

    // Logged out (here by the gateway's logout): the next call is SignedOut.
    const out = await send(new Request(`${sandbox.baseUrl}/auth/logout`, { method: "POST", headers: { "X-CSRF": "1" } }));
    assert.equal(out.status, 200);
    await assert.rejects(must(client.GET("/v1/account", { headers: { "Cache-Control": "no-cache" } })), (error: unknown) => {
      assert.ok(error instanceof SignedOut, String(error));
      assert.ok(error instanceof GatewayProblem);
      assert.equal(error.status, 401);
      assert.match(error.detail ?? "", /log in/);
      assert.equal(error.loginUrl("/app?x=1"), "/auth/login?return_to=%2Fapp%3Fx%3D1");
      return true;
    });
  });
});
