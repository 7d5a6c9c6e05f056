// subscribe(): against a real sandbox gateway, and its reconnecting
// against a scripted fetch.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { createGatewayClient, must, subscribe, type StreamItem } from "../src/index.js";
import { startSandbox, type Sandbox } from "./sandbox.js";

let sandbox: Sandbox;
before(async () => {
  sandbox = await startSandbox();
});
after(() => sandbox?.stop());

describe("subscribe", () => {
  it("receives a change made through the gateway, typed", async () => {
    const stop = new AbortController();
    let opened: () => void = () => {};
    const open = new Promise<void>((resolve) => (opened = resolve));
    const items = subscribe({
      baseUrl: sandbox.baseUrl,
      apiKey: "sandbox-key",
      types: ["customer.*"],
      signal: stop.signal,
      onOpen: () => opened(),
    });
    const first = items.next();
    // Once the gateway has answered, the stream is open: nothing is missed.
    await open;
    const client = createGatewayClient({ baseUrl: sandbox.baseUrl, apiKey: "sandbox-key" });
    const customerId = `TS-EV-${Date.now()}`;
    const created = await must(
      client.POST("/v1/customers", {
        body: {
          start_billing_date: "2026-12-01",
          customer_id: customerId,
          email: "steve@example.com",
          first_name: "Steve",
          last_name: "Harris",
          address: "126 Mendoza Avenue",
          zipcode: "33134",
        },
      }),
    );
    const item = (await first).value as StreamItem;
    stop.abort();
    assert.equal(item.kind, "change");
    if (item.kind === "change") {
      assert.equal(item.type, "customer.created");
      assert.equal(item.data.id, created.id);
      assert.equal(item.data.changed["customer_id"], customerId);
      assert.match(item.id, /^\d+-\d+$/);
    }
  });

  it("reconnects after the retry delay with Last-Event-ID, and reports a reset", async () => {
    const sent: Request[] = [];
    const bodies = [
      'retry: 5\n\nid: 7-1\nevent: ticket.updated\ndata: {"type":"ticket.updated","id":1,"changed":{"status":"closed"},"seen_at":"2026-12-02T10:00:00Z"}\n\n',
      'id: 7-2\nevent: ticket.updated\ndata: {"type":"ticket.updated","id":2,"changed":{},"seen_at":"2026-12-02T10:00:01Z"}\n\n' +
        'event: reset\ndata: {"reason":"fell-behind","detail":"refetch"}\n\n',
    ];
    const send = async (request: Request) => {
      sent.push(request);
      const body = bodies.shift();
      if (body === undefined) return new Promise<Response>(() => {});
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    };
    const seen: StreamItem[] = [];
    for await (const item of subscribe({ baseUrl: "http://gateway.test", apiKey: "k", fetch: send, types: ["ticket.*"] })) {
      seen.push(item);
      if (seen.length === 3) break;
    }
    assert.deepEqual(
      seen.map((i) => (i.kind === "change" ? i.id : `reset:${i.data.reason}`)),
      ["7-1", "7-2", "reset:fell-behind"],
    );
    assert.equal(sent[0]!.headers.get("Last-Event-ID"), null);
    assert.equal(sent[1]!.headers.get("Last-Event-ID"), "7-1");
    assert.equal(sent[0]!.headers.get("Authorization"), "Bearer k");
    assert.match(sent[0]!.url, /types=ticket\.\*/);
  });

  it("reads frames whatever their line ends, comments and chunks split mid-line", async () => {
    const chunks = [": heartbeat\r\n\r\nid: 1-1\r\nevent: ticket.upd", 'ated\r\ndata: {"type":"ticket.updated",', '\r\ndata: "id":5,"changed":{},"seen_at":"x"}\r\n\r\n'];
    const send = async () =>
      new Response(
        new ReadableStream({
          start(controller) {
            for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
            controller.close();
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    for await (const item of subscribe({ baseUrl: "http://gateway.test", apiKey: "k", fetch: send })) {
      assert.equal(item.kind, "change");
      if (item.kind === "change") {
        assert.equal(item.id, "1-1");
        assert.equal(item.type, "ticket.updated");
        assert.equal(item.data.id, 5);
      }
      break;
    }
  });
});
